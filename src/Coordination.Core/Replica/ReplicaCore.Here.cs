using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in the sessions served by this server alone: local and read-only ones (ReplicaCore.Here.cs).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>A local session opened here: the host's tracker arms its deadline (this member alone expires it, and
    /// says so with <see cref="ReplicaCore{TAddress,TRead,TOutcome}.ExpireLocal"/>). A re-attachment touches it
    /// (<see cref="SessionValidated"/>).</summary>
    void LocalSessionOpened(long sessionId, int timeoutMs);
    /// <summary>A local session ended here (closed or expired): the host's tracker forgets its deadline.</summary>
    void LocalSessionClosed(long sessionId);
    /// <summary>A session served by this server alone (a local one, or a read-only one) was opened, or a read-only
    /// one re-attached: its client is answered with <paramref name="seq"/>.</summary>
    void SessionOpenedHere(ReplicaSession<TAddress, TRead, TOutcome> session, long seq);
    /// <summary>A session served by this server alone ended without a txn (closed, or a local one expired): the host
    /// forgets what it keeps for it (the change feed) and tells its client with <paramref name="seq"/>.</summary>
    void EndedHere(ReplicaSession<TAddress, TRead, TOutcome> session, long seq, bool expired);
}

// Sessions served by this server alone, which commit no txn while they last.
//
// Local sessions (ZooKeeper's localSessionsEnabled, LocalSessionTracker, LeaderSessionTracker, LearnerSessionTracker).
// In an ensemble with local sessions enabled, a new session lives on the member it connected to only: no
// createSession txn, tracked and expired by this member's tracker, closed here without a txn, in its request order.
// Its writes are forwarded as any other; the leader accepts a write from a session it does not know when the
// forwarding member's id is the one in the session id's top byte (ids come from the creating server's range and a
// local session cannot move). A create of an ephemeral (or a multi holding one) first upgrades the session to a
// global one: a createSession txn through the leader, ordered before the create; with upgrading off it is refused
// (EphemeralOnLocalSession). Re-attaching a local session on another member finds no such session there: it is
// expired, as in ZooKeeper.
//
// Read-only sessions (ZooKeeper's ReadOnlyZooKeeperServer and ReadOnlyRequestProcessor). A member cut off from its
// quorum (the host's session manager decides when) serves clients that asked for read-only from its own tree while it
// looks for a leader: reads as usual, NotReadOnly for writes and syncs, in the session's order. Their sessions are
// never proposed (there is no leader): they end with their connection, at their close, or when this member stops
// looking. Their ids come from this server's range, so they can never be taken for a session of the ensemble.
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>New sessions of this member's clients are local ones (ensemble only).</summary>
    public bool LocalSessionsEnabled { get; init; }
    /// <summary>A local session's first ephemeral upgrades it to a global session (else it is refused).</summary>
    public bool UpgradeLocalSessions { get; init; }
    /// <summary>Looking for a leader (set with the role): read-only sessions may be opened.</summary>
    public bool Looking { get; private set; }

    private bool LocalSessions => _ensemble && LocalSessionsEnabled;

    // ------------------------------------------------------------------------------------------------ local sessions

    /// <summary>A local session, opened here and answered at once.</summary>
    private void OpenLocal(TAddress client, long sessionId, int timeoutMs)
    {
        var session = new ReplicaSession<TAddress, TRead, TOutcome>(sessionId, client, timeoutMs) { Local = true };
        Sessions[sessionId] = session;
        _host.LocalSessionOpened(sessionId, timeoutMs);
        _host.SessionOpenedHere(session, session.NextSeq());
    }

    /// <summary>A client re-attaches to one of this member's local sessions: served by <paramref name="client"/> from
    /// now on (a new connection starts its own sequence), its deadline touched with the new timeout.</summary>
    private void ReattachLocal(ReplicaSession<TAddress, TRead, TOutcome> session, TAddress client, int timeoutMs)
    {
        if (!EqualityComparer<TAddress>.Default.Equals(session.Actor, client))
            Sessions[session.Id] = session = new ReplicaSession<TAddress, TRead, TOutcome>(session.Id, client, timeoutMs) { Local = true };
        session.TimeoutMs = timeoutMs;
        _host.SessionValidated(client, session, session.NextSeq());
    }

    /// <summary>The host's tracker found the local session's deadline passed: it ends here. False when it is no local
    /// session of this member (closed, or upgraded meanwhile).</summary>
    public bool ExpireLocal(long sessionId)
    {
        if (!Sessions.TryGetValue(sessionId, out var session) || !session.Local) return false;
        CloseOrExpireHere(session, expired: true);
        return true;
    }

    /// <summary>
    /// A local session's request that differs from a global one's: a close ends it here, in request order; an
    /// ephemeral create upgrades it first (<see cref="ProposeSession"/>, then it goes on as usual: false) or is
    /// refused in order when upgrading is off. False for anything else.
    /// </summary>
    public bool LocalRequest(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, OpCode op, ZkRequest body, long wallMs, long nowMs)
    {
        if (op == OpCode.CloseSession)
        {
            CloseHere(session, xid);
            return true;
        }
        if (!CreatesEphemeral(op, body)) return false;
        if (!UpgradeLocalSessions)
        {
            Refuse(session, xid, nowMs, ErrorCode.EphemeralOnLocalSession);
            return true;
        }
        // The createSession goes to the log or the leader before the create (both travel the same way, in this order).
        session.Local = false;
        ProposeSession(session.Id, session.TimeoutMs, wallMs);
        return false;
    }

    private static bool CreatesEphemeral(OpCode op, ZkRequest body)
    {
        if (op is OpCode.Create or OpCode.Create2) return IsEphemeralCreate(body);
        if (op != OpCode.Multi || body is not MultiRequest multi) return false;
        foreach (var item in multi.Ops)
            if (item.Type is OpCode.Create or OpCode.Create2 && IsEphemeralCreate(item.Request)) return true;
        return false;
    }

    private static bool IsEphemeralCreate(ZkRequest body) => body is CreateRequest create && ((CreateMode)create.Flags).IsEphemeral();

    /// <summary>
    /// For prep: a session it does not know may be a local one, whose writes are accepted (not its ephemerals). On
    /// the leader: one of its own local sessions, or a session from another member's id range (whose forwards
    /// <see cref="IsOwnLocalSession"/> checked), as ZooKeeper's LeaderSessionTracker.checkSession.
    /// </summary>
    public bool MayBeLocalSession(long sessionId) =>
        LocalSessions && (SessionIds.ServerOf(sessionId) != ServerId || Sessions.TryGetValue(sessionId, out var s) && s.Local);

    /// <summary>Leader: the session is no global one and its id is from <paramref name="serverId"/>'s range, so its
    /// writes can come from that member only (a local session never moves).</summary>
    private bool IsOwnLocalSession(long sessionId, long serverId) =>
        LocalSessions && SessionIds.ServerOf(sessionId) == serverId && !IsAttached(sessionId) && !Prep.IsSessionAlive(sessionId);

    // ------------------------------------------------------------------------------------------------ read-only sessions

    /// <summary>
    /// A client asks for a read-only session while this member has no leader: a new one is opened; a re-attachment
    /// to one served here is answered; an unknown one is expired. A leader found meanwhile, or a session of the
    /// ensemble (which ZooKeeper's read-only server refuses to renew): the connection closes and the client tries
    /// again, elsewhere or later.
    /// </summary>
    public void OpenReadOnly(DataTree tree, TAddress client, long sessionId, int timeoutMs, bool isNew)
    {
        if (!Looking || tree.Sessions.ContainsKey(sessionId))
        {
            _host.GiveUp(client, sessionId, Looking ? "a session of the ensemble, not renewed read-only" : "a leader serves again");
            return;
        }
        Sessions.TryGetValue(sessionId, out var session);
        if (session is not { ReadOnly: true })
        {
            if (!isNew)
            {
                _host.SessionValidated(client, null, 0);   // an unknown session: expired
                return;
            }
            session = null;
        }
        if (session is null || !EqualityComparer<TAddress>.Default.Equals(session.Actor, client))
            Sessions[sessionId] = session = new ReplicaSession<TAddress, TRead, TOutcome>(sessionId, client, timeoutMs) { ReadOnly = true };
        _host.SessionOpenedHere(session, session.NextSeq());
    }

    /// <summary>
    /// A read-only session's request that only a quorum could answer: writes (<paramref name="isWrite"/>: the host
    /// routes it as one), syncs and linearizable reads are refused NotReadOnly in the session's order, as in
    /// ZooKeeper; a close ends the session here. False for reads, which go on as usual.
    /// </summary>
    public bool ReadOnlyRequest(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, OpCode op, ZkRequest body, bool isWrite, long nowMs)
    {
        if (op == OpCode.CloseSession)
        {
            CloseHere(session, xid);
            return true;
        }
        if (!isWrite && op != OpCode.Sync && body is not LinearizableReadRequest) return false;
        Refuse(session, xid, nowMs, ErrorCode.NotReadOnly);
        return true;
    }

    /// <summary>Role changes (<see cref="SetRole"/>): read-only sessions exist only while looking for a leader. Their
    /// clients are not told: the host's session manager closes their connections when it leaves read-only mode.</summary>
    private void SetLooking(bool looking)
    {
        Looking = looking;
        if (looking) return;
        List<ReplicaSession<TAddress, TRead, TOutcome>>? ended = null;
        foreach (var session in Sessions.Values)
            if (session.ReadOnly) (ended ??= new()).Add(session);
        if (ended is null) return;
        foreach (var session in ended)
        {
            Watches.RemoveSession(session.Id);
            EndHere(session.Id);
        }
    }

    // ------------------------------------------------------------------------------------------------ ending here

    /// <summary>A session served here alone ends (its close answered, or a local one expired): its watches, its
    /// local deadline and what it waited for are forgotten, and its client told in its order.</summary>
    private void CloseOrExpireHere(ReplicaSession<TAddress, TRead, TOutcome> session, bool expired)
    {
        Watches.RemoveSession(session.Id);
        EndHere(session.Id);
        if (session.Local) _host.LocalSessionClosed(session.Id);
        _host.EndedHere(session, session.NextSeq(), expired);
    }
}
