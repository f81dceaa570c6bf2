using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Coordination.Server;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.Server.Pipeline;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// Invariant 9 at the replica of an ensemble member: every request is answered, or its connection is closed, within
/// the session timeout. Probes stand in for the session actor, the peer and the leader's replica (an actor at
/// /user/replica of this test system, which the member under test takes for its leader's); the replica's monotonic
/// clock is the test's, so deadlines pass exactly when the test moves it.
/// </summary>
public sealed class ReplicaLivenessTests : TestKit
{
    private static readonly Config TestConfig = ReplicaTestConfig.Config;

    private const long SessionId = 0x77;
    private const int TimeoutMs = 3000;
    /// <summary>The last txn of the history before the current epoch (epoch 1, counter 5).</summary>
    private static readonly long LastOldZxid = Zxids.Make(1, 5);

    private readonly ServerSettings _settings = ServerSettings.Create(TestConfig);
    private readonly AuthContext _anyone = new([new Id("ip", "127.0.0.1")]);
    private readonly Akka.TestKit.TestProbe _leader;
    private readonly Akka.TestKit.TestProbe _session;
    /// <summary>The member's Zab peer (its log, to which a leader's replica also sends ConfirmLeadership).</summary>
    private readonly Akka.TestKit.TestProbe _peer;
    private long _now = 1_000_000;

    public ReplicaLivenessTests() : base(TestConfig)
    {
        _leader = CreateTestProbe();
        _session = CreateTestProbe();
        _peer = CreateTestProbe();
        var leader = _leader.Ref;
        // The leader's replica, at the path a follower forwards to (NodeActor.ReplicaPath).
        var relay = Props.Create(() => new Relay(leader));
        Sys.ActorOf(Props.Create(() => new Parent(relay, "replica")), NodeActor.Name);
        // A replica resolves the leader's path when it starts to follow, and a local path resolved before its actor
        // exists stays dead letters: wait for the relay first (CI once lost a forward to it).
        AwaitAssert(() => Sys.ActorSelection($"/user/{NodeActor.Name}/replica").ResolveOne(TimeSpan.FromSeconds(1)).Wait(),
            TimeSpan.FromSeconds(10));
    }

    private sealed class Parent : ReceiveActor
    {
        public Parent(Props child, string name) => Context.ActorOf(child, name);
    }

    private sealed class Relay : ReceiveActor
    {
        public Relay(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    /// <summary>A member (server <paramref name="serverId"/>) whose tree holds the test's session, created in epoch 1.</summary>
    private IActorRef StartReplica(long serverId)
    {
        var tree = new DataTree();
        // The deployment's session secret came first (else a new leader would propose it before anything else).
        tree.Apply(new TxnHeader(0, 0, Zxids.Make(1, 1), 0, OpCode.SessionSecret), new SessionSecretTxn(new byte[SessionIds.SecretLength]));
        tree.Apply(new TxnHeader(SessionId, 0, Zxids.Make(1, 2), 0, OpCode.CreateSession), new CreateSessionTxn(TimeoutMs));
        for (var counter = 3; counter <= 5; counter++)
            tree.Apply(new TxnHeader(SessionId, counter, Zxids.Make(1, counter), 0, OpCode.Error), new ErrorTxn(ErrorCode.NoNode));
        Assert.Equal(LastOldZxid, tree.LastZxid);
        var address = ((ExtendedActorSystem)Sys).Provider.DefaultAddress.ToString();
        var members = new EnsembleMembers(new Dictionary<long, string> { [1] = address, [2] = address }, new Dictionary<long, string>());
        return Sys.ActorOf(ReplicaActor.Props(_settings, tree, _peer.Ref, CreateTestProbe().Ref, [Sys.ActorOf(WatchDispatcherActor.Props())], () => 0, null,
            new EnsembleLink(serverId, members), () => Interlocked.Read(ref _now)));
    }

    /// <summary>Server 2, following server 1 in epoch 2, with the session attached.</summary>
    private IActorRef StartFollowerWithSession()
    {
        var replica = StartReplica(2);
        replica.Tell(new RoleChanged(PeerState.Following, 1, 2, true));
        Attach(replica);
        return replica;
    }

    private void Attach(IActorRef replica)
    {
        replica.Tell(new ValidateSession(SessionId, TimeoutMs, _session.Ref));
        Assert.True(_session.ExpectMsg<SessionValidated>().Valid);
        _leader.ExpectMsg<SessionOwner>();
    }

    private void Send(IActorRef replica, int xid, OpCode op, ZkRequest body) =>
        replica.Tell(new ClientRequest(SessionId, xid, op, body, _anyone, _session.Ref));

    private static ApplyCommitted Commit(int cxid, long zxid, ErrorCode err) =>
        new([new LogEntry(zxid, Txns.Serialize(new TxnHeader(SessionId, cxid, zxid, 0, OpCode.Error), new ErrorTxn(err)))]);

    [Fact]
    public void A_new_leader_answers_a_sync_before_its_first_proposal_at_the_history_it_applied()
    {
        var replica = StartReplica(1);
        replica.Tell(new RoleChanged(PeerState.Leading, 1, 2, true));
        replica.Tell(new ValidateSession(SessionId, TimeoutMs, _session.Ref));
        Assert.True(_session.ExpectMsg<SessionValidated>().Valid);

        // Its own client's sync: nothing of epoch 2 exists to wait for (once a quorum confirms it still leads).
        Send(replica, 1, OpCode.Sync, new PathRequest("/"));
        replica.Tell(new LeadershipConfirmed(_peer.ExpectMsg<PeerActor.ConfirmLeadership>().RequestId));
        var reply = _session.ExpectMsg<Reply>();
        Assert.Equal((1, ErrorCode.Ok, LastOldZxid), (reply.Xid, reply.Err, reply.Zxid));

        // A follower's forwarded sync waits for that same point, which every synchronised follower has applied.
        replica.Tell(new ForwardedRequest(2, SessionId, 7, (int)OpCode.Sync, [], []), _leader.Ref);
        replica.Tell(new LeadershipConfirmed(_peer.ExpectMsg<PeerActor.ConfirmLeadership>().RequestId));
        Assert.Equal(LastOldZxid, _leader.ExpectMsg<SyncPoint>().Zxid);
    }

    /// <summary>A leader established in epoch 2 with the session attached.</summary>
    private IActorRef StartLeaderWithSession()
    {
        var replica = StartReplica(1);
        replica.Tell(new RoleChanged(PeerState.Leading, 1, 2, true));
        replica.Tell(new ValidateSession(SessionId, TimeoutMs, _session.Ref));
        Assert.True(_session.ExpectMsg<SessionValidated>().Valid);
        return replica;
    }

    [Fact]
    public void A_leader_answers_syncs_only_once_its_peer_confirms_it_still_leads()
    {
        var replica = StartLeaderWithSession();
        Send(replica, 1, OpCode.Sync, new PathRequest("/"));
        replica.Tell(new ForwardedRequest(2, SessionId + 1, 7, (int)OpCode.Sync, [], []), _leader.Ref);
        Send(replica, 2, OpCode.Sync, new PathRequest("/"));
        var requests = Enumerable.Range(0, 3).Select(_ => _peer.ExpectMsg<PeerActor.ConfirmLeadership>().RequestId).ToList();
        Assert.Equal(requests.Order(), requests);
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        _leader.ExpectNoMsg(TimeSpan.Zero);

        // Confirmed up to the second request: the first two are answered, the third still waits.
        replica.Tell(new LeadershipConfirmed(requests[1]));
        Assert.Equal(1, _session.ExpectMsg<Reply>().Xid);
        Assert.Equal((SessionId + 1, 7, LastOldZxid), _leader.ExpectMsg<SyncPoint>() is var y ? (y.SessionId, y.Xid, y.Zxid) : default);
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        replica.Tell(new LeadershipConfirmed(requests[2]));
        Assert.Equal(2, _session.ExpectMsg<Reply>().Xid);
    }

    [Fact]
    public void A_leader_that_stops_leading_before_confirmation_refuses_its_held_syncs_and_never_answers_them()
    {
        var replica = StartLeaderWithSession();
        Send(replica, 1, OpCode.Sync, new PathRequest("/"));
        replica.Tell(new ForwardedRequest(2, SessionId + 1, 7, (int)OpCode.Sync, [], []), _leader.Ref);
        var last = _peer.ExpectMsg<PeerActor.ConfirmLeadership>().RequestId;
        last = Math.Max(last, _peer.ExpectMsg<PeerActor.ConfirmLeadership>().RequestId);

        replica.Tell(new RoleChanged(PeerState.Looking, -1, 2, false));
        Assert.Equal((SessionId + 1, 7, (int)ErrorCode.ConnectionLoss), _leader.ExpectMsg<ForwardRejected>() is var r ? (r.SessionId, r.Xid, r.Err) : default);
        // Leading again in a later epoch: a confirmation meant for the old requests answers nothing.
        replica.Tell(new RoleChanged(PeerState.Leading, 1, 3, true));
        replica.Tell(new LeadershipConfirmed(last));
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        _leader.ExpectNoMsg(TimeSpan.Zero);
    }

    [Fact]
    public void A_forwarded_sync_that_is_never_answered_closes_its_connection_once_overdue_and_the_session_serves_again()
    {
        var replica = StartFollowerWithSession();
        Send(replica, 1, OpCode.Sync, new PathRequest("/"));
        Assert.Equal((int)OpCode.Sync, _leader.ExpectMsg<ForwardedRequest>().Op);

        // The leader never answers. Within the bound the request just waits...
        Interlocked.Add(ref _now, RequestDeadline.BoundMs(TimeoutMs));
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        // ...past it, the connection closes.
        Interlocked.Add(ref _now, 1);
        _session.ExpectMsg<DropConnection>(TimeSpan.FromSeconds(3));

        // The client re-attaches: its next requests are answered, not queued behind the sync given up.
        replica.Tell(new ConnectionLost(SessionId));
        Attach(replica);
        Send(replica, 1, OpCode.Exists, new PathWatchRequest("/", false));
        Assert.Equal((1, ErrorCode.Ok), (_session.ExpectMsg<Reply>().Xid, ErrorCode.Ok));
        replica.Tell(new SyncPoint(SessionId, 1, LastOldZxid));   // the old sync's late answer changes nothing
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void The_late_commit_of_a_write_given_up_is_not_taken_for_a_newer_request_with_the_same_xid()
    {
        var replica = StartFollowerWithSession();
        Send(replica, 1, OpCode.Create, new CreateRequest("/old", null, Acl.OpenAclUnsafe, 0));
        _leader.ExpectMsg<ForwardedRequest>();
        Interlocked.Add(ref _now, RequestDeadline.BoundMs(TimeoutMs) + 1);
        _session.ExpectMsg<DropConnection>(TimeSpan.FromSeconds(3));

        // kazoo numbers each connection's requests from 1 again.
        replica.Tell(new ConnectionLost(SessionId));
        Attach(replica);
        Send(replica, 1, OpCode.Create, new CreateRequest("/new", null, Acl.OpenAclUnsafe, 0));
        _leader.ExpectMsg<ForwardedRequest>();
        replica.Tell(Commit(1, Zxids.Make(2, 1), ErrorCode.NodeExists));   // the old write, slow rather than lost
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        replica.Tell(Commit(1, Zxids.Make(2, 2), ErrorCode.NoNode));       // the new one
        var reply = _session.ExpectMsg<Reply>();
        Assert.Equal((1, ErrorCode.NoNode), (reply.Xid, reply.Err));
    }

    [Fact]
    public void Answers_to_a_closed_connection_go_to_no_one_and_its_writes_still_complete_in_order()
    {
        var replica = StartFollowerWithSession();
        Send(replica, 1, OpCode.SetData, new SetDataRequest("/", null, -1));
        _leader.ExpectMsg<ForwardedRequest>();
        Send(replica, 2, OpCode.Exists, new PathWatchRequest("/", false));   // queued behind the write

        // The connection closes; the client comes back on a new one and reads (xid 1 again).
        replica.Tell(new ConnectionLost(SessionId));
        Attach(replica);
        Send(replica, 1, OpCode.GetData, new PathWatchRequest("/", false));
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));   // behind the old connection's write, as in ZooKeeper

        replica.Tell(Commit(1, Zxids.Make(2, 1), ErrorCode.BadVersion));
        var reply = _session.ExpectMsg<Reply>();
        Assert.Equal(1, reply.Xid);
        Assert.IsType<GetDataResponse>(reply.Body);   // the new read's answer, not the old write's nor the old read's
        _session.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_sync_the_leader_refuses_closes_its_connection_instead_of_answering_ok_unsynced()
    {
        var replica = StartFollowerWithSession();
        Send(replica, 1, OpCode.Sync, new PathRequest("/"));
        _leader.ExpectMsg<ForwardedRequest>();
        replica.Tell(new ForwardRejected(SessionId, 1, (int)ErrorCode.ConnectionLoss));
        _session.ExpectMsg<DropConnection>();
    }

    [Fact]
    public void A_reattachment_waiting_on_the_leader_closes_its_connection_once_overdue()
    {
        var replica = StartReplica(2);
        replica.Tell(new RoleChanged(PeerState.Following, 1, 2, true));
        const long unknown = 0x99;   // created elsewhere a moment ago, as far as this member can tell
        replica.Tell(new ValidateSession(unknown, TimeoutMs, _session.Ref));
        var sync = _leader.ExpectMsg<ForwardedRequest>();
        Assert.Equal((unknown, (int)OpCode.Sync), (sync.SessionId, sync.Op));
        Interlocked.Add(ref _now, RequestDeadline.BoundMs(TimeoutMs) + 1);
        _session.ExpectMsg<DropConnection>(TimeSpan.FromSeconds(3));
    }
}
