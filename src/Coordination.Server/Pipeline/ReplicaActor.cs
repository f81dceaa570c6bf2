using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Persistence;

namespace Coordination.Server.Pipeline;

/// <summary>
/// This server's replica of the replicated state: the data tree, the watch registrations and, while leading,
/// the request preprocessor. Writes are prepared here, handed to the transaction log, and applied when the log
/// reports them durable (the commit, with a quorum of one). Reads are answered here, after the same session's
/// earlier writes have been applied (ZooKeeper's CommitProcessor rule), so each session sees its own writes and
/// its responses are produced in request order. Every output to a session gets that session's next sequence
/// number in apply order; the session actor emits in that order.
/// </summary>
public sealed class ReplicaActor : ReceiveActor, IWithTimers
{
    private readonly ServerSettings _settings;
    private readonly DataTree _tree;
    private readonly RequestPreprocessor _prep;
    private readonly WatchTable _watches = new();
    private readonly IActorRef _log;
    private readonly IActorRef _tracker;
    private readonly IActorRef[] _dispatchers;
    private readonly Dictionary<long, SessionState> _sessions = new();
    private readonly Func<long> _clock;
    private readonly ILoggingAdapter _logger = Context.GetLogger();
    private readonly Audit.IAuditSink _audit = Audit.AuditLog.For(Context.System);
    private int _outstanding;
    private int _reapBudget;
    // Fuzzy snapshots (Persistence/SnapshotFiles): serialized in chunks between other messages.
    private readonly SnapshotPolicy? _snapshots;
    private long _txnsSinceSnapshot;
    private long _bytesSinceSnapshot;
    private DataTree.FuzzySnapshot? _snapshot;
    private SnapshotFiles.Writer? _snapshotWriter;
    private bool _snapshotBusy;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Per-session bookkeeping: where outputs go, the next sequence number, and the requests that wait.</summary>
    private sealed class SessionState(IActorRef actor)
    {
        public IActorRef Actor = actor;
        public long LastSeq;
        /// <summary>The sequence number of this session's next output, in apply order.</summary>
        public long NextSeq() => ++LastSeq;
        /// <summary>Writes in flight (their zxids) and the reads queued behind them, in request order.</summary>
        public readonly Queue<object> Pending = new();
    }

    private sealed record PendingWrite(long Zxid, int Xid);
    private sealed class ReapTick { public static readonly ReapTick Instance = new(); }
    private sealed class SnapshotChunk { public static readonly SnapshotChunk Instance = new(); }
    private sealed record SnapshotDone(string Path, long StartZxid, Exception? Error);

    public ReplicaActor(ServerSettings settings, DataTree tree, IActorRef log, IActorRef tracker, Func<long> clock, SnapshotPolicy? snapshots = null)
    {
        _snapshots = snapshots;
        _settings = settings;
        _tree = tree;
        _log = log;
        _tracker = tracker;
        _clock = clock;
        _prep = new RequestPreprocessor(tree, settings.SuperDigest, tree.LastZxid);
        _dispatchers = Enumerable.Range(0, settings.WatchDispatchers)
            .Select(i => Context.ActorOf(WatchDispatcherActor.Props(), $"watches-{i}")).ToArray();

        Receive<ClientRequest>(OnClientRequest);
        Receive<LogAppended>(OnLogAppended);
        Receive<LogAppendFailed>(OnLogAppendFailed);
        Receive<CreateSession>(OnCreateSession);
        Receive<ValidateSession>(OnValidateSession);
        Receive<ExpireSession>(OnExpireSession);
        Receive<ConnectionLost>(m => _watches.RemoveSession(m.SessionId));
        Receive<GetReplicaStats>(OnGetStats);
        Receive<ReapTick>(_ => Reap());
        Receive<SnapshotChunk>(_ => WriteSnapshotChunk());
        Receive<SnapshotDone>(OnSnapshotDone);
        Receive<TakeSnapshot>(_ =>
        {
            var started = StartSnapshot();
            Sender.Tell(started ? _snapshotWriter!.StartZxid : -1L);
        });
    }

    public static Props Props(ServerSettings settings, DataTree tree, IActorRef log, IActorRef tracker, Func<long> clock, SnapshotPolicy? snapshots = null) =>
        Akka.Actor.Props.Create(() => new ReplicaActor(settings, tree, log, tracker, clock, snapshots));

    protected override void PreStart()
    {
        // Sessions recovered with the tree are tracked again so that they expire if their clients never return.
        foreach (var (sessionId, timeout) in _tree.Sessions) _tracker.Tell(new SessionOpened(sessionId, timeout));
        Timers.StartPeriodicTimer("reap", ReapTick.Instance, _settings.ContainerCheckInterval);
    }

    private long Now() => _clock();

    private void OnClientRequest(ClientRequest request)
    {
        if (!_sessions.TryGetValue(request.SessionId, out var session))
        {
            request.Session.Tell(new Reply(-1, request.Xid, _tree.LastZxid, ErrorCode.SessionExpired, EmptyResponse.Instance));
            return;
        }

        _outstanding++;
        if (Requests.IsWrite(request.Op) && request.Body is not (MalformedRequest or UnknownOpRequest))
        {
            (TxnHeader Header, Txn Txn) prepared;
            try
            {
                prepared = request.Op == OpCode.CloseSession
                    ? _prep.PrepareCloseSession(request.SessionId, request.Xid, Now())
                    : _prep.Prepare(request.SessionId, request.Xid, request.Op, request.Body, request.Auth, Now());
            }
            catch (Exception e)
            {
                // A request that prep cannot handle is answered as unreadable; nothing was proposed for it.
                _logger.Error(e, "Prepare of {0} failed", request.Op);
                request = request with { Body = new MalformedRequest(e.Message) };
                if (session.Pending.Count == 0) ExecuteRead(request, session); else session.Pending.Enqueue(request);
                return;
            }
            session.Pending.Enqueue(new PendingWrite(prepared.Header.Zxid, request.Xid));
            _log.Tell(new LogAppend([new Proposal(prepared.Header, prepared.Txn, request.Session)]));
        }
        else if (session.Pending.Count == 0)
        {
            ExecuteRead(request, session);
        }
        else
        {
            session.Pending.Enqueue(request);
        }
    }

    private void OnCreateSession(CreateSession m)
    {
        var (header, txn) = _prep.PrepareCreateSession(m.SessionId, m.TimeoutMs, Now());
        _log.Tell(new LogAppend([new Proposal(header, txn, m.Session)]));
    }

    private void OnValidateSession(ValidateSession m)
    {
        if (!_tree.Sessions.ContainsKey(m.SessionId))
        {
            m.Session.Tell(new SessionValidated(-1, false, 0, _tree.LastZxid));
            return;
        }
        if (!_sessions.TryGetValue(m.SessionId, out var session) || !session.Actor.Equals(m.Session))
        {
            session = new SessionState(m.Session);
            _sessions[m.SessionId] = session;
        }
        _tracker.Tell(new SessionTouched(m.SessionId, m.TimeoutMs));
        m.Session.Tell(new SessionValidated(session.NextSeq(), true, m.TimeoutMs, _tree.LastZxid));
    }

    private void OnExpireSession(ExpireSession m)
    {
        if (!_tree.Sessions.ContainsKey(m.SessionId)) return;
        _logger.Info("Expiring session 0x{0:x}", m.SessionId);
        var (header, txn) = _prep.PrepareCloseSession(m.SessionId, 0, Now());
        _log.Tell(new LogAppend([new Proposal(header, txn, null)]));
    }

    private void OnLogAppended(LogAppended appended)
    {
        foreach (var proposal in appended.Batch) Commit(proposal);
        _prep.Applied(_tree.LastZxid);
        if (_snapshots is { } policy)
        {
            _txnsSinceSnapshot += appended.Batch.Count;
            foreach (var proposal in appended.Batch) _bytesSinceSnapshot += EstimateSize(proposal.Txn);
            if (_txnsSinceSnapshot >= policy.EveryTxns || _bytesSinceSnapshot >= policy.EveryBytes) StartSnapshot();
        }
    }

    // ------------------------------------------------------------------------------------------------ snapshots

    private static long EstimateSize(Txn txn) => txn switch
    {
        CreateTxn c => 64 + c.Path.Length + c.Data.Length,
        SetDataTxn d => 48 + d.Path.Length + d.Data.Length,
        MultiTxn m => 16 + m.Ops.Sum(op => EstimateSize(op.Txn)),
        _ => 48,
    };

    /// <summary>Begins a fuzzy snapshot unless one is running. It is serialized <see cref="SnapshotPolicy.ChunkNodes"/>
    /// nodes per message, so client requests interleave with it; a background task writes the bytes.</summary>
    private bool StartSnapshot()
    {
        if (_snapshots is not { } policy || _snapshotBusy) return false;
        _snapshotBusy = true;
        _txnsSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        _snapshot = _tree.BeginFuzzySnapshot();
        _snapshotWriter = policy.Files.Begin(_snapshot.StartZxid);
        Self.Tell(SnapshotChunk.Instance);
        return true;
    }

    private void WriteSnapshotChunk()
    {
        if (_snapshot is not { } snapshot || _snapshotWriter is not { } writer) return;
        bool done;
        try
        {
            done = snapshot.WriteChunk(_snapshots!.ChunkNodes);
            writer.Write(snapshot.TakeBytes());
        }
        catch (Exception e)
        {
            writer.Abort();
            _snapshot = null;
            _snapshotBusy = false;
            _logger.Error(e, "Snapshot at zxid 0x{0:x} failed", snapshot.StartZxid);
            return;
        }
        if (!done)
        {
            Self.Tell(SnapshotChunk.Instance);
            return;
        }
        _snapshot = null;
        writer.Complete();
        var path = writer.Path;
        var start = writer.StartZxid;
        writer.Completion.ContinueWith(t => new SnapshotDone(path, start, t.Exception?.GetBaseException()), TaskScheduler.Default).PipeTo(Self);
    }

    private void OnSnapshotDone(SnapshotDone done)
    {
        _snapshotBusy = false;
        _snapshotWriter = null;
        if (done.Error is null) _logger.Info("Snapshot {0} written (start zxid 0x{1:x})", done.Path, done.StartZxid);
        else _logger.Error(done.Error, "Writing snapshot {0} failed", done.Path);
    }

    private void OnLogAppendFailed(LogAppendFailed failed)
    {
        // Nothing of the batch (nor anything prepared after it) may be applied: forget the overlay and fail the writers.
        _logger.Error(failed.Cause, "Transaction log failed; {0} txns not applied", failed.Batch.Count);
        _prep.Reset(_tree.LastZxid);
        foreach (var proposal in failed.Batch)
        {
            if (!_sessions.TryGetValue(proposal.Header.SessionId, out var session)) continue;
            if (session.Pending.TryPeek(out var head) && head is PendingWrite write && write.Zxid == proposal.Header.Zxid)
            {
                session.Pending.Dequeue();
                _outstanding--;
                session.Actor.Tell(new Reply(session.NextSeq(), write.Xid, _tree.LastZxid, ErrorCode.SystemError, EmptyResponse.Instance));
                DrainReads(session);
            }
        }
    }

    private void Commit(Proposal proposal)
    {
        var header = proposal.Header;
        var result = _tree.Apply(header, proposal.Txn);
        _audit.Committed(header, proposal.Txn, result.Err);
        FireTriggers(result.Triggers, header.Zxid);

        switch (proposal.Txn)
        {
            case CreateSessionTxn create:
                var state = new SessionState(proposal.Origin ?? ActorRefs.Nobody);
                _sessions[header.SessionId] = state;
                _tracker.Tell(new SessionOpened(header.SessionId, create.TimeoutMs));
                state.Actor.Tell(new SessionValidated(state.NextSeq(), true, create.TimeoutMs, header.Zxid));
                return;
            case CloseSessionTxn:
                EndSession(header);
                return;
        }

        if (!_sessions.TryGetValue(header.SessionId, out var session)) return;
        if (session.Pending.TryPeek(out var head) && head is PendingWrite write && write.Zxid == header.Zxid)
        {
            session.Pending.Dequeue();
            _outstanding--;
            session.Actor.Tell(new Reply(session.NextSeq(), write.Xid, header.Zxid, result.Err, result.Response));
            DrainReads(session);
        }
    }

    private void EndSession(in TxnHeader header)
    {
        _tracker.Tell(new SessionClosed(header.SessionId));
        _watches.RemoveSession(header.SessionId);
        if (!_sessions.Remove(header.SessionId, out var session)) return;
        var requested = session.Pending.TryPeek(out var head) && head is PendingWrite write && write.Zxid == header.Zxid;
        if (requested)
            session.Actor.Tell(new Reply(session.NextSeq(), ((PendingWrite)head!).Xid, header.Zxid, ErrorCode.Ok, EmptyResponse.Instance));
        _outstanding -= session.Pending.Count;
        session.Actor.Tell(new SessionEnded(session.NextSeq(), Expired: !requested));
    }

    /// <summary>Runs the reads that were waiting for this session's writes, up to its next pending write.</summary>
    private void DrainReads(SessionState session)
    {
        while (session.Pending.TryPeek(out var next) && next is ClientRequest read)
        {
            session.Pending.Dequeue();
            ExecuteRead(read, session);
        }
    }

    private void FireTriggers(IReadOnlyList<WatchTrigger> triggers, long zxid)
    {
        for (var i = 0; i < triggers.Count; i++)
        {
            var trigger = triggers[i];
            var watchers = _watches.Trigger(trigger);
            if (watchers.Count == 0) continue;
            var recipients = new List<(IActorRef, long)>(watchers.Count);
            foreach (var sessionId in watchers)
                if (_sessions.TryGetValue(sessionId, out var s)) recipients.Add((s.Actor, s.NextSeq()));
            if (recipients.Count == 0) continue;
            var shard = WatchDispatcherActor.ShardOf(trigger.Path, _dispatchers.Length);
            _dispatchers[shard].Tell(new Fanout(new WatcherEvent(trigger.Type, KeeperState.SyncConnected, trigger.Path), zxid, recipients));
        }
    }

    private void ExecuteRead(ClientRequest request, SessionState session)
    {
        _outstanding--;
        ErrorCode err;
        ZkResponse body;
        try
        {
            (err, body) = Read(request, session);
        }
        catch (Exception e)
        {
            _logger.Error(e, "Read {0} failed", request.Op);
            (err, body) = (ErrorCode.SystemError, EmptyResponse.Instance);
        }
        session.Actor.Tell(new Reply(session.NextSeq(), request.Xid, _tree.LastZxid, err, body));
    }

    private (ErrorCode, ZkResponse) Read(ClientRequest request, SessionState session)
    {
        var sid = request.SessionId;
        switch (request.Body)
        {
            case PathWatchRequest r when request.Op == OpCode.Exists:
            {
                // ZooKeeper 3.8 checks no ACL on exists.
                var node = _tree.Find(r.NodePath);
                if (r.Watch && Paths.IsValid(r.NodePath)) _watches.Add(r.NodePath, sid, WatchKind.Data);
                return node is null ? (ErrorCode.NoNode, EmptyResponse.Instance) : (ErrorCode.Ok, new StatResponse(node.Stat));
            }
            case PathWatchRequest r when request.Op == OpCode.GetData:
            {
                var node = _tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, request.Auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                if (r.Watch) _watches.Add(r.NodePath, sid, WatchKind.Data);
                return (ErrorCode.Ok, new GetDataResponse(node.Data, node.Stat));
            }
            case PathWatchRequest r:   // getChildren, getChildren2
            {
                var node = _tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, request.Auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                if (r.Watch) _watches.Add(r.NodePath, sid, WatchKind.Child);
                var children = node.Children.ToList();
                return (ErrorCode.Ok, request.Op == OpCode.GetChildren2 ? new GetChildrenResponse(children, node.Stat) : new GetChildrenResponse(children));
            }
            case PathRequest r when request.Op == OpCode.GetAcl:
            {
                var node = _tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read | Perms.Admin, request.Auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                // Without ADMIN, digest hashes are masked, as ZooKeeper does since 3.6.
                var acl = Acls.Check(node.Acl, Perms.Admin, request.Auth) ? node.Acl : MaskDigests(node.Acl);
                return (ErrorCode.Ok, new GetAclResponse(acl, node.Stat));
            }
            case PathRequest r when request.Op == OpCode.GetAllChildrenNumber:
            {
                var node = _tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, request.Auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                return (ErrorCode.Ok, new GetAllChildrenNumberResponse(_tree.CountDescendants(r.NodePath)));
            }
            case PathRequest r when request.Op == OpCode.GetEphemerals:
            {
                var prefix = r.NodePath;
                var matches = _tree.EphemeralsOf(sid).Where(p => prefix == "/" || p.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                return (ErrorCode.Ok, new StringListResponse(matches));
            }
            case PathRequest r when request.Op == OpCode.Sync:
                return (ErrorCode.Ok, new PathResponse(r.NodePath));
            case MultiRequest multi when request.Op == OpCode.MultiRead:
                // As ZooKeeper: a multiRead may hold only getData and getChildren ("Mixing different kind of ops").
                foreach (var op in multi.Ops)
                    if (op.Type is not (OpCode.GetData or OpCode.GetChildren)) return (ErrorCode.MarshallingError, EmptyResponse.Instance);
                return (ErrorCode.Ok, MultiRead(multi, request.Auth));
            case SetWatchesRequest r:
                SetWatches(r, session, sid);
                return (ErrorCode.Ok, EmptyResponse.Instance);
            case AddWatchRequest r when r.Mode is not (AddWatchMode.Persistent or AddWatchMode.PersistentRecursive):
                return (ErrorCode.MarshallingError, EmptyResponse.Instance);
            case AddWatchRequest r:
            {
                if (!Paths.IsValid(r.NodePath)) return (ErrorCode.BadArguments, EmptyResponse.Instance);
                var node = _tree.Find(r.NodePath);
                if (node is not null && !Acls.Check(node.Acl, Perms.Read, request.Auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                _watches.Add(r.NodePath, sid, r.Mode == AddWatchMode.PersistentRecursive ? WatchKind.PersistentRecursive : WatchKind.Persistent);
                return (ErrorCode.Ok, ErrorCodeResponse.Ok);
            }
            case WatchesRequest r:
            {
                var found = _watches.Remove(r.NodePath, sid, r.Type, remove: request.Op == OpCode.RemoveWatches);
                return (found ? ErrorCode.Ok : ErrorCode.NoWatcher, EmptyResponse.Instance);
            }
            case MalformedRequest:
                return (ErrorCode.MarshallingError, EmptyResponse.Instance);
            case EmptyRequest when request.Op == OpCode.WhoAmI:
                return (ErrorCode.Ok, new WhoAmIResponse(request.Auth.Ids.Select(ClientInfoOf).ToList()));
            default:
                return (ErrorCode.Unimplemented, EmptyResponse.Instance);
        }
    }

    /// <summary>whoAmI reports a digest identity by its user name only, never the hash.</summary>
    private static ClientInfo ClientInfoOf(Id id)
    {
        var colon = id.Ident.IndexOf(':');
        return new ClientInfo(id.Scheme, id.Scheme == "digest" && colon >= 0 ? id.Ident[..colon] : id.Ident);
    }

    private static IReadOnlyList<Acl> MaskDigests(IReadOnlyList<Acl> acl)
    {
        var masked = new List<Acl>(acl.Count);
        foreach (var entry in acl)
        {
            var colon = entry.Id.Ident.IndexOf(':');
            masked.Add(entry.Id.Scheme == "digest" && colon >= 0 ? entry with { Id = entry.Id with { Ident = entry.Id.Ident[..colon] + ":x" } } : entry);
        }
        return masked;
    }

    private MultiResponse MultiRead(MultiRequest multi, AuthContext auth)
    {
        var results = new List<OpResult>(multi.Ops.Count);
        foreach (var op in multi.Ops)
        {
            var path = op.Request.Path ?? "";
            var node = _tree.Find(path);
            if (node is null) { results.Add(OpResult.Error(ErrorCode.NoNode)); continue; }
            if (!Acls.Check(node.Acl, Perms.Read, auth)) { results.Add(OpResult.Error(ErrorCode.NoAuth)); continue; }
            results.Add(op.Type == OpCode.GetData
                ? new OpResult(OpCode.GetData, ErrorCode.Ok, new GetDataResponse(node.Data, node.Stat))
                : new OpResult(OpCode.GetChildren, ErrorCode.Ok, new GetChildrenResponse(node.Children.ToList())));
        }
        return new MultiResponse(results);
    }

    /// <summary>
    /// Re-registers a reconnecting client's watches. Changes it missed since <c>relativeZxid</c> fire at once,
    /// as ZooKeeper's DataTree.setWatches does.
    /// </summary>
    private void SetWatches(SetWatchesRequest r, SessionState session, long sid)
    {
        var zxid = _tree.LastZxid;
        void Fire(EventType type, string path) =>
            session.Actor.Tell(new Notification(session.NextSeq(), zxid, Frames.Notification(new WatcherEvent(type, KeeperState.SyncConnected, path), zxid)));

        foreach (var path in r.DataWatches)
        {
            var node = _tree.Find(path);
            if (node is null) Fire(EventType.NodeDeleted, path);
            else if (node.Stat.Mzxid > r.RelativeZxid) Fire(EventType.NodeDataChanged, path);
            else _watches.Add(path, sid, WatchKind.Data);
        }
        foreach (var path in r.ExistWatches)
        {
            if (_tree.Find(path) is not null) Fire(EventType.NodeCreated, path);
            else _watches.Add(path, sid, WatchKind.Data);
        }
        foreach (var path in r.ChildWatches)
        {
            var node = _tree.Find(path);
            if (node is null) Fire(EventType.NodeDeleted, path);
            else if (node.Stat.Pzxid > r.RelativeZxid) Fire(EventType.NodeChildrenChanged, path);
            else _watches.Add(path, sid, WatchKind.Child);
        }
        foreach (var path in r.PersistentWatches) _watches.Add(path, sid, WatchKind.Persistent);
        foreach (var path in r.PersistentRecursiveWatches) _watches.Add(path, sid, WatchKind.PersistentRecursive);
    }

    /// <summary>Proposes the deletion of empty containers and expired TTL nodes (ZooKeeper's ContainerManager).</summary>
    private void Reap()
    {
        var perRun = Math.Max(1, (int)(_settings.ContainerMaxPerMinute * _settings.ContainerCheckInterval.TotalMinutes));
        _reapBudget = perRun;
        var now = Now();
        foreach (var path in _tree.FindReapable(now))
        {
            if (_reapBudget-- <= 0) break;
            var prepared = _prep.PrepareReap(path, now);
            if (prepared is { } p) _log.Tell(new LogAppend([new Proposal(p.Header, p.Txn, null)]));
        }
    }

    private void OnGetStats(GetReplicaStats request)
    {
        IReadOnlyDictionary<long, IReadOnlyCollection<string>>? ephemerals = null;
        if (request.WithEphemerals)
            ephemerals = _tree.SessionsWithEphemerals.ToDictionary(s => s, s => _tree.EphemeralsOf(s));
        Sender.Tell(new ReplicaStats(
            _tree.LastZxid, _tree.NodeCount, _tree.ApproximateDataSize, _tree.EphemeralCount, _watches.WatchCount,
            _watches.PathCount, _tree.Sessions.Count, request.WithWatchDetail || request.WithEphemerals ? _tree.Digest() : 0,
            request.WithWatchDetail ? _watches.BySession() : null, request.WithWatchDetail ? _watches.ByPath() : null,
            ephemerals, _outstanding));
    }
}
