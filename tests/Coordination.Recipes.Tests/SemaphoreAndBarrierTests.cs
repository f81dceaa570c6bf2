using System.Diagnostics;
using Coordination.Client.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>Semaphore with leases, barrier and double barrier.</summary>
public sealed class SemaphoreAndBarrierTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Semaphore_never_hands_out_more_than_its_leases(string target) => Shared(target, async server =>
    {
        const int maxLeases = 3, clients = 6, rounds = 4;
        var detector = new OverlapDetector(limit: maxLeases);
        var all = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Targets.ConnectAsync(server, Output)));
        try
        {
            await Task.WhenAll(all.Select(async (client, index) =>
            {
                var semaphore = new DistributedSemaphore(client, Root + "/sem", maxLeases);
                for (var i = 0; i < rounds; i++)
                {
                    await using var lease = await semaphore.AcquireAsync(TimeSpan.FromSeconds(30));
                    Assert.NotNull(lease);
                    detector.Enter($"c{index}#{i}");
                    // Held until the semaphore has let maxLeases holders in at once (bounded): with 30 ms holds alone, on
                    // a loaded machine each acquisition took longer than a hold, so the leases were never all out at
                    // once (MaxInside 1 against both servers, 4 runs of 5 at load 45-60) and the check below failed.
                    var holding = Stopwatch.StartNew();
                    while (detector.MaxInside < maxLeases && holding.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
                    await Task.Delay(30);
                    detector.Exit($"c{index}#{i}");
                }
            })).Within(50);
            Assert.Empty(detector.Overlaps);
            Assert.Equal(maxLeases, detector.MaxInside); // it did allow that many at once
            Assert.Equal(clients * rounds, detector.Entries);
            Assert.Empty(await new DistributedSemaphore(all[0], Root + "/sem", maxLeases).GetLeaseNodesAsync());
        }
        finally { foreach (var c in all) await c.DisposeAsync(); }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Semaphore_times_out_and_a_crashed_holders_lease_comes_back(string target) => Shared(target, async server =>
    {
        var (holderClient, proxy) = await Clients.BehindProxyAsync(server, Output, TimeSpan.FromSeconds(2));
        await using var other = await Targets.ConnectAsync(server, Output);
        var held = await new DistributedSemaphore(holderClient, Root + "/sem2", 2).AcquireAsync(2, TimeSpan.FromSeconds(5)).Within();
        Assert.Equal(2, held!.Count);
        var semaphore = new DistributedSemaphore(other, Root + "/sem2", 2);
        Assert.Null(await semaphore.AcquireAsync(TimeSpan.FromMilliseconds(300)).Within());
        Assert.Equal(2, (await semaphore.GetLeaseNodesAsync()).Count); // the timed-out attempt left nothing behind
        var waiting = semaphore.AcquireAsync(TimeSpan.FromSeconds(20));
        await Clients.CrashAsync(holderClient, proxy); // its leases return when the session times out
        var lease = await waiting.Within(20);
        Assert.NotNull(lease);
        Assert.True(await lease!.IsValidAsync());
        await lease.DisposeAsync();
        Assert.False(await lease.IsValidAsync());
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Barrier_holds_waiters_until_removed(string target) => Shared(target, async server =>
    {
        await using var a = await Targets.ConnectAsync(server, Output);
        await using var b = await Targets.ConnectAsync(server, Output);
        var setter = new DistributedBarrier(a, Root + "/barrier");
        await setter.SetBarrierAsync().Within();
        var waiter = new DistributedBarrier(b, Root + "/barrier");
        Assert.False(await waiter.WaitOnBarrierAsync(TimeSpan.FromMilliseconds(300)).Within());
        var waits = Enumerable.Range(0, 3).Select(_ => waiter.WaitOnBarrierAsync(TimeSpan.FromSeconds(20))).ToList();
        await Task.Delay(200);
        Assert.DoesNotContain(waits, w => w.IsCompleted);
        await setter.RemoveBarrierAsync().Within();
        Assert.All(await Task.WhenAll(waits).Within(), Assert.True);
        Assert.True(await waiter.WaitOnBarrierAsync(TimeSpan.Zero).Within()); // down: no wait
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Double_barrier_enters_together_and_leaves_together(string target) => Shared(target, async server =>
    {
        const int members = 3;
        var clients = await Task.WhenAll(Enumerable.Range(0, members).Select(_ => Targets.ConnectAsync(server, Output)));
        try
        {
            var barriers = clients.Select((c, i) => new DistributedDoubleBarrier(c, Root + "/double", members, $"m{i}")).ToList();
            var firstTwo = barriers.Take(2).Select(b => b.EnterAsync(TimeSpan.FromSeconds(20))).ToList();
            await Task.Delay(300);
            Assert.DoesNotContain(firstTwo, e => e.IsCompleted); // 2 of 3: nobody gets in
            var last = barriers[2].EnterAsync(TimeSpan.FromSeconds(20));
            Assert.All(await Task.WhenAll(firstTwo.Append(last)).Within(20), Assert.True);

            var leavingTwo = barriers.Take(2).Select(b => b.LeaveAsync(TimeSpan.FromSeconds(20))).ToList();
            await Task.Delay(300);
            Assert.DoesNotContain(leavingTwo, l => l.IsCompleted); // m2 is still inside
            Assert.True(await barriers[2].LeaveAsync(TimeSpan.FromSeconds(20)).Within(20));
            Assert.All(await Task.WhenAll(leavingTwo).Within(20), Assert.True);
            Assert.Empty((await clients[0].GetChildrenAsync(Root + "/double")).Children); // reusable: ready is gone too
        }
        finally { foreach (var c in clients) await c.DisposeAsync(); }
    });
}
