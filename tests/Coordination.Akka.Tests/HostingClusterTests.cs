using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Coordination.Akka.Hosting;
using Coordination.Client;
using Coordination.Client.Tests;
using Coordination.Recipes.Tests;
using Coordination.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 20's Akka.Hosting acceptance: three hosts (separate IHosts and ActorSystems, Akka.Remote on 127.0.0.1)
/// configured only through Akka.Hosting — SBR lease-majority, a Cluster Singleton and a sharded entity type, all on
/// the coordination lease of <c>WithCoordinationLease</c> — and a real partition {node1} | {node2, node3} made with
/// the throttler transport's blackhole. Exactly one side survives, the side whose node holds the SBR lease; every
/// incarnation of the singleton and of each entity records its start and stop, and no two of them overlap.
/// Each node reaches the server through its own TCP proxy, so that the second case can take the lease away from the
/// majority: then the minority holds it and survives.
/// </summary>
public sealed class HostingClusterTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    private const string SystemName = "hosting";
    private static readonly TimeSpan LeaseSessionTimeout = TimeSpan.FromSeconds(4);

    // Not in Akka.Hosting's typed options: the throttler adapter (the fault injection) and the cluster's tick
    // intervals and SBR stable-after, tightened so that a partition is decided in seconds.
    private const string TestTransportAndTimings = """
        akka.remote.dot-netty.tcp.applied-adapters = ["trttl"]
        akka.cluster { gossip-interval = 200ms, leader-actions-interval = 200ms, periodic-tasks-initial-delay = 200ms }
        akka.cluster.split-brain-resolver.stable-after = 2s
        # The minority side waits this long before it tries the lease (and then downs itself): a slow loser, whose
        # singleton and entities still run while the winners take over. Only the leases keep them apart then.
        akka.cluster.split-brain-resolver.lease-majority.acquire-lease-delay-for-minority = 4s
        """;

    public enum Scenario { MajorityHoldsTheLease, MinorityHoldsTheLease }

    [SkippableTheory]
    [InlineData(Scenario.MajorityHoldsTheLease)]
    [InlineData(Scenario.MinorityHoldsTheLease)]
    public Task A_partition_is_decided_by_the_lease_and_the_singleton_and_entities_never_run_twice(Scenario scenario) =>
        Servers.RunAsync("ours", null, Output, async server =>
    {
        var clock = Stopwatch.StartNew();
        void Log(string line) { try { Output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F2}s {line}"); } catch (InvalidOperationException) { } }
        var singletons = new IncarnationLog();
        var entities = new IncarnationLog();
        var nodes = new List<Node>();
        await using var observer = await Targets.ConnectAsync(server, Output);
        try
        {
            // node1 first, so that it is the oldest: the singleton and the shard coordinator start there.
            for (var i = 0; i < 3; i++)
            {
                var name = $"node{i + 1}";
                var seedPort = nodes.Count == 0 ? 0 : nodes[0].Port;   // node1 is its own seed
                nodes.Add(await AkkaHosts.OnFreePortAsync(port => StartNodeAsync(name, port, seedPort == 0 ? port : seedPort, server, singletons, entities)));
                await Clients.Eventually(() => nodes.All(n => Cluster.Get(n.System).State.Members.Count(m => m.Status == MemberStatus.Up) == nodes.Count), $"{nodes.Count} members up", 30);
            }
            Log("3 members up");
            await Clients.Eventually(() => singletons.Running("singleton").Any(), "the singleton started", 20);
            Assert.Equal(["node1"], singletons.Running("singleton").Select(r => r.Node));

            var (losers, winners) = scenario == Scenario.MajorityHoldsTheLease ? (nodes[..1], nodes[1..]) : (nodes[1..], nodes[..1]);
            // Entities spread over the nodes (asked through every node's region) until the losing side hosts some,
            // so that the partition must move entities.
            var entityIds = new List<string>();
            await Clients.Eventually(async () =>
            {
                var batch = Enumerable.Range(entityIds.Count, 6).Select(n => $"e{n}").ToList();
                entityIds.AddRange(batch);
                await Task.WhenAll(batch.Select((id, n) => PingAsync(nodes[n % 3], id)));
                return entities.Running().Any(r => losers.Any(l => l.Name == r.Node));
            }, "entities on the losing side", 20);
            Log($"{entityIds.Count} entities on {string.Join(", ", entities.Running().GroupBy(r => r.Node).Select(g => $"{g.Key}: {g.Count()}"))}");

            // Who holds the SBR lease, seen from the server: the owner (host:port) of the lowest lock node.
            using var stopWatching = new CancellationTokenSource();
            var sbrHolders = new HashSet<string>();
            var watching = WatchHoldersAsync(observer, $"{Root}/leases/{SystemName}-akka-sbr", sbrHolders, stopWatching.Token);

            if (scenario == Scenario.MinorityHoldsTheLease)
                foreach (var loser in losers) loser.Proxy.Cut(); // the majority loses the server: it cannot get the lease
            await ClusterPartitions.BlackholeAsync(nodes[0].System, nodes[1..].Select(n => n.System));
            Log($"partition {{node1}} | {{node2, node3}}{(scenario == Scenario.MinorityHoldsTheLease ? ", and node2, node3 cut from the server" : "")}");
            // Ask for every entity through the winning side from now on, so that each starts there as early as it can.
            var rehomed = Task.WhenAll(entityIds.Select(id => PingUntilAnsweredFromAsync(winners, id, seconds: 40)));

            // Exactly one side survives: the losers' systems terminate (SBR downs them), the winners see only each other.
            await Task.WhenAll(losers.Select(l => l.System.WhenTerminated)).Within(45);
            Log($"{string.Join(", ", losers.Select(l => l.Name))} terminated");
            await Clients.Eventually(() => winners.All(w => Cluster.Get(w.System).State.Members.Select(m => m.Address).Order()
                .SequenceEqual(winners.Select(x => Cluster.Get(x.System).SelfAddress).Order())), "the winners see only each other", 30);
            Assert.All(winners, w => Assert.False(w.System.WhenTerminated.IsCompleted, $"{w.Name} terminated"));
            Assert.All(winners, w => Assert.Equal(MemberStatus.Up, Cluster.Get(w.System).SelfMember.Status));

            // The survivors are the side that took the SBR lease, and only that side ever held it.
            await Clients.Eventually(() => { lock (sbrHolders) return sbrHolders.Count > 0; }, "the SBR lease was taken", 10);
            stopWatching.Cancel();
            await watching;
            Log($"SBR lease holders: {string.Join(", ", sbrHolders)}");
            var winnerAddresses = winners.Select(w => $"{SystemName}@127.0.0.1:{w.Port}").ToHashSet(); // SBR's lease owner name
            Assert.Single(sbrHolders);
            Assert.Subset(winnerAddresses, sbrHolders);

            // The singleton runs on the winning side, and every entity answers from there.
            await Clients.Eventually(() => singletons.Running("singleton").Any(r => winners.Any(w => w.Name == r.Node)), "the singleton runs on the winning side", 30);
            await rehomed.Within(45);
            Log("every entity answered from the winning side");
            foreach (var line in singletons.Describe().Concat(entities.Describe()).Take(100)) Log(line);
            Assert.Empty(singletons.Overlaps().Concat(entities.Overlaps()));
            Assert.True(entities.Incarnations > entityIds.Count, "no entity moved: the partition was not exercised");
        }
        finally
        {
            await Task.WhenAll(nodes.Select(n => n.DisposeAsync().AsTask()));
        }
    });

    private async Task<Node> StartNodeAsync(string name, int port, int seedPort, ServerProcess server, IncarnationLog singletons, IncarnationLog entities)
    {
        var proxy = new TcpProxy(server.Port);
        try
        {
            return new Node(name, port, proxy, await StartHostAsync(name, port, seedPort, proxy, singletons, entities));
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }
    }

    private Task<IHost> StartHostAsync(string name, int port, int seedPort, TcpProxy proxy, IncarnationLog singletons, IncarnationLog entities)
    {
        var lease = new CoordinationLeaseOption
        {
            ConnectString = proxy.ConnectString,
            SessionTimeout = LeaseSessionTimeout,
            RootPath = $"{Root}/leases",
            LeaseOperationTimeout = TimeSpan.FromSeconds(3),
        };
        return AkkaHosts.StartAsync(Output, name, SystemName, builder => builder
            .AddHocon(TestTransportAndTimings, HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = port })
            .WithClustering(new ClusterOptions
            {
                SeedNodes = [$"akka.trttl.tcp://{SystemName}@127.0.0.1:{seedPort}"],
                SplitBrainResolver = new LeaseMajorityOption { LeaseImplementation = lease },
                FailureDetector = new PhiAccrualFailureDetectorOptions
                {
                    HeartbeatInterval = TimeSpan.FromMilliseconds(300),
                    AcceptableHeartbeatPause = TimeSpan.FromSeconds(1),
                    ExpectedResponseAfter = TimeSpan.FromMilliseconds(500),
                },
            })
            .WithCoordinationLease(lease)
            .WithSingleton<SingletonKey>("singleton", Props.Create(() => new Tracked(singletons, "singleton", name)),
                new ClusterSingletonOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(200) }, createProxyToo: false)
            .WithShardRegion<EntityKey>("entities", id => Props.Create(() => new Tracked(entities, id, name)), new PingExtractor(),
                // DData: Akka's default coordinator store is persistence, on the per-system in-memory journal here,
                // so a new coordinator would forget where shards live.
                new ShardOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(200), StateStoreMode = StateStoreMode.DData }));
    }

    private static async Task<string> PingAsync(Node via, string entityId, double seconds = 10)
    {
        var region = ActorRegistry.For(via.System).Get<EntityKey>();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try { return (await region.Ask<Pong>(new Ping(entityId), TimeSpan.FromSeconds(1))).Node; }
            catch (AskTimeoutException) when (DateTime.UtcNow < deadline) { }
        }
    }

    private static async Task PingUntilAnsweredFromAsync(IReadOnlyList<Node> side, string entityId, double seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!side.Select(n => n.Name).Contains(await PingAsync(side[^1], entityId, seconds)))
            Assert.True(DateTime.UtcNow < deadline, $"{entityId} never answered from {string.Join(", ", side.Select(n => n.Name))}");
    }

    /// <summary>Polls the lease's lock nodes until cancelled and records the owner of the lowest one (the holder).</summary>
    private static async Task WatchHoldersAsync(CoordinationClient client, string leasePath, HashSet<string> holders, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var children = (await client.GetChildrenAsync(leasePath, ct: ct)).Children;
                if (children.OrderBy(c => c[^10..]).FirstOrDefault() is { } lowest)
                {
                    var owner = Encoding.UTF8.GetString((await client.GetDataAsync($"{leasePath}/{lowest}", ct: ct)).Data ?? []);
                    lock (holders) holders.Add(owner);
                }
            }
            catch (NoNodeException) { }
            catch (OperationCanceledException) { return; }
            try { await Task.Delay(20, ct); } catch (OperationCanceledException) { return; }
        }
    }

    private sealed record Node(string Name, int Port, TcpProxy Proxy, IHost Host) : IAsyncDisposable
    {
        public ActorSystem System => Host.Services.GetRequiredService<ActorSystem>();

        public async ValueTask DisposeAsync()
        {
            try { await Host.StopAsync().WaitAsync(TimeSpan.FromSeconds(20)); } catch (Exception) { /* a downed node has stopped already */ }
            Host.Dispose();
            await Proxy.DisposeAsync();
        }
    }

    private sealed class SingletonKey;
    private sealed class EntityKey;
}
