using System.Buffers;
using Akka.Actor;
using Akka.Event;
using Coordination.Core;
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
    private IActorRef? _leaderReplica;
    /// <summary>Follower: requests for the leader's replica gathered during a burst (flushed with the log, see Log).</summary>
    private readonly List<ForwardedRequest> _unforwarded = new();
    /// <summary>Follower: where a forwarded request's body is encoded, reused (one exact-size copy per forward).</summary>
    private ArrayBufferWriter<byte> _forwardBody = new(256);
    /// <summary>Leader: proposals awaiting their commit, so that committing needs no decoding.</summary>
    private readonly Dictionary<long, Proposal> _proposed = new();
    /// <summary>Sessions this server asked to create, answered when the createSession txn commits.</summary>
    private readonly Dictionary<long, Waiting> _creating = new();
    /// <summary>Re-attachments to sessions this follower does not know yet, waiting to catch up with the leader.</summary>
    private readonly Dictionary<long, (ValidateSession Request, long Zxid, long SinceMs)> _validations = new();
    /// <summary>The xid of the sync a follower sends for a validation (clients never use 0).</summary>
    private const int ValidationXid = 0;

    /// <summary>
    /// Leader: a sync whose point is fixed (<see cref="SyncZxid"/> when it arrived), held until the peer confirms
    /// that this server still leads (<see cref="LeadershipConfirmed"/>): a leader cut off from its quorum must not
    /// answer from its own state while another leader commits writes (invariant 5). A follower's sync is
    /// answered to <see cref="Follower"/>, a local one released in its session's queue.
    /// </summary>
    private sealed record HeldSync(long Request, long Zxid, long SessionId, int Xid, PendingSync? Local, IActorRef? Follower);
    private readonly Queue<HeldSync> _heldSyncs = new();
    private long _lastConfirmRequest;

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
        // A follower speaks for itself only: the server id it names must be the member behind the sender's link.
        // The leader's answers (which name no server) must at least come from a member.
        Receive<ForwardedRequest>(m => !Senders.Vouches(Sender, m.ServerId), RefuseMessage);
        Receive<ForwardedRequests>(m => m.Requests.Any(r => !Senders.Vouches(Sender, r.ServerId)), RefuseMessage);
        Receive<ForwardedCreateSession>(m => !Senders.Vouches(Sender, m.ServerId), RefuseMessage);
        Receive<SessionOwner>(m => !Senders.Vouches(Sender, m.ServerId), RefuseMessage);
        Receive<IEnsembleMessage>(_ => !Senders.IsMember(Sender), RefuseMessage);
        Receive<SessionOwner>(m => _core.Attach(m.SessionId, m.ServerId));
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
        Receive<LeadershipConfirmed>(OnLeadershipConfirmed);
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
        var wasLeading = _core.Leading;
        var dropped = wasServing && !role.ServesClients ? _sessions.Keys.ToList() : null;
        _core.SetRole(RoleOf(role));
        if (wasLeading && !_core.Leading) RefuseHeldSyncs();
        FlushForwarded();   // to the leader they were meant for, as if sent at once
        _leaderReplica = role.ServesClients && !_core.Leading
            ? RemotePaths.Resolve(Context.System, LinkAddressOf(role.Leader) + NodeActor.ReplicaPath)
            : null;
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
        // The core forgot the sessions and what they waited for (ReplicaCore.SetRole).
        foreach (var sessionId in sessions) _watches.RemoveSession(sessionId);
        EndAllSubscriptions();
        _creating.Clear();
        _proposed.Clear();
        _unlogged.Clear();
        _validations.Clear();
        _prep.Reset(_tree.LastZxid);
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
        _prep = NewPreprocessor(_tree);
        ResetFeed();
        _logger.Info("Replica state replaced by a snapshot at zxid 0x{0:x}", _tree.LastZxid);
    }

    /// <summary>A follower sends a client's write to the leader's replica, keeping its place in the session's queue.</summary>
    private void Forward(ClientRequest request, SessionState session)
    {
        if (_leaderReplica is null)
        {
            _core.Refuse(session, request.Xid, _monotonic(), ErrorCode.ConnectionLoss);
            return;
        }
        _core.Write(session, request.Xid, _monotonic());
        _forwardBody.ResetWrittenCount();
        var w = new JuteWriter(_forwardBody);
        request.Body.Write(ref w);
        IReadOnlyList<(string, string)> auth = request.Auth.Ids.Count == 0 ? [] : request.Auth.Ids.Select(id => (id.Scheme, id.Ident)).ToList();
        ToLeader(new ForwardedRequest(_ensemble!.ServerId, request.SessionId, request.Xid, (int)request.Op, _forwardBody.WrittenSpan.ToArray(), auth));
        if (_forwardBody.Capacity > 64 * 1024) _forwardBody = new ArrayBufferWriter<byte>(256);   // not kept at a large write's size
    }

    /// <summary>
    /// Follower → leader's replica. Forwarded requests of a burst travel as one message, flushed with the log
    /// (<see cref="OnFlushLog"/>); any other message first flushes them, so the leader sees everything in order.
    /// </summary>
    private void ToLeader(object message)
    {
        if (message is ForwardedRequest request)
        {
            if (_unlogged.Count == 0 && _unforwarded.Count == 0) Self.Tell(FlushLog.Instance);
            _unforwarded.Add(request);
            return;
        }
        FlushForwarded();
        _leaderReplica?.Tell(message, Self);
    }

    private void FlushForwarded()
    {
        if (_unforwarded.Count == 0) return;
        _leaderReplica?.Tell(_unforwarded.Count == 1 ? _unforwarded[0] : new ForwardedRequests(_unforwarded.ToArray()), Self);
        _unforwarded.Clear();
    }

    private void Sync(ClientRequest request, PathRequest body, SessionState session, ClientRequest? then = null)
    {
        var sync = _core.Sync(session, request.Xid, body.NodePath, _monotonic(), then);
        if (_core.Leading) HoldSync(request.SessionId, request.Xid, sync, null);
        else if (_leaderReplica is not null) ToLeader(new ForwardedRequest(_ensemble!.ServerId, request.SessionId, request.Xid, (int)OpCode.Sync, [], []));
        else sync.Zxid = 0;
        _core.Drain(session);
    }

    /// <summary>
    /// Leader: the zxid a sync seen now waits for, the last txn this leader has proposed. Before its first proposal
    /// of the epoch that is the last txn of the history it leads with, all applied here when it became leader:
    /// not the epoch's zxid with counter 0, which no txn has, so that a sync waiting for it would wait for the
    /// epoch's first write (a reconnected client's sync after a failover hung until someone wrote).
    /// </summary>
    private long SyncZxid()
    {
        var lastProposed = _prep.NextZxid - 1;
        return Zxids.CounterOf(lastProposed) == 0 ? _tree.LastZxid : lastProposed;
    }

    /// <summary>Leader: fixes the sync's point now and asks the peer to confirm leadership before it is answered.</summary>
    private void HoldSync(long sessionId, int xid, PendingSync? local, IActorRef? follower)
    {
        _heldSyncs.Enqueue(new HeldSync(++_lastConfirmRequest, SyncZxid(), sessionId, xid, local, follower));
        _log.Tell(new PeerActor.ConfirmLeadership(_lastConfirmRequest));
    }

    private void OnLeadershipConfirmed(LeadershipConfirmed m)
    {
        while (_heldSyncs.TryPeek(out var held) && held.Request <= m.UpToRequest)
        {
            _heldSyncs.Dequeue();
            if (held.Follower is { } follower) follower.Tell(new SyncPoint(held.SessionId, held.Xid, held.Zxid));
            else if (held.Local is { } sync && _sessions.TryGetValue(held.SessionId, out var session))
            {
                sync.Zxid = held.Zxid;
                _core.Drain(session);
            }
        }
    }

    /// <summary>
    /// This server stopped leading before a quorum confirmed its held syncs: they are refused as a departing
    /// leader refuses a forwarded sync (the follower closes that client's connection, see ForwardRejected). Local
    /// ones go with the clients this server drops now that it does not serve.
    /// </summary>
    private void RefuseHeldSyncs()
    {
        foreach (var held in _heldSyncs)
        {
            if (held.Follower is { } follower) follower.Tell(new ForwardRejected(held.SessionId, held.Xid, (int)ErrorCode.ConnectionLoss));
            else if (_core.Serving && _sessions.TryGetValue(held.SessionId, out var session) && _core.Waits(session, held.Local!))
                _core.Abandon(session, _monotonic(), "leadership ended before its sync was confirmed");
        }
        _heldSyncs.Clear();
    }

    /// <summary>
    /// A client re-attaches here to a session this follower has not seen created (it may have been created on
    /// another server a moment ago). As ZooKeeper's followers ask the leader, this one syncs with the leader first
    /// and decides once it has applied everything the leader had proposed: only then is "no such session" true.
    /// </summary>
    private void ValidateAfterSync(ValidateSession m)
    {
        if (_leaderReplica is null) return;
        _validations[m.SessionId] = (m, -1, _monotonic());
        ToLeader(new ForwardedRequest(_ensemble!.ServerId, m.SessionId, ValidationXid, (int)OpCode.Sync, [], []));
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

    /// <summary>Leader: a follower's client wrote. Prepared and proposed like a local write; the follower answers it on commit.</summary>
    private void OnForwardedRequest(ForwardedRequest f)
    {
        var op = (OpCode)f.Op;
        if (op == OpCode.Sync)
        {
            HoldSync(f.SessionId, f.Xid, null, Sender);
            return;
        }
        if (_core.IsMovedAway(f.SessionId, f.ServerId, claimUnknown: false))
        {
            Sender.Tell(new ForwardRejected(f.SessionId, f.Xid, (int)ErrorCode.SessionMoved));
            return;
        }
        if (op == OpCode.CloseSession && !_prep.IsSessionAlive(f.SessionId))
        {
            Sender.Tell(new ForwardRejected(f.SessionId, f.Xid, (int)ErrorCode.SessionExpired));
            return;
        }
        try
        {
            var r = new JuteReader(f.Body);
            var body = Requests.Read(op, ref r);
            var auth = new AuthContext(f.Auth.Select(a => new Id(a.Scheme, a.Ident)).ToList());
            var (header, txn) = op == OpCode.CloseSession
                ? _prep.PrepareCloseSession(f.SessionId, f.Xid, Now())
                : _prep.Prepare(f.SessionId, f.Xid, op, body, auth, Now());
            Log(new Proposal(header, txn));
        }
        catch (Exception e)
        {
            _logger.Warning("Forwarded {0} from server {1} refused: {2}", op, f.ServerId, e.Message);
            Sender.Tell(new ForwardRejected(f.SessionId, f.Xid, (int)ErrorCode.MarshallingError));
        }
    }

    /// <summary>A session (re)attached here: the leader learns that this server now owns it.</summary>
    private void ClaimSession(long sessionId)
    {
        if (_ensemble is null) return;
        if (_core.Leading) _core.Attach(sessionId, _ensemble.ServerId);
        else ToLeader(new SessionOwner(_ensemble.ServerId, sessionId));
    }
}
