using Coordination.TestKit;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Coordination;
using Coordination.Akka;
using Coordination.Akka.Lease;
using Coordination.Client;
using Coordination.Client.Tests;
using Coordination.Recipes.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// The lease, configured through HOCON only, used by a 3-node Akka.NET cluster (3 ActorSystems in this process over
/// akka.tcp on 127.0.0.1): one holder at a time, and the holder's leaseLost fires when its session expires.
/// </summary>
public sealed class LeaseClusterTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    private const string LeasePath = "akka.coordination.lease.coordination";

    private Config NodeConfig(string connectString, int port, int seedPort) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = {{port}} }
        akka.cluster.seed-nodes = ["akka.tcp://lease@127.0.0.1:{{seedPort}}"]
        akka.cluster.failure-detector { heartbeat-interval = 300ms, acceptable-heartbeat-pause = 1s, expected-response-after = 500ms }
        akka.cluster { gossip-interval = 200ms, leader-actions-interval = 200ms, periodic-tasks-initial-delay = 200ms }
        akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
        akka.cluster.split-brain-resolver {
          active-strategy = lease-majority
          lease-majority.lease-implementation = "{{LeasePath}}"
        }
        {{LeasePath}} {
          connect-string = "{{connectString}}"
          session-timeout = 4s
          root-path = "{{Root}}/leases"
          lease-operation-timeout = 5s
        }
        """).WithFallback(CoordinationAkka.DefaultConfig());

    private async Task<List<ActorSystem>> StartClusterAsync(string connectString)
    {
        var ports = Enumerable.Range(0, 3).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
        var systems = ports.Select(p => ActorSystem.Create("lease", NodeConfig(connectString, p, ports[0]))).ToList();
        await Clients.Eventually(() => systems.All(s => Cluster.Get(s).State.Members.Count(m => m.Status == MemberStatus.Up) == 3), "3 members up", 30);
        return systems;
    }

    private static async Task StopAsync(IEnumerable<ActorSystem> systems) =>
        await Task.WhenAll(systems.Select(s => s.Terminate().WaitAsync(TimeSpan.FromSeconds(20))));

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Only_one_node_holds_the_lease_at_a_time(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        var systems = await StartClusterAsync(server.ConnectString);
        try
        {
            var detector = new OverlapDetector();
            var leases = systems.Select((s, i) => LeaseProvider.Get(s).GetLease("singleton", LeasePath, $"node{i}")).ToList();
            Assert.All(leases, l => Assert.IsType<CoordinationLease>(l));
            var grants = new int[3];
            await Task.WhenAll(leases.Select(async (lease, i) =>
            {
                var rng = new Random(i);
                while (Volatile.Read(ref grants[i]) < 3)
                {
                    if (!await lease.Acquire(_ => { }))
                    {
                        Assert.False(lease.CheckLease());
                        await Task.Delay(rng.Next(5, 30));
                        continue;
                    }
                    Assert.True(await lease.Acquire()); // already ours: granted again
                    detector.Enter($"node{i}");
                    Assert.True(lease.CheckLease());
                    await Task.Delay(rng.Next(10, 40));
                    detector.Exit($"node{i}");
                    Interlocked.Increment(ref grants[i]);
                    Assert.True(await lease.Release());
                    Assert.False(lease.CheckLease());
                    await Task.Delay(rng.Next(5, 30)); // let the others in
                }
            })).Within(45);
            Output.WriteLine($"{detector.Entries} grants, max inside {detector.MaxInside}");
            Assert.Empty(detector.Overlaps);
            Assert.Equal(9, detector.Entries);
        }
        finally { await StopAsync(systems); }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Lease_lost_fires_when_the_holders_session_expires_and_another_node_takes_over(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        var systems = await StartClusterAsync(server.ConnectString);
        try
        {
            var leases = systems.Select((s, i) => LeaseProvider.Get(s).GetLease("sbr", LeasePath, $"node{i}")).ToList();
            var lost = new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously);
            Assert.True(await leases[0].Acquire(e => lost.TrySetResult(e)).Within());
            // Fencing: each holder's token (its lock node's czxid) is above every earlier holder's.
            var staleToken = ((CoordinationLease)leases[0]).FencingToken;
            Assert.True(staleToken > 0, $"a held lease has a token ({staleToken})");
            Assert.False(await leases[1].Acquire().Within());
            Assert.False(await leases[2].Acquire().Within());

            // Expire node0's session on the server (a second client attaches to it and closes it).
            var holderClient = await CoordinationClients.Get(systems[0]).GetAsync(CoordinationLeaseSettings.Create(
                LeaseSettings.Create(systems[0].Settings.Config.GetConfig(LeasePath), "sbr", "node0")).Connection);
            await Clients.ExpireSessionAsync(server, holderClient, Output);
            var cause = await lost.Task.Within(20);
            Assert.IsType<LeaseException>(cause);
            Assert.False(leases[0].CheckLease());
            await Clients.Eventually(async () => await leases[1].Acquire(), "node1 acquires after the expiry", 20);
            Assert.True(leases[1].CheckLease());
            var newToken = ((CoordinationLease)leases[1]).FencingToken;
            Assert.True(newToken > staleToken, $"the new holder's token {newToken} is above the stale holder's {staleToken}");
            Assert.Equal(0, ((CoordinationLease)leases[0]).FencingToken);
            Assert.False(await leases[2].Acquire().Within());
            // node0's client starts a new session by itself; it can contend again once node1 lets go.
            await Clients.Eventually(() => holderClient.State.IsConnected(), "node0 reconnected with a new session", 20);
            Assert.False(await leases[0].Acquire().Within());
            Assert.True(await leases[1].Release().Within());
            await Clients.Eventually(async () => await leases[0].Acquire(), "node0 acquires again", 20);
            Assert.True(((CoordinationLease)leases[0]).FencingToken > newToken, "node0's new token is above node1's");
        }
        finally { await StopAsync(systems); }
    });
}
