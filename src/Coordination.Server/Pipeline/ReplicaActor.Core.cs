global using SessionState = Coordination.Core.Replica.ReplicaSession<Akka.Actor.IActorRef, Coordination.Server.Pipeline.ClientRequest, Coordination.Server.Pipeline.Reply>;
global using PendingSync = Coordination.Core.Replica.PendingSync<Coordination.Server.Pipeline.ClientRequest>;
using Akka.Actor;
using Akka.Event;
using Coordination.Core.Replica;
using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

// The replica's host side of ReplicaCore (Coordination.Core/Replica): the core decides the order of every session's
// outputs, what waits on what, the role and where writes go; this actor carries out its outputs as messages.
public sealed partial class ReplicaActor : IReplicaHost<IActorRef, ClientRequest, Reply>
{
    private readonly ReplicaCore<IActorRef, ClientRequest, Reply> _core;
    private Dictionary<long, SessionState> _sessions => _core.Sessions;

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ExecuteRead(SessionState session, ClientRequest read) => ExecuteRead(read, session);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.AnswerWrite(SessionState session, long seq, Reply outcome) =>
        session.Actor.Tell(outcome with { Seq = seq });

    void IReplicaHost<IActorRef, ClientRequest, Reply>.AnswerSync(SessionState session, long seq, int xid, string path) =>
        session.Actor.Tell(new Reply(seq, xid, _tree.LastZxid, ErrorCode.Ok, new PathResponse(path)));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.DropConnection(SessionState session, string why)
    {
        _logger.Warning("Closing the connection of session 0x{0:x}: {1}", session.Id, why);
        session.Actor.Tell(DropConnection.Instance);
    }

    Reply IReplicaHost<IActorRef, ClientRequest, Reply>.Refusal(int xid, ErrorCode err) => Refusal(xid, err);

    private static ReplicaRole RoleOf(RoleChanged role) => !role.ServesClients ? ReplicaRole.NotServing : role.Role switch
    {
        PeerState.Leading => ReplicaRole.Leader,
        PeerState.Observing => ReplicaRole.Observer,
        _ => ReplicaRole.Follower,
    };
}
