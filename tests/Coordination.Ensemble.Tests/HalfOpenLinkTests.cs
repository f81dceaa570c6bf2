using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// A member link can die without closing: a stateful firewall or NAT forgets the flow, and the follower stops
/// receiving what its leader sends on the connections it has, while its own packets still arrive and new connections
/// pass. Nothing errors: TCP retransmits for minutes, and Akka's transport failure detector waits two. Meanwhile the
/// follower cannot follow and every write through it hangs. The member transport closes a link on which nothing
/// arrived for member-link-timeout (10 s; ZooKeeper's learner socket times out after syncLimit × tickTime) and Akka
/// dials a fresh one, so the follower must serve writes again well inside a minute, with the old flows still dead.
/// Network namespaces (<see cref="NetworkLab"/>): needs Linux and root, like <see cref="NetnsLinearizabilityTests"/>.
/// </summary>
[Collection(LoadAndNetnsCollection.Name)]
public sealed class HalfOpenLinkTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RecoveryBound = TimeSpan.FromSeconds(40);
    private readonly FaultRunLog _log = new(output, "COORDINATION_HALFOPEN_LOG");

    [SkippableFact]
    public async Task A_follower_whose_links_from_the_leader_go_silent_serves_writes_again_on_fresh_links()
    {
        NetworkLabTests.RequireNetns();
        using var lab = NetworkLab.Create(3, _log.Line);
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions { Network = lab, Log = _log.Line });
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(30));
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = ensemble.Members.First(m => m.Id != leader.Id);
        var options = new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(3), SessionTimeoutMs = 30_000, SocketFactory = lab.CreateSocket };
        await using (var before = await WireClient.ConnectAsync(follower.ConnectString, options))
            await before.CreateAsync("/before", null).OkAsync();

        var flows = lab.HalfOpenFlows(at: follower.Id, from: leader.Id);
        _log.Fault($"half-open: follower {follower.Id} receives nothing from leader {leader.Id} on its {flows} open connections");
        Assert.True(flows >= 1, "no connection between the follower and the leader to cut");

        var clock = Stopwatch.StartNew();
        string? lastFailure = null;
        var attempt = 0;
        while (true)
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await using var client = await WireClient.ConnectAsync(follower.ConnectString, options, bound.Token);
                await client.CreateAsync($"/after-{attempt++}", null).WaitAsync(bound.Token).OkAsync();
                break;
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or IOException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                lastFailure = e.Message;
            }
            Assert.True(clock.Elapsed < RecoveryBound,
                $"no write through follower {follower.Id} completed within {RecoveryBound.TotalSeconds} s of its links going half-open " +
                $"(last: {lastFailure}); {await ensemble.DescribeAsync()}");
            await Task.Delay(500);
        }
        _log.Recovery($"a write through follower {follower.Id} completed {clock.Elapsed.TotalSeconds:F1} s after the fault, after {attempt} attempts");
        // The fault was real: the kernel dropped what the leader sent on the old connections, and they still do not pass.
        Assert.True(lab.Counters(follower.Id).DroppedPackets > 0, "the half-open rules dropped nothing");
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(10));
    }
}
