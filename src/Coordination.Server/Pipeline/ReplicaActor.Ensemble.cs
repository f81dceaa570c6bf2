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
    /// <summary>Leader: proposals awaiting their commit, so that committing needs no decoding.</summary>
    private readonly Dictionary<long, Proposal> _proposed = new();
    /// <summary>Sessions this server asked to create, answered when the createSession txn commits.</summary>
    private readonly Dictionary<long, Waiting> _creating = new();
    /// <summary>Re-attachments to sessions this follower does not know yet, waiting to catch up with the leader.</summary>
    private readonly Dictionary<long, (ValidateSession Request, long Zxid, long SinceMs)> _validations = new();
    /// <summary>The xid of the sync a follower sends for a validation (clients never use 0).</summary>
    private const int ValidationXid = 0;

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
        // The leader's answers (which name no server) must at least come from a member.
        Receive<IEnsembleMessage>(_ => !Senders.IsMember(Sender), RefuseMessage);
        Receive<ForwardRejected>(m =>
        {
            // A refused validation or sync cannot be answered truthfully here (the leader is going away): the
            // connection closes, and the client asks again, here once a leader serves or elsewhere.
            if (m.Xid == ValidationXid && _validations.Remove(m.SessionId, out var validation))
            {
                validation.Request.Session.Tell(DropConnection.Instance);
                return;
            }
            if (!_sessions.TryGetValue(m.SessionId, out var session)) return;
            if (_core.AwaitsSyncPoint(session, m.Xid)) _core.Abandon(session, _monotonic(), "the leader refused its sync");
            else _core.Complete(session, m.Xid, Refusal(m.Xid, (ErrorCode)m.Err));
        });
        Receive<LeadershipConfirmed>(m => _core.LeadershipConfirmed(m.UpToRequest));
        Receive<SyncPoint>(m =>
        {
            if (m.Xid == ValidationXid && _validations.TryGetValue(m.SessionId, out var validation))
            {
                _validations[m.SessionId] = validation with { Zxid = m.Zxid };
                ReleaseValidations();
                return;
            }
            _core.SyncPoint(m.SessionId, m.Xid, m.Zxid);
        });
    }

    private void OnRoleChanged(RoleChanged role)
    {
        TrackLooking(role);
        var wasServing = _core.Serving;
        var dropped = wasServing && !role.ServesClients ? _sessions.Keys.ToList() : null;
        _core.SetRole(RoleOf(role), role.Leader, _monotonic());   // forwards batched for the old leader go to it first
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
        // The core forgot the sessions, what they waited for and what it had prepared (ReplicaCore.SetRole).
        foreach (var sessionId in sessions) _watches.RemoveSession(sessionId);
        EndAllSubscriptions();
        _creating.Clear();
        _proposed.Clear();
        _validations.Clear();
    }

    private void OnApplyCommitted(ApplyCommitted committed)
    {
        var batch = new List<Proposal>(committed.Entries.Count);
        foreach (var entry in committed.Entries)
        {
            if (_proposed.Remove(entry.Zxid, out var proposal))
            {
                batch.Add(proposal);
                continue;
            }
            var (header, txn) = Txns.Deserialize(entry.Payload);
            batch.Add(new Proposal(header, txn));
        }
        ApplyBatch(batch);
    }

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

    /// <summary>
    /// A client re-attaches here to a session this follower has not seen created (it may have been created on
    /// another server a moment ago). As ZooKeeper's followers ask the leader, this one syncs with the leader first
    /// and decides once it has applied everything the leader had proposed: only then is "no such session" true.
    /// </summary>
    private void ValidateAfterSync(ValidateSession m)
    {
        if (!_core.Forwards) return;
        _validations[m.SessionId] = (m, -1, _monotonic());
        _core.ForwardSync(m.SessionId, ValidationXid);
    }

    private void ReleaseValidations()
    {
        if (_validations.Count == 0) return;
        foreach (var (sessionId, (request, zxid, _)) in _validations.ToList())
        {
            if (zxid < 0 || _tree.LastZxid < zxid) continue;
            _validations.Remove(sessionId);
            if (_tree.Sessions.ContainsKey(sessionId)) ValidateSession(request);
            else request.Session.Tell(new SessionValidated(-1, false, 0, _tree.LastZxid));
        }
    }

    /// <summary>A follower's client wrote or synced: the core checks and prepares it (ReplicaCore.Forwarded).</summary>
    private void OnForwardedRequest(ForwardedRequest f) =>
        _core.Forwarded(Sender, f.ServerId, f.SessionId, f.Xid, (OpCode)f.Op, f.Body, f.Auth, Now());

    /// <summary>A session (re)attached here: the leader learns that this server now owns it.</summary>
    private void ClaimSession(long sessionId)
    {
        if (_ensemble is null) return;
        if (_core.Leading) _core.Attach(sessionId, _ensemble.ServerId);
        else ToLeader(new SessionOwner(_ensemble.ServerId, sessionId));
    }
}
