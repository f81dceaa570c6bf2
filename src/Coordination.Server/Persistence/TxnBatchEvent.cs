using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Serialization;
using Coordination.Core;

namespace Coordination.Server.Persistence;

/// <summary>
/// One journal event: a group-committed batch of txns, each as its jute bytes (<see cref="Txns.Serialize"/>).
/// A whole batch is one row, so it is durable all or nothing, and one row per batch keeps the plugin's per-row CPU
/// cost off the write path. Payload: int32 count, then per txn int64 zxid, int32 length, bytes (big-endian).
/// <para>
/// An event made from txns (<see cref="Of"/>, <see cref="From(IReadOnlyList{ValueTuple{long, byte[]}})"/>) is not
/// serialized when made: a journal that takes <see cref="IBufferSerializer"/>s (<see cref="FileEventJournal"/>) has it
/// write its payload straight into the log's buffer on the log's writer thread, as the file journal writes its txns;
/// any other journal gets <see cref="Payload"/>, made once when first asked for.
/// </para>
/// </summary>
public sealed class TxnBatchEvent
{
    private byte[]? _payload;
    private readonly IReadOnlyList<IReadOnlyList<Proposal>>? _proposals;
    private readonly IReadOnlyList<(long Zxid, byte[] Bytes)>? _serialized;

    public TxnBatchEvent(byte[] payload) => _payload = payload;

    private TxnBatchEvent(IReadOnlyList<IReadOnlyList<Proposal>>? proposals, IReadOnlyList<(long Zxid, byte[] Bytes)>? serialized)
    {
        _proposals = proposals;
        _serialized = serialized;
    }

    /// <summary>The txns of already serialized entries (an ensemble member's Zab log entries), in order.</summary>
    public static TxnBatchEvent From(IReadOnlyList<(long Zxid, byte[] Bytes)> txns) => new(null, txns);

    /// <summary>The txns of the appends, in order; each txn is serialized when the event is written. The proposals
    /// must not change until then (a prepared proposal never does).</summary>
    public static TxnBatchEvent Of(IReadOnlyList<IReadOnlyList<Proposal>> appends) => new(appends, null);

    /// <summary>The serialized event (made on first use when the event was made from txns).</summary>
    public byte[] Payload
    {
        get
        {
            if (Volatile.Read(ref _payload) is { } payload) return payload;
            var output = new ArrayBufferWriter<byte>(4096);
            WriteTo(output);
            // Two threads asking at once make the same bytes: either copy will do.
            return Volatile.Read(ref _payload) ?? (_payload = output.WrittenSpan.ToArray());
        }
    }

    /// <summary>Writes <see cref="Payload"/>'s bytes to <paramref name="output"/> (whose written bytes it patches:
    /// a txn's length is known once it is written).</summary>
    public void WriteTo(ArrayBufferWriter<byte> output)
    {
        if (Volatile.Read(ref _payload) is { } payload)
        {
            output.Write(payload);
            return;
        }
        WriteInt32(output, Count);
        if (_serialized is { } entries)
        {
            foreach (var (zxid, bytes) in entries)
            {
                WriteEntryHeader(output, zxid, bytes.Length);
                output.Write(bytes);
            }
            return;
        }
        foreach (var append in _proposals!)
        {
            foreach (var p in append)
            {
                var lengthAt = output.WrittenCount + 8;
                WriteEntryHeader(output, p.Header.Zxid, 0);
                var before = output.WrittenCount;
                Txns.Write(output, p.Header, p.Txn);
                var length = output.WrittenCount - before;
                BinaryPrimitives.WriteInt32BigEndian(MemoryMarshal.AsMemory(output.WrittenMemory).Span.Slice(lengthAt, 4), length);
            }
        }
    }

    private static void WriteEntryHeader(ArrayBufferWriter<byte> output, long zxid, int length)
    {
        var span = output.GetSpan(12);
        BinaryPrimitives.WriteInt64BigEndian(span, zxid);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], length);
        output.Advance(12);
    }

    private static void WriteInt32(ArrayBufferWriter<byte> output, int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(output.GetSpan(4), value);
        output.Advance(4);
    }

    public int Count
    {
        get
        {
            if (_serialized is { } entries) return entries.Count;
            if (_proposals is { } appends)
            {
                var count = 0;
                foreach (var append in appends) count += append.Count;
                return count;
            }
            return BinaryPrimitives.ReadInt32BigEndian(_payload!);
        }
    }

    /// <summary>The zxid of the batch's last txn, without decoding the txns.</summary>
    public long LastZxid
    {
        get
        {
            if (_serialized is { Count: > 0 } entries) return entries[^1].Zxid;
            if (_proposals is { } appends)
            {
                for (var i = appends.Count - 1; i >= 0; i--)
                    if (appends[i].Count > 0) return appends[i][^1].Header.Zxid;
                return 0;
            }
            if (_serialized is not null) return 0;
            long last = 0;
            foreach (var (zxid, _) in Entries()) last = zxid;
            return last;
        }
    }

    public IEnumerable<(long Zxid, ReadOnlyMemory<byte> Bytes)> Entries()
    {
        var payload = Payload;
        var count = BinaryPrimitives.ReadInt32BigEndian(payload);
        if (count < 0) throw new InvalidDataException("corrupt txn batch: negative count");
        var at = 4;
        for (var i = 0; i < count; i++)
        {
            if (at + 12 > payload.Length) throw new InvalidDataException("corrupt txn batch: truncated");
            var zxid = BinaryPrimitives.ReadInt64BigEndian(payload.AsSpan(at));
            var length = BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(at + 8));
            if (length < 0 || at + 12 + length > payload.Length) throw new InvalidDataException("corrupt txn batch: bad length");
            yield return (zxid, payload.AsMemory(at + 12, length));
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
public sealed class TxnEventSerializer : SerializerWithStringManifest, IBufferSerializer
{
    public TxnEventSerializer(ExtendedActorSystem system) : base(system) { }

    /// <summary>The serializer's identifier, as the journal records it beside each event.</summary>
    internal const int Id = 4242;

    public override int Identifier => Id;

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

    public void Write(object obj, ArrayBufferWriter<byte> output)
    {
        switch (obj)
        {
            case TxnBatchEvent e:
                e.WriteTo(output);
                break;
            default:
                output.Write(ToBinary(obj));
                break;
        }
    }

    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        "B" => new TxnBatchEvent(bytes),
        "T" when bytes.Length == 8 => new LogTruncatedEvent(BinaryPrimitives.ReadInt64BigEndian(bytes)),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown manifest {manifest}"),
    };
}
