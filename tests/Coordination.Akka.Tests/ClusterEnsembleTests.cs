using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Coordination.Akka.Hosting;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 21, scope 2: Akka.Cluster supplies the membership, Zab decides. Six application ActorSystems (Akka.Hosting,
/// cluster provider, real Akka.Remote on 127.0.0.1): five carry the coordination role and no member list. The first
/// three to come Up bootstrap the voters; the fourth and fifth join as observers through reconfigs their leader's host
/// proposes; a voter's system is terminated (no Leave), and the leader's host promotes an observer in its place
/// through a reconfig once the cluster shows the voter unreachable past the grace. Before and after, a linearizability
/// check on a few keys through in-process clients on every member and through the actor proxy of a member, reached
/// across Akka.Remote from the sixth node, which has no member.
/// </summary>
public sealed class ClusterEnsembleTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string SystemName = "app";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "cluster-ensemble-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<int, IHost> _hosts = new();
    private readonly int[] _remoting = Enumerable.Range(0, 6).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();
    private readonly int[] _memberPorts = Enumerable.Range(0, 5).Select(_ => ServerProcess.FreeLoopbackPort()).ToArray();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => EmbeddedMembers.StopAsync(_hosts.Values, _root);

    [Fact]
    public async Task Cluster_members_bootstrap_observers_join_and_an_observer_replaces_a_terminated_voter_linearizably()
    {
        var total = Stopwatch.StartNew();
        // The first three role members come Up first: they are the oldest, so they bootstrap the voters.
        await StartNodesAsync([1, 2, 3]);
        var first = await WaitConfigAsync(1, c => c.Voters.Count() == 3, TimeSpan.FromSeconds(60), "the first three bootstrapping");
        Assert.Equal(new long[] { 1, 2, 3 }, first.Voters.Order());
        Assert.Empty(first.Observers);

        // The fourth and fifth, and a node without the role (it embeds no member).
        await StartNodesAsync([4, 5, 6]);
        var grown = await WaitConfigAsync(1, c => c.Observers.Count() == 2, TimeSpan.FromSeconds(60), "4 and 5 joining as observers");
        Assert.Equal(new long[] { 1, 2, 3 }, grown.Voters.Order());
        Assert.Equal(new long[] { 4, 5 }, grown.Observers.Order());
        var modes = await WaitModesAsync([1, 2, 3, 4, 5], m => m.Count(x => x == "leader") == 1 && m.Count(x => x == "observer") == 2, TimeSpan.FromSeconds(60));
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s grown: {grown.ToString().Replace('\n', ' ')}; modes {string.Join(", ", modes)}");
        Assert.Null(LocalCoordinationMember.For(Sys(6)).Connector);

        await CheckLinearizableAsync("before", [1, 2, 3, 4, 5]);

        // Terminate a voter that is not the leader (no Leave: its sockets just close).
        var leader = Array.IndexOf(modes, "leader") + 1;
        var victim = new[] { 1, 2, 3 }.First(id => id != leader);
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s terminating voter {victim} (leader {leader})");
        var killedAt = Stopwatch.StartNew();
        await Sys(victim).Terminate().WaitAsync(TimeSpan.FromSeconds(30));

        var promoted = await WaitConfigAsync(leader, c => !c.Voters.Contains(victim) && c.Voters.Count() == 3, TimeSpan.FromSeconds(45),
            $"an observer promoted in place of voter {victim}");
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s promoted {killedAt.Elapsed.TotalSeconds:F1}s after the kill: {promoted.ToString().Replace('\n', ' ')}");
        Assert.Single(promoted.Voters, v => v is 4 or 5);
        // The voter it replaced is gone from the cluster: after the swap demoted it, it leaves the configuration (the
        // swap may already be followed by that removal when the configuration is read, so only this end is asserted).
        var departed = await WaitConfigAsync(leader, c => !c.Voters.Contains(victim) && !c.Observers.Contains(victim), TimeSpan.FromSeconds(45),
            $"departed voter {victim} removed from the configuration");
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s departed voter removed: {departed.ToString().Replace('\n', ' ')}");
        var survivors = new[] { 1, 2, 3, 4, 5 }.Where(id => id != victim).ToArray();
        var after = await WaitModesAsync(survivors, m => m.Count(x => x == "leader") == 1 && m.Count(x => x == "follower") == 2 && m.Count(x => x == "observer") == 1,
            TimeSpan.FromSeconds(60));
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s modes after: {string.Join(", ", after)}");

        await CheckLinearizableAsync("after", survivors);
        output.WriteLine($"{total.Elapsed.TotalSeconds:F1}s done");
    }

    private ActorSystem Sys(int node) => _hosts[node].Services.GetRequiredService<ActorSystem>();

    private async Task StartNodesAsync(int[] nodes)
    {
        var started = await Task.WhenAll(nodes.Select(async id => (id, host: await StartNodeAsync(id)))).WaitAsync(TimeSpan.FromSeconds(90));
        foreach (var (id, host) in started) _hosts[id] = host;
    }

    /// <summary>Node 1..5 carry the role and embed a member (no voters listed); node 6 has neither.</summary>
    private async Task<IHost> StartNodeAsync(int id)
    {
        var member = ConfigurationFactory.ParseString($$"""
            coordination {
              server-id = {{id}}
              data-dir = "{{Path.Combine(_root, $"node{id}").Replace("\\", "\\\\")}}"
              tick-time = 200ms
              ensemble {
                cluster {
                  enabled = on
                  member-endpoint = "127.0.0.1:{{(id <= 5 ? _memberPorts[id - 1] : 1)}}"
                  initial-voters = 3
                  promote-observers = on
                  unreachable-grace = 2s
                  check-interval = 500ms
                }
                tick = 100ms
                sync-limit = 10
                init-limit = 30
                election-finalize-wait = 100ms
                auth.secret = "cluster-ensemble-test-secret"
              }
            }
            """);
        // Tight failure detection (AKKA-NOTES §6): unreachable in about 2 s, downed by SBR a few seconds later. A
        // terminated system leaves no Leave behind.
        const string tight = """
            akka.loglevel = INFO
            akka.coordinated-shutdown.run-by-actor-system-terminate = off
            akka.cluster.failure-detector { heartbeat-interval = 300ms, acceptable-heartbeat-pause = 1s, expected-response-after = 500ms }
            akka.cluster { gossip-interval = 200ms, leader-actions-interval = 200ms, periodic-tasks-initial-delay = 200ms, unreachable-nodes-reaper-interval = 250ms }
            akka.cluster.split-brain-resolver.stable-after = 3s
            """;
        return await AkkaHosts.StartAsync(output, $"node{id}", SystemName, builder =>
        {
            builder.AddHocon(tight, HoconAddMode.Prepend)
                .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = _remoting[id - 1] })
                .WithClustering(new ClusterOptions { Roles = id <= 5 ? ["coordination"] : ["web"], SeedNodes = [$"akka.tcp://{SystemName}@127.0.0.1:{_remoting[0]}"] });
            // Node 6 needs no client of its own: it reaches a member's proxy across Akka.Remote, with the proxy's serializer.
            if (id <= 5) builder.WithCoordinationServer(o => o.Config = member).WithCoordinationClient(o => o.SessionTimeout = TimeSpan.FromSeconds(6));
            else builder.AddHocon(ProxyMessageSerializer.Config, HoconAddMode.Append);
        });
    }

    /// <summary>The committed configuration as member <paramref name="node"/> serves it, once it satisfies <paramref name="done"/>.</summary>
    private async Task<DynamicConfig> WaitConfigAsync(int node, Func<DynamicConfig, bool> done, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        DynamicConfig? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                await using var client = await ConnectInProcessAsync(node);
                await client.SyncAsync("/zookeeper/config").WaitAsync(TimeSpan.FromSeconds(5));
                var (header, response) = await client.GetDataAsync("/zookeeper/config").WaitAsync(TimeSpan.FromSeconds(5));
                if (header.Err == ErrorCode.Ok && response is GetDataResponse { Data: { } data })
                {
                    last = DynamicConfig.Parse(Encoding.UTF8.GetString(data), out _);
                    if (last is not null && done(last)) return last;
                }
            }
            catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or OperationCanceledException) { }
            await Task.Delay(250);
        }
        Assert.Fail($"{what}: not within {timeout.TotalSeconds:F0}s; last configuration seen on {node}: {last?.ToString().Replace('\n', ' ') ?? "none"}");
        return null!;
    }

    private async Task<string[]> WaitModesAsync(int[] nodes, Func<string[], bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var modes = await Task.WhenAll(nodes.Select(ModeAsync));
            if (done(modes)) return modes;
            Assert.True(DateTime.UtcNow < deadline, $"modes of {string.Join(", ", nodes)} did not settle: {string.Join(", ", modes)}");
            await Task.Delay(250);
        }
    }

    private Task<string> ModeAsync(int node) => EmbeddedMembers.ModeAsync(Sys(node));

    private Task<WireClient> ConnectInProcessAsync(int node) => EmbeddedMembers.ConnectInProcessAsync(Sys(node), sessionTimeoutMs: 6000);

    /// <summary>
    /// Three in-process clients spread over <paramref name="members"/> and one client on node 6 that drives the actor
    /// proxy of the youngest member across Akka.Remote, on the same three keys at once; the merged history must be
    /// linearizable, and each kind of client must have completed operations.
    /// </summary>
    private async Task CheckLinearizableAsync(string prefix, int[] members)
    {
        string[] paths = [$"/{prefix}-a", $"/{prefix}-b", $"/{prefix}-c"];
        var next = 0;
        var recorder = new HistoryRecorder(() => ConnectInProcessAsync(members[Interlocked.Increment(ref next) % members.Length]), paths, seed: prefix.Length)
        {
            MaxOpsPerPath = 120,
        };
        var remoteTarget = await Sys(6).ActorSelection($"akka.tcp://{SystemName}@127.0.0.1:{_remoting[members.Max() - 1]}/system/coordination-client")
            .ResolveOne(TimeSpan.FromSeconds(10));
        // The member's proxy connects to its member once that member serves (an observer that just joined may still be
        // syncing): wait for one answer first, so that the recorded window measures operations, not the connect.
        var warm = Stopwatch.StartNew();
        while (true)
        {
            try { await remoteTarget.Ask<NodeStat>(new Exists("/"), TimeSpan.FromSeconds(5)); break; }
            catch (Exception e) when (warm.Elapsed < TimeSpan.FromSeconds(30)) { output.WriteLine($"{prefix}: remote proxy not answering yet: {e.GetType().Name}"); }
        }
        var remote = new ProxyRecorder(remoteTarget, paths, client: 100);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(4));
        await Task.WhenAll(recorder.RunAsync(clients: 3, TimeSpan.FromSeconds(4)), remote.RunAsync(stop.Token)).WaitAsync(TimeSpan.FromSeconds(60));
        var history = recorder.History.Concat(remote.History).ToList();
        var results = LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(20));
        foreach (var r in results) output.WriteLine($"{prefix} {r.Path}: {r.Operations} ops, linearizable={r.Linearizable} {r.Explanation}");
        Assert.All(results, r => Assert.True(r.Linearizable, r.Explanation));
        output.WriteLine($"{prefix}: {history.Count} ops, {history.Count(o => o.Outcome == Outcome.Ok)} ok; through the remote proxy " +
                         string.Join(", ", remote.History.GroupBy(o => o.Outcome).Select(g => $"{g.Count()} {g.Key}")));
        foreach (var error in remote.History.Where(o => o.Outcome == Outcome.Unknown).Select(o => o.Error).Distinct().Take(5)) output.WriteLine($"{prefix}: remote unknown: {error}");
        Assert.True(recorder.History.Count(o => o.Outcome == Outcome.Ok) > 0, "no in-process operation completed");
        Assert.True(remote.History.Count(o => o.Outcome == Outcome.Ok) > 0, "no operation through the remote proxy completed");
        // A refused op's exception crosses with its type (ProxyMessageSerializer era): none may arrive without a cause.
        Assert.DoesNotContain(remote.History, o => o.Error?.Contains("via Failure message", StringComparison.Ordinal) == true);
    }

    /// <summary>
    /// One client of the actor proxy on another node: random create / conditional set / conditional delete /
    /// sync-then-read on the given keys, each an Ask across Akka.Remote, recorded as the linearizability checker reads it
    /// (a timeout or transport failure is an unknown outcome).
    /// </summary>
    private sealed class ProxyRecorder(IActorRef proxy, IReadOnlyList<string> paths, int client)
    {
        private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(5);
        public List<Operation> History { get; } = new();

        public async Task RunAsync(CancellationToken ct)
        {
            var random = new Random(client);
            for (var counter = 0; !ct.IsCancellationRequested; counter++)
            {
                var path = paths[random.Next(paths.Count)];
                var kind = (OpKind)random.Next(4);
                var value = $"r{client}-{counter}";
                var version = random.Next(3) == 0 ? -1 : random.Next(0, 4);
                var invoke = Stopwatch.GetTimestamp();
                Operation op;
                try
                {
                    switch (kind)
                    {
                        case OpKind.Create:
                            await proxy.Ask<Created>(new Create(path, Encoding.UTF8.GetBytes(value)), OpTimeout);
                            op = Done(path, kind, invoke, Outcome.Ok, value, -1);
                            break;
                        case OpKind.Set:
                            await proxy.Ask<object>(new SetData(path, Encoding.UTF8.GetBytes(value), version), OpTimeout);
                            op = Done(path, kind, invoke, Outcome.Ok, value, version);
                            break;
                        case OpKind.Delete:
                            await proxy.Ask<Deleted>(new Delete(path, version), OpTimeout);
                            op = Done(path, kind, invoke, Outcome.Ok, null, version);
                            break;
                        default:
                            await proxy.Ask<Synced>(new Sync(path), OpTimeout);
                            var data = await proxy.Ask<NodeData>(new GetData(path), OpTimeout);
                            op = Done(path, kind, invoke, Outcome.Ok, null, -1) with
                            {
                                ReadValue = data.Data is null ? null : Encoding.UTF8.GetString(data.Data), ReadVersion = data.Stat.Version, ReadExists = true,
                            };
                            break;
                    }
                }
                catch (Exception e) when (e is NoNodeException or NodeExistsException or BadVersionException)
                {
                    // By type: the exception crossed Akka.Remote (Status.Failure), which keeps its type and message.
                    var error = e switch { NoNodeException => "NoNode", NodeExistsException => "NodeExists", _ => "BadVersion" };
                    op = Done(path, kind, invoke, Outcome.Failed, kind is OpKind.Create or OpKind.Set ? value : null, kind is OpKind.Set or OpKind.Delete ? version : -1) with { Error = error };
                }
                catch (Exception e)
                {
                    // Timeouts, connection loss, anything else: it may or may not have happened (the error is only reported).
                    op = Done(path, kind, invoke, Outcome.Unknown, kind is OpKind.Create or OpKind.Set ? value : null, kind is OpKind.Set or OpKind.Delete ? version : -1)
                        with { Error = $"{e.GetType().Name}: {e.Message}" };
                }
                History.Add(op);
            }
        }

        private Operation Done(string path, OpKind kind, long invoke, Outcome outcome, string? value, int version) =>
            new(client, path, kind, invoke, Stopwatch.GetTimestamp(), outcome, value, version, Server: "remote proxy");
    }
}
