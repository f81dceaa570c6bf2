using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Coordination.Akka.Hosting;
using Coordination.Client.Tests;
using Coordination.Recipes.Tests;
using Coordination.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 21, scope 4: Sharding <c>use-lease</c> and SBR lease-majority on the lease of an EMBEDDED ensemble, with no
/// coordination service outside the cluster: three Akka.Hosting nodes, each a role member of the ensemble (bootstrapped
/// from cluster membership), host a sharded entity type whose shards take the coordination lease in process. Node 3 is
/// cut off from the others on the cluster's transport (the throttler's blackhole; its member links stay) and, being
/// the minority, slow to give up (<c>acquire-lease-delay-for-minority</c>): the majority downs it at once and
/// reallocates its shards while its entities still run. Every incarnation of every entity is recorded
/// (<see cref="IncarnationLog"/>); none may overlap another of the same entity.
/// </summary>
public sealed class EmbeddedShardingLeaseTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string SystemName = "sharded";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "embedded-sharding-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<int, IHost> _hosts = new();
    private readonly int[] _remoting = Enumerable.Range(0, 3).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
    private readonly int[] _memberPorts = Enumerable.Range(0, 3).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
    private readonly IncarnationLog _entities = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => EmbeddedMembers.StopAsync(_hosts.Values, _root);

    [Fact]
    public async Task Entities_under_the_embedded_lease_never_run_twice_when_a_cut_off_node_is_downed()
    {
        var clock = Stopwatch.StartNew();
        void Log(string line) { try { output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F2}s {line}"); } catch (InvalidOperationException) { } }
        // Node 1 first: the oldest, so the shard coordinator starts there, on the side that stays.
        _hosts[1] = await StartNodeAsync(1);
        foreach (var (id, host) in await Task.WhenAll(new[] { 2, 3 }.Select(async id => (id, await StartNodeAsync(id)))).WaitAsync(TimeSpan.FromSeconds(90)))
            _hosts[id] = host;
        await Clients.Eventually(() => _hosts.Keys.All(id => Cluster.Get(Sys(id)).State.Members.Count(m => m.Status == MemberStatus.Up) == 3), "3 members up", 60);
        Log("3 members up");

        // Entities spread over the nodes (asked through every node's region) until node 3 hosts some. The first pings
        // also wait for the ensemble: a shard starts its entities only once it holds its lease.
        var entityIds = new List<string>();
        await Clients.Eventually(async () =>
        {
            var batch = Enumerable.Range(entityIds.Count, 6).Select(n => $"e{n}").ToList();
            entityIds.AddRange(batch);
            await Task.WhenAll(batch.Select((id, n) => PingAsync(n % 3 + 1, id, seconds: 60)));
            return _entities.Running().Any(r => r.Node == "node3");
        }, "entities on node 3", 90);
        Log($"{entityIds.Count} entities on {string.Join(", ", _entities.Running().GroupBy(r => r.Node).Select(g => $"{g.Key}: {g.Count()}"))}");

        await ClusterPartitions.BlackholeAsync(Sys(3), [Sys(1), Sys(2)]);
        Log("node 3 cut off from nodes 1 and 2 on the cluster transport");
        // Every entity is asked for through node 1 from now on, so that each starts on the majority as early as it can.
        var rehomed = Task.WhenAll(entityIds.Select(id => PingUntilAnsweredFromAsync(id, ["node1", "node2"], seconds: 60)));

        await Sys(3).WhenTerminated.WaitAsync(TimeSpan.FromSeconds(60));
        Log("node 3 downed itself and terminated");
        await rehomed.WaitAsync(TimeSpan.FromSeconds(70));
        Log("every entity answered from node 1 or node 2");
        foreach (var line in _entities.Describe()) Log(line);
        Assert.Empty(_entities.Overlaps());
        Assert.True(_entities.Incarnations > entityIds.Count, "no entity moved: the downing was not exercised");
        Assert.All(new[] { 1, 2 }, id => Assert.Equal(MemberStatus.Up, Cluster.Get(Sys(id)).SelfMember.Status));
    }

    private ActorSystem Sys(int node) => _hosts[node].Services.GetRequiredService<ActorSystem>();

    private async Task<string> PingAsync(int via, string entityId, double seconds)
    {
        var region = ActorRegistry.For(Sys(via)).Get<EntityKey>();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try { return (await region.Ask<Pong>(new Ping(entityId), TimeSpan.FromSeconds(1))).Node; }
            catch (AskTimeoutException) when (DateTime.UtcNow < deadline) { }
        }
    }

    private async Task PingUntilAnsweredFromAsync(string entityId, string[] side, double seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var from = await PingAsync(1, entityId, seconds);
            if (side.Contains(from)) return;
            Assert.True(DateTime.UtcNow < deadline, $"{entityId} never answered from {string.Join(", ", side)}");
        }
    }

    /// <summary>A role member (id = node) with its member from cluster membership; the lease, SBR and the shards on its
    /// in-process path (no connect string: the lease reaches nothing else).</summary>
    private async Task<IHost> StartNodeAsync(int id)
    {
        var member = ConfigurationFactory.ParseString($$"""
            coordination {
              server-id = {{id}}
              data-dir = "{{Path.Combine(_root, $"node{id}").Replace("\\", "\\\\")}}"
              tick-time = 200ms
              ensemble {
                cluster { enabled = on, member-endpoint = "127.0.0.1:{{_memberPorts[id - 1]}}", initial-voters = 3, check-interval = 500ms }
                tick = 100ms
                sync-limit = 10
                init-limit = 30
                election-finalize-wait = 100ms
                auth.secret = "embedded-sharding-test-secret"
              }
            }
            """);
        // The throttler adapter (the fault injection) and tight cluster timings (AKKA-NOTES §6). The minority waits
        // before it tries the SBR lease: a slow loser, whose entities run on while the majority takes over.
        const string transportAndTimings = """
            akka.remote.dot-netty.tcp.applied-adapters = ["trttl"]
            akka.cluster { gossip-interval = 200ms, leader-actions-interval = 200ms, periodic-tasks-initial-delay = 200ms }
            akka.cluster.split-brain-resolver.stable-after = 2s
            akka.cluster.split-brain-resolver.lease-majority.acquire-lease-delay-for-minority = 4s
            """;
        var lease = new CoordinationLeaseOption { SessionTimeout = TimeSpan.FromSeconds(4), LeaseOperationTimeout = TimeSpan.FromSeconds(3) };
        var name = $"node{id}";
        return await AkkaHosts.StartAsync(output, name, SystemName, builder => builder
            .AddHocon(transportAndTimings, HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = _remoting[id - 1] })
            .WithClustering(new ClusterOptions
            {
                Roles = ["coordination"],
                SeedNodes = [$"akka.trttl.tcp://{SystemName}@127.0.0.1:{_remoting[0]}"],
                SplitBrainResolver = new LeaseMajorityOption { LeaseImplementation = lease },
                FailureDetector = new PhiAccrualFailureDetectorOptions
                {
                    HeartbeatInterval = TimeSpan.FromMilliseconds(300),
                    AcceptableHeartbeatPause = TimeSpan.FromSeconds(1),
                    ExpectedResponseAfter = TimeSpan.FromMilliseconds(500),
                },
            })
            .WithCoordinationServer(o => o.Config = member)
            .WithCoordinationLease(lease)
            // DData: the coordinator's state survives a new coordinator (Akka's default store is persistence, in memory here).
            .WithShardRegion<EntityKey>("entities", entityId => Props.Create(() => new Tracked(_entities, entityId, name)), new PingExtractor(),
                new ShardOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(200), StateStoreMode = StateStoreMode.DData }));
    }

    private sealed class EntityKey;
}
