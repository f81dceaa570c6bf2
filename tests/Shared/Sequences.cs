using System.Buffers;

namespace Coordination.Testing;

/// <summary>
/// Multi-segment byte sequences, as a socket's pipe hands them over, for code that parses a
/// <see cref="ReadOnlySequence{T}"/> (compiled into the test and fuzz projects that need it).
/// </summary>
internal static class Sequences
{
    /// <summary>One sequence whose segments are <paramref name="segments"/>, in order.</summary>
    public static ReadOnlySequence<byte> Of(params byte[][] segments)
    {
        if (segments.Length == 1) return new ReadOnlySequence<byte>(segments[0]);
        var first = new Segment(segments[0], 0);
        var last = first;
        foreach (var s in segments.Skip(1)) last = last.Append(s);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex) { Memory = memory; RunningIndex = runningIndex; }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
