using System.Text;
using Coordination.Core.Replica;
using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

/// <summary>
/// Data-driven tests of <see cref="ReplicaCore{TAddress,TRead,TOutcome}"/> (in the manner of etcd raft's testdata):
/// each file under testdata/replica is a list of blocks, a command and its printed outputs:
/// <code>
/// command args
/// ----
/// outputs (the host's calls, in order)
/// </code>
/// separated by blank lines; '#' starts a comment line. A block's outputs must match what the core does now. With
/// REPLICA_SCRIPTS_REWRITE=1 the files are rewritten with the outputs instead (review the diff before committing).
/// </summary>
public sealed class ReplicaScriptTests
{
    public static TheoryData<string> Scripts() => new(Directory.GetFiles(ScriptDir, "*.txt").Select(Path.GetFileName).Order()!);

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script(string name)
    {
        var text = File.ReadAllText(Path.Combine(ScriptDir, name)).ReplaceLineEndings("\n");
        var actual = new ReplicaScript().Run(text);
        if (Environment.GetEnvironmentVariable("REPLICA_SCRIPTS_REWRITE") == "1")
        {
            File.WriteAllText(Path.Combine(SourceScriptDir(), name), actual);
            return;
        }
        Assert.Equal(text, actual);
    }

    /// <summary>The scripts as copied next to the test assembly.</summary>
    private static string ScriptDir => Path.Combine(AppContext.BaseDirectory, "testdata", "replica");

    /// <summary>The scripts in the source tree, so that a rewrite updates the files under version control (found from
    /// the assembly's folder: CI builds map source paths, so the compiler's file path cannot be used).</summary>
    private static string SourceScriptDir()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Coordination.Core.Tests.csproj"))) dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new DirectoryNotFoundException("Coordination.Core.Tests.csproj"), "testdata", "replica");
    }
}

/// <summary>A read as the script host knows it: a path, optionally with a data watch; or any request answered from
/// local state (<see cref="Op"/>, <see cref="Body"/>).</summary>
internal sealed record ScriptRead(int Xid, string Path, bool Watch, OpCode Op = OpCode.GetData, ZkRequest? Body = null);

/// <summary>A write's outcome: committed at <see cref="Zxid"/> or refused with <see cref="Err"/>.</summary>
internal sealed record ScriptOutcome(int Xid, long Zxid, ErrorCode Err);

/// <summary>
/// Runs a script against a core whose host is a toy replica: a map of path → value for state, data watches by
/// path, and the last applied zxid. Every host call is printed as "session #seq what".
/// </summary>
internal sealed class ReplicaScript : IReplicaHost<string, ScriptRead, ScriptOutcome>
{
    private ReplicaCore<string, ScriptRead, ScriptOutcome> _core = null!;
    /// <summary>The replica's state: a real tree, applied by the core (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.Commit"/>).</summary>
    private readonly DataTree _tree = new();
    private long _applied => _tree.LastZxid;
    private long _now;
    private long _serverId;
    private readonly StringBuilder _out = new();

    public string Run(string script)
    {
        var result = new StringBuilder();
        foreach (var block in script.TrimEnd('\n').Split("\n\n"))
        {
            var lines = block.Split('\n');
            var separator = Array.IndexOf(lines, "----");
            var commands = separator < 0 ? lines : lines[..separator];
            _out.Clear();
            foreach (var line in commands)
                if (!line.StartsWith('#') && line.Trim().Length > 0) Execute(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            foreach (var line in commands) result.Append(line).Append('\n');
            result.Append("----\n");
            result.Append(_out.Length == 0 ? "ok\n" : _out.ToString());
            result.Append('\n');
        }
        return result.ToString().TrimEnd('\n') + "\n";
    }

    private void Execute(string[] c)
    {
        var session = c.Length > 1 && c[1].StartsWith('s') && _core.Sessions.TryGetValue(Sid(c[1]), out var s) ? s : null;
        switch (c[0])
        {
            case "standalone":   // standalone [max-batch=N]: a batch goes out once it holds N (else at the flush only)
                _core = new ReplicaCore<string, ScriptRead, ScriptOutcome>(this, () => _applied, ensemble: false) { Prep = NewPrep(), MaxBatch = MaxBatch(c) };
                break;
            case "ensemble":   // ensemble <server id> [local [upgrade]] [max-batch=N]: with local sessions (upgraded on a first ephemeral)
                _serverId = long.Parse(c[1]);
                _core = new ReplicaCore<string, ScriptRead, ScriptOutcome>(this, () => _applied, ensemble: true)
                    { ServerId = _serverId, Prep = NewPrep(), LocalSessionsEnabled = c.Contains("local"), UpgradeLocalSessions = c.Contains("upgrade"), MaxBatch = MaxBatch(c) };
                break;
            case "role":   // role <role> [leader]: a follower or observer forwards to that server; "looking": not serving, without a leader
            {
                var looking = c[1] == "looking";
                _core.SetRole(looking ? ReplicaRole.NotServing : Enum.Parse<ReplicaRole>(c[1], ignoreCase: true), c.Length > 2 ? long.Parse(c[2]) : -1, _now, looking);
                Print($"role {_core.Role}: serving={_core.Serving} leading={_core.Leading} sessions={_core.Sessions.Count}{(_core.Looking ? " looking" : "")}");
                break;
            }
            case "request":   // request s1 <xid> <op> <path> [data | version]: a client's write (or close), handled as the replica does
            {
                var xid = int.Parse(c[2]);
                var (op, body) = Body(c[3..]);
                if (session!.ReadOnly && _core.ReadOnlyRequest(session, xid, op, body, isWrite: true, _now)) break;
                if (session.Local && _core.LocalRequest(session, xid, op, body, _now, _now)) break;
                _core.ClientWrite(session, new ScriptRead(xid, body.Path ?? "", false), xid, op, body, NoAuth, _now, _now);
                break;
            }
            case "local":   // local s1 <xid> exists|children <path> [watch] | setwatches <relative zxid> <data path>,.. <child path>,..
            {
                var xid = int.Parse(c[2]);
                var (op, body) = c[3] switch
                {
                    "exists" => (OpCode.Exists, (ZkRequest)new PathWatchRequest(c[4], c.Length > 5)),
                    "children" => (OpCode.GetChildren, new PathWatchRequest(c[4], c.Length > 5)),
                    "setwatches" => (OpCode.SetWatches, new SetWatchesRequest(long.Parse(c[4]), Paths(c[5]), [], Paths(c[6]), [], [], false)),
                    _ => throw new InvalidOperationException($"unknown local op '{c[3]}'"),
                };
                _core.Read(session!, new ScriptRead(xid, body.Path ?? "", false, op, body));
                break;
            }
            case "client-sync":   // client-sync s1 <xid> [read <path>]: a client's sync (or linearizable read) in an ensemble
            {
                var xid = int.Parse(c[2]);
                if (session!.ReadOnly && _core.ReadOnlyRequest(session, xid, OpCode.Sync, new PathRequest("/"), isWrite: false, _now)) break;
                _core.ClientSync(session!, xid, "/", _now, c.Length > 4 ? new ScriptRead(xid, c[4], false) : null);
                break;
            }
            case "flush":   // the burst is handled: what it prepared and forwarded goes out
                _core.Flush();
                break;
            case "logged":   // the log made the oldest batch durable (standalone) or the ensemble committed it (leader)
                if (_logged.TryDequeue(out var durable)) Apply(durable);
                else Print("nothing logged");   // a script that expected a batch the core did not hand over
                break;
            case "refused":   // refused <zxid>: the peer refused the reconfig prepared at that zxid; an error txn commits there
            {
                var zxid = long.Parse(c[1]);
                var prepared = _logged.SelectMany(b => b).First(p => p.Header.Zxid == zxid);
                _core.ReplaceProposed(zxid, new Proposal(prepared.Header, new ErrorTxn(ErrorCode.NewConfigNoQuorum)));
                break;
            }
            case "reap":   // reap <now> <budget>: the reap tick
                _now = long.Parse(c[1]);
                _core.Reap(_tree, _now, int.Parse(c[2]));
                break;
            case "create-session":   // create-session s1 [timeout]: a client asks for a new session
                _core.CreateSession(c[1], Sid(c[1]), c.Length > 2 ? int.Parse(c[2]) : 30000, _now, _now);
                break;
            case "expire":   // expire s1: the tracker found the session's deadline passed
                Print($"{c[1]} {(_core.Expire(_tree, Sid(c[1]), _now) ? "expiring" : "not expired")}");
                break;
            case "validate":   // validate s1 [timeout]: a client re-attaches to a session
                _core.ValidateSession(_tree, c[1], Sid(c[1]), c.Length > 2 ? int.Parse(c[2]) : 30000, _now);
                break;
            case "commit-session":   // commit-session <zxid> s1 [timeout]: a committed createSession, as a follower applies it
            {
                var header = new TxnHeader(Sid(c[2]), 0, long.Parse(c[1]), _now, OpCode.CreateSession);
                _core.ApplyCommitted(_tree, [new LogEntry(header.Zxid, Txns.Serialize(header, new CreateSessionTxn(c.Length > 3 ? int.Parse(c[3]) : 30000)))]);
                break;
            }
            case "log-failed":   // the log failed the oldest batch
                _core.LogFailed(_logged.Dequeue(), ErrorCode.SystemError);
                break;
            case "link":   // link <address> <server>: messages from that address arrive on that member's link
                _links[c[1]] = long.Parse(c[2]);
                break;
            case "from":   // from <address> <server> s1 <xid> sync|garbage|<op> [<path> [data | version]]: a member's forward, naming a server
            {
                var (op, bytes) = c[5] switch
                {
                    "sync" => (OpCode.Sync, Array.Empty<byte>()),
                    "garbage" => (OpCode.Create, new byte[] { 1, 2 }),   // a body that does not decode
                    _ => Body(c[5..]) is var (o, body) ? (o, Encode(body)) : default,
                };
                _core.Forwarded(c[1], long.Parse(c[2]), Sid(c[3]), int.Parse(c[4]), op, bytes, [], _now);
                break;
            }
            case "from-create":   // from-create <address> <server> s1: a member's client asks for a new session
                _core.ForwardedCreateSession(c[1], long.Parse(c[2]), Sid(c[3]), 30000, _now);
                break;
            case "from-owner":   // from-owner <address> <server> s1: the session attached to that member
                _core.SessionOwner(c[1], long.Parse(c[2]), Sid(c[3]));
                break;
            case "confirmed":   // confirmed <request>: a quorum confirmed leadership up to that request
                _core.LeadershipConfirmed(long.Parse(c[1]));
                break;
            case "open":   // open s1 [timeout]
                _core.Sessions[Sid(c[1])] = new ReplicaSession<string, ScriptRead, ScriptOutcome>(Sid(c[1]), c[1], c.Length > 2 ? int.Parse(c[2]) : 30000);
                break;
            case "now":
                _now = long.Parse(c[1]);
                break;
            case "read":   // read s1 <xid> <path> [watch]
            {
                var read = new ScriptRead(int.Parse(c[2]), c[3], c.Length > 4 && c[4] == "watch");
                if (session!.ReadOnly && _core.ReadOnlyRequest(session, read.Xid, OpCode.GetData, new PathWatchRequest(read.Path, read.Watch), isWrite: false, _now)) break;
                _core.Read(session, read);
                break;
            }
            case "write":   // write s1 <xid>: a client's write, routed as the replica would
                Write(session!, int.Parse(c[2]));
                break;
            case "sync":   // sync s1 <xid> [read <path>]: a sync, or a linearizable read when followed by a path
            {
                var xid = int.Parse(c[2]);
                var then = c.Length > 4 ? new ScriptRead(xid, c[4], false) : null;
                var sync = _core.Sync(session!, xid, "/", _now, then);
                if (!_core.Leading) Print($"{c[1]} sync xid={xid} to the leader");
                else sync.Zxid = _applied;   // a leader fixes the point at once (its quorum check is the host's)
                _core.Drain(session!);
                break;
            }
            case "syncpoint":   // syncpoint s1 <xid> <zxid>: the leader fixed a forwarded sync's point (xid 0: a re-attachment's)
                _core.SyncPoint(_tree, Sid(c[1]), int.Parse(c[2]), long.Parse(c[3]));
                break;
            case "commit":   // commit <zxid> s1 <xid> <path>=<value>: a committed batch of one txn
                Commit(long.Parse(c[1]), Sid(c[2]), int.Parse(c[3]), c[4]);
                break;
            case "rejected":   // rejected s1 <xid> <error>: the leader refused a forwarded write or sync (xid 0: a re-attachment's)
                _core.ForwardRejected(Sid(c[1]), int.Parse(c[2]), Enum.Parse<ErrorCode>(c[3]), _now);
                break;
            case "owner":   // owner s1 <server>: the session (re)attached to that server
                _core.Attach(Sid(c[1]), long.Parse(c[2]));
                break;
            case "forwarded":   // forwarded s1 <server>: the leader receives a write that server forwards
                Print($"{c[1]} from server {c[2]}: {(_core.IsMovedAway(Sid(c[1]), long.Parse(c[2]), claimUnknown: false) ? "SessionMoved" : "prepare")}");
                break;
            case "close":   // close <zxid> s1 <cxid>: a committed closeSession (cxid 0: an expiry)
                _core.ApplyBatch(_tree, [new Proposal(new TxnHeader(Sid(c[2]), int.Parse(c[3]), long.Parse(c[1]), 0, OpCode.CloseSession), new CloseSessionTxn([]))]);
                break;
            case "close-here":   // close-here s1 <xid>: a local session's close, which commits no txn
                _core.CloseHere(session!, int.Parse(c[2]));
                break;
            case "expire-local":   // expire-local s1: the tracker found a local session's deadline passed
                if (!_core.ExpireLocal(Sid(c[1]))) Print($"{c[1]} not expired: no local session");
                break;
            case "open-readonly":   // open-readonly s1 new|again: a client asks for a read-only session (new, or re-attaching)
                _core.OpenReadOnly(_tree, c[1], Sid(c[1]), 30000, isNew: c[2] == "new");
                break;
            case "lost":
                _core.ConnectionLost(session!);
                break;
            case "tick":
                _now = long.Parse(c[1]);
                _core.Tick(_now);
                break;
            case "stats":
                Print($"outstanding={_core.Outstanding} " + string.Join(" ", _core.Sessions.Values.OrderBy(v => v.Id).Select(v => $"{v.Actor}:pending={v.PendingCount}")));
                break;
            default:
                throw new InvalidOperationException($"unknown script command '{c[0]}'");
        }
    }

    private void Write(ReplicaSession<string, ScriptRead, ScriptOutcome> session, int xid)
    {
        switch (_core.RouteWrite(session.Id, _serverId))
        {
            case WriteRoute.Prepare:
                _core.Write(session, xid, _now);
                Print($"{session.Actor} write xid={xid} prepared");
                break;
            case WriteRoute.Forward:
                _core.Write(session, xid, _now);
                Print($"{session.Actor} write xid={xid} to the leader");
                break;
            case WriteRoute.Moved:
                _core.Refuse(session, xid, _now, ErrorCode.SessionMoved);
                break;
        }
    }

    /// <summary>A committed batch of one txn, applied by the core as the replica does: a setData of the path if it
    /// exists, else its creation (in an ensemble, decoded from its entry). The core fires the watches and answers the
    /// writer; the host only prints.</summary>
    private void Commit(long zxid, long sessionId, int xid, string change)
    {
        var eq = change.IndexOf('=');
        var path = change[..eq];
        var data = Encoding.UTF8.GetBytes(change[(eq + 1)..]);
        var exists = _tree.Find(path) is not null;
        var header = new TxnHeader(sessionId, xid, zxid, 0, exists ? OpCode.SetData : OpCode.Create);
        Txn txn = exists ? new SetDataTxn(path, data, -1) : new CreateTxn(path, data, Acl.OpenAclUnsafe, 0, 0);
        if (_serverId == 0) _core.ApplyBatch(_tree, [new Proposal(header, txn)]);
        else _core.ApplyCommitted(_tree, [new LogEntry(zxid, Txns.Serialize(header, txn))]);   // as Zab commits it
    }

    /// <summary>A session's id from its name: s7 is 7; s2.7 is 7 in server 2's id range (its top byte).</summary>
    private static long Sid(string name) => name.IndexOf('.') is var dot and > 0
        ? long.Parse(name[1..dot]) << 56 | long.Parse(name[(dot + 1)..])
        : long.Parse(name[1..]);

    /// <summary>The core's MaxBatch from a "max-batch=N" argument (0, none, without one).</summary>
    private static int MaxBatch(string[] c) =>
        c.FirstOrDefault(a => a.StartsWith("max-batch=", StringComparison.Ordinal)) is { } arg ? int.Parse(arg["max-batch=".Length..]) : 0;

    /// <summary>A comma-separated list of paths ("-": none).</summary>
    private static string[] Paths(string list) => list == "-" ? [] : list.Split(',');

    // ------------------------------------------------------------------ prep and batching

    private static readonly AuthContext NoAuth = new([]);
    /// <summary>Batches handed to the log, oldest first (<c>logged</c> and <c>log-failed</c> take them in order).</summary>
    private readonly Queue<Proposal[]> _logged = new();
    /// <summary>Which server each address's link is authenticated as.</summary>
    private readonly Dictionary<string, long> _links = new();

    /// <summary>A real preprocessor over the script's tree; sessions are the script's (<c>open</c>), not the tree's.</summary>
    private RequestPreprocessor NewPrep() => new(_tree, null, _tree.LastZxid) { CheckSessions = false };

    /// <summary>An op (create, create-container, create-ttl, set, delete, close), a path, then data, a ttl or a version.</summary>
    private static (OpCode, ZkRequest) Body(string[] a) => a[0] switch
    {
        "create" => (OpCode.Create, new CreateRequest(a[1], Encoding.UTF8.GetBytes(a.Length > 2 ? a[2] : ""), Acl.OpenAclUnsafe, 0)),
        "create-ephemeral" => (OpCode.Create, new CreateRequest(a[1], [], Acl.OpenAclUnsafe, (int)CreateMode.Ephemeral)),
        "create-container" => (OpCode.CreateContainer, new CreateRequest(a[1], [], Acl.OpenAclUnsafe, (int)CreateMode.Container)),
        "create-ttl" => (OpCode.CreateTtl, new CreateRequest(a[1], [], Acl.OpenAclUnsafe, (int)CreateMode.PersistentWithTtl, long.Parse(a[2]), true)),
        "set" => (OpCode.SetData, new SetDataRequest(a[1], Encoding.UTF8.GetBytes(a[2]), a.Length > 3 ? int.Parse(a[3]) : -1)),
        "delete" => (OpCode.Delete, new PathVersionRequest(a[1], a.Length > 2 ? int.Parse(a[2]) : -1)),
        "close" => (OpCode.CloseSession, EmptyRequest.Instance),
        _ => throw new InvalidOperationException($"unknown script op '{a[0]}'"),
    };

    private static byte[] Encode(ZkRequest body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        body.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A batch made durable (standalone) or committed (leader), applied as the replica does. In an ensemble
    /// the committed entries carry no txn: the core applies what it proposed (its payload would be decoded otherwise).</summary>
    private void Apply(Proposal[] batch)
    {
        if (_serverId == 0) _core.ApplyBatch(_tree, batch);
        else _core.ApplyCommitted(_tree, batch.Select(p => new LogEntry(p.Header.Zxid, [])).ToList());
    }

    private static string Describe(Proposal p) => $"zxid={p.Header.Zxid} {Name(p.Header.SessionId)}/{p.Header.Cxid} " + p.Txn switch
    {
        ErrorTxn e => $"error {e.Err}",
        CreateTxn t => $"create {t.Path}",
        SetDataTxn t => $"set {t.Path}",
        DeleteTxn t => $"delete {t.Path}",
        CreateSessionTxn => "createSession",
        CloseSessionTxn => "closeSession",
        var t => t.GetType().Name,
    };

    public void ScheduleFlush() => Print("flush scheduled");

    public void Log(Proposal[] batch)
    {
        _logged.Enqueue(batch);
        Print("log " + string.Join(", ", batch.Select(Describe)));
    }

    public void Forward(long leader, IReadOnlyList<Forward<ScriptRead>> batch) =>
        Print($"forward to {leader}: " + string.Join(", ", batch.Select(f => $"{Name(f.SessionId)}/{f.Xid} {(f.Write is null ? "sync" : "write")}")));

    public void PrepareFailed(OpCode op, long serverId, Exception error) => Print($"prepare of {op} from server {serverId} failed: {error.GetType().Name}");

    public void NotLogged(Proposal proposal) => Print($"not logged: {Describe(proposal)}");

    public bool Vouches(string from, long serverId) => _links.TryGetValue(from, out var id) && id == serverId;

    public void Unvouched(string from, long serverId, string what) => Print($"dropped from {from}: {what} naming server {serverId}");

    public void RejectForward(string follower, long sessionId, int xid, ErrorCode err) => Print($"to {follower}: {Name(sessionId)} xid={xid} rejected {err}");

    public void AnswerSyncPoint(string follower, long sessionId, int xid, long zxid) => Print($"to {follower}: {Name(sessionId)} sync xid={xid} point={zxid}");

    public void ConfirmLeadership(long request) => Print($"confirm leadership #{request}");

    private void Print(string line) => _out.Append(line).Append('\n');

    /// <summary>A read is the core's getData (and, on a missing znode with a watch, its exists, as a client watching
    /// for a creation does).</summary>
    public void ExecuteRead(ReplicaSession<string, ScriptRead, ScriptOutcome> session, ScriptRead read)
    {
        if (read.Body is { } request)
        {
            var (code, answer) = _core.AnswerRead(_tree, session, read.Op, request, NoAuth);
            var shown = answer switch
            {
                StatResponse r => $" version={r.Stat.Version}",
                GetChildrenResponse r => $" [{string.Join(",", r.Children.Order())}]",
                _ => "",
            };
            Print($"{session.Actor} #{session.NextSeq()} {read.Op} xid={read.Xid} {code}{shown} zxid={_applied}");
            return;
        }
        var (err, body) = _core.AnswerRead(_tree, session, OpCode.GetData, new PathWatchRequest(read.Path, read.Watch), NoAuth);
        if (err == ErrorCode.NoNode && read.Watch) _core.AnswerRead(_tree, session, OpCode.Exists, new PathWatchRequest(read.Path, true), NoAuth);
        var value = body is GetDataResponse { Data: { } data } ? Encoding.UTF8.GetString(data) : "<none>";
        Print($"{session.Actor} #{session.NextSeq()} read xid={read.Xid} {read.Path}={value} zxid={_applied}");
    }

    public void Notify(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq, WatcherEvent e, long zxid, IReadOnlyList<Acl>? acl) =>
        Print($"{session.Actor} #{seq} event {e.Type} {e.Path} zxid={zxid}");

    public void ResponseTooLarge() => Print("response too large");

    public void AnswerWrite(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq, ScriptOutcome outcome) =>
        Print($"{session.Actor} #{seq} write xid={outcome.Xid} {outcome.Err} zxid={outcome.Zxid}");

    public void AnswerSync(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq, int xid, string path) =>
        Print($"{session.Actor} #{seq} sync xid={xid} zxid={_applied}");

    public void DropConnection(ReplicaSession<string, ScriptRead, ScriptOutcome> session, string why) =>
        Print($"{session.Actor} connection dropped: {why}");

    public ScriptOutcome Refusal(int xid, ErrorCode err) => new(xid, _applied, err);

    public void CloseHere(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq, int xid) =>
        Print($"{session.Actor} #{seq} closed here xid={xid}");

    public void LocalSessionOpened(long sessionId, int timeoutMs) => Print($"tracker: local session {Name(sessionId)} opened timeout={timeoutMs}");

    public void LocalSessionClosed(long sessionId) => Print($"tracker: local session {Name(sessionId)} closed");

    public void SessionOpenedHere(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq) =>
        Print($"{session.Actor} #{seq} opened here{(session.Local ? " local" : "")}{(session.ReadOnly ? " read-only" : "")} timeout={session.TimeoutMs}");

    public void EndedHere(ReplicaSession<string, ScriptRead, ScriptOutcome> session, long seq, bool expired) =>
        Print($"{session.Actor} #{seq} ended here {(expired ? "expired" : "closed")}");

    /// <summary>A session's name from its id (the inverse of <see cref="Sid"/>).</summary>
    private static string Name(long sessionId) => "s" + Id(sessionId);

    /// <summary>A session id as scripts write it: 7, or 2.7 in server 2's range.</summary>
    private static string Id(long sessionId) => SessionIds.ServerOf(sessionId) is var server and > 0
        ? $"{server}.{sessionId & 0xFFFFFFFFFFFFFF}"
        : $"{sessionId}";

    public void Committed(in TxnHeader header, Txn txn, ApplyResult result, bool audit) { }

    public void BatchApplied(IReadOnlyList<Proposal> batch) { }

    public void ForwardCreateSession(long leader, long sessionId, int timeoutMs) => Print($"to {leader}: create session {Name(sessionId)}");

    public void ForwardSessionOwner(long leader, long sessionId) => Print($"to {leader}: {Name(sessionId)} attached here");

    public void SessionValidated(string client, ReplicaSession<string, ScriptRead, ScriptOutcome>? session, long seq) =>
        Print(session is null ? $"{client} no such session" : $"{session.Actor} #{seq} attached timeout={session.TimeoutMs}");

    public void GiveUp(string client, long sessionId, string why) => Print($"{client} connection dropped: {why}");

    public void FanOut(WatchTrigger trigger, long zxid, IReadOnlyList<(string Actor, long Seq)> recipients)
    {
        foreach (var (actor, seq) in recipients) Print($"{actor} #{seq} event {trigger.Type} {trigger.Path} zxid={zxid}");
    }

    public ScriptOutcome Outcome(in TxnHeader header, ApplyResult result) => new(header.Cxid, header.Zxid, result.Err);

    public void SessionCreated(in TxnHeader header, CreateSessionTxn create, ReplicaSession<string, ScriptRead, ScriptOutcome>? session, long seq) =>
        Print(session is null ? $"session {Id(header.SessionId)} created" : $"{session.Actor} #{seq} created timeout={create.TimeoutMs}");

    public void SessionEnded(in TxnHeader header, ReplicaSession<string, ScriptRead, ScriptOutcome>? session, bool requested)
    {
        if (session is not null) Print($"{session.Actor} #{session.NextSeq()} ended {(requested ? "closed" : "expired")}");
    }
}
