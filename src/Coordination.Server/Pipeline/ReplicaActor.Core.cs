global using SessionState = Coordination.Core.Replica.ReplicaSession<Akka.Actor.IActorRef, Coordination.Server.Pipeline.ClientRequest, Coordination.Server.Pipeline.Reply>;
global using PendingSync = Coordination.Core.Replica.PendingSync<Coordination.Server.Pipeline.ClientRequest>;
using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Replica;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;

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

    void IReplicaHost<IActorRef, ClientRequest, Reply>.DropConnection(SessionState session, string why) => CloseConnection(session.Actor, session.Id, why);

    private void CloseConnection(IActorRef client, long sessionId, string why)
    {
        _logger.Warning("Closing the connection of session 0x{0:x}: {1}", sessionId, why);
        client.Tell(DropConnection.Instance);
    }

    Reply IReplicaHost<IActorRef, ClientRequest, Reply>.Refusal(int xid, ErrorCode err) => Refusal(xid, err);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.Committed(in TxnHeader header, Txn txn, ApplyResult result, bool audit)
    {
        if (txn is SessionSecretTxn)
        {
            _passwords.Learn(_tree.SessionSecret);   // internal: nothing to audit, watch or answer
            return;
        }
        if (audit) _audit.Committed(header, txn, result.Err);
        RecordChanges(header.Zxid, result.Triggers);
    }

    void IReplicaHost<IActorRef, ClientRequest, Reply>.FanOut(WatchTrigger trigger, long zxid, IReadOnlyList<(IActorRef Actor, long Seq)> recipients)
    {
        var shard = WatchDispatcherActor.ShardOf(trigger.Path, _dispatchers.Count);
        _dispatchers[shard].Tell(new Fanout(new WatcherEvent(trigger.Type, KeeperState.SyncConnected, trigger.Path), zxid, recipients, trigger.Acl));
    }

    Reply IReplicaHost<IActorRef, ClientRequest, Reply>.Outcome(in TxnHeader header, ApplyResult result) =>
        new(0, header.Cxid, header.Zxid, result.Err, result.Response);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.SessionCreated(in TxnHeader header, CreateSessionTxn create, SessionState? session, long seq)
    {
        _tracker.Tell(new SessionOpened(header.SessionId, create.TimeoutMs));
        // Only the server the client is connected to answers it; the others just know the session exists.
        session?.Actor.Tell(new SessionValidated(seq, true, create.TimeoutMs, header.Zxid));
    }

    void IReplicaHost<IActorRef, ClientRequest, Reply>.SessionValidated(IActorRef client, SessionState? session, long seq)
    {
        if (session is null)
        {
            client.Tell(new SessionValidated(-1, false, 0, _tree.LastZxid));   // no such session: expired
            return;
        }
        _tracker.Tell(new SessionTouched(session.Id, session.TimeoutMs));
        client.Tell(new SessionValidated(seq, true, session.TimeoutMs, _tree.LastZxid));
    }

    void IReplicaHost<IActorRef, ClientRequest, Reply>.GiveUp(IActorRef client, long sessionId, string why) => CloseConnection(client, sessionId, why);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ForwardCreateSession(long leader, long sessionId, int timeoutMs) =>
        ToLeader(new ForwardedCreateSession(_ensemble!.ServerId, sessionId, timeoutMs));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ForwardSessionOwner(long leader, long sessionId) =>
        ToLeader(new SessionOwner(_ensemble!.ServerId, sessionId));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.SessionEnded(in TxnHeader header, SessionState? session, bool requested)
    {
        _tracker.Tell(new SessionClosed(header.SessionId));
        EndSubscriptions(header.SessionId);
        session?.Actor.Tell(new SessionEnded(session.NextSeq(), Expired: !requested));
    }

    void IReplicaHost<IActorRef, ClientRequest, Reply>.Notify(SessionState session, long seq, WatcherEvent e, long zxid, IReadOnlyList<Acl>? acl) =>
        session.Actor.Tell(new Notification(seq, zxid, Frames.Notification(e, zxid), acl));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ResponseTooLarge() => _metrics.ClientPort.LargeResponseRejectedOnce();

    // ------------------------------------------------------------------ prep and batching (ReplicaCore.Writes.cs)

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ScheduleFlush() => Self.Tell(FlushLog.Instance);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.Log(Proposal[] batch) =>
        _log.Tell(_ensemble is null ? new LogAppend(batch) : new PeerActor.ProposeBatch(batch));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.PrepareFailed(OpCode op, long serverId, Exception error)
    {
        if (serverId == (_ensemble?.ServerId ?? 0)) _logger.Error(error, "Prepare of {0} failed", op);
        else _logger.Warning("Forwarded {0} from server {1} refused: {2}", op, serverId, error.Message);
    }

    /// <summary>Nothing is kept here per txn (the core forgets its proposal; OnLogAppendFailed logged the failure).</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.NotLogged(Proposal proposal) { }

    // ------------------------------------------------------------------ the leader's side (ReplicaCore.Leader.cs)

    bool IReplicaHost<IActorRef, ClientRequest, Reply>.Vouches(IActorRef from, long serverId) => Senders.Vouches(from, serverId);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.Unvouched(IActorRef from, long serverId, string what) =>
        MemberSenders.Refuse(Context.System, _logger, $"{what} naming server {serverId}", from);

    void IReplicaHost<IActorRef, ClientRequest, Reply>.RejectForward(IActorRef follower, long sessionId, int xid, ErrorCode err) =>
        follower.Tell(new ForwardRejected(sessionId, xid, (int)err));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.AnswerSyncPoint(IActorRef follower, long sessionId, int xid, long zxid) =>
        follower.Tell(new SyncPoint(sessionId, xid, zxid));

    void IReplicaHost<IActorRef, ClientRequest, Reply>.ConfirmLeadership(long request) => _log.Tell(new PeerActor.ConfirmLeadership(request));

    private static ReplicaRole RoleOf(RoleChanged role) => !role.ServesClients ? ReplicaRole.NotServing : role.Role switch
    {
        PeerState.Leading => ReplicaRole.Leader,
        PeerState.Observing => ReplicaRole.Observer,
        _ => ReplicaRole.Follower,
    };
}
