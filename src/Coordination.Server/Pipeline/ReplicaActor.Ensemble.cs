using System.Buffers;
using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Replica;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;

namespace Coordination.Server.Pipeline;

/// <summary>What a replica in an ensemble needs to know: its server id and where the other servers are.</summary>
public sealed record EnsembleLink(long ServerId, EnsembleMembers Members)
{
    /// <summary>The peer's state as it publishes it (the voters synchronised with a leader, for reconfig).</summary>
    public EnsembleState? State { get; init; }
}

// The replica's part in an ensemble. Followers forward writes, session creation and syncs to the leader's replica
// and apply what Zab commits; the leader prepares and proposes. Every server answers its own clients when the
// commit reaches it, matched by session id and xid (ZooKeeper's CommitProcessor does the same).
public sealed partial class ReplicaActor
{
    private EnsembleLink? _ensemble;
    /// <summary>Follower, observer: the leader's replica (server <see cref="_leaderReplicaId"/>'s), where forwards go.</summary>
    private IActorRef? _leaderReplica;
    private long _leaderReplicaId = -1;
    /// <summary>Follower: where a forwarded request's body is encoded when its connection did not keep the bytes the
    /// client sent (<see cref="Forwarded"/>), reused (one exact-size copy per such forward).</summary>
    private ArrayBufferWriter<byte> _forwardBody = new(256);

    private MemberSenders? _senders;
    private MemberSenders Senders => _senders ??= new MemberSenders(_ensemble!.Members);

    private void RefuseMessage(object message) => MemberSenders.Refuse(Context.System, _logger, message, Sender);

    private void ReceiveEnsembleMessages()
    {
        ReceiveStallChecks();
        ReceiveReconfigMessages();
        Receive<RoleChanged>(OnRoleChanged);
        Receive<ApplyCommitted>(OnApplyCommitted);
        Receive<ReplaceTree>(OnReplaceTree);
        // A follower speaks for itself only: the core checks that the member behind the sender's link is the server
        // each of these names (IReplicaHost.Vouches), and what the leader does with them.
        Receive<ForwardedRequest>(OnForwardedRequest);
        Receive<ForwardedRequests>(m =>
        {
            for (var i = 0; i < m.Requests.Count; i++) OnForwardedRequest(m.Requests[i]);
        });
        Receive<ForwardedCreateSession>(m => _core.ForwardedCreateSession(Sender, m.ServerId, m.SessionId, m.TimeoutMs, Now()));
        Receive<SessionOwner>(m => _core.SessionOwner(Sender, m.ServerId, m.SessionId));
        // The leader's answers (which name no server) must at least come from a member; the core does the
        // follower's part (ReplicaCore.Sessions.cs).
        Receive<IEnsembleMessage>(_ => !Senders.IsMember(Sender), RefuseMessage);
        Receive<ForwardRejected>(m => _core.ForwardRejected(m.SessionId, m.Xid, (ErrorCode)m.Err, _monotonic()));
        Receive<LeadershipConfirmed>(m => _core.LeadershipConfirmed(m.UpToRequest));
        Receive<SyncPoint>(m => _core.SyncPoint(_tree, m.SessionId, m.Xid, m.Zxid));
    }

    private void OnRoleChanged(RoleChanged role)
    {
        var wasServing = _core.Serving;
        var dropped = wasServing && !role.ServesClients ? _sessions.Keys.ToList() : null;
        // Forwards batched for the old leader go to it first; read-only sessions live while looking for a leader.
        _core.SetRole(RoleOf(role), role.Leader, _monotonic(), looking: role.Role == PeerState.Looking);
        if (_core.Forwards) ResolveLeaderReplica(_core.Leader);
        BecomeRole();
        if (!_core.Serving)
        {
            if (wasServing) DropClients(dropped!);
            return;
        }
        if (_core.Leading)
        {
            // Every commit of earlier epochs is applied (Zab told us before this): the epoch's proposals start at 1.
            _prep.Reset(Zxids.Make(role.Epoch, 0));
            // A new leader gives every session a full timeout, as ZooKeeper's does: their clients may be moving.
            TrackAllSessions();
            ProposeSessionSecretIfNone();
        }
    }

    /// <summary>
    /// This server lost its leader or quorum: what it was doing for its clients can no longer complete here.
    /// The session manager closes their connections; the clients move on and re-attach, possibly elsewhere.
    /// </summary>
    private void DropClients(List<long> sessions)
    {
        // The core forgot the sessions, what they waited for, the sessions being created or re-attached, what it
        // had prepared and its proposals (ReplicaCore.SetRole).
        foreach (var sessionId in sessions) _watches.RemoveSession(sessionId);
        EndAllSubscriptions();
    }

    private void OnApplyCommitted(ApplyCommitted committed) => _core.ApplyCommitted(_tree, committed.Entries);

    private void OnReplaceTree(ReplaceTree m)
    {
        AbortSnapshot();
        _tree = m.Tree;
        _passwords.Learn(_tree.SessionSecret);
        _core.Prep = NewPreprocessor(_tree);
        ResetFeed();
        _logger.Info("Replica state replaced by a snapshot at zxid 0x{0:x}", _tree.LastZxid);
    }

    private void ResolveLeaderReplica(long leader)
    {
        _leaderReplica = RemotePaths.Resolve(Context.System, LinkAddressOf(leader) + NodeActor.ReplicaPath);
        _leaderReplicaId = leader;
    }

    /// <summary>Follower → leader's replica, a message other than a forward: the burst's forwards go first, so the
    /// leader sees everything in order.</summary>
    private void ToLeader(object message)
    {
        _core.FlushForwards();
        if (_core.Forwards) _leaderReplica?.Tell(message, Self);
    }

    /// <summary>The forwards of a burst, as one remote message (one per request when alone).</summary>
    void IReplicaHost<IActorRef, ClientRequest, Reply>.Forward(long leader, IReadOnlyList<Forward<ClientRequest>> batch)
    {
        if (leader != _leaderReplicaId) ResolveLeaderReplica(leader);
        if (batch.Count == 1)
        {
            _leaderReplica!.Tell(Forwarded(batch[0]), Self);
            return;
        }
        var requests = new ForwardedRequest[batch.Count];
        for (var i = 0; i < requests.Length; i++) requests[i] = Forwarded(batch[i]);
        _leaderReplica!.Tell(new ForwardedRequests(requests), Self);
    }

    /// <summary>
    /// A forward as it crosses to the leader: a client's write with its jute body and auth ids, or a sync. The body is
    /// the bytes the client sent, kept by its connection (decoded once here, once on the leader, never encoded
    /// again); a connection's first forwarded write, which it did not keep yet, is encoded from its decoded body.
    /// </summary>
    private ForwardedRequest Forwarded(Forward<ClientRequest> forward)
    {
        if (forward.Write is not { } request)
            return new ForwardedRequest(_ensemble!.ServerId, forward.SessionId, forward.Xid, (int)OpCode.Sync, [], []);
        IReadOnlyList<(string, string)> auth = request.Auth.Ids.Count == 0 ? [] : request.Auth.Ids.Select(id => (id.Scheme, id.Ident)).ToList();
        return new ForwardedRequest(_ensemble!.ServerId, request.SessionId, request.Xid, (int)request.Op, request.BodyBytes ?? Encoded(request), auth);
    }

    /// <summary>A write's body encoded for a forward, for a connection that had not kept it; from now on it does.</summary>
    private byte[] Encoded(ClientRequest request)
    {
        request.Connection?.KeepWriteBodies();
        _forwardBody.ResetWrittenCount();
        var w = new JuteWriter(_forwardBody);
        request.Body.Write(ref w);
        var body = _forwardBody.WrittenSpan.ToArray();
        if (_forwardBody.Capacity > 64 * 1024) _forwardBody = new ArrayBufferWriter<byte>(256);   // not kept at a large write's size
        return body;
    }

    private void Sync(ClientRequest request, PathRequest body, SessionState session, ClientRequest? then = null) =>
        _core.ClientSync(session, request.Xid, body.NodePath, _monotonic(), then);

    /// <summary>A follower's client wrote or synced: the core checks and prepares it (ReplicaCore.Forwarded).</summary>
    private void OnForwardedRequest(ForwardedRequest f) =>
        _core.Forwarded(Sender, f.ServerId, f.SessionId, f.Xid, (OpCode)f.Op, f.Body, f.Auth, Now());
}
