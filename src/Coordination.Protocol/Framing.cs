using System.Buffers;
using System.Buffers.Binary;

namespace Coordination.Protocol;

public enum FrameStatus { NeedMoreData, Frame, TooLarge, Negative }

/// <summary>4-byte big-endian length prefix framing of the client protocol.</summary>
public static class Framing
{
    /// <summary>ZooKeeper's default jute.maxbuffer (0xfffff) plus the margin it allows for the packet header.</summary>
    public const int DefaultMaxFrame = 0xfffff + 1024;

    /// <summary>
    /// Peeks the length prefix. A frame over <paramref name="maxFrame"/> is reported as soon as its 4-byte prefix
    /// arrives, so the caller can refuse it without buffering the body.
    /// </summary>
    public static FrameStatus TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrame, out ReadOnlySequence<byte> frame, out int length)
    {
        frame = default;
        length = 0;
        if (buffer.Length < 4) return FrameStatus.NeedMoreData;
        Span<byte> prefix = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(prefix);
        length = BinaryPrimitives.ReadInt32BigEndian(prefix);
        if (length < 0) return FrameStatus.Negative;
        if (length > maxFrame) return FrameStatus.TooLarge;
        if (buffer.Length < 4L + length) return FrameStatus.NeedMoreData;
        frame = buffer.Slice(4, length);
        buffer = buffer.Slice(4L + length);
        return FrameStatus.Frame;
    }

    /// <summary>
    /// The same on a contiguous buffer: on <see cref="FrameStatus.Frame"/>, the frame's payload is the
    /// <paramref name="length"/> bytes after the 4-byte prefix; <paramref name="length"/> is also set (to the size
    /// announced) when the body has not fully arrived, so the caller can make room for it.
    /// </summary>
    public static FrameStatus TryReadFrame(ReadOnlySpan<byte> buffer, int maxFrame, out int length)
    {
        length = 0;
        if (buffer.Length < 4) return FrameStatus.NeedMoreData;
        length = BinaryPrimitives.ReadInt32BigEndian(buffer);
        if (length < 0) return FrameStatus.Negative;
        if (length > maxFrame) return FrameStatus.TooLarge;
        return buffer.Length - 4 < length ? FrameStatus.NeedMoreData : FrameStatus.Frame;
    }

    /// <summary>Reserves 4 bytes for the length, lets the caller write the payload, then patches the length in.</summary>
    public static void WriteFrame<TState>(ArrayBufferWriter<byte> output, TState state, WriteBody<TState> body)
    {
        var start = output.WrittenCount;
        output.GetSpan(4);
        output.Advance(4);
        var writer = new JuteWriter(output);
        body(ref writer, state);
        var payloadLength = output.WrittenCount - start - 4;
        // ArrayBufferWriter exposes its written memory; patch the reserved prefix in place.
        var written = System.Runtime.InteropServices.MemoryMarshal.AsMemory(output.WrittenMemory);
        BinaryPrimitives.WriteInt32BigEndian(written.Span.Slice(start, 4), payloadLength);
    }

    public delegate void WriteBody<TState>(ref JuteWriter writer, TState state);
}

/// <summary>ZooKeeper's four-letter words: a connection whose first 4 bytes spell one is an admin command.</summary>
public static class FourLetterWords
{
    public static readonly IReadOnlyList<string> All =
        ["ruok", "srvr", "stat", "mntr", "cons", "crst", "envi", "conf", "wchs", "wchc", "wchp", "dump", "isro", "srst", "dirs", "gtmk", "stmk", "hash"];

    /// <summary>Returns the word when the first four bytes of a connection are a known four-letter word.</summary>
    public static string? Detect(ReadOnlySpan<byte> firstFour)
    {
        if (firstFour.Length < 4) return null;
        Span<char> chars = stackalloc char[4];
        for (var i = 0; i < 4; i++) chars[i] = (char)firstFour[i];
        foreach (var word in All)
            if (chars.SequenceEqual(word)) return word;
        return null;
    }
}
