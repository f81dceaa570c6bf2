using Akka.Actor;
using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

// Read-only mode (ZooKeeper's ReadOnlyZooKeeperServer and ReadOnlyRequestProcessor). A member cut off from its quorum
// (the session manager decides when, see SessionManagerActor) serves clients that asked for read-only from its own
// tree: reads as usual, NotReadOnly for writes and syncs. Their sessions are never proposed (there is no leader):
// they live in this replica only and end with their connection or when this member finds a leader again. Their ids
// come from this server's session id range, so they can never be taken for a session of the ensemble.
public sealed partial class ReplicaActor
{
    /// <summary>Without a leader: read-only sessions may be opened (see <see cref="OnRoleChanged"/>).</summary>
    private bool _looking;

    private void ReceiveReadOnlyMessages() => Receive<OpenReadOnlySession>(OnOpenReadOnlySession);

    private void OnOpenReadOnlySession(OpenReadOnlySession m)
    {
        // A leader was found meanwhile, or the client re-attaches to a session of the ensemble, which ZooKeeper's
        // read-only server refuses to renew: the connection closes and the client tries again, elsewhere or later.
        if (!_looking || _tree.Sessions.ContainsKey(m.SessionId))
        {
            m.Session.Tell(DropConnection.Instance);
            return;
        }
        if (!_sessions.TryGetValue(m.SessionId, out var session))
        {
            if (!m.IsNew)
            {
                m.Session.Tell(new SessionValidated(-1, false, 0, _tree.LastZxid));   // an unknown session: expired
                return;
            }
            session = new SessionState(m.SessionId, m.Session, m.TimeoutMs) { ReadOnly = true };
            _sessions[m.SessionId] = session;
        }
        m.Session.Tell(new SessionValidated(session.NextSeq(), true, session.TimeoutMs, _tree.LastZxid));
    }

    /// <summary>
    /// A read-only session's request that only a quorum could answer: writes and syncs get NotReadOnly, as in
    /// ZooKeeper; a close ends the session here. False for reads (and unreadable requests), which go on as usual.
    /// </summary>
    private bool AnsweredReadOnly(ClientRequest request, SessionState session)
    {
        if (request.Op == OpCode.CloseSession)
        {
            session.Actor.Tell(new Reply(session.NextSeq(), request.Xid, _tree.LastZxid, ErrorCode.Ok, EmptyResponse.Instance));
            session.Actor.Tell(new SessionEnded(session.NextSeq(), Expired: false));
            EndReadOnlySession(request.SessionId);
            return true;
        }
        var needsQuorum = request.Op == OpCode.Sync || request.Body is LinearizableReadRequest
            || Requests.IsWrite(request.Op) && request.Body is not (MalformedRequest or UnknownOpRequest);
        if (!needsQuorum) return false;
        // Nothing of a read-only session ever waits (no write or sync is in flight), so this answer is in order.
        session.Actor.Tell(new Reply(session.NextSeq(), request.Xid, _tree.LastZxid, ErrorCode.NotReadOnly, EmptyResponse.Instance));
        return true;
    }

    private void EndReadOnlySession(long sessionId)
    {
        _sessions.Remove(sessionId);
        _watches.RemoveSession(sessionId);
    }

    /// <summary>Role changes: read-only sessions exist only while looking for a leader.</summary>
    private void TrackLooking(RoleChanged role)
    {
        _looking = role.Role == PeerState.Looking;
        if (_looking) return;
        foreach (var (sessionId, session) in _sessions.ToList())
            if (session.ReadOnly) EndReadOnlySession(sessionId);
    }
}
