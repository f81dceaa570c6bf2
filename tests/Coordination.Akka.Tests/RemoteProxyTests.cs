using System.Threading.Channels;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.Client.Tests;
using Coordination.Protocol;
using Coordination.Recipes.Tests;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// An actor on one node uses the proxy of another over Akka.Remote (two ActorSystems, akka.tcp on 127.0.0.1, a real
/// server): requests and replies, a failure with its KeeperException, a watch and a change feed delivered to an
/// actor of the asking node, all through <see cref="ProxyMessageSerializer"/>. JSON is refused on both nodes, so a
/// message left to Akka's default serializer fails the test.
/// </summary>
public sealed class RemoteProxyTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    private static Config NodeConfig(int port, string connectString) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = remote
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = {{port}} }
        akka.actor.serializers.refuse-json = "{{typeof(RefuseJson).AssemblyQualifiedName}}"
        akka.actor.serialization-bindings { "System.Object" = refuse-json }
        coordination.client { connect-string = "{{connectString}}", session-timeout = 10s }
        """);

    [SkippableFact]
    public Task An_actor_on_another_node_uses_the_proxy_through_the_proxy_serializer() => Servers.RunAsync("ours", null, Output, async server =>
    {
        var proxyPort = ServerProcess.FreeLoopbackPort();
        // The proxy's node has only the extension (its defaults bind the serializer); the asking node has the config.
        var proxyNode = ActorSystem.Create("proxy", NodeConfig(proxyPort, server.ConnectString));
        var asker = ActorSystem.Create("asker", NodeConfig(ServerProcess.FreeLoopbackPort(), server.ConnectString)
            .WithFallback(ConfigurationFactory.ParseString(ProxyMessageSerializer.Config)));
        try
        {
            _ = proxyNode.Coordination().Proxy;
            var proxy = await asker.ActorSelection($"akka.tcp://proxy@127.0.0.1:{proxyPort}/system/coordination-client")
                .ResolveOne(TimeSpan.FromSeconds(10)).Within(15);
            var timeout = TimeSpan.FromSeconds(10);
            var path = Root;

            var created = await proxy.Ask<Created>(new Create(path, B("v0")), timeout);
            Assert.Equal(path, created.Path);
            Assert.Equal(0, created.Stat.Version);

            var inbox = Channel.CreateUnbounded<object>();
            var collector = asker.ActorOf(Props.Create(() => new Collector(inbox.Writer)), "collector");
            Assert.IsType<WatchAdded>(await proxy.Ask<object>(new AddWatch(path, AddWatchMode.Persistent, collector), timeout));
            var subscribed = await proxy.Ask<ChangesSubscribed>(new SubscribeChanges(path, created.Stat.Czxid, 16, collector), timeout);

            var set = await proxy.Ask<NodeStat>(new SetData(path, B("v1"), 0), timeout);
            Assert.Equal(1, set.Stat!.Value.Version);
            var data = await proxy.Ask<NodeData>(new GetData(path), timeout);
            Assert.Equal("v1", S(data.Data));
            Assert.Equal(set.Stat, data.Stat);
            var multi = await proxy.Ask<MultiCompleted>(new Multi([Op.Check(path, 1), Op.Create(path + "/c", null, CreateMode.Persistent)]), timeout);
            Assert.IsType<MultiOpResult.Create>(multi.Results[1]);

            // A failure crosses as Status.Failure with the client's exception type and code.
            var failure = await Assert.ThrowsAsync<NoNodeException>(() => proxy.Ask<NodeData>(new GetData(path + "/missing"), timeout));
            Assert.Equal(ErrorCode.NoNode, failure.Code);

            // The watch event and the feed's changes reach the actor on the asking node.
            var seen = new List<object>();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            while (!(seen.OfType<WatchEvent>().Any(e => e.Event.Type == EventType.NodeDataChanged)
                     && seen.OfType<FeedChange>().Any(c => c.Change.Type == EventType.NodeCreated && c.Change.Path == path + "/c")))
                seen.Add(await inbox.Reader.ReadAsync(cts.Token));
            var changes = seen.OfType<FeedChange>().Select(c => c.Change).ToList();
            Assert.All(changes, c => Assert.Equal(subscribed.SubscriptionId, seen.OfType<FeedChange>().First().SubscriptionId));
            var dataChange = Assert.Single(changes, c => c.Type == EventType.NodeDataChanged);
            Assert.Equal("v1", S(dataChange.Data));
            Assert.Equal(set.Stat!.Value.Mzxid, dataChange.Zxid);
            Output.WriteLine($"received {seen.Count} messages: {string.Join(", ", seen.Select(m => m.GetType().Name))}");

            Assert.IsType<ProxyMessageSerializer>(asker.Serialization.FindSerializerFor(new GetData(path)));
            Assert.IsType<ProxyMessageSerializer>(proxyNode.Serialization.FindSerializerFor(new NodeData(path, null, default)));
            Assert.Equal(0, RefuseJson.Refused);
        }
        finally
        {
            await Task.WhenAll(asker.Terminate(), proxyNode.Terminate()).WaitAsync(TimeSpan.FromSeconds(20));
        }
    });

    private sealed class Collector : ReceiveActor
    {
        public Collector(ChannelWriter<object> inbox) => ReceiveAny(m => inbox.TryWrite(m));
    }

    /// <summary>Stands in for Akka's JSON serializer: anything that would have gone through it fails and is counted.</summary>
    public sealed class RefuseJson(ExtendedActorSystem system) : global::Akka.Serialization.Serializer(system)
    {
        private static int _refused;
        public static int Refused => Volatile.Read(ref _refused);
        public override int Identifier => 4812;
        public override bool IncludeManifest => true;
        public override byte[] ToBinary(object obj)
        {
            Interlocked.Increment(ref _refused);
            throw new InvalidOperationException($"{obj.GetType()} would have gone through JSON");
        }
        public override object FromBinary(byte[] bytes, Type type)
        {
            Interlocked.Increment(ref _refused);
            throw new InvalidOperationException($"{type} would have come through JSON");
        }
    }
}
