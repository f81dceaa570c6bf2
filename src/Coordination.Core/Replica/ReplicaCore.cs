using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>What a replica does for clients, explicitly (the server's ReplicaActor maps Zab's role onto it).</summary>
public enum ReplicaRole
{
    /// <summary>No leader or quorum: clients cannot be served (read-only sessions aside, while looking: ReplicaCore.Here.cs).</summary>
    NotServing,
    /// <summary>A server alone: it prepares, logs and applies its own writes.</summary>
    Standalone,
    /// <summary>The ensemble's established leader: it prepares and proposes every write, its own and forwarded ones.</summary>
    Leader,
    /// <summary>A synchronised voter: writes and syncs go to the leader; commits are applied as they come.</summary>
    Follower,
    /// <summary>A synchronised non-voter: as a follower for its clients.</summary>
    Observer,
}

/// <summary>Where a client's write goes (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.RouteWrite"/>).</summary>
public enum WriteRoute
{
    /// <summary>Prepared here (standalone or leader), then logged or proposed.</summary>
    Prepare,
    /// <summary>Sent to the leader's replica (follower, observer).</summary>
    Forward,
    /// <summary>The session is attached to another server: answered SessionMoved, in order.</summary>
    Moved,
}

/// <summary>
/// The core's outputs, carried out by its host (the server's ReplicaActor turns them into messages). Every call is
/// made in the session's output order, so the host only has to send in the order it is called.
/// </summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome> where TRead : class where TOutcome : class
{
    /// <summary>Executes a read now, against the state applied so far; its answer takes <c>session.NextSeq()</c>.</summary>
    void ExecuteRead(ReplicaSession<TAddress, TRead, TOutcome> session, TRead read);
    /// <summary>Sends a write's outcome with sequence number <paramref name="seq"/>.</summary>
    void AnswerWrite(ReplicaSession<TAddress, TRead, TOutcome> session, long seq, TOutcome outcome);
    /// <summary>Answers a sync (its point is applied here) with sequence number <paramref name="seq"/>.</summary>
    void AnswerSync(ReplicaSession<TAddress, TRead, TOutcome> session, long seq, int xid, string path);
    /// <summary>The session's requests cannot be completed here: its connection closes (the client asks again).</summary>
    void DropConnection(ReplicaSession<TAddress, TRead, TOutcome> session, string why);
    /// <summary>The outcome of a write refused with <paramref name="err"/>, nothing applied.</summary>
    TOutcome Refusal(int xid, ErrorCode err);
    /// <summary>A session served only here (a local or read-only one) asked to close (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.CloseHere"/>)
    /// and everything before the close is answered: the host answers the close with <paramref name="seq"/> (the core
    /// ends the session next, <see cref="EndedHere"/>).</summary>
    void CloseHere(ReplicaSession<TAddress, TRead, TOutcome> session, long seq, int xid);
}

/// <summary>A write in flight since <see cref="SinceMs"/> (monotonic); <see cref="Outcome"/> is set when it
/// commits (or is refused) and it is answered once everything before it in the session's queue has been.
/// An <see cref="Orphaned"/> write's connection has closed: it completes in order but is answered to no one.</summary>
public sealed class PendingWrite<TOutcome>(int xid, long sinceMs) where TOutcome : class
{
    public readonly int Xid = xid;
    public readonly long SinceMs = sinceMs;
    public TOutcome? Outcome;
    public bool Orphaned;
}

/// <summary>A sync waiting for its point (<see cref="Zxid"/>: the leader's last proposal when it saw the sync; -1
/// until the leader says) to be applied here; with <see cref="Then"/>, the linearizable read it was made for,
/// answered instead of the sync.</summary>
public sealed class PendingSync<TRead>(int xid, string path, long sinceMs, TRead? then) where TRead : class
{
    public readonly int Xid = xid;
    public readonly string Path = path;
    public readonly long SinceMs = sinceMs;
    public readonly TRead? Then = then;
    public long Zxid = -1;
}

/// <summary>Per-session bookkeeping: where outputs go, the next sequence number, and the requests that wait.</summary>
public sealed class ReplicaSession<TAddress, TRead, TOutcome>(long id, TAddress actor, int timeoutMs)
    where TRead : class where TOutcome : class
{
    public readonly long Id = id;
    /// <summary>Where the host sends this session's outputs (the session actor, in the server).</summary>
    public TAddress Actor = actor;
    public int TimeoutMs = timeoutMs;
    /// <summary>A read-only session (ReplicaCore.Here.cs).</summary>
    public bool ReadOnly;
    /// <summary>A local session, known to this server only until it is upgraded (ReplicaCore.Here.cs).</summary>
    public bool Local;
    public long LastSeq;
    /// <summary>The sequence number of this session's next output, in apply order.</summary>
    public long NextSeq() => ++LastSeq;
    /// <summary>Writes and syncs in flight and the reads queued behind them, in request order: a
    /// <typeparamref name="TRead"/>, a <see cref="PendingWrite{TOutcome}"/> or a <see cref="PendingSync{TRead}"/>.</summary>
    internal readonly Queue<object> Pending = new();
    /// <summary>Writes given up with their connection (see Abandon), until when a late answer to one is still
    /// expected: it must not be taken for a newer request that reuses the xid.</summary>
    internal List<(int Xid, long UntilMs)>? Abandoned;
    public int PendingCount => Pending.Count;
}

/// <summary>
/// The replica's logic, pure and deterministic (as <see cref="Zab.ZabPeer"/> is for Zab): which
/// requests each session waits on and in what order their answers go out (ZooKeeper's CommitProcessor rule: a read
/// waits behind the same session's earlier writes and syncs, so a session reads its own writes and gets its
/// answers in request order); the sequence number of every output, watch events included; syncs and their points;
/// the replica's role and where a write goes; which server each session is attached to (SessionMoved); requests
/// that waited too long. Its other parts: prep and batching to the log and to the leader (ReplicaCore.Writes.cs),
/// the leader's side of forwards and syncs (ReplicaCore.Leader.cs), creating and re-attaching sessions and the
/// follower's side of sync points and refused forwards (ReplicaCore.Sessions.cs), reads and watch registration
/// (ReplicaCore.Reads.cs), applying committed batches and reaping (ReplicaCore.Apply.cs), the sessions served here
/// alone, local and read-only ones (ReplicaCore.Here.cs). Inputs are method calls (a request, a forward, a session's
/// creation or re-attachment, a local session's expiry, a write's outcome, a sync point, a committed batch, a role,
/// a lost connection, a tick, a reap tick, a flush); outputs are calls to the
/// <see cref="IReplicaHost{TAddress,TRead,TOutcome}"/>.
/// Script-tested (tests/Coordination.Core.Tests/testdata/replica). docs/architecture.md §4 says what the host keeps.
/// </summary>
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome> where TRead : class where TOutcome : class
{
    private readonly IReplicaHost<TAddress, TRead, TOutcome> _host;
    private readonly Func<long> _appliedZxid;
    private readonly bool _ensemble;
    private readonly HashSet<ReplicaSession<TAddress, TRead, TOutcome>> _syncWaiters = new();
    /// <summary>Leader: the server each session is attached to; requests from elsewhere get SessionMoved.</summary>
    private readonly Dictionary<long, long> _owners = new();

    /// <param name="appliedZxid">The last zxid applied to the host's state (syncs are answered once it reaches their point).</param>
    /// <param name="ensemble">In an ensemble (else standalone: every write is prepared here and no session moves).</param>
    public ReplicaCore(IReplicaHost<TAddress, TRead, TOutcome> host, Func<long> appliedZxid, bool ensemble)
    {
        _host = host;
        _appliedZxid = appliedZxid;
        _ensemble = ensemble;
        Role = ensemble ? ReplicaRole.NotServing : ReplicaRole.Standalone;
    }

    public ReplicaRole Role { get; private set; }
    /// <summary>This server may serve clients (standalone, an established leader, or a synchronised learner).</summary>
    public bool Serving => Role != ReplicaRole.NotServing;
    /// <summary>This server prepares and proposes writes (standalone, or an established leader).</summary>
    public bool Leading => Role is ReplicaRole.Standalone or ReplicaRole.Leader;
    /// <summary>The sessions served here, by id.</summary>
    public Dictionary<long, ReplicaSession<TAddress, TRead, TOutcome>> Sessions { get; } = new();
    /// <summary>Requests received and not yet answered or given up (mntr's outstanding requests).</summary>
    public int Outstanding { get; private set; }

    /// <summary>
    /// A role change; a follower or observer forwards to <paramref name="leader"/>'s replica. What was batched for the
    /// old leader goes to it first. Leaving service drops every session (the host closes their connections; clients
    /// re-attach, possibly elsewhere) and what was prepared and not logged; a new leader forgets who owned what (every
    /// client re-attaches after a leader change); a leader that stops leading refuses the syncs it held. Read-only
    /// sessions may be opened while <paramref name="looking"/> for a leader (not serving), and end when it stops.
    /// </summary>
    public void SetRole(ReplicaRole role, long leader, long nowMs, bool looking = false)
    {
        if (!_ensemble && role != ReplicaRole.Standalone) throw new InvalidOperationException("A standalone replica keeps its role");
        var wasServing = Serving;
        var wasLeading = Leading;
        FlushForwards();
        Role = role;
        Leader = Forwards ? leader : -1;
        if (wasLeading && !Leading) RefuseHeldSyncs(nowMs);
        if (!Serving && wasServing)
        {
            Clear();
            _unlogged.Clear();
            Prep?.Reset(_appliedZxid());
        }
        if (role == ReplicaRole.Leader) _owners.Clear();
        SetLooking(looking && !Serving);
    }

    /// <summary>Forgets every session and what it waited for, the sessions being created or re-attached, and the
    /// proposals awaiting their commit (the host drops the connections itself).</summary>
    public void Clear()
    {
        Sessions.Clear();
        _owners.Clear();
        _syncWaiters.Clear();
        _creating.Clear();
        _validations.Clear();
        _proposed.Clear();
        Outstanding = 0;
    }

    // ------------------------------------------------------------------------------------------------ requests

    /// <summary>A read (or any request answered from local state): executed now, or queued behind the session's writes.</summary>
    public void Read(ReplicaSession<TAddress, TRead, TOutcome> session, TRead read)
    {
        Outstanding++;
        if (session.Pending.Count == 0) ExecuteRead(session, read);
        else session.Pending.Enqueue(read);
    }

    /// <summary>Where a client's write goes; a session seen for the first time here is claimed for this server.</summary>
    public WriteRoute RouteWrite(long sessionId, long serverId)
    {
        if (!Leading) return WriteRoute.Forward;
        return IsMovedAway(sessionId, serverId, claimUnknown: true) ? WriteRoute.Moved : WriteRoute.Prepare;
    }

    /// <summary>A write prepared or forwarded: its place in the session's queue, until its outcome is known.</summary>
    public PendingWrite<TOutcome> Write(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, long nowMs)
    {
        Outstanding++;
        var write = new PendingWrite<TOutcome>(xid, nowMs);
        session.Pending.Enqueue(write);
        return write;
    }

    /// <summary>A write refused before it went anywhere (SessionMoved, no leader): answered in its turn.</summary>
    public void Refuse(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, long nowMs, ErrorCode err)
    {
        Write(session, xid, nowMs).Outcome = _host.Refusal(xid, err);
        Drain(session);
    }

    /// <summary>A close that commits no txn (a local or read-only session's): answered in its turn, once every earlier
    /// request of the session is answered (<see cref="IReplicaHost{TAddress,TRead,TOutcome}.CloseHere"/>), and the
    /// session ends here with it.</summary>
    public void CloseHere(ReplicaSession<TAddress, TRead, TOutcome> session, int xid)
    {
        Outstanding++;
        session.Pending.Enqueue(new PendingClose(xid));
        Drain(session);
    }

    private sealed record PendingClose(int Xid);

    /// <summary>A sync (or a linearizable read, <paramref name="then"/>) queued until its point is fixed and applied.
    /// The caller fixes the point (<see cref="SyncPoint"/>) or asks the leader for it, then calls <see cref="Drain"/>.</summary>
    public PendingSync<TRead> Sync(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, string path, long nowMs, TRead? then = null)
    {
        Outstanding++;
        var sync = new PendingSync<TRead>(xid, path, nowMs, then);
        session.Pending.Enqueue(sync);
        _syncWaiters.Add(session);
        return sync;
    }

    /// <summary>True when the session waits on the sync <paramref name="xid"/> whose point is not fixed yet.</summary>
    public bool AwaitsSyncPoint(ReplicaSession<TAddress, TRead, TOutcome> session, int xid)
    {
        foreach (var item in session.Pending)
            if (item is PendingSync<TRead> { Zxid: < 0 } sync && sync.Xid == xid) return true;
        return false;
    }

    /// <summary>True when <paramref name="sync"/> still waits in the session's queue.</summary>
    public bool Waits(ReplicaSession<TAddress, TRead, TOutcome> session, PendingSync<TRead> sync) => session.Pending.Contains(sync);

    /// <summary>Records the outcome of the session's write <paramref name="xid"/> and answers what is now ready, in order.
    /// A late outcome of a write given up with its connection (<see cref="Abandon"/>) is dropped.</summary>
    public void Complete(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, TOutcome outcome)
    {
        if (IsAbandoned(session, xid)) return;
        foreach (var item in session.Pending)
        {
            if (item is PendingWrite<TOutcome> { Outcome: null } write && write.Xid == xid)
            {
                write.Outcome = outcome;
                break;
            }
        }
        Drain(session);
    }

    /// <summary>The host applied txns: answers the syncs whose point is now applied.</summary>
    public void Applied()
    {
        if (_syncWaiters.Count == 0) return;
        foreach (var session in _syncWaiters.ToList())
        {
            Drain(session);
            if (!session.Pending.Any(p => p is PendingSync<TRead>)) _syncWaiters.Remove(session);
        }
    }

    /// <summary>Answers, in request order, everything at the head of the session's queue that is ready: reads, writes
    /// with an outcome and syncs whose point is applied; stops at the first write or sync still in flight.</summary>
    public void Drain(ReplicaSession<TAddress, TRead, TOutcome> session)
    {
        while (session.Pending.TryPeek(out var next))
        {
            switch (next)
            {
                case PendingWrite<TOutcome> { Outcome: { } outcome } write:
                    session.Pending.Dequeue();
                    Outstanding--;
                    if (!write.Orphaned) _host.AnswerWrite(session, session.NextSeq(), outcome);
                    break;
                case PendingSync<TRead> { Zxid: >= 0, Then: { } read } sync when _appliedZxid() >= sync.Zxid:
                    session.Pending.Dequeue();
                    ExecuteRead(session, read);
                    break;
                case PendingSync<TRead> { Zxid: >= 0 } sync when _appliedZxid() >= sync.Zxid:
                    session.Pending.Dequeue();
                    Outstanding--;
                    _host.AnswerSync(session, session.NextSeq(), sync.Xid, sync.Path);
                    break;
                case TRead read:
                    session.Pending.Dequeue();
                    ExecuteRead(session, read);
                    break;
                case PendingClose close:
                    session.Pending.Dequeue();
                    Outstanding--;
                    _host.CloseHere(session, session.NextSeq(), close.Xid);
                    CloseOrExpireHere(session, expired: false);
                    return;
                default:
                    return;
            }
        }
    }

    private void ExecuteRead(ReplicaSession<TAddress, TRead, TOutcome> session, TRead read)
    {
        Outstanding--;
        _host.ExecuteRead(session, read);
    }

    // ------------------------------------------------------------------------------------------------ sessions

    /// <summary>
    /// The session ended (closed or expired) at a committed closeSession: removed here, with what it waited for. When
    /// the close was the session's own request (<paramref name="cxid"/> queued), everything before it is answered in
    /// order first. Returns the session (null when not served here) and whether the close was its request.
    /// </summary>
    public (ReplicaSession<TAddress, TRead, TOutcome>? Session, bool Requested) End(long sessionId, int cxid, TOutcome closed)
    {
        _owners.Remove(sessionId);
        if (!Sessions.Remove(sessionId, out var session)) return (null, false);
        var requested = cxid != 0 && session.Pending.Any(p => p is PendingWrite<TOutcome> { Outcome: null } w && w.Xid == cxid);
        // Answer everything before the close in order; what follows it is dropped with the session.
        if (requested) Complete(session, cxid, closed);
        Forget(session);
        return (session, requested);
    }

    /// <summary>A session that ends here without a txn (a local session's close or expiry): removed with what it
    /// waited for. Null when it is not served here.</summary>
    public ReplicaSession<TAddress, TRead, TOutcome>? EndHere(long sessionId)
    {
        if (!Sessions.Remove(sessionId, out var session)) return null;
        Forget(session);
        return session;
    }

    private void Forget(ReplicaSession<TAddress, TRead, TOutcome> session)
    {
        Outstanding -= session.Pending.Count;
        _syncWaiters.Remove(session);
    }

    /// <summary>
    /// The session's connection closed: what it asked for is answered to no one. Its reads and syncs are dropped;
    /// its writes stay queued, orphaned: they complete in order (a newer connection's requests wait behind them, as
    /// in ZooKeeper), and their answers are not taken for the newer connection's requests, which may reuse xids.
    /// </summary>
    public void ConnectionLost(ReplicaSession<TAddress, TRead, TOutcome> session)
    {
        if (session.ReadOnly)
        {
            // It ends with its connection (it has nothing in flight: its writes and syncs were refused).
            Watches.RemoveSession(session.Id);
            EndHere(session.Id);
            return;
        }
        for (var n = session.Pending.Count; n > 0; n--)
        {
            var item = session.Pending.Dequeue();
            if (item is PendingWrite<TOutcome> write)
            {
                write.Orphaned = true;
                session.Pending.Enqueue(write);
            }
            else Outstanding--;
        }
        Drain(session);
    }

    /// <summary>
    /// The session's requests cannot be completed here: everything it has queued is given up and its connection
    /// closed. A write given up may still commit (a slow answer, not a lost one): the client learns its outcome as
    /// after any connection loss, by reading, and a late answer is recognised by its xid and dropped.
    /// </summary>
    public void Abandon(ReplicaSession<TAddress, TRead, TOutcome> session, long nowMs, string why)
    {
        var until = nowMs + session.TimeoutMs;
        foreach (var item in session.Pending)
        {
            Outstanding--;
            if (item is PendingWrite<TOutcome> { Outcome: null } write) (session.Abandoned ??= new()).Add((write.Xid, until));
        }
        session.Pending.Clear();
        _syncWaiters.Remove(session);
        _host.DropConnection(session, why);
    }

    /// <summary>True (and forgotten) when <paramref name="xid"/> is the late answer to a write given up by Abandon.</summary>
    private static bool IsAbandoned(ReplicaSession<TAddress, TRead, TOutcome> session, int xid)
    {
        if (session.Abandoned is not { } abandoned) return false;
        var i = abandoned.FindIndex(a => a.Xid == xid);
        if (i < 0) return false;
        abandoned.RemoveAt(i);
        return true;
    }

    /// <summary>
    /// Invariant 9 (every request is answered, or its connection closed, within the session timeout): a session
    /// whose oldest request has waited past <see cref="RequestDeadline"/>'s bound is abandoned, and so is a session's
    /// creation or re-attachment that waited as long.
    /// </summary>
    public void Tick(long nowMs)
    {
        GiveUpOverdue(_validations, "re-attachment", nowMs);
        GiveUpOverdue(_creating, "creation", nowMs);
        List<(ReplicaSession<TAddress, TRead, TOutcome>, string)>? overdue = null;
        foreach (var session in Sessions.Values)
        {
            session.Abandoned?.RemoveAll(a => a.UntilMs <= nowMs);
            // Only the head can be waiting: everything behind it is answered as soon as it is.
            if (!session.Pending.TryPeek(out var head)) continue;
            var (xid, since) = head switch
            {
                PendingWrite<TOutcome> w => (w.Xid, w.SinceMs),
                PendingSync<TRead> s => (s.Xid, s.SinceMs),
                _ => (0, nowMs),
            };
            if (RequestDeadline.IsOverdue(since, nowMs, session.TimeoutMs))
                (overdue ??= new()).Add((session, $"request xid {xid} unanswered after {nowMs - since} ms"));
        }
        if (overdue is null) return;
        foreach (var (session, why) in overdue) Abandon(session, nowMs, why);
    }

    // ------------------------------------------------------------------------------------------------ ownership

    /// <summary>
    /// Leader: true when the session is not attached to <paramref name="serverId"/> (a client that moved; its old
    /// server's requests get SessionMoved). A session is attached where it was created or last (re)attached: the
    /// leader hears it in ForwardedCreateSession and SessionOwner, and after a leader change every client
    /// re-attaches (a member that stops serving drops its clients), so the owner of a live session is known here
    /// before its server forwards anything. A forward for a session with no known owner is therefore refused
    /// (<paramref name="claimUnknown"/> off): no member can take over a session by writing in its name. This
    /// server's own clients claim an unknown session (it has just attached here).
    /// </summary>
    public bool IsMovedAway(long sessionId, long serverId, bool claimUnknown)
    {
        if (!_ensemble || IsOwnLocalSession(sessionId, serverId)) return false;
        if (_owners.TryGetValue(sessionId, out var owner)) return owner != serverId;
        if (!claimUnknown) return true;
        _owners[sessionId] = serverId;
        return false;
    }

    /// <summary>Leader: the server the session is attached to is known.</summary>
    public bool IsAttached(long sessionId) => _owners.ContainsKey(sessionId);

    /// <summary>Leader: the session is now attached to <paramref name="serverId"/> (created or re-attached there).</summary>
    public void Attach(long sessionId, long serverId)
    {
        if (_ensemble && Leading) _owners[sessionId] = serverId;
    }
}
