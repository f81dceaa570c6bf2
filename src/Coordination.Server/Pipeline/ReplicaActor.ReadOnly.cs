using Coordination.Core.Replica;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

// Read-only mode (ZooKeeper's ReadOnlyZooKeeperServer): the session manager decides when a member cut off from its
// quorum serves read-only clients (see SessionManagerActor); the core opens their sessions while it looks for a
// leader, refuses their writes and syncs in order, and ends them with their connection, their close, or when this
// member stops looking (ReplicaCore.Here.cs). This actor only hands it the requests.
public sealed partial class ReplicaActor
{
    private void ReceiveReadOnlyMessages() =>
        Receive<OpenReadOnlySession>(m => _core.OpenReadOnly(_tree, m.Session, m.SessionId, m.TimeoutMs, m.IsNew));

    /// <summary>A read-only session's request that only a quorum could answer, or its close
    /// (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.ReadOnlyRequest"/>): true when answered by the core.</summary>
    private bool AnsweredReadOnly(ClientRequest request, SessionState session) =>
        _core.ReadOnlyRequest(session, request.Xid, request.Op, request.Body, IsWrite(request), _monotonic());

    /// <summary>A request the replica routes as a write (one it cannot read is answered as a read: MarshallingError).</summary>
    private static bool IsWrite(ClientRequest request) =>
        Requests.IsWrite(request.Op) && request.Body is not (MalformedRequest or UnknownOpRequest);
}
