using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in creating and re-attaching sessions (ReplicaCore.Sessions.cs).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>Follower → the leader's replica: create session <paramref name="sessionId"/> (a client's, or a local
    /// session's upgrade), after the forwards batched before it.</summary>
    void ForwardCreateSession(long leader, long sessionId, int timeoutMs);
    /// <summary>Follower → the leader's replica: the session (re)attached here, after the forwards batched before it.</summary>
    void ForwardSessionOwner(long leader, long sessionId);
    /// <summary>A client's re-attachment is decided: <paramref name="session"/> is now served here, its answer takes
    /// <paramref name="seq"/>; or, null, there is no such session (it expired).</summary>
    void SessionValidated(TAddress client, ReplicaSession<TAddress, TRead, TOutcome>? session, long seq);
    /// <summary>A session's creation or re-attachment cannot be answered here (refused by the leader, or unanswered
    /// past its deadline): the client's connection closes, and it asks again.</summary>
    void GiveUp(TAddress client, long sessionId, string why);
}

// Creating and re-attaching sessions. A client's new session is a createSession txn, prepared here (standalone,
// leader) or forwarded to the leader (follower, observer), and answered by the server the client is connected to when
// the txn commits. A client re-attaching to a session this server has applied is served at once; a follower that has
// not seen the session syncs with the leader first (as ZooKeeper's followers ask the leader) and decides once it has
// applied everything the leader had proposed: only then is "no such session" true. Both wait at most the session's
// timeout (invariant 9, Tick).
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>A client waiting since <see cref="SinceMs"/> for its session to be created or re-attached; a
    /// re-attachment on a follower waits for the applied zxid to reach <see cref="Zxid"/> (-1: the leader has not said).</summary>
    private readonly record struct Attaching(TAddress Client, int TimeoutMs, long SinceMs, long Zxid = -1);

    /// <summary>The xid of the sync a follower sends for a re-attachment (clients never use 0).</summary>
    public const int ValidationXid = 0;

    private readonly Dictionary<long, Attaching> _creating = new();
    private readonly Dictionary<long, Attaching> _validations = new();

    /// <summary>
    /// A client asks for a new session: created by a createSession txn, prepared here or forwarded to the leader, and
    /// answered (<see cref="IReplicaHost{TAddress,TRead,TOutcome}.SessionCreated"/>) when it commits; with local
    /// sessions enabled, a local session opened here and answered at once (ReplicaCore.Here.cs). Not serving,
    /// nothing is done: the client's deadline closes its connection, and it asks again.
    /// </summary>
    public void CreateSession(TAddress client, long sessionId, int timeoutMs, long wallMs, long nowMs)
    {
        if (!Serving) return;
        if (LocalSessions)
        {
            OpenLocal(client, sessionId, timeoutMs);
            return;
        }
        _creating[sessionId] = new Attaching(client, timeoutMs, nowMs);
        ProposeSession(sessionId, timeoutMs, wallMs);
    }

    /// <summary>A session is to be created in the ensemble, answered to no one (a local session's upgrade): prepared
    /// here (standalone, leader) or forwarded to the leader, before anything the session asks for next.</summary>
    public void ProposeSession(long sessionId, int timeoutMs, long wallMs)
    {
        if (Leading) PrepareSession(sessionId, timeoutMs, ServerId, wallMs);
        else if (Forwards)
        {
            FlushForwards();
            _host.ForwardCreateSession(Leader, sessionId, timeoutMs);
        }
    }

    /// <summary>Standalone, leader: the createSession txn; the leader attaches the session to <paramref name="owner"/>,
    /// the server its client is connected to.</summary>
    private void PrepareSession(long sessionId, int timeoutMs, long owner, long wallMs)
    {
        Attach(sessionId, owner);
        Log(Prep.PrepareCreateSession(sessionId, timeoutMs, wallMs));
    }

    /// <summary>Standalone, leader: the session's deadline passed (the host's tracker says): its closeSession is
    /// prepared, deleting its ephemerals. False when <paramref name="tree"/> no longer holds the session.</summary>
    public bool Expire(DataTree tree, long sessionId, long wallMs)
    {
        if (!Leading || !tree.Sessions.ContainsKey(sessionId)) return false;
        Log(Prep.PrepareCloseSession(sessionId, 0, wallMs));
        return true;
    }

    /// <summary>
    /// A client re-attaches to session <paramref name="sessionId"/>: served here at once if it is a local session of
    /// this member or <paramref name="tree"/> holds it; else gone (standalone, leader), or, on a follower, decided once
    /// this server has applied what the leader had proposed when it saw this server's sync (<see cref="SyncPoint"/>).
    /// Not serving, nothing is done.
    /// </summary>
    public void ValidateSession(DataTree tree, TAddress client, long sessionId, int timeoutMs, long nowMs)
    {
        if (Sessions.TryGetValue(sessionId, out var local) && local.Local) ReattachLocal(local, client, timeoutMs);
        else if (tree.Sessions.ContainsKey(sessionId)) Reattach(client, sessionId, timeoutMs);
        else if (Leading) _host.SessionValidated(client, null, 0);
        else if (Forwards)
        {
            _validations[sessionId] = new Attaching(client, timeoutMs, nowMs);
            ForwardSync(sessionId, ValidationXid);
        }
    }

    /// <summary>The session is served here from now on, by <paramref name="client"/> (a new connection's session actor
    /// starts its own sequence), and the leader learns that this server owns it.</summary>
    private void Reattach(TAddress client, long sessionId, int timeoutMs)
    {
        if (!Sessions.TryGetValue(sessionId, out var session) || !EqualityComparer<TAddress>.Default.Equals(session.Actor, client))
            Sessions[sessionId] = session = new ReplicaSession<TAddress, TRead, TOutcome>(sessionId, client, timeoutMs);
        session.TimeoutMs = timeoutMs;
        if (_ensemble && Leading) Attach(sessionId, ServerId);
        else if (Forwards)
        {
            FlushForwards();
            _host.ForwardSessionOwner(Leader, sessionId);
        }
        _host.SessionValidated(client, session, session.NextSeq());
    }

    /// <summary>Follower: re-attachments whose sync point is applied are decided.</summary>
    private void ReleaseValidations(DataTree tree)
    {
        if (_validations.Count == 0) return;
        List<(long, Attaching)>? ready = null;
        foreach (var (sessionId, waiting) in _validations)
            if (waiting.Zxid >= 0 && tree.LastZxid >= waiting.Zxid) (ready ??= new()).Add((sessionId, waiting));
        if (ready is null) return;
        foreach (var (sessionId, waiting) in ready)
        {
            _validations.Remove(sessionId);
            if (tree.Sessions.ContainsKey(sessionId)) Reattach(waiting.Client, sessionId, waiting.TimeoutMs);
            else _host.SessionValidated(waiting.Client, null, 0);
        }
    }

    /// <summary>
    /// Follower: the leader fixed the point of this server's sync <paramref name="xid"/> for the session: a
    /// re-attachment (<see cref="ValidationXid"/>) or a client's sync, each answered once that point is applied here.
    /// </summary>
    public void SyncPoint(DataTree tree, long sessionId, int xid, long zxid)
    {
        if (xid == ValidationXid && _validations.TryGetValue(sessionId, out var validation))
        {
            _validations[sessionId] = validation with { Zxid = zxid };
            ReleaseValidations(tree);
            return;
        }
        if (!Sessions.TryGetValue(sessionId, out var session)) return;
        foreach (var item in session.Pending)
        {
            if (item is not PendingSync<TRead> sync || sync.Xid != xid || sync.Zxid >= 0) continue;
            sync.Zxid = zxid;
            Drain(session);
            return;
        }
    }

    /// <summary>
    /// Follower: the leader refused a forward (it is going away, or the session moved or expired). A refused write
    /// is answered with <paramref name="err"/> in its session's order. A refused sync or re-attachment cannot be
    /// answered truthfully here: the connection closes, and the client asks again, here once a leader serves or elsewhere.
    /// </summary>
    public void ForwardRejected(long sessionId, int xid, ErrorCode err, long nowMs)
    {
        if (xid == ValidationXid && _validations.Remove(sessionId, out var validation))
        {
            _host.GiveUp(validation.Client, sessionId, $"the leader refused its re-attachment ({err})");
            return;
        }
        if (!Sessions.TryGetValue(sessionId, out var session)) return;
        if (AwaitsSyncPoint(session, xid)) Abandon(session, nowMs, "the leader refused its sync");
        else Complete(session, xid, _host.Refusal(xid, err));
    }

    /// <summary>Creations and re-attachments unanswered past their deadline are given up (invariant 9): if a
    /// createSession commits after all, nobody is attached to the session and it expires.</summary>
    private void GiveUpOverdue(Dictionary<long, Attaching> waiting, string what, long nowMs)
    {
        if (waiting.Count == 0) return;
        List<(long, Attaching)>? overdue = null;
        foreach (var (sessionId, w) in waiting)
            if (RequestDeadline.IsOverdue(w.SinceMs, nowMs, w.TimeoutMs)) (overdue ??= new()).Add((sessionId, w));
        if (overdue is null) return;
        foreach (var (sessionId, w) in overdue)
        {
            waiting.Remove(sessionId);
            _host.GiveUp(w.Client, sessionId, $"{what} unanswered after {nowMs - w.SinceMs} ms");
        }
    }

    /// <summary>The createSession txn committed: the client that asked here, if any, is answered.</summary>
    private ReplicaSession<TAddress, TRead, TOutcome>? Created(long sessionId, int timeoutMs)
    {
        if (!_creating.Remove(sessionId, out var waiting)) return null;
        var session = new ReplicaSession<TAddress, TRead, TOutcome>(sessionId, waiting.Client, timeoutMs);
        Sessions[sessionId] = session;
        return session;
    }
}
