using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Replica;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.Server.Persistence;

namespace Coordination.Server.Pipeline;

/// <summary>
/// This server's replica of the replicated state: the data tree, and the host of <see cref="ReplicaCore{TAddress,TRead,TOutcome}"/>,
/// which decides what happens to every request (docs/architecture.md §4). Writes are prepared by the core (while
/// leading), handed to the transaction log in batches, and applied when they commit: in a standalone server when the
/// log reports them durable (a quorum of one); in an ensemble when Zab commits them (see ReplicaActor.Ensemble.cs:
/// followers forward writes to the leader's replica and apply what the leader commits). Reads are answered here,
/// after the same session's earlier writes have been applied (ZooKeeper's CommitProcessor rule), so each session
/// sees its own writes and its responses are produced in request order. Every output to a session gets that
/// session's next sequence number in apply order; the session actor emits in that order. This actor turns the
/// core's outputs into messages and keeps what needs Akka, I/O or the clock: the log and peer, the leader's replica
/// and the encoding of forwards, the tracker, snapshots, the change feed, the reap and stall timers.
/// </summary>
public sealed partial class ReplicaActor : ReceiveActor, IWithTimers
{
    private readonly ServerSettings _settings;
    private DataTree _tree;
    /// <summary>Decides writes while this replica prepares them; the core's (it prepares), replaced with the tree.</summary>
    private RequestPreprocessor _prep => _core.Prep;
    private WatchTable _watches => _core.Watches;
    /// <summary>Where prepared txns go: the journal (standalone) or, in an ensemble, the Zab peer (this actor's child).</summary>
    private readonly IActorRef _log;
    private readonly IActorRef _tracker;
    private readonly IReadOnlyList<IActorRef> _dispatchers;
    private readonly Func<long> _clock;
    /// <summary>Monotonic milliseconds, for how long requests have waited (see ReplicaActor.Liveness.cs).</summary>
    private readonly Func<long> _monotonic;
    private readonly ILoggingAdapter _logger = Context.GetLogger();
    private readonly Audit.IAuditSink _audit = Audit.AuditLog.For(Context.System);
    private readonly Sessions.SessionPasswords _passwords = Sessions.SessionPasswords.For(Context.System);
    private readonly Metrics.ServerMetrics _metrics = Metrics.ServerMetrics.For(Context.System);
    // Fuzzy snapshots (Persistence/SnapshotFiles): serialized in chunks between other messages.
    private readonly SnapshotPolicy? _snapshots;
    private long _txnsSinceSnapshot;
    private long _bytesSinceSnapshot;
    private long? _snapshotTreeBytes;   // SnapshotPolicy.SizeOf the tree the last snapshot began with (null: unknown)
    private DataTree.FuzzySnapshot? _snapshot;
    private SnapshotFiles.Writer? _snapshotWriter;
    private bool _snapshotBusy;
    private int _snapshotTurns;                 // for the log line of a written snapshot
    private TimeSpan _snapshotLongestTurn;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class ReapTick { public static readonly ReapTick Instance = new(); }
    /// <summary>Flushes what a burst prepared or forwarded (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.Flush"/>).</summary>
    private sealed class FlushLog { public static readonly FlushLog Instance = new(); }
    /// <summary>The next turn of a running snapshot; one left over from an aborted snapshot finds another (or none)
    /// running and is ignored.</summary>
    private sealed record SnapshotChunk(DataTree.FuzzySnapshot Snapshot);
    private sealed record SnapshotDone(string Path, long StartZxid, Exception? Error);

    /// <param name="peer">In an ensemble, the Zab peer's props for this replica: it is spawned as this actor's child and
    /// is its log (<paramref name="log"/> is then unused). Its failures end the node (<see cref="SupervisorStrategy"/>).</param>
    public ReplicaActor(ServerSettings settings, DataTree tree, IActorRef log, IActorRef tracker, IReadOnlyList<IActorRef> dispatchers, Func<long> clock,
        SnapshotPolicy? snapshots = null, EnsembleLink? ensemble = null, Func<long>? monotonic = null, Func<IActorRef, Props>? peer = null)
    {
        _monotonic = monotonic ?? (() => Environment.TickCount64);
        _snapshots = snapshots;
        _settings = settings;
        _tree = tree;
        _log = peer is null ? log : Context.ActorOf(peer(Self), PeerActor.Name);
        _tracker = tracker;
        _dispatchers = dispatchers;
        _clock = clock;
        _ensemble = ensemble;
        _core = new ReplicaCore<IActorRef, ClientRequest, Reply>(this, () => _tree.LastZxid, ensemble is not null)
            {
                ServerId = ensemble?.ServerId ?? 0, MaxResponseSize = settings.MaxResponseSize, MaxBatch = settings.MaxWriteBatch,
                LocalSessionsEnabled = settings.LocalSessionsEnabled, UpgradeLocalSessions = settings.LocalSessionsUpgradingEnabled,
            };
        _core.Prep = NewPreprocessor(tree);
        _passwords.Learn(tree.SessionSecret);

        InitFeed();
        if (ensemble is null) Standalone();
        else
        {
            InitConfigNode();
            NotServing();
        }
    }

    /// <param name="monotonic">Monotonic milliseconds for request deadlines (Environment.TickCount64 when null).</param>
    public static Props Props(ServerSettings settings, DataTree tree, IActorRef log, IActorRef tracker, IReadOnlyList<IActorRef> dispatchers, Func<long> clock,
        SnapshotPolicy? snapshots = null, EnsembleLink? ensemble = null, Func<long>? monotonic = null, Func<IActorRef, Props>? peer = null) =>
        Akka.Actor.Props.Create(() => new ReplicaActor(settings, tree, log, tracker, dispatchers, clock, snapshots, ensemble, monotonic, peer));

    /// <summary>A failure of the Zab peer is the node's: escalated, it stops the node (fail fast, see <see cref="NodeActor"/>).</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Escalate);

    protected override void PreStart()
    {
        // Sessions recovered with the tree are tracked again so that they expire if their clients never return.
        TrackAllSessions();
        Timers.StartPeriodicTimer("reap", ReapTick.Instance, _settings.ContainerCheckInterval);
        StartFeedRetention();
        if (_ensemble is not null) StartStallChecks();
        else ProposeSessionSecretIfNone();
    }

    /// <summary>
    /// A deployment's first leader (a standalone server at its first start) draws the session secret and commits it,
    /// before any session can be created in its epoch (see <see cref="Sessions.SessionPasswords"/> for why it is
    /// replicated). A leader elected before an earlier one's secret committed proposes its own; only the first
    /// committed counts.
    /// </summary>
    private RequestPreprocessor NewPreprocessor(DataTree tree) =>
        new(tree, _settings.SuperDigest, tree.LastZxid) { AclProviders = _settings.AclProviders, EnforceQuota = _settings.EnforceQuota, QuotaWarning = WarnQuota,
            QuotaRefused = _metrics.AddQuotaExceeded,
            IsLocalSession = _core.MayBeLocalSession, ReconfigEnabled = _settings.ReconfigEnabled, QuorumSynced = QuorumSynced() };

    private long _lastQuotaWarningTicks;
    private int _quotaWarningsSuppressed;

    /// <summary>Quota warnings, at most one a second (ZooKeeper rate-limits them too): a client writing past a soft
    /// limit in a loop must not flood the log.</summary>
    private void WarnQuota(string message)
    {
        var now = Environment.TickCount64;
        if (now - _lastQuotaWarningTicks < 1000) { _quotaWarningsSuppressed++; return; }
        _lastQuotaWarningTicks = now;
        var suppressed = _quotaWarningsSuppressed;
        _quotaWarningsSuppressed = 0;
        if (suppressed == 0) _logger.Warning("{0}", message);
        else _logger.Warning("{0} ({1} more quota warnings in the last interval)", message, suppressed);
    }

    private void ProposeSessionSecretIfNone()
    {
        if (_tree.SessionSecret is not null) return;
        _core.Log(_prep.PrepareSessionSecret(System.Security.Cryptography.RandomNumberGenerator.GetBytes(SessionIds.SecretLength), Now()));
    }

    private void TrackAllSessions()
    {
        foreach (var (sessionId, timeout) in _tree.Sessions) _tracker.Tell(new SessionOpened(sessionId, timeout));
    }

    private long Now() => _clock();

    private void OnClientRequest(ClientRequest request)
    {
        // Sent by the connection's read loop, it can arrive after the session actor replaced or dropped that connection
        // (Detached, set before its ConnectionLost): answering it would answer the session's next connection.
        if (request.Connection is { Detached: true }) return;
        if (!_sessions.TryGetValue(request.SessionId, out var session))
        {
            // Not serving: the session lives on, only this server cannot serve it now (its connection is closing).
            var err = _core.Serving ? ErrorCode.SessionExpired : ErrorCode.ConnectionLoss;
            request.Session.Tell(new Reply(-1, request.Xid, _tree.LastZxid, err, EmptyResponse.Instance));
            return;
        }
        if (session.ReadOnly && AnsweredReadOnly(request, session)) return;
        if (session.Local && HandledAsLocal(request, session)) return;

        if (request.Body is LinearizableReadRequest linearizable)
        {
            // Standalone, every read is linearizable already; in an ensemble the read waits behind a sync of its own.
            request = request with { Op = linearizable.Op, Body = linearizable.Inner };
            _metrics.ClientPort.LinearizableReadOnce();
            if (_ensemble is not null)
            {
                Sync(request, new PathRequest(request.Body.Path ?? "/"), session, then: request);
                return;
            }
        }
        if (_ensemble is not null && request.Op == OpCode.Sync && request.Body is PathRequest sync)
        {
            Sync(request, sync, session);
        }
        else if (IsWrite(request))
        {
            _core.ClientWrite(session, request, request.Xid, request.Op, request.Body, request.Auth, Now(), _monotonic());
        }
        else
        {
            _core.Read(session, request);
        }
    }

    /// <summary>A client asks for a new session: a local one is opened here, any other created by a createSession
    /// txn (prepared here or forwarded to the leader) and answered when it commits (the core decides).</summary>
    private void CreateSession(CreateSession m) => _core.CreateSession(m.Session, m.SessionId, m.TimeoutMs, Now(), _monotonic());

    /// <summary>A client re-attaches to a session: a local session of this member, or any other (a follower that has
    /// not applied the session's creation syncs with the leader first; the core decides).</summary>
    private void ValidateSession(ValidateSession m) => _core.ValidateSession(_tree, m.Session, m.SessionId, m.TimeoutMs, _monotonic());

    /// <summary>Standalone or leader: the tracker found the session's deadline passed.</summary>
    private void ExpireSession(ExpireSession m)
    {
        if (_core.Expire(_tree, m.SessionId, Now())) _logger.Info("Expiring session 0x{0:x}", m.SessionId);
    }

    private void OnLogAppended(LogAppended appended) => _core.ApplyBatch(_tree, appended.Batch);

    /// <summary>After a committed batch is applied and answered (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.ApplyBatch"/>):
    /// the change feed's subscribers get what it changed, and a snapshot starts when the policy says it is due.</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.BatchApplied(IReadOnlyList<Proposal> batch)
    {
        PumpFeeds();
        if (_snapshots is not null)
        {
            _txnsSinceSnapshot += batch.Count;
            foreach (var proposal in batch) _bytesSinceSnapshot += EstimateSize(proposal.Txn);
            _snapshotTreeBytes ??= SnapshotPolicy.SizeOf(_tree);   // after a start: about what it recovered
            StartSnapshotIfDue();
        }
    }

    /// <summary>Starts a snapshot if the txns applied since the last one began call for one, unless one is running
    /// (then <see cref="OnSnapshotDone"/> asks again: a snapshot that came due meanwhile starts when it ends, not at
    /// the next write, which may never come).</summary>
    private void StartSnapshotIfDue()
    {
        if (_snapshots is { } policy && _snapshotTreeBytes is { } treeBytes && policy.IsDue(_txnsSinceSnapshot, _bytesSinceSnapshot, treeBytes))
            StartSnapshot();
    }

    // ------------------------------------------------------------------------------------------------ snapshots

    private static long EstimateSize(Txn txn) => txn switch
    {
        CreateTxn c => 64 + c.Path.Length + (c.Data?.Length ?? 0),
        SetDataTxn d => 48 + d.Path.Length + (d.Data?.Length ?? 0),
        MultiTxn m => 16 + m.Ops.Sum(op => EstimateSize(op.Txn)),
        _ => 48,
    };

    /// <summary>Begins a fuzzy snapshot unless one is running. It is serialized a little per turn
    /// (<see cref="WriteSnapshotTurn"/>), so client requests interleave with it; the writer's own thread writes the bytes.</summary>
    private bool StartSnapshot(bool whole = false)
    {
        if (_snapshots is not { } policy || _snapshotBusy) return false;
        _snapshotBusy = true;
        _txnsSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        _snapshotTreeBytes = SnapshotPolicy.SizeOf(_tree);
        _snapshot = _tree.BeginFuzzySnapshot();
        _snapshotWriter = policy.Files.Begin(_snapshot.StartZxid);
        _snapshotTurns = 0;
        _snapshotLongestTurn = TimeSpan.Zero;
        if (whole) WriteSnapshotChunk(whole: true);
        else ContinueSnapshot(_snapshot);
        return true;
    }

    private void AbortSnapshot()
    {
        _snapshotWriter?.Abort();
        _snapshotWriter = null;
        _snapshot = null;
        _snapshotBusy = false;
        _txnsSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        _snapshotTreeBytes = null;
    }

    /// <summary>Serializes the next chunk, or with <paramref name="whole"/> every chunk before any other message is
    /// handled (no txn is applied in between, so the snapshot is not fuzzy).</summary>
    private void WriteSnapshotChunk(bool whole = false)
    {
        if (_snapshot is not { } snapshot || _snapshotWriter is not { } writer) return;
        bool done;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            do
            {
                done = WriteSnapshotTurn(snapshot, whole);
                writer.Write(snapshot.TakeBytes());
            }
            while (whole && !done);
            _snapshotTurns++;
            var turn = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            if (turn > _snapshotLongestTurn) _snapshotLongestTurn = turn;
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
            ContinueSnapshot(snapshot);
            return;
        }
        _snapshot = null;
        writer.Complete();
        var path = writer.Path;
        var start = writer.StartZxid;
        writer.Completion.ContinueWith(t => new SnapshotDone(path, start, t.Exception?.GetBaseException()), TaskScheduler.Default).PipeTo(Self);
    }

    /// <summary>One turn's share of the snapshot: at most <see cref="SnapshotPolicy.ChunkNodes"/> nodes and, unless
    /// <paramref name="whole"/>, about <see cref="SnapshotPolicy.ChunkTime"/> of work (a node's cost varies with its
    /// data, its directory and the machine's load: 2,000 nodes took 5 to 340 ms on a loaded machine). True when done.</summary>
    private bool WriteSnapshotTurn(DataTree.FuzzySnapshot snapshot, bool whole)
    {
        var policy = _snapshots!;
        if (whole || policy.ChunkTime <= TimeSpan.Zero) return snapshot.WriteChunk(policy.ChunkNodes);
        const int step = 64;   // nodes between two looks at the clock
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (var nodes = 0; ; nodes += step)
        {
            var last = Math.Min(step, policy.ChunkNodes - nodes);
            if (snapshot.WriteChunk(last)) return true;
            if (nodes + last >= policy.ChunkNodes || System.Diagnostics.Stopwatch.GetElapsedTime(started) >= policy.ChunkTime) return false;
        }
    }

    /// <summary>
    /// Queues the next turn of a snapshot behind the work the thread pool holds, not in this mailbox. A message to
    /// Self is taken in the same mailbox run (up to the dispatcher's throughput, 30 messages), so the chunks ran
    /// back to back on one pool thread for as long as the snapshot lasted, 30 at a time: the replies this replica had
    /// just sent waited for a thread to run their session actors (1 to 2 s on a 1.7M-znode tree at saturation,
    /// issue 23), not for the replica. From the pool's queue each turn waits its turn like any other actor's.
    /// </summary>
    private void ContinueSnapshot(DataTree.FuzzySnapshot snapshot)
    {
        var chunk = new SnapshotChunk(snapshot);
        ThreadPool.UnsafeQueueUserWorkItem(static m => m.Self.Tell(m.Chunk), (Self, Chunk: chunk), preferLocal: false);
    }

    private void OnSnapshotDone(SnapshotDone done)
    {
        // A snapshot aborted by a tree replacement (SNAP) still completes its writer; the running one is not it.
        if (_snapshotWriter is not { } writer || writer.Path != done.Path) return;
        _snapshotBusy = false;
        _snapshotWriter = null;
        if (done.Error is null && _ensemble is not null) _log.Tell(new Ensemble.PeerActor.SnapshotTaken(done.StartZxid));
        if (done.Error is null) RefreshHistoryFloorSoon();
        if (done.Error is null)
            _logger.Info("Snapshot {0} written (start zxid 0x{1:x}; {2} turns of the replica, the longest {3:F1} ms)", done.Path, done.StartZxid,
                _snapshotTurns, _snapshotLongestTurn.TotalMilliseconds);
        else _logger.Error(done.Error, "Writing snapshot {0} failed", done.Path);
        StartSnapshotIfDue();
    }

    private void OnLogAppendFailed(LogAppendFailed failed)
    {
        // Nothing of the batch (nor anything prepared on top of it) may be applied: the core fails their writers. In an
        // ensemble the txn was refused, not lost: the leader changed under it, and the client will reconnect.
        _logger.Error(failed.Cause, "Transaction log failed; {0} txns not applied", failed.Batch.Count + _core.Unlogged);
        _core.LogFailed(failed.Batch, _ensemble is null ? ErrorCode.SystemError : ErrorCode.ConnectionLoss);
    }

    private Reply Refusal(int xid, ErrorCode err) => new(0, xid, _tree.LastZxid, err, EmptyResponse.Instance);

    private void ExecuteRead(ClientRequest request, SessionState session)
    {
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

    /// <summary>A read answered here: the change feed's requests are this actor's, the rest the core's (ReplicaCore.Reads.cs).</summary>
    private (ErrorCode, ZkResponse) Read(ClientRequest request, SessionState session) => request.Body switch
    {
        WatchChangesRequest r => Subscribe(request, r),
        StopChangesRequest r => Unsubscribe(request.SessionId, r),
        MalformedRequest => (ErrorCode.MarshallingError, EmptyResponse.Instance),
        _ => _core.AnswerRead(_tree, session, request.Op, request.Body, request.Auth),
    };

    /// <summary>The reap tick: the core proposes the deletion of empty containers and expired TTL nodes, at most
    /// container-max-per-minute's share of an interval.</summary>
    private void Reap() =>
        _core.Reap(_tree, Now(), Math.Max(1, (int)(_settings.ContainerMaxPerMinute * _settings.ContainerCheckInterval.TotalMinutes)));

    private void OnGetStats(GetReplicaStats request)
    {
        IReadOnlyDictionary<long, IReadOnlyCollection<string>>? ephemerals = null;
        _metrics.SetLocalSessions(_sessions.Values.Count(s => s.Local)); // mntr's local_sessions, read after this reply
        _metrics.SetQuotaPerNamespace(_tree.QuotaPerNamespace());          // and its per-namespace quota gauges
        if (request.WithEphemerals)
            ephemerals = _tree.SessionsWithEphemerals.ToDictionary(s => s, s => _tree.EphemeralsOf(s));
        Sender.Tell(new ReplicaStats(
            _tree.LastZxid, _tree.NodeCount, _tree.ApproximateDataSize, _tree.EphemeralCount, _watches.WatchCount,
            _watches.PathCount, _tree.Sessions.Count, request.WithWatchDetail || request.WithEphemerals || request.WithDigest ? _tree.Digest() : 0,
            request.WithWatchDetail ? _watches.BySession() : null, request.WithWatchDetail ? _watches.ByPath() : null,
            ephemerals, _core.Outstanding));
    }
}
