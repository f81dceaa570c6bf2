using System.Buffers;
using System.Buffers.Binary;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;

namespace Coordination.Fuzz;

/// <summary>
/// Encodes seed inputs with the project's own codecs: a request of every op code, connect requests of every
/// client generation, a message of every Zab manifest, a txn of every type. The corpus also holds streams captured
/// from real clients (fuzz/capture.py); these fill in what those clients do not send.
/// </summary>
public static class Seeds
{
    public static void Write(string corpus)
    {
        foreach (var (target, name, bytes) in All())
        {
            var dir = Path.Combine(corpus, target);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, "gen-" + name), bytes);
        }
    }

    public static IEnumerable<(string Target, string Name, byte[] Bytes)> All()
    {
        var requests = Requests().ToList();
        foreach (var (name, op, body) in requests) yield return ("request", name, RequestFrame(1, op, body));

        var connects = new (string, ConnectRequest)[]
        {
            ("new-session", new ConnectRequest(0, 0, 30000, 0, new byte[16], false)),
            ("reattach", new ConnectRequest(0, 0x100000005, 10000, 0x1000001234, Enumerable.Range(0, 16).Select(i => (byte)i).ToArray(), false)),
            ("read-only", new ConnectRequest(0, 0, 4000, 0, new byte[16], true)),
            ("pre-3.4-no-flag", new ConnectRequest(0, 0, 30000, 0, new byte[16], false, HasReadOnlyFlag: false)),
        };
        foreach (var (name, connect) in connects) yield return ("connect", name, Jute.Serialize(connect));

        // A whole client conversation: the handshake, then every request, each framed.
        var stream = new ArrayBufferWriter<byte>();
        Frame(stream, Jute.Serialize(connects[0].Item2));
        var xid = 1;
        foreach (var (_, op, body) in requests) Frame(stream, RequestFrame(xid++, op, body));
        yield return ("client", "every-op", stream.WrittenSpan.ToArray());
        yield return ("client", "ruok", "ruok"u8.ToArray());

        var zab = new ZabSerializer(null!);
        var txns = Txns().ToList();
        foreach (var (name, message) in ZabMessages(txns.Select(t => t.Bytes).ToList()))
            yield return ("zab", name, [(byte)zab.Manifest(message)[0], .. zab.ToBinary(message)]);
        foreach (var (name, bytes) in txns) yield return ("txn", name, bytes);

        // Member frames: a chunk-size byte, then framed Zab payloads (empty frames included, as Akka sends none
        // but the reader skips them).
        var members = new ArrayBufferWriter<byte>();
        foreach (var (_, message) in ZabMessages(txns.Select(t => t.Bytes).ToList()).Take(6)) Frame(members, zab.ToBinary(message));
        Frame(members, []);
        yield return ("member-frames", "zab-frames-chunk7", [6, .. members.WrittenSpan]);
        yield return ("member-frames", "zab-frames-whole", [255, .. members.WrittenSpan]);
    }

    private static IEnumerable<(string Name, OpCode Op, ZkRequest Body)> Requests()
    {
        byte[] data = "value"u8.ToArray();
        IReadOnlyList<Acl> digest = [new(Perms.Read | Perms.Write, new Id("digest", "user:Qz8qnm2zBXr8DWa1ezUvmFcFdGo="))];
        yield return ("create", OpCode.Create, new CreateRequest("/app/a", data, Acl.OpenAclUnsafe, 0));
        yield return ("create2-ephemeral-sequential", OpCode.Create2, new CreateRequest("/app/lock-", null, Acl.CreatorAllAcl, 3));
        yield return ("create-container", OpCode.CreateContainer, new CreateRequest("/app/c", [], digest, 4));
        yield return ("create-ttl", OpCode.CreateTtl, new CreateRequest("/app/t", data, Acl.ReadAclUnsafe, 5, 60000, true));
        yield return ("delete", OpCode.Delete, new PathVersionRequest("/app/a", -1));
        yield return ("check", OpCode.Check, new PathVersionRequest("/app/a", 3));
        yield return ("exists-watch", OpCode.Exists, new PathWatchRequest("/app", true));
        yield return ("getdata", OpCode.GetData, new PathWatchRequest("/app/a", false));
        yield return ("getchildren", OpCode.GetChildren, new PathWatchRequest("/", true));
        yield return ("getchildren2", OpCode.GetChildren2, new PathWatchRequest("/app", false));
        yield return ("getacl", OpCode.GetAcl, new PathRequest("/app"));
        yield return ("sync", OpCode.Sync, new PathRequest("/"));
        yield return ("getallchildrennumber", OpCode.GetAllChildrenNumber, new PathRequest("/app"));
        yield return ("getephemerals", OpCode.GetEphemerals, new PathRequest("/app/"));
        yield return ("setdata", OpCode.SetData, new SetDataRequest("/app/a", data, 0));
        yield return ("setacl", OpCode.SetAcl, new SetAclRequest("/app/a", digest, -1));
        yield return ("multi", OpCode.Multi, new MultiRequest([
            new(OpCode.Create, new CreateRequest("/m/a", data, Acl.OpenAclUnsafe, 0)),
            new(OpCode.CreateTtl, new CreateRequest("/m/t", data, Acl.OpenAclUnsafe, 5, 1000, true)),
            new(OpCode.SetData, new SetDataRequest("/m/a", data, -1)),
            new(OpCode.Check, new PathVersionRequest("/m/a", 1)),
            new(OpCode.Delete, new PathVersionRequest("/m/a", -1)),
        ]));
        yield return ("multiread", OpCode.MultiRead, new MultiRequest([
            new(OpCode.GetData, new PathWatchRequest("/app", false)),
            new(OpCode.GetChildren, new PathWatchRequest("/app", true)),
        ]));
        yield return ("auth-digest", OpCode.Auth, new AuthRequest(0, "digest", "user:secret"u8.ToArray()));
        yield return ("setwatches", OpCode.SetWatches, new SetWatchesRequest(0x200000003, ["/a"], ["/b", "/c"], ["/"], [], [], false));
        yield return ("setwatches2", OpCode.SetWatches2, new SetWatchesRequest(7, ["/a"], [], ["/"], ["/p"], ["/r"], true));
        yield return ("addwatch", OpCode.AddWatch, new AddWatchRequest("/app", AddWatchMode.PersistentRecursive));
        yield return ("checkwatches", OpCode.CheckWatches, new WatchesRequest("/app", WatcherType.Data));
        yield return ("removewatches", OpCode.RemoveWatches, new WatchesRequest("/app", WatcherType.Any));
        yield return ("ping", OpCode.Ping, EmptyRequest.Instance);
        yield return ("whoami", OpCode.WhoAmI, EmptyRequest.Instance);
        yield return ("closesession", OpCode.CloseSession, EmptyRequest.Instance);
        yield return ("unknown-op", (OpCode)99, EmptyRequest.Instance);
    }

    private static IEnumerable<(string Name, byte[] Bytes)> Txns()
    {
        var h = (OpCode type) => new TxnHeader(0x1000001234, 5, 0x100000009, 1_700_000_000_000, type);
        yield return ("create", Core.Txns.Serialize(h(OpCode.Create), new CreateTxn("/app/a", "v"u8.ToArray(), Acl.OpenAclUnsafe, 0, 3)));
        yield return ("create-ephemeral", Core.Txns.Serialize(h(OpCode.Create2), new CreateTxn("/app/e", [], Acl.CreatorAllAcl, 0x1000001234, 1)));
        yield return ("delete", Core.Txns.Serialize(h(OpCode.Delete), new DeleteTxn("/app/a")));
        yield return ("setdata", Core.Txns.Serialize(h(OpCode.SetData), new SetDataTxn("/app/a", "w"u8.ToArray(), 2)));
        yield return ("setacl", Core.Txns.Serialize(h(OpCode.SetAcl), new SetAclTxn("/app/a", Acl.ReadAclUnsafe, 1)));
        yield return ("createsession", Core.Txns.Serialize(h(OpCode.CreateSession), new CreateSessionTxn(30000)));
        yield return ("closesession", Core.Txns.Serialize(h(OpCode.CloseSession), new CloseSessionTxn(["/app/e", "/lock/x"])));
        yield return ("error", Core.Txns.Serialize(h(OpCode.Create), new ErrorTxn(ErrorCode.NodeExists)));
        yield return ("multi", Core.Txns.Serialize(h(OpCode.Multi), new MultiTxn([
            new(OpCode.Create, new CreateTxn("/m/a", [], Acl.OpenAclUnsafe, 0, 1)),
            new(OpCode.Check, new CheckVersionTxn("/m/a", 0)),
            new(OpCode.SetData, new SetDataTxn("/m/a", "x"u8.ToArray(), 1)),
            new(OpCode.Delete, new DeleteTxn("/m/a")),
        ])));
        yield return ("multi-failed", Core.Txns.Serialize(h(OpCode.Multi), new MultiTxn([
            new(OpCode.Error, new ErrorTxn(ErrorCode.Ok)),
            new(OpCode.Error, new ErrorTxn(ErrorCode.BadVersion)),
        ])));
    }

    private static IEnumerable<(string Name, object Message)> ZabMessages(IReadOnlyList<byte[]> txns)
    {
        var entry = new LogEntry(0x100000009, txns[0]);
        var entries = txns.Select((t, i) => new LogEntry(0x100000001 + i, t)).ToList();
        IReadOnlyList<(string, string)> auth = [("ip", "127.0.0.1"), ("digest", "user")];
        var forwarded = new ForwardedRequest(2, 0x2000000001, 7, (int)OpCode.SetData, FuzzTargets.Encode(new SetDataRequest("/a", "v"u8.ToArray(), -1)), auth);
        yield return ("propose", new Propose(1, entry));
        yield return ("ack", new Ack(2, 0x100000009));
        yield return ("commit", new Commit(1, 0x100000009));
        yield return ("inform", new Inform(1, entry));
        yield return ("ping", new Ping(1, 0x100000009, 3));
        yield return ("pingreply", new PingReply(3, 0x100000008, 3));
        yield return ("election", new ElectionMessage(2, new Notification(2, new Vote(3, 0x100000009, 1), 4, PeerState.Looking)));
        yield return ("followerinfo", new FollowerInfo(2, 1, 0x100000009, false));
        yield return ("leaderinfo", new LeaderInfo(1, 2));
        yield return ("ackepoch", new AckEpoch(2, 1, 0x100000009));
        yield return ("synclearner", new SyncLearner(1, SyncMode.TruncThenDiff, 0x100000004, 0, entries, 2, 0x10000000a));
        yield return ("acknewleader", new AckNewLeader(2, 2, 0x10000000a));
        yield return ("uptodate", new UpToDate(1, 0x10000000a));
        yield return ("forwarded", forwarded);
        yield return ("forwarded-many", new ForwardedRequests([forwarded, forwarded with { Xid = 8, Op = (int)OpCode.Sync, Body = [], Auth = [] }]));
        yield return ("forwarded-createsession", new ForwardedCreateSession(2, 0x2000000002, 30000));
        yield return ("sessionowner", new SessionOwner(3, 0x2000000002));
        yield return ("forwardrejected", new ForwardRejected(0x2000000002, 7, (int)ErrorCode.SessionMoved));
        yield return ("syncpoint", new SyncPoint(0x2000000002, 8, 0x10000000a));
        yield return ("sessionstouched", new SessionsTouched(2, [0x2000000001, 0x2000000002], [30000, 4000]));
        yield return ("fetchsnapshot", new FetchSnapshot(2, 0x100000000, 65536));
        yield return ("snapshotpart", new SnapshotPart(1, 0x100000000, 0, "snapshot-bytes"u8.ToArray(), true, false));
        yield return ("syncentriespart", new SyncEntriesPart(1, entries.Take(3).ToList()));
        yield return ("proposemany", new ProposeMany(1, entries));
    }

    private static byte[] RequestFrame(int xid, OpCode op, ZkRequest body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        new RequestHeader(xid, op).Write(ref w);
        body.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    private static void Frame(ArrayBufferWriter<byte> output, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteInt32BigEndian(output.GetSpan(4), payload.Length);
        output.Advance(4);
        output.Write(payload);
    }
}
