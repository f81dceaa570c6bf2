using Akka.Actor;
using Akka.Event;
using Coordination.Core.Replica;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

/// <summary>Tracker → replica: a local session's deadline passed on this member (see ReplicaCore.Here.cs).</summary>
internal sealed record ExpireLocalSession(long SessionId);

// Local sessions (ZooKeeper's localSessionsEnabled): the core opens, re-attaches, closes, expires and upgrades them
// (ReplicaCore.Here.cs); this actor hands it the tracker's expiries and carries out what it decides as messages to
// the tracker and the session actors.
public sealed partial class ReplicaActor
{
    private void ReceiveLocalSessionMessages() => Receive<ExpireLocalSession>(m =>
    {
        if (_core.ExpireLocal(m.SessionId)) _logger.Info("Expiring local session 0x{0:x}", m.SessionId);
    });

    /// <summary>A local session's close or first ephemeral (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.LocalRequest"/>):
    /// true when answered by the core; false when the request goes on as usual (after an upgrade, too).</summary>
    private bool HandledAsLocal(ClientRequest request, SessionState session)
    {
        if (_core.LocalRequest(session, request.Xid, request.Op, request.Body, Now(), _monotonic())) return true;
        if (!session.Local) _logger.Info("Upgrading local session 0x{0:x} to a global session", request.SessionId);
        return false;
    }

    void IReplicaHost<IActorRef, ClientRequest, Reply>.LocalSessionOpened(long sessionId, int timeoutMs) =>
        _tracker.Tell(new Sessions.LocalSessionOpened(sessionId, timeoutMs));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.LocalSessionClosed(long sessionId) => _tracker.Tell(new SessionClosed(sessionId));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.SessionOpenedHere(SessionState session, long seq) =>
        session.Actor.Tell(new SessionValidated(seq, true, session.TimeoutMs, _tree.LastZxid));

    /// <summary>A local or read-only session's close, in its turn; the core ends the session next (<see cref="IReplicaHost{TAddress,TRead,TOutcome}.EndedHere"/>).</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.CloseHere(SessionState session, long seq, int xid) =>
        session.Actor.Tell(new Reply(seq, xid, _tree.LastZxid, ErrorCode.Ok, EmptyResponse.Instance));

    /// <summary>A local or read-only session ended here without a txn: its change feed ends, its client is told.</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.EndedHere(SessionState session, long seq, bool expired)
    {
        EndSubscriptions(session.Id);
        session.Actor.Tell(new SessionEnded(seq, Expired: expired));
    }
}
