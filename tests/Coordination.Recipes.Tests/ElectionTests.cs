using Coordination.Client;
using Coordination.Client.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>LeaderSelector: one leader at a time, loss signalled on session trouble, requeue, hand-over on close.</summary>
public sealed class ElectionTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Selector_has_one_leader_and_signals_loss_when_the_session_expires(string target) => Shared(target, async server =>
    {
        var detector = new OverlapDetector();
        var pairs = new List<(CoordinationClient Client, TcpProxy Proxy)>();
        var selectors = new List<LeaderSelector>();
        var leaderships = new int[3];
        var lostSignals = new int[3];
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var pair = await Clients.BehindProxyAsync(server, Output);
                pairs.Add(pair);
                var index = i;
                var selector = new LeaderSelector(pair.Client, Root + "/election", async token =>
                {
                    Interlocked.Increment(ref leaderships[index]);
                    detector.Enter($"p{index}");
                    try { await Task.Delay(Timeout.Infinite, token); }
                    finally { detector.Exit($"p{index}"); }
                }, participantId: $"p{index}");
                selector.LeadershipLost += () => Interlocked.Increment(ref lostSignals[index]);
                selectors.Add(selector);
                selector.Start();
                if (i == 0) await Clients.Eventually(() => selectors[0].HasLeadership, "p0 leads");
                // The line order is the order the server sees the creates in, and each selector creates its node on
                // its own task and connection: p(i) must be in line before p(i+1) starts, or p2 may queue ahead of p1.
                else await Clients.Eventually(async () => (await selectors[0].GetParticipantsAsync()).Count == i + 1, $"p{i} queued");
            }
            var participants = await selectors[1].GetParticipantsAsync();
            Assert.Equal(["p0", "p1", "p2"], participants.Select(p => p.Id));
            Assert.Equal(new Participant("p0", true), participants[0]);
            Assert.False(selectors[1].HasLeadership || selectors[2].HasLeadership);
            var p0Token = selectors[0].FencingToken;
            Assert.True(p0Token > 0);
            Assert.Equal(0, selectors[1].FencingToken);

            // The leader is cut off and its session expired: it must stop leading before the next one starts.
            pairs[0].Proxy.Cut();
            await Clients.Eventually(() => Volatile.Read(ref lostSignals[0]) == 1, "p0 told it lost leadership");
            Assert.False(selectors[0].HasLeadership);
            await Clients.ExpireSessionAsync(server, pairs[0].Client, Output);
            await Clients.Eventually(() => selectors[1].HasLeadership, "p1 leads", describe: async () =>
                $"line {string.Join(", ", (await selectors[1].GetParticipantsAsync()).Select(p => p.Id))}, leading: {string.Join(", ", selectors.Where(s => s.HasLeadership).Select(s => s.ParticipantId))}");
            Assert.False(selectors[2].HasLeadership);
            Assert.True(selectors[1].FencingToken > p0Token, $"p1's token {selectors[1].FencingToken} not above p0's {p0Token}");
            Assert.Equal(0, selectors[0].FencingToken);

            // The old leader's client comes back expired; after a restart the selector requeues at the back.
            pairs[0].Proxy.Heal();
            await Clients.Eventually(() => pairs[0].Client.State == ConnectionState.Expired, "p0 sees expiry");
            await pairs[0].Client.RestartAsync().Within(20);
            await Clients.Eventually(async () => (await selectors[1].GetParticipantsAsync()).Count == 3, "p0 requeued");
            Assert.Equal(["p1", "p2", "p0"], (await selectors[1].GetParticipantsAsync()).Select(p => p.Id));

            // Closing the leader hands over in line order.
            await selectors[1].CloseAsync();
            await Clients.Eventually(() => selectors[2].HasLeadership, "p2 leads");
            Assert.Equal(0, lostSignals[1]); // closing is not a loss
            Assert.Empty(detector.Overlaps);
            Assert.Equal(1, detector.MaxInside);
        }
        finally
        {
            foreach (var s in selectors) await s.DisposeAsync();
            foreach (var (c, p) in pairs) { await c.DisposeAsync(); await p.DisposeAsync(); }
        }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Selector_requeues_after_the_body_returns_and_leadership_rotates(string target) => Shared(target, async server =>
    {
        var detector = new OverlapDetector();
        var turns = new List<string>();
        var clients = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Targets.ConnectAsync(server, Output)));
        var selectors = clients.Select((c, i) => new LeaderSelector(c, Root + "/rotate", async token =>
        {
            detector.Enter($"p{i}");
            lock (turns) turns.Add($"p{i}");
            // Closing the selectors at the end cancels a running body: it must still leave the section, or the next
            // leader is recorded as an overlap with a body that already returned.
            try { await Task.Delay(20, token); }
            finally { detector.Exit($"p{i}"); }
        }, $"p{i}")).ToList();
        try
        {
            foreach (var s in selectors) s.Start();
            await Clients.Eventually(() => { lock (turns) return turns.Count >= 9; }, "9 leadership turns", 30);
        }
        finally
        {
            foreach (var s in selectors) await s.DisposeAsync();
            foreach (var c in clients) await c.DisposeAsync();
        }
        Assert.Empty(detector.Overlaps);
        lock (turns) Assert.Equal(3, turns.Take(9).Distinct().Count()); // everyone got a turn: requeue works
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Latch_fencing_token_rises_when_leadership_moves_after_a_session_expiry(string target) => Shared(target, async server =>
    {
        var (firstClient, proxy) = await Clients.BehindProxyAsync(server, Output);
        await using var secondClient = await Targets.ConnectAsync(server, Output);
        try
        {
            await using var first = new LeaderLatch(firstClient, Root + "/latch", "a");
            await using var second = new LeaderLatch(secondClient, Root + "/latch", "b");
            await first.StartAsync().Within();
            await first.WaitForLeadershipAsync().Within();
            await second.StartAsync().Within();
            var firstToken = first.FencingToken;
            Assert.True(firstToken > 0);
            Assert.Equal(0, second.FencingToken);

            proxy.Cut();
            await Clients.ExpireSessionAsync(server, firstClient, Output);
            await second.WaitForLeadershipAsync().Within(30);
            Assert.True(second.FencingToken > firstToken, $"new token {second.FencingToken} not above the old {firstToken}");
            Assert.Equal(0, first.FencingToken);
        }
        finally
        {
            await firstClient.DisposeAsync();
            await proxy.DisposeAsync();
        }
    });
}
