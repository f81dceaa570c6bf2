using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server;
using Coordination.Server.Pipeline;
using Coordination.Server.Sessions;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The replica's ordering guarantees, observed at the session boundary with probes standing in for session actors.
/// Outputs travel on two routes (replies direct, watch events through a dispatcher child), so the test sorts what a
/// probe received by the sequence numbers the replica assigned — exactly what a session actor emits by.
/// </summary>
public sealed class ReplicaOrderingTests : TestKit
{
    private static readonly Config TestConfig = ReplicaTestConfig.Config;

    private readonly ServerSettings _settings = ServerSettings.Create(TestConfig);
    private readonly IActorRef _replica;
    private readonly AuthContext _anyone = new([new Id("ip", "127.0.0.1")]);

    public ReplicaOrderingTests() : base(TestConfig)
    {
        var log = Sys.ActorOf(InMemoryTxnLogActor.Props());
        var tracker = Sys.ActorOf(SessionTrackerActor.Props(_settings.TickTime, CoordinationServer.MonotonicMs));
        var dispatchers = Enumerable.Range(0, _settings.WatchDispatchers).Select(_ => Sys.ActorOf(WatchDispatcherActor.Props())).ToArray();
        _replica = Sys.ActorOf(ReplicaActor.Props(_settings, new DataTree(), log, tracker, dispatchers, CoordinationServer.WallClockMs));
    }

    private TestProbeSession OpenSession(long sessionId)
    {
        var probe = CreateTestProbe();
        _replica.Tell(new CreateSession(sessionId, 10_000, probe.Ref));
        var validated = probe.ExpectMsg<SessionValidated>();
        Assert.True(validated.Valid);
        Assert.Equal(1, validated.Seq);
        return new TestProbeSession(sessionId, probe, this);
    }

    private sealed class TestProbeSession(long id, Akka.TestKit.TestProbe probe, ReplicaOrderingTests test)
    {
        private int _xid;
        public Akka.TestKit.TestProbe Probe => probe;

        public int Send(OpCode op, ZkRequest body)
        {
            var xid = ++_xid;
            test._replica.Tell(new ClientRequest(id, xid, op, body, test._anyone, probe.Ref));
            return xid;
        }

        /// <summary>Receives <paramref name="count"/> outputs and returns them in sequence order, checking there are no gaps.</summary>
        public List<SessionOutput> Receive(int count)
        {
            var outputs = new List<SessionOutput>();
            for (var i = 0; i < count; i++) outputs.Add(probe.ExpectMsg<SessionOutput>(TimeSpan.FromSeconds(5)));
            outputs.Sort((a, b) => a.Seq.CompareTo(b.Seq));
            for (var i = 1; i < outputs.Count; i++) Assert.Equal(outputs[i - 1].Seq + 1, outputs[i].Seq);
            return outputs;
        }
    }

    [Fact]
    public void Watch_event_is_sequenced_before_the_reply_that_shows_the_change()
    {
        var writer = OpenSession(1);
        var watcher = OpenSession(2);

        writer.Send(OpCode.Create, new CreateRequest("/x", [1], Acl.OpenAclUnsafe, 0));
        Assert.Equal(ErrorCode.Ok, Assert.IsType<Reply>(writer.Receive(1)[0]).Err);

        watcher.Send(OpCode.GetData, new PathWatchRequest("/x", Watch: true));
        Assert.Equal(ErrorCode.Ok, Assert.IsType<Reply>(watcher.Receive(1)[0]).Err);

        writer.Send(OpCode.SetData, new SetDataRequest("/x", [2], -1));
        Assert.Equal(ErrorCode.Ok, Assert.IsType<Reply>(writer.Receive(1)[0]).Err);
        // The change is applied; the event may still be in its dispatcher child when the read is answered.
        var readXid = watcher.Send(OpCode.GetData, new PathWatchRequest("/x", Watch: false));

        var outputs = watcher.Receive(2);
        var notification = Assert.IsType<Notification>(outputs[0]);
        var reply = Assert.IsType<Reply>(outputs[1]);
        Assert.Equal(readXid, reply.Xid);
        var data = Assert.IsType<GetDataResponse>(reply.Body);
        Assert.Equal(new byte[] { 2 }, data.Data);
        Assert.True(notification.Zxid <= reply.Zxid);
    }

    [Fact]
    public void A_read_after_a_write_on_the_same_session_sees_the_write_and_replies_stay_in_request_order()
    {
        var session = OpenSession(3);
        var xids = new List<int>();
        for (var i = 0; i < 50; i++)
        {
            xids.Add(session.Send(OpCode.Create, new CreateRequest($"/n{i}", [(byte)i], Acl.OpenAclUnsafe, 0)));
            xids.Add(session.Send(OpCode.Exists, new PathWatchRequest($"/n{i}", false)));
        }
        var outputs = session.Receive(100).Cast<Reply>().ToList();
        Assert.Equal(xids, outputs.Select(r => r.Xid).ToList());
        Assert.All(outputs, r => Assert.Equal(ErrorCode.Ok, r.Err));
        for (var i = 1; i < outputs.Count; i++) Assert.True(outputs[i].Zxid >= outputs[i - 1].Zxid);
    }

    [Fact]
    public void Events_for_one_session_are_sequenced_in_zxid_order_across_subtree_shards()
    {
        var writer = OpenSession(4);
        var watcher = OpenSession(5);
        const int Nodes = 40;   // spread over many top-level subtrees, so over several dispatcher children
        for (var i = 0; i < Nodes; i++) writer.Send(OpCode.Create, new CreateRequest($"/t{i}", [], Acl.OpenAclUnsafe, 0));
        writer.Receive(Nodes);
        for (var i = 0; i < Nodes; i++) watcher.Send(OpCode.Exists, new PathWatchRequest($"/t{i}", true));
        watcher.Receive(Nodes);

        for (var i = Nodes - 1; i >= 0; i--) writer.Send(OpCode.SetData, new SetDataRequest($"/t{i}", [1], -1));
        writer.Receive(Nodes);
        var events = watcher.Receive(Nodes).Cast<Notification>().ToList();
        for (var i = 1; i < events.Count; i++) Assert.True(events[i].Zxid > events[i - 1].Zxid);
    }

    [Fact]
    public void One_shot_watch_fires_once_and_persistent_recursive_watch_keeps_firing()
    {
        var writer = OpenSession(6);
        var watcher = OpenSession(7);
        writer.Send(OpCode.Create, new CreateRequest("/p", [], Acl.OpenAclUnsafe, 0));
        writer.Receive(1);
        watcher.Send(OpCode.GetData, new PathWatchRequest("/p", true));
        watcher.Send(OpCode.AddWatch, new AddWatchRequest("/p", AddWatchMode.PersistentRecursive));
        watcher.Receive(2);

        writer.Send(OpCode.SetData, new SetDataRequest("/p", [1], -1));
        writer.Send(OpCode.SetData, new SetDataRequest("/p", [2], -1));
        writer.Send(OpCode.Create, new CreateRequest("/p/c", [], Acl.OpenAclUnsafe, 0));
        writer.Receive(3);
        // Change 1: one event although two watches match (one per session per trigger). Change 2 and the child
        // create: only the persistent recursive watch remains.
        var events = watcher.Receive(3).Cast<Notification>().ToList();
        watcher.Probe.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(3, events.Count);
    }

    /// <summary>
    /// A connection's read loop tells the replica directly, so a request read just before its session actor replaced
    /// the connection can arrive after the session actor told the replica so: the replica drops the requests of a
    /// connection marked <see cref="Network.ClientConnection.Detached"/> (a late create is neither applied nor
    /// answered), and serves the others.
    /// </summary>
    [Fact]
    public void A_request_from_a_connection_its_session_detached_is_neither_applied_nor_answered()
    {
        var session = OpenSession(0x51);
        var limits = new Network.ClientPortLimits(_settings, new Metrics.ClientPortMetrics(), new ServerStats());
        var connection = new Network.ClientConnection(new System.IO.Pipelines.Pipe().Reader, new System.IO.Pipelines.Pipe().Writer, limits);
        void Send(int xid, OpCode op, ZkRequest body, Network.ClientConnection? from) =>
            _replica.Tell(new ClientRequest(0x51, xid, op, body, _anyone, session.Probe.Ref, from));

        Send(1, OpCode.Create, new CreateRequest("/before", null, Acl.OpenAclUnsafe, 0), connection);
        var created = session.Probe.ExpectMsg<Reply>(TimeSpan.FromSeconds(5));
        Assert.Equal((1, ErrorCode.Ok), (created.Xid, created.Err));
        connection.Detached = true;
        Send(2, OpCode.Create, new CreateRequest("/late", null, Acl.OpenAclUnsafe, 0), connection);
        Send(3, OpCode.Exists, new PathWatchRequest("/late", false), null);
        var reply = session.Probe.ExpectMsg<Reply>(TimeSpan.FromSeconds(5));
        Assert.Equal((3, ErrorCode.NoNode), (reply.Xid, reply.Err));
        session.Probe.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }
}
