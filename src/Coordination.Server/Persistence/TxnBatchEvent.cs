using System.Buffers.Binary;
using Akka.Actor;
using Akka.Serialization;
using Coordination.Core;

namespace Coordination.Server.Persistence;

/// <summary>
/// One journal event: a group-committed batch of txns, each as its jute bytes (<see cref="Txns.Serialize"/>).
/// A whole batch is one row, so it is durable all or nothing, and one row per batch keeps the plugin's per-row CPU
/// cost off the write path. Payload: int32 count, then per txn int64 zxid, int32 length, bytes (big-endian).
/// </summary>
public sealed class TxnBatchEvent
{
    public byte[] Payload { get; }

    public TxnBatchEvent(byte[] payload) => Payload = payload;

    public static TxnBatchEvent From(IReadOnlyList<(long Zxid, byte[] Bytes)> txns)
    {
        var size = 4;
        foreach (var t in txns) size += 12 + t.Bytes.Length;
        var payload = new byte[size];
        BinaryPrimitives.WriteInt32BigEndian(payload, txns.Count);
        var at = 4;
        foreach (var (zxid, bytes) in txns)
        {
            BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(at), zxid);
            BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(at + 8), bytes.Length);
            bytes.CopyTo(payload.AsSpan(at + 12));
            at += 12 + bytes.Length;
        }
        return new TxnBatchEvent(payload);
    }

    /// <summary>
    /// Serializes proposals straight into one payload array: each txn is written (as <see cref="Txns.Serialize"/>
    /// writes it: header, error flag, body) into a reused scratch buffer, then copied once into the payload, so a
    /// batch costs one allocation whatever its size (large znode data would otherwise be copied twice).
    /// </summary>
    public static TxnBatchEvent From(IReadOnlyList<Proposal> proposals, System.Buffers.ArrayBufferWriter<byte> scratch)
    {
        scratch.ResetWrittenCount();
        Span<int> small = proposals.Count <= 256 ? stackalloc int[proposals.Count] : default;
        var lengths = proposals.Count <= 256 ? small : new int[proposals.Count];
        for (var i = 0; i < proposals.Count; i++)
        {
            var before = scratch.WrittenCount;
            Txns.Write(scratch, proposals[i].Header, proposals[i].Txn);
            lengths[i] = scratch.WrittenCount - before;
        }
        var payload = new byte[4 + 12 * proposals.Count + scratch.WrittenCount];
        BinaryPrimitives.WriteInt32BigEndian(payload, proposals.Count);
        var written = scratch.WrittenSpan;
        int at = 4, from = 0;
        for (var i = 0; i < proposals.Count; i++)
        {
            BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(at), proposals[i].Header.Zxid);
            BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(at + 8), lengths[i]);
            written.Slice(from, lengths[i]).CopyTo(payload.AsSpan(at + 12));
            at += 12 + lengths[i];
            from += lengths[i];
        }
        return new TxnBatchEvent(payload);
    }

    public int Count => BinaryPrimitives.ReadInt32BigEndian(Payload);

    /// <summary>The zxid of the batch's last txn, without decoding the txns.</summary>
    public long LastZxid
    {
        get
        {
            long last = 0;
            foreach (var (zxid, _) in Entries()) last = zxid;
            return last;
        }
    }

    public IEnumerable<(long Zxid, ReadOnlyMemory<byte> Bytes)> Entries()
    {
        var count = BinaryPrimitives.ReadInt32BigEndian(Payload);
        if (count < 0) throw new InvalidDataException("corrupt txn batch: negative count");
        var at = 4;
        for (var i = 0; i < count; i++)
        {
            if (at + 12 > Payload.Length) throw new InvalidDataException("corrupt txn batch: truncated");
            var zxid = BinaryPrimitives.ReadInt64BigEndian(Payload.AsSpan(at));
            var length = BinaryPrimitives.ReadInt32BigEndian(Payload.AsSpan(at + 8));
            if (length < 0 || at + 12 + length > Payload.Length) throw new InvalidDataException("corrupt txn batch: bad length");
            yield return (zxid, Payload.AsMemory(at + 12, length));
            at += 12 + length;
        }
    }
}

/// <summary>
/// Ensemble journal event: the txns logged after <see cref="Zxid"/> are dropped (they were never committed; a new
/// leader told this server to TRUNC). Recovery applies it to the entries read before it.
/// </summary>
public sealed record LogTruncatedEvent(long Zxid);

/// <summary>Hand-written serializer for journal events (bound in reference.conf). Manifest "B" = <see cref="TxnBatchEvent"/>,
/// "T" = <see cref="LogTruncatedEvent"/>.</summary>
public sealed class TxnEventSerializer : SerializerWithStringManifest
{
    public TxnEventSerializer(ExtendedActorSystem system) : base(system) { }

    public override int Identifier => 4242;

    public override string Manifest(object o) => o switch
    {
        TxnBatchEvent => "B",
        LogTruncatedEvent => "T",
        _ => throw new ArgumentException($"cannot serialize {o.GetType()}"),
    };

    public override byte[] ToBinary(object obj) => obj switch
    {
        TxnBatchEvent e => e.Payload,
        LogTruncatedEvent t => BitConverter.GetBytes(BinaryPrimitives.ReverseEndianness(t.Zxid)),
        _ => throw new ArgumentException($"cannot serialize {obj.GetType()}"),
    };

    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        "B" => new TxnBatchEvent(bytes),
        "T" when bytes.Length == 8 => new LogTruncatedEvent(BinaryPrimitives.ReadInt64BigEndian(bytes)),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown manifest {manifest}"),
    };
}
