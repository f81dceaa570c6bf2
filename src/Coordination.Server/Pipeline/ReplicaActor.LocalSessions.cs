using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Replica;
using Coordination.Server.Ensemble;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

/// <summary>Tracker → replica: a local session's deadline passed on this member (see ReplicaActor.LocalSessions.cs).</summary>
internal sealed record ExpireLocalSession(long SessionId);

// Local sessions (ZooKeeper's localSessionsEnabled, LocalSessionTracker, LeaderSessionTracker, LearnerSessionTracker).
// In an ensemble with coordination.local-sessions-enabled, a new session lives on the member it connected to only: no
// createSession txn, tracked and expired by this member's tracker, closed here without a txn. Its writes are forwarded
// as any other; the leader accepts a write from a session it does not know when the forwarding member's id is the one
// in the session id's top byte (ids come from the creating server's range and a local session cannot move). A create
// of an ephemeral (or a multi holding one) first upgrades the session to a global one: a createSession txn through the
// leader, ordered before the create; with local-sessions-upgrading-enabled off it fails with EphemeralOnLocalSession.
// Re-attaching a local session on another member finds no such session there: it is expired, as in ZooKeeper.
public sealed partial class ReplicaActor
{
    private bool LocalSessions => _ensemble is not null && _settings.LocalSessionsEnabled;

    private void ReceiveLocalSessionMessages() => Receive<ExpireLocalSession>(m =>
    {
        if (!_sessions.TryGetValue(m.SessionId, out var session) || !session.Local) return;
        _logger.Info("Expiring local session 0x{0:x}", m.SessionId);
        EndLocalSession(m.SessionId, session, expired: true);
    });

    /// <summary>A new session is opened here only, answered at once. False when local sessions are off.</summary>
    private bool OpenLocalSession(CreateSession m)
    {
        if (!LocalSessions) return false;
        var session = new SessionState(m.SessionId, m.Session, m.TimeoutMs) { Local = true };
        _sessions[m.SessionId] = session;
        _tracker.Tell(new Sessions.LocalSessionOpened(m.SessionId, m.TimeoutMs));
        m.Session.Tell(new SessionValidated(session.NextSeq(), true, m.TimeoutMs, _tree.LastZxid));
        return true;
    }

    /// <summary>A client re-attaches to a local session of this member. False for any other session.</summary>
    private bool RevalidateLocalSession(ValidateSession m)
    {
        if (!_sessions.TryGetValue(m.SessionId, out var session) || !session.Local) return false;
        if (!session.Actor.Equals(m.Session)) _sessions[m.SessionId] = session = new SessionState(m.SessionId, m.Session, m.TimeoutMs) { Local = true };
        session.TimeoutMs = m.TimeoutMs;
        _tracker.Tell(new SessionTouched(m.SessionId, m.TimeoutMs));
        m.Session.Tell(new SessionValidated(session.NextSeq(), true, m.TimeoutMs, _tree.LastZxid));
        return true;
    }

    /// <summary>
    /// A local session's request that differs from a global one's: a close ends it here, in request order; an
    /// ephemeral create upgrades it first (then goes on as usual: false) or is refused when upgrading is off.
    /// </summary>
    private bool HandledAsLocal(ClientRequest request, SessionState session)
    {
        if (request.Op == OpCode.CloseSession)
        {
            _core.CloseHere(session, request.Xid);
            return true;
        }
        if (!CreatesEphemeral(request)) return false;
        if (!_settings.LocalSessionsUpgradingEnabled)
        {
            _core.Refuse(session, request.Xid, _monotonic(), ErrorCode.EphemeralOnLocalSession);
            return true;
        }
        // The createSession reaches the leader before the create (both travel the same way, in this order).
        _logger.Info("Upgrading local session 0x{0:x} to a global session", request.SessionId);
        session.Local = false;
        _core.ProposeSession(request.SessionId, session.TimeoutMs, Now());
        return false;
    }

    private static bool CreatesEphemeral(ClientRequest request) => request.Op switch
    {
        OpCode.Create or OpCode.Create2 => IsEphemeralCreate(request.Body),
        OpCode.Multi when request.Body is MultiRequest multi =>
            multi.Ops.Any(op => op.Type is OpCode.Create or OpCode.Create2 && IsEphemeralCreate(op.Request)),
        _ => false,
    };

    private static bool IsEphemeralCreate(ZkRequest body) => body is CreateRequest create && ((CreateMode)create.Flags).IsEphemeral();

    /// <summary>A local session's close, in its turn (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.CloseHere"/>).</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.CloseHere(SessionState session, long seq, int xid)
    {
        session.Actor.Tell(new Reply(seq, xid, _tree.LastZxid, ErrorCode.Ok, EmptyResponse.Instance));
        EndLocalSession(session.Id, session, expired: false);
    }

    private void EndLocalSession(long sessionId, SessionState session, bool expired)
    {
        _core.EndHere(sessionId);
        _watches.RemoveSession(sessionId);
        EndSubscriptions(sessionId);
        _tracker.Tell(new SessionClosed(sessionId));
        session.Actor.Tell(new SessionEnded(session.NextSeq(), Expired: expired));
    }

    /// <summary>
    /// For the preprocessor: a session it does not know may be a local one, whose writes are accepted (not its
    /// ephemerals). On the leader: one of its own local sessions, or a session from another member's id range
    /// (whose forwards <see cref="IsOwnLocalSession"/> checked), as ZooKeeper's LeaderSessionTracker.checkSession.
    /// </summary>
    private bool MayBeLocalSession(long sessionId) =>
        LocalSessions && (SessionIds.ServerOf(sessionId) != _ensemble!.ServerId || _sessions.TryGetValue(sessionId, out var s) && s.Local);

    /// <summary>Leader: the session is no global one and its id is from <paramref name="serverId"/>'s range, so its
    /// writes can come from that member only (a local session never moves).</summary>
    private bool IsOwnLocalSession(long sessionId, long serverId) =>
        LocalSessions && SessionIds.ServerOf(sessionId) == serverId && !_core.IsAttached(sessionId) && !_prep.IsSessionAlive(sessionId);
}
