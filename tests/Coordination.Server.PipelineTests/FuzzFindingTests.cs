using System.Buffers.Binary;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// What the fuzzer found (fuzz/README.md, "Findings"), each pinned on the decoder it was found in. The inputs that
/// found them are also in fuzz/corpus/TARGET/finding-*, which <see cref="FuzzCorpusTests"/> replays.
/// </summary>
public sealed class FuzzFindingTests
{
    /// <summary>
    /// Finding 1 (member-frames): a member allocated the whole frame a length prefix announced (up to
    /// maximum-frame-size) before any of it arrived, and anyone may connect to the member port. Now the buffer
    /// grows only as the frame's bytes come in, and the frame still arrives whole when they do.
    /// </summary>
    [Fact]
    public void A_member_length_prefix_alone_does_not_allocate_the_frame()
    {
        const int maxFrame = 4 << 20;
        var reader = new MemberFrameReader(maxFrame);
        var payload = Enumerable.Range(0, 3 << 20).Select(i => (byte)(i * 31)).ToArray();
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        var delivered = new List<byte[]>();
        MemberFrameReader.Deliver deliver = p => delivered.Add(p.ToArray());

        var before = GC.GetAllocatedBytesForCurrentThread();
        Receive(reader, frame.AsSpan(0, 5), deliver);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the prefix made the reader allocate");
        Assert.True(reader.FreeSpace.Length < 128 * 1024);

        for (var at = 5; at < frame.Length; at += 100_000) Receive(reader, frame.AsSpan(at, Math.Min(100_000, frame.Length - at)), deliver);
        Assert.Equal(payload, Assert.Single(delivered));
    }

    /// <summary>
    /// Finding 2 (txn): a multi txn whose op is again a multi decoded recursively, 8 bytes a level, so a crafted
    /// entry (Zab proposals carry txns; so does the journal) overflowed the stack and killed the process. Prep
    /// never nests a multi; the decoder now refuses one with a JuteException.
    /// </summary>
    [Fact]
    public void A_multi_txn_nested_in_a_multi_txn_is_refused_not_recursed()
    {
        const int depth = 100_000;   // ~800 KB: far past the stack before the fix
        var empty = Txns.Serialize(new TxnHeader(1, 1, 2, 3, OpCode.Multi), new MultiTxn([]));
        var prefix = empty.Length - 4;   // header and is-error flag, without the empty multi's op count
        var bytes = new byte[prefix + 8 * depth + 4];
        empty.AsSpan(0, prefix).CopyTo(bytes);
        for (var i = 0; i < depth; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(prefix + 8 * i), 1);                      // one op
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(prefix + 8 * i + 4), (int)OpCode.Multi);   // and it is a multi
        }

        var e = Assert.Throws<JuteException>(() => Txns.Deserialize(bytes));
        Assert.Contains("multi inside a multi", e.Message);
        var flat = new MultiTxn([new(OpCode.Delete, new DeleteTxn("/a")), new(OpCode.Error, new ErrorTxn(ErrorCode.Ok))]);
        Assert.Equal(2, ((MultiTxn)Txns.Deserialize(Txns.Serialize(new TxnHeader(1, 1, 2, 3, OpCode.Multi), flat)).Txn).Ops.Count);
    }

    private static void Receive(MemberFrameReader reader, ReadOnlySpan<byte> bytes, MemberFrameReader.Deliver deliver)
    {
        while (!bytes.IsEmpty)
        {
            var free = reader.FreeSpace.Span;
            var n = Math.Min(free.Length, bytes.Length);
            bytes[..n].CopyTo(free);
            bytes = bytes[n..];
            reader.Received(n, deliver);
        }
    }
}
