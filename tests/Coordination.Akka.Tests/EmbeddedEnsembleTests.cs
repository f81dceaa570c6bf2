using System.Text;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Coordination;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Coordination.Akka.Hosting;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 21, scopes 1 and 3: three application ActorSystems (Akka.Hosting, cluster provider, Akka.Remote's own
/// transport on 127.0.0.1) each embed an ensemble member with <c>WithCoordinationServer</c> (journal on disk, client
/// port off). Clients on every node reach their local member in process only (there is no client port to reach):
/// a linearizability check on a few keys before and after the leader's system is terminated, and the Akka lease on
/// the survivors.
/// </summary>
public sealed class EmbeddedEnsembleTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string SystemName = "app";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "embedded-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<IHost> _hosts = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => EmbeddedMembers.StopAsync(_hosts, _root);

    [Fact]
    public async Task Embedded_members_serve_in_process_clients_linearizably_and_survive_a_terminated_leader()
    {
        var remoting = Enumerable.Range(0, 3).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
        var members = Enumerable.Range(0, 3).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
        await Task.WhenAll(Enumerable.Range(1, 3).Select(async id =>
        {
            var host = await StartNodeAsync(id, remoting, members);
            lock (_hosts) _hosts.Add(host);
        })).WaitAsync(TimeSpan.FromSeconds(90));
        var nodes = _hosts.Select(h => h.Services.GetRequiredService<ActorSystem>()).OrderBy(s => s.Settings.Config.GetInt("coordination.server-id")).ToArray();

        var modes = await WaitServingAsync(nodes, TimeSpan.FromSeconds(60));
        output.WriteLine("modes: " + string.Join(", ", modes));
        Assert.Single(modes, m => m == "leader");

        // Every client of the history connects in process, spread over the three members.
        var next = 0;
        Task<WireClient> ConnectAny(IReadOnlyList<ActorSystem> on) => ConnectInProcessAsync(on[Interlocked.Increment(ref next) % on.Count]);
        var before = await RecordAsync(() => ConnectAny(nodes), "before");

        // Terminate the leader's system (no Leave: its sockets just close); the other two elect and keep serving.
        var leader = nodes[Array.IndexOf(modes, "leader")];
        await leader.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
        var survivors = nodes.Where(n => n != leader).ToArray();
        var after = await WaitServingAsync(survivors, TimeSpan.FromSeconds(60));
        output.WriteLine("after the leader's end: " + string.Join(", ", after));
        Assert.Single(after, m => m == "leader");
        var afterHistory = await RecordAsync(() => ConnectAny(survivors), "after");
        Assert.True(before.Count(o => o.Outcome == Outcome.Ok) > 0 && afterHistory.Count(o => o.Outcome == Outcome.Ok) > 0);

        // The Akka lease on the survivors: its configured connect string reaches nothing over TCP, so it works only
        // through the in-process path to each node's own member.
        var leaseA = LeaseProvider.Get(survivors[0]).GetLease("embedded-lease", "akka.coordination.lease.coordination", "owner-a");
        var leaseB = LeaseProvider.Get(survivors[1]).GetLease("embedded-lease", "akka.coordination.lease.coordination", "owner-b");
        Assert.True(await leaseA.Acquire().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.False(await leaseB.Acquire().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(await leaseA.Release().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(await leaseB.Acquire().WaitAsync(TimeSpan.FromSeconds(20)));

        // The actor proxy of each survivor (no connect string set: only the in-process path reaches a member) writes
        // and reads back its own node, and reads the other's once its member has applied it.
        for (var i = 0; i < survivors.Length; i++)
        {
            var proxy = survivors[i].Coordination().Proxy;
            await proxy.Ask<Created>(new Create($"/proxy-{i}", Encoding.UTF8.GetBytes($"from {i}")), TimeSpan.FromSeconds(20));
            var own = await proxy.Ask<NodeData>(new GetData($"/proxy-{i}"), TimeSpan.FromSeconds(20));
            Assert.Equal($"from {i}", Encoding.UTF8.GetString(own.Data!));
        }
        var other = survivors[1].Coordination().Proxy;
        await proxyWaitAsync(() => other.Ask<object>(new GetData("/proxy-0"), TimeSpan.FromSeconds(5)));

        static async Task proxyWaitAsync(Func<Task<object>> read)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                try
                {
                    if (await read() is NodeData data && Encoding.UTF8.GetString(data.Data!) == "from 0") return;
                }
                catch (NoNodeException) { /* not applied there yet */ }
                Assert.True(DateTime.UtcNow < deadline, "the other member never showed /proxy-0");
                await Task.Delay(100);
            }
        }
    }

    private async Task<IHost> StartNodeAsync(int id, int[] remoting, int[] members)
    {
        var voters = string.Join("\n", members.Select((port, i) => $"{i + 1} = \"127.0.0.1:{port}\""));
        var member = ConfigurationFactory.ParseString($$"""
            coordination {
              server-id = {{id}}
              data-dir = "{{Path.Combine(_root, $"node{id}").Replace("\\", "\\\\")}}"
              tick-time = 200ms
              ensemble {
                voters {
            {{voters}}
                }
                tick = 100ms
                sync-limit = 10
                init-limit = 30
                election-finalize-wait = 100ms
                auth.secret = "embedded-ensemble-test-secret"
              }
            }
            """);
        return await AkkaHosts.StartAsync(output, $"node{id}", SystemName, builder => builder
            .AddHocon($"coordination.server-id = {id}\nakka.loglevel = WARNING", HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = remoting[id - 1] })
            .WithClustering(new ClusterOptions { Roles = ["coordination"], SeedNodes = [$"akka.tcp://{SystemName}@127.0.0.1:{remoting[0]}"] })
            .WithCoordinationServer(o => o.Config = member)
            .WithCoordinationLease(new CoordinationLeaseOption { SessionTimeout = TimeSpan.FromSeconds(4), LeaseOperationTimeout = TimeSpan.FromSeconds(5) })
            .WithCoordinationClient(o => o.SessionTimeout = TimeSpan.FromSeconds(4)));
    }

    private static Task<WireClient> ConnectInProcessAsync(ActorSystem system) => EmbeddedMembers.ConnectInProcessAsync(system, sessionTimeoutMs: 4000);

    /// <summary>Each member's mode (srvr over an in-process connection), once every one of them serves.</summary>
    private static async Task<string[]> WaitServingAsync(IReadOnlyList<ActorSystem> nodes, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var modes = await Task.WhenAll(nodes.Select(ModeAsync));
            if (modes.All(m => m is "leader" or "follower") || DateTime.UtcNow > deadline) return modes;
            await Task.Delay(200);
        }
    }

    private static Task<string> ModeAsync(ActorSystem system) => EmbeddedMembers.ModeAsync(system);

    private async Task<List<Operation>> RecordAsync(Func<Task<WireClient>> connect, string prefix)
    {
        var recorder = new HistoryRecorder(connect, [$"/{prefix}-a", $"/{prefix}-b", $"/{prefix}-c"], seed: prefix.Length) { MaxOpsPerPath = 150 };
        await recorder.RunAsync(clients: 3, TimeSpan.FromSeconds(3)).WaitAsync(TimeSpan.FromSeconds(60));
        var history = recorder.History.ToList();
        var results = LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(20));
        foreach (var r in results) output.WriteLine($"{prefix} {r.Path}: {r.Operations} ops, linearizable={r.Linearizable} {r.Explanation}");
        Assert.All(results, r => Assert.True(r.Linearizable, r.Explanation));
        output.WriteLine($"{prefix}: {history.Count} ops, {history.Count(o => o.Outcome == Outcome.Ok)} ok");
        return history;
    }
}
