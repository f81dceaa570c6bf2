using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote;
using Akka.Remote.Hosting;
using Akka.Remote.Transport;
using Coordination.Akka.Hosting;
using Coordination.Client.Actors;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Recipes.Tests;
using Coordination.Server;
using Coordination.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 21's partition acceptance on the embedded ensemble, with no coordination service outside the cluster: five
/// Akka.Hosting nodes (separate ActorSystems, Akka.Remote on 127.0.0.1) carry the coordination role; the first three
/// bootstrap the voters, 4 and 5 observe. SBR lease-majority and a Cluster Singleton with use-lease take the
/// coordination lease from each node's own member, in process (its connect string reaches nothing over TCP). The
/// throttler's blackhole cuts both the cluster's links and the member links between two sides, so that the side
/// holding the ensemble's voter quorum is either the larger (3|2) or the smaller (2|3): in both, that side takes the
/// SBR lease and survives, the other is downed; no two singleton incarnations overlap, though the losers' own SBR
/// decides late on purpose (their singleton is stopped by its lease only); every write a member acknowledged is kept;
/// and after the heal the downed nodes start again on their data dirs and server ids, and their members rejoin
/// through Zab sync: they serve the writes made while they were away, and every member's tree digest matches.
/// About 60-90 s a case.
/// </summary>
public sealed class EmbeddedPartitionTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string SystemName = "app";
    private const string LeaseRoot = "/leases";
    private const string SbrLeasePath = $"{LeaseRoot}/{SystemName}-akka-sbr";
    private static readonly int[] All = [1, 2, 3, 4, 5];

    private readonly string _root = Path.Combine(Path.GetTempPath(), "embedded-partition-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<int, IHost> _hosts = new();
    /// <summary>Each node's remoting and member ports, picked together so that no two are the same (two calls of
    /// FreeLoopbackPort in a row can return one port: two nodes listened on one member port in CI, session 27).</summary>
    private readonly Dictionary<int, (int Remoting, int Member)> _ports = PortsOf(All);

    private static Dictionary<int, (int Remoting, int Member)> PortsOf(int[] ids)
    {
        var ports = ServerProcess.FreeLoopbackPorts(2 * ids.Length);
        return ids.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => (ports[2 * p.i], ports[2 * p.i + 1]));
    }
    private readonly IncarnationLog _singletons = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => EmbeddedMembers.StopAsync(_hosts.Values, _root);

    public enum Split
    {
        /// <summary>{2, 3, 5} | {1, 4}: the three hold voters 2 and 3; SBR's majority is also the ensemble's.</summary>
        QuorumWithTheMajority,
        /// <summary>{2, 3} | {1, 4, 5}: the two hold voters 2 and 3; the three have voter 1 and both observers, so
        /// lease-majority's majority cannot get the lease and the smaller side survives.</summary>
        QuorumWithTheMinority,
    }

    [Theory]
    [InlineData(Split.QuorumWithTheMajority)]
    [InlineData(Split.QuorumWithTheMinority)]
    public async Task The_side_with_the_voter_quorum_keeps_the_lease_and_the_downed_side_rejoins_by_sync(Split split)
    {
        int[] winners = split == Split.QuorumWithTheMajority ? [2, 3, 5] : [2, 3];
        int[] losers = split == Split.QuorumWithTheMajority ? [1, 4] : [1, 4, 5];

        // Node 1 comes Up first: the oldest, so the singleton starts there, on the losing side: the partition must move it.
        await StartNodesAsync([1], losers, [1]);
        await Clients.Eventually(() => Cluster.Get(Sys(1)).SelfMember.Status == MemberStatus.Up, "node 1 up", 30);
        await StartNodesAsync([2, 3], losers, [1]);
        await WaitConfigAsync(1, c => c.Voters.Count() == 3, "the first three bootstrapping");
        await StartNodesAsync([4, 5], losers, [1]);
        var grown = await WaitConfigAsync(1, c => c.Observers.Count() == 2, "4 and 5 joining as observers");
        Assert.Equal(new long[] { 1, 2, 3 }, grown.Voters.Order());
        var modes = await WaitModesAsync(All, m => m.Count(x => x == "leader") == 1 && m.Count(x => x == "observer") == 2, "the five serving");
        Log($"modes {string.Join(", ", modes)}");
        await Clients.Eventually(() => _singletons.Running("singleton").Any(), "the singleton started", 30);
        Assert.Equal(["node1"], _singletons.Running("singleton").Select(r => r.Node));

        // Acknowledged writes through every member, before the partition.
        var acked = new ConcurrentDictionary<string, string>();
        foreach (var id in All)
        {
            await using var client = await ConnectAsync(id);
            var data = $"written through node {id} before the partition";
            await client.CreateAsync($"/before-{id}", Encoding.UTF8.GetBytes(data)).OkAsync().WaitAsync(TimeSpan.FromSeconds(10));
            acked[$"/before-{id}"] = data;
        }

        // The partition, and writers through every member on both sides while it lasts (only an acknowledged write counts).
        await SetLinksAsync(winners, losers, Blackhole.Instance);
        Log($"partition {{{string.Join(", ", winners)}}} | {{{string.Join(", ", losers)}}}");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var holders = new ConcurrentDictionary<string, bool>();
        var watching = WatchSbrLeaseHoldersAsync(Sys(winners[0]), holders, stop.Token);
        var writers = All.Select(id => WriteUntilStoppedAsync(id, acked, stop.Token)).ToArray();

        // SBR downs the losing side: its systems terminate; the winners see only each other.
        await Task.WhenAll(losers.Select(id => Sys(id).WhenTerminated)).WaitAsync(TimeSpan.FromSeconds(60));
        Log($"{string.Join(", ", losers.Select(id => $"node{id}"))} terminated");
        var winnerAddresses = winners.Select(id => Cluster.Get(Sys(id)).SelfAddress).Order().ToList();
        await Clients.Eventually(() => winners.All(id => Cluster.Get(Sys(id)).State.Members.Select(m => m.Address).Order().SequenceEqual(winnerAddresses)),
            "the winners see only each other", 30);
        Assert.All(winners, id => Assert.Equal(MemberStatus.Up, Cluster.Get(Sys(id)).SelfMember.Status));
        await Clients.Eventually(() => _singletons.Running("singleton").Any(r => winners.Any(w => r.Node == $"node{w}")),
            "the singleton runs on the winning side", 30);
        await Clients.Eventually(() => winners.All(id => acked.Keys.Any(p => p.StartsWith($"/during-{id}-", StringComparison.Ordinal))),
            "a write acknowledged through every winner during the partition", 30);
        await stop.CancelAsync();
        await Task.WhenAll(writers.Append(watching)).WaitAsync(TimeSpan.FromSeconds(30));
        Log($"during the partition, acknowledged through: {string.Join(", ", All.Select(id => $"node{id} {acked.Keys.Count(p => p.StartsWith($"/during-{id}-", StringComparison.Ordinal))}"))}");

        // Only the winning side ever held the SBR lease (its owner name is the holder's host:port).
        Log($"SBR lease holders: {string.Join(", ", holders.Keys)}");
        Assert.Single(holders.Keys);
        Assert.Contains(holders.Keys.Single(), winners.Select(id => $"{SystemName}@127.0.0.1:{_ports[id].Remoting}"));
        foreach (var line in _singletons.Describe()) Log(line);
        Assert.Empty(_singletons.Overlaps());

        // The heal: the member links open again; the downed nodes start again on their data dirs and server ids (new
        // ActorSystems, on new cluster ports, joining through the winners), and rejoin the ensemble through Zab sync.
        await SetLinksAsync(winners, losers, Unthrottled.Instance, winnersOnly: true);
        foreach (var id in losers) await StopHostAsync(id);
        foreach (var id in losers) _ports[id] = _ports[id] with { Remoting = ServerProcess.FreeLoopbackPort() };
        await StartNodesAsync(losers, losers, winners, restart: true);
        await Clients.Eventually(() => Cluster.Get(Sys(winners[0])).State.Members.Count(m => m.Status == MemberStatus.Up) == 5, "the five up again", 60);
        var healed = await WaitModesAsync(All, m => m.Count(x => x == "leader") == 1 && m.Count(x => x == "follower") == 2 && m.Count(x => x == "observer") == 2,
            "the five serving after the heal");
        var final = await WaitConfigAsync(winners[0], c => c.Voters.Count() == 3 && c.Observers.Count() == 2, "the configuration after the heal");
        Log($"after the heal: modes {string.Join(", ", healed)}; {final.ToString().Replace('\n', ' ')}");

        // Nothing lost: every acknowledged write, through each restarted member (a sync, then the reads).
        foreach (var id in losers)
        {
            await using var client = await ConnectAsync(id);
            await client.SyncAsync("/").OkAsync().WaitAsync(TimeSpan.FromSeconds(10));
            var missing = new List<string>();
            foreach (var (path, data) in acked)
            {
                var (header, response) = await client.GetDataAsync(path).WaitAsync(TimeSpan.FromSeconds(10));
                if (header.Err != ErrorCode.Ok || response is not GetDataResponse { Data: { } read } || Encoding.UTF8.GetString(read) != data)
                    missing.Add($"{path} ({header.Err})");
            }
            Assert.True(missing.Count == 0, $"node {id} after its restart lacks {missing.Count} of {acked.Count} acknowledged writes: {string.Join(", ", missing.Take(10))}");
        }
        Log($"{acked.Count} acknowledged writes read back through each of {string.Join(", ", losers.Select(id => $"node{id}"))}");

        // And the five trees are one: after a last write, every member reaches its zxid with the same digest.
        await using (var client = await ConnectAsync(winners[0]))
            await client.CreateAsync("/healed", []).OkAsync().WaitAsync(TimeSpan.FromSeconds(10));
        string[] hashes = [];
        try
        {
            await Clients.Eventually(async () =>
            {
                hashes = await Task.WhenAll(All.Select(id => HashAsync(Sys(id))));
                if (hashes.Distinct().Count() == 1 && hashes[0].Contains("digest", StringComparison.Ordinal)) return true;
                await Task.Delay(200);
                return false;
            }, "one zxid and digest on the five members", 30);
        }
        catch (TimeoutException) { Assert.Fail($"the members' trees differ: {string.Join(" | ", hashes.Select((h, i) => $"{i + 1}: {h.Replace('\n', ' ')}"))}"); }
        Log($"every member: {hashes[0].Replace('\n', ' ')}");
        Assert.Empty(_singletons.Overlaps());
        Assert.Single(_singletons.Running("singleton"));
    }

    private ActorSystem Sys(int id) => _hosts[id].Services.GetRequiredService<ActorSystem>();

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:F2}s {line}"); } catch (InvalidOperationException) { /* the test has finished */ }
    }

    private async Task StartNodesAsync(int[] ids, int[] losers, int[] seeds, bool restart = false)
    {
        var seedAddresses = seeds.Select(s => $"akka.trttl.tcp://{SystemName}@127.0.0.1:{_ports[s].Remoting}").ToList();
        var started = await Task.WhenAll(ids.Select(async id => (id, host: await StartNodeAsync(id, slowLoser: !restart && losers.Contains(id), seedAddresses))))
            .WaitAsync(TimeSpan.FromSeconds(90));
        foreach (var (id, host) in started) _hosts[id] = host;
    }

    /// <summary>
    /// A node with the coordination role and an embedded member; its lease (SBR's and the singleton's) reaches its
    /// member in process only. A loser's first incarnation decides late (SBR stable-after 10 s against 2 s): its
    /// singleton then outlives the winners' decision, and only the singleton's lease keeps the two incarnations apart.
    /// </summary>
    private Task<IHost> StartNodeAsync(int id, bool slowLoser, IReadOnlyList<string> seeds)
    {
        var member = ConfigurationFactory.ParseString($$"""
            coordination {
              server-id = {{id}}
              data-dir = "{{Path.Combine(_root, $"node{id}").Replace("\\", "\\\\")}}"
              tick-time = 200ms
              four-letter-words = ["srvr", "hash"]
              ensemble {
                cluster {
                  enabled = on
                  member-endpoint = "127.0.0.1:{{_ports[id].Member}}"
                  initial-voters = 3
                  promote-observers = on
                  unreachable-grace = 2s
                  check-interval = 500ms
                }
                tick = 100ms
                sync-limit = 10
                init-limit = 30
                election-finalize-wait = 100ms
                auth.secret = "embedded-partition-test-secret"
              }
            }
            """);
        // The throttler on both transports (the cluster's and the members'); a link closed under it is only noticed by
        // the transport failure detector (TestEnsemble.ThrottledLinkPause), so that detector is tightened too.
        var test = $$"""
            akka.coordinated-shutdown.run-by-actor-system-terminate = off
            akka.remote.dot-netty.tcp.applied-adapters = ["trttl"]
            akka.remote.coordination-socket.applied-adapters = ["trttl"]
            akka.remote.transport-failure-detector { heartbeat-interval = 1s, acceptable-heartbeat-pause = 5s }
            akka.cluster { gossip-interval = 200ms, leader-actions-interval = 200ms, periodic-tasks-initial-delay = 200ms, unreachable-nodes-reaper-interval = 250ms }
            akka.cluster.split-brain-resolver.stable-after = {{(slowLoser ? "10s" : "2s")}}
            """;
        var lease = new CoordinationLeaseOption
        {
            ConnectString = "127.0.0.1:1", // nothing listens there: only the in-process path reaches a member
            SessionTimeout = TimeSpan.FromSeconds(4),
            RootPath = LeaseRoot,
            LeaseOperationTimeout = TimeSpan.FromSeconds(5),
        };
        var node = $"node{id}";
        return AkkaHosts.StartAsync(output, node, SystemName, builder => builder
            .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = _ports[id].Remoting })
            .WithClustering(new ClusterOptions
            {
                Roles = ["coordination"],
                SeedNodes = [.. seeds],
                SplitBrainResolver = new LeaseMajorityOption { LeaseImplementation = lease },
                FailureDetector = new PhiAccrualFailureDetectorOptions
                {
                    HeartbeatInterval = TimeSpan.FromMilliseconds(300),
                    AcceptableHeartbeatPause = TimeSpan.FromSeconds(1),
                    ExpectedResponseAfter = TimeSpan.FromMilliseconds(500),
                },
            })
            .WithCoordinationServer(o => o.Config = member)
            // After WithCoordinationServer, whose member transport section this overrides (applied-adapters).
            .AddHocon(test, HoconAddMode.Prepend)
            .WithCoordinationLease(lease)
            .WithSingleton<SingletonKey>("singleton", Props.Create(() => new SingletonProbe(_singletons, node)),
                new ClusterSingletonOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(200) }, createProxyToo: false));
    }

    /// <summary>Stops a downed node's host (its system has terminated already), bounded.</summary>
    private async Task StopHostAsync(int id)
    {
        var host = _hosts[id];
        _hosts.Remove(id);
        try { await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(20)); } catch (Exception) { /* downed: stopped already */ }
        host.Dispose();
    }

    /// <summary>
    /// Sets <paramref name="mode"/> on every link between the two sides: the cluster's (node addresses) and the members'
    /// (member endpoints), both ways, at both ends (with <paramref name="winnersOnly"/> at the first side's end only:
    /// the others' systems are gone). The throttler keys a link by host:port.
    /// </summary>
    private async Task SetLinksAsync(int[] side, int[] other, ThrottleMode mode, bool winnersOnly = false)
    {
        static RemoteTransport Transport(ActorSystem s) => ((IRemoteActorRefProvider)((ExtendedActorSystem)s).Provider).Transport;
        IEnumerable<Address> AddressesOf(int id) =>
        [
            new Address("akka.trttl.tcp", SystemName, "127.0.0.1", _ports[id].Remoting),
            new Address($"akka.trttl.{CoordinationServer.EmbeddedScheme}", SystemName, "127.0.0.1", _ports[id].Member),
        ];
        async Task CutAsync(int at, int to)
        {
            foreach (var address in AddressesOf(to))
                Assert.True(await Transport(Sys(at)).ManagementCommand(new SetThrottle(address, ThrottleTransportAdapter.Direction.Both, mode)).WaitAsync(TimeSpan.FromSeconds(10)),
                    $"node {at} could not throttle {address}");
        }
        foreach (var a in side)
        foreach (var b in other)
        {
            await CutAsync(a, b);
            if (!winnersOnly) await CutAsync(b, a);
        }
    }

    /// <summary>
    /// Creates /during-{id}-{n} through node <paramref name="id"/>'s member in process until cancelled (a new connection
    /// after a failure; a name is never tried twice, so an unknown outcome cannot pass for an acknowledged one).
    /// </summary>
    private async Task WriteUntilStoppedAsync(int id, ConcurrentDictionary<string, string> acked, CancellationToken ct)
    {
        var system = Sys(id);
        var data = $"written through node {id} during the partition";
        var n = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var client = await EmbeddedMembers.ConnectInProcessAsync(system, sessionTimeoutMs: 4000);
                while (!ct.IsCancellationRequested)
                {
                    var path = $"/during-{id}-{n++}";
                    var (header, _) = await client.CreateAsync(path, Encoding.UTF8.GetBytes(data)).WaitAsync(TimeSpan.FromSeconds(3), ct);
                    if (header.Err == ErrorCode.Ok) acked[path] = data;
                    await Task.Delay(100, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                n++;
                try { await Task.Delay(200, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>Polls the SBR lease's lock nodes through node <paramref name="system"/>'s member and records the owner of the lowest (the holder).</summary>
    private static async Task WatchSbrLeaseHoldersAsync(ActorSystem system, ConcurrentDictionary<string, bool> holders, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var client = await EmbeddedMembers.ConnectInProcessAsync(system, sessionTimeoutMs: 4000);
                while (!ct.IsCancellationRequested)
                {
                    var (header, response) = await client.GetChildren2Async(SbrLeasePath).WaitAsync(TimeSpan.FromSeconds(3), ct);
                    if (header.Err == ErrorCode.Ok && response is GetChildrenResponse { Children: var children } && children.OrderBy(c => c[^10..]).FirstOrDefault() is { } lowest)
                    {
                        var (dataHeader, data) = await client.GetDataAsync($"{SbrLeasePath}/{lowest}").WaitAsync(TimeSpan.FromSeconds(3), ct);
                        if (dataHeader.Err == ErrorCode.Ok && data is GetDataResponse { Data: { } owner }) holders[Encoding.UTF8.GetString(owner)] = true;
                    }
                    await Task.Delay(20, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception)
            {
                try { await Task.Delay(100, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }

    private Task<WireClient> ConnectAsync(int id) => EmbeddedMembers.ConnectInProcessAsync(Sys(id), sessionTimeoutMs: 6000);

    /// <summary>The member's last zxid and tree digest ("hash" over an in-process connection), or "down".</summary>
    private static async Task<string> HashAsync(ActorSystem system) => (await EmbeddedMembers.WordAsync(system, "hash"))?.Trim() ?? "down";

    /// <summary>The committed configuration as member <paramref name="id"/> serves it, once it satisfies <paramref name="done"/>.</summary>
    private async Task<DynamicConfig> WaitConfigAsync(int id, Func<DynamicConfig, bool> done, string what)
    {
        DynamicConfig? last = null;
        try
        {
            await Clients.Eventually(async () =>
            {
                try
                {
                    await using var client = await ConnectAsync(id);
                    await client.SyncAsync("/zookeeper/config").WaitAsync(TimeSpan.FromSeconds(5));
                    var (header, response) = await client.GetDataAsync("/zookeeper/config").WaitAsync(TimeSpan.FromSeconds(5));
                    if (header.Err == ErrorCode.Ok && response is GetDataResponse { Data: { } data }) last = DynamicConfig.Parse(Encoding.UTF8.GetString(data), out _);
                }
                catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or OperationCanceledException) { }
                if (last is not null && done(last)) return true;
                await Task.Delay(200);
                return false;
            }, what, 60);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what}: not within 60 s; last configuration seen on {id}: {last?.ToString().Replace('\n', ' ') ?? "none"}");
        }
        return last!;
    }

    private async Task<string[]> WaitModesAsync(int[] ids, Func<string[], bool> done, string what)
    {
        string[] modes = [];
        try
        {
            await Clients.Eventually(async () =>
            {
                if (done(modes = await Task.WhenAll(ids.Select(id => EmbeddedMembers.ModeAsync(Sys(id)))))) return true;
                await Task.Delay(200);
                return false;
            }, what, 60);
        }
        catch (TimeoutException) { Assert.Fail($"{what}: modes of {string.Join(", ", ids)} did not settle: {string.Join(", ", modes)}"); }
        return modes;
    }

    private sealed class SingletonKey;

    /// <summary>The singleton: each incarnation records its start and stop.</summary>
    private sealed class SingletonProbe : ReceiveActor
    {
        private readonly IncarnationLog _log;
        private readonly string _node;
        private int _incarnation;

        public SingletonProbe(IncarnationLog log, string node)
        {
            (_log, _node) = (log, node);
            ReceiveAny(_ => { });
        }

        protected override void PreStart() => _incarnation = _log.Started("singleton", _node);
        protected override void PostStop() => _log.Stopped(_incarnation);
    }
}
