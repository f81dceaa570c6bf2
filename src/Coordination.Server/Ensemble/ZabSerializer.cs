using System.Buffers;
using System.Buffers.Binary;
using Akka.Actor;
using Akka.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;
using Coordination.Core.Zab;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Hand-written binary serializer for the Zab messages that cross Akka.Remote on the hot path (proposals, acks,
/// commits) and for the rest of the protocol. Txn payloads travel as their jute bytes, untouched. Little-endian,
/// one manifest letter per message type. (docs/architecture.md §7: ~10% faster than Hyperion and far faster than Newtonsoft.)
/// </summary>
public sealed class ZabSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public override int Identifier => 4711;

    public override string Manifest(object o) => o switch
    {
        Propose => "P",
        Ack => "A",
        Commit => "C",
        Inform => "I",
        Ping => "G",
        PingReply => "g",
        ElectionMessage => "E",
        FollowerInfo => "F",
        LeaderInfo => "L",
        AckEpoch => "e",
        SyncLearner => "S",
        AckNewLeader => "N",
        UpToDate => "U",
        ForwardedRequest => "q",
        ForwardedCreateSession => "c",
        SessionOwner => "o",
        ForwardRejected => "r",
        SyncPoint => "y",
        SessionsTouched => "t",
        FetchSnapshot => "f",
        SnapshotPart => "s",
        SyncEntriesPart => "x",
        ProposeMany => "M",
        ForwardedRequests => "Q",
        _ => throw new ArgumentException($"ZabSerializer cannot serialize {o.GetType()}"),
    };

    /// <summary>The thread's buffer that messages are written into before their exact-size copy is returned: every
    /// remote message passes here (several per write), and a fresh growing buffer per message was most of what
    /// this serializer allocated. Not kept once a large message (a snapshot part) has grown it.</summary>
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    private const int KeptBufferBytes = 64 * 1024;

    public override byte[] ToBinary(object obj)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        try
        {
            Write(new Writer(buffer), obj);
            return buffer.WrittenSpan.ToArray();
        }
        finally
        {
            if (buffer.Capacity > KeptBufferBytes) t_buffer = null;
        }
    }

    private static void Write(Writer w, object obj)
    {
        switch (obj)
        {
            case Propose p: w.Long(p.From); w.Entry(p.Entry); break;
            case Ack a: w.Long(a.From); w.Long(a.Zxid); break;
            case Commit c: w.Long(c.From); w.Long(c.Zxid); break;
            case Inform i: w.Long(i.From); w.Entry(i.Entry); break;
            case Ping p: w.Long(p.From); w.Long(p.CommittedZxid); w.Long(p.Round); break;
            case PingReply r: w.Long(r.From); w.Long(r.LastZxid); w.Long(r.Round); break;
            case ElectionMessage e:
                w.Long(e.From);
                w.Long(e.Notification.From); w.Long(e.Notification.Vote.Leader); w.Long(e.Notification.Vote.Zxid);
                w.Long(e.Notification.Vote.Epoch); w.Long(e.Notification.Round); w.Int((int)e.Notification.State);
                w.Configs(e.Config, e.Pending);
                break;
            case FollowerInfo f: w.Long(f.From); w.Long(f.AcceptedEpoch); w.Long(f.LastZxid); w.Int(f.IsObserver ? 1 : 0); break;
            case LeaderInfo l: w.Long(l.From); w.Long(l.NewEpoch); break;
            case AckEpoch a: w.Long(a.From); w.Long(a.CurrentEpoch); w.Long(a.LastZxid); break;
            case SyncLearner s:
                w.Long(s.From); w.Int((int)s.Mode); w.Long(s.TruncateTo); w.Long(s.SnapshotZxid); w.Long(s.Epoch); w.Long(s.CommittedZxid);
                w.Entries(s.Entries);
                w.Config(s.Config);
                break;
            case AckNewLeader n: w.Long(n.From); w.Long(n.Epoch); w.Long(n.LastZxid); break;
            case UpToDate u: w.Long(u.From); w.Long(u.CommittedZxid); break;
            case ForwardedRequest q: w.Forwarded(q); break;
            case ForwardedRequests qs:
                w.Int(qs.Requests.Count);
                foreach (var q in qs.Requests) w.Forwarded(q);
                break;
            case ForwardedCreateSession c: w.Long(c.ServerId); w.Long(c.SessionId); w.Int(c.TimeoutMs); break;
            case SessionOwner o: w.Long(o.ServerId); w.Long(o.SessionId); break;
            case ForwardRejected r: w.Long(r.SessionId); w.Int(r.Xid); w.Int(r.Err); break;
            case SyncPoint y: w.Long(y.SessionId); w.Int(y.Xid); w.Long(y.Zxid); break;
            case SessionsTouched t:
                if (t.SessionIds.Length != t.TimeoutsMs.Length) throw new ArgumentException("session ids and timeouts differ in length");
                w.Long(t.ServerId); w.Int(t.SessionIds.Length);
                for (var i = 0; i < t.SessionIds.Length; i++) { w.Long(t.SessionIds[i]); w.Int(t.TimeoutsMs[i]); }
                break;
            case FetchSnapshot f: w.Long(f.From); w.Long(f.Zxid); w.Long(f.Offset); break;
            case SnapshotPart s: w.Long(s.From); w.Long(s.Zxid); w.Long(s.Offset); w.Bytes(s.Bytes); w.Int((s.Last ? 1 : 0) | (s.Missing ? 2 : 0)); break;
            case SyncEntriesPart x: w.Long(x.From); w.Entries(x.Entries); break;
            case ProposeMany m: w.Long(m.From); w.Entries(m.Entries); break;
            default: throw new ArgumentException($"ZabSerializer cannot serialize {obj.GetType()}");
        }
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new Reader(bytes);
        return manifest switch
        {
            "P" => new Propose(r.Long(), r.Entry()),
            "A" => new Ack(r.Long(), r.Long()),
            "C" => new Commit(r.Long(), r.Long()),
            "I" => new Inform(r.Long(), r.Entry()),
            "G" => new Ping(r.Long(), r.Long(), r.OptionalLong()),
            "g" => new PingReply(r.Long(), r.Long(), r.OptionalLong()),
            "E" => ReadElection(ref r),
            "F" => new FollowerInfo(r.Long(), r.Long(), r.Long(), r.Int() != 0),
            "L" => new LeaderInfo(r.Long(), r.Long()),
            "e" => new AckEpoch(r.Long(), r.Long(), r.Long()),
            "S" => ReadSync(ref r),
            "N" => new AckNewLeader(r.Long(), r.Long(), r.Long()),
            "U" => new UpToDate(r.Long(), r.Long()),
            "q" => ReadForwarded(ref r),
            "c" => new ForwardedCreateSession(r.Long(), r.Long(), r.Int()),
            "o" => new SessionOwner(r.Long(), r.Long()),
            "r" => new ForwardRejected(r.Long(), r.Int(), r.Int()),
            "y" => new SyncPoint(r.Long(), r.Int(), r.Long()),
            "t" => ReadTouched(ref r),
            "f" => new FetchSnapshot(r.Long(), r.Long(), r.Long()),
            "s" => ReadSnapshotPart(ref r),
            "x" => new SyncEntriesPart(r.Long(), ReadEntries(ref r)),
            "M" => new ProposeMany(r.Long(), ReadEntries(ref r)),
            "Q" => ReadForwardedMany(ref r),
            _ => throw new SerializationException($"unknown Zab manifest '{manifest}'"),
        };
    }

    private static ElectionMessage ReadElection(ref Reader r)
    {
        var from = r.Long();
        var notificationFrom = r.Long();
        var vote = new Vote(r.Long(), r.Long(), r.Long());
        var notification = new Notification(notificationFrom, vote, r.Long(), (PeerState)r.Int());
        return new ElectionMessage(from, notification, r.Config(), r.Config());
    }

    private static SyncLearner ReadSync(ref Reader r)
    {
        var from = r.Long();
        var mode = (SyncMode)r.Int();
        var truncateTo = r.Long();
        var snapshotZxid = r.Long();
        var epoch = r.Long();
        var committed = r.Long();
        var entries = ReadEntries(ref r);
        return new SyncLearner(from, mode, truncateTo, snapshotZxid, entries, epoch, committed, r.Config());
    }

    private static List<LogEntry> ReadEntries(ref Reader r)
    {
        var count = r.Count(12);
        var entries = new List<LogEntry>(count);
        for (var i = 0; i < count; i++) entries.Add(r.Entry());
        return entries;
    }

    private static ForwardedRequest ReadForwarded(ref Reader r)
    {
        var serverId = r.Long();
        var sessionId = r.Long();
        var xid = r.Int();
        var op = r.Int();
        var body = r.Bytes();
        var count = r.Count(8);
        var auth = new List<(string, string)>(count);
        for (var i = 0; i < count; i++) auth.Add((r.String(), r.String()));
        return new ForwardedRequest(serverId, sessionId, xid, op, body, auth);
    }

    private static ForwardedRequests ReadForwardedMany(ref Reader r)
    {
        var count = r.Count(28);
        var requests = new List<ForwardedRequest>(count);
        for (var i = 0; i < count; i++) requests.Add(ReadForwarded(ref r));
        return new ForwardedRequests(requests);
    }

    private static SessionsTouched ReadTouched(ref Reader r)
    {
        var serverId = r.Long();
        var count = r.Count(12);
        var ids = new long[count];
        var timeouts = new int[count];
        for (var i = 0; i < count; i++) { ids[i] = r.Long(); timeouts[i] = r.Int(); }
        return new SessionsTouched(serverId, ids, timeouts);
    }

    private static SnapshotPart ReadSnapshotPart(ref Reader r)
    {
        var from = r.Long();
        var zxid = r.Long();
        var offset = r.Long();
        var bytes = r.Bytes();
        var flags = r.Int();
        return new SnapshotPart(from, zxid, offset, bytes, (flags & 1) != 0, (flags & 2) != 0);
    }

    private readonly ref struct Writer(IBufferWriter<byte> output)
    {
        public void Long(long v) { BinaryPrimitives.WriteInt64LittleEndian(output.GetSpan(8), v); output.Advance(8); }
        public void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), v); output.Advance(4); }
        public void Entry(LogEntry e)
        {
            Long(e.Zxid);
            Bytes(e.Payload);
        }
        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            Int(bytes.Length);
            bytes.CopyTo(output.GetSpan(bytes.Length));
            output.Advance(bytes.Length);
        }
        public void String(string s) => Bytes(System.Text.Encoding.UTF8.GetBytes(s));
        /// <summary>An optional trailing configuration: its version and its text (ids and addresses). Absent when null,
        /// so that members without reconfig read the message as before.</summary>
        public void Config(ZabConfig? config)
        {
            if (config?.Text is not { } text) return;
            Long(config.Version);
            String(text);
        }
        /// <summary>Two optional trailing configurations. When the second is there the first is written even without
        /// a text (version 0, empty text: read as none), so that the second is not read as the first; members that read
        /// one configuration only ignore the second.</summary>
        public void Configs(ZabConfig? first, ZabConfig? second)
        {
            if (second?.Text is null)
            {
                Config(first);
                return;
            }
            if (first?.Text is null)
            {
                Long(0);
                String("");
            }
            else Config(first);
            Config(second);
        }
        public void Entries(IReadOnlyList<LogEntry> entries)
        {
            Int(entries.Count);
            foreach (var entry in entries) Entry(entry);
        }
        public void Forwarded(ForwardedRequest q)
        {
            Long(q.ServerId); Long(q.SessionId); Int(q.Xid); Int(q.Op); Bytes(q.Body);
            Int(q.Auth.Count);
            foreach (var (scheme, ident) in q.Auth) { String(scheme); String(ident); }
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _position;
        public readonly int Remaining => _bytes.Length - _position;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > Remaining) throw new SerializationException("truncated Zab message");
            var span = _bytes.Slice(_position, n);
            _position += n;
            return span;
        }

        public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        /// <summary>A trailing field that older members do not send (0 when absent), so a rolling upgrade keeps their pings.</summary>
        public long OptionalLong() => Remaining == 0 ? 0 : Long();
        public LogEntry Entry()
        {
            var zxid = Long();
            var payload = Bytes();
            // A reconfig txn carries its configuration; one that does not decode refuses the message (the payloads
            // of other txns are decoded where they are applied).
            try { return new(zxid, payload, Coordination.Core.Txns.ConfigOf(payload)); }
            catch (Coordination.Protocol.JuteException e) { throw new SerializationException("bad reconfig txn in a Zab message: " + e.Message, e); }
        }
        public ZabConfig? Config()
        {
            if (Remaining == 0) return null;
            var version = Long();
            var text = String();
            if (text.Length == 0) return null;   // none, before a second one (Writer.Configs)
            return DynamicConfig.Parse(text, out var error)?.WithVersion(version).ToZabConfig()
                ?? throw new SerializationException($"bad configuration in a Zab message: {error}");
        }
        public byte[] Bytes() => Take(Int()).ToArray();
        public string String() => System.Text.Encoding.UTF8.GetString(Take(Int()));
        /// <summary>A element count, refused when the rest of the message cannot hold that many elements of at least <paramref name="minSize"/> bytes.</summary>
        public int Count(int minSize)
        {
            var count = Int();
            if (count < 0 || count > Remaining / minSize) throw new SerializationException($"bad element count {count}");
            return count;
        }
    }
}
