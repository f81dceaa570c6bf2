using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Observers and availability: what a quorum is and what happens without one.</summary>
public sealed class QuorumTests
{
    [Fact]
    public async Task An_observer_applies_everything_serves_reads_and_never_counts_towards_a_quorum()
    {
        await using var ensemble = await TestEnsemble.StartAsync(3, observers: 1);
        var observer = ensemble[4];
        Assert.Equal("observer", observer.Mode);

        // Writes through the observer and through a voter reach the observer, which serves them.
        await using (var c = await Ens.ConnectAsync(observer))
        {
            await c.CreateAsync("/o", null).OkAsync();
            await Ens.CreateManyAsync(c, "/o", "x", 20);
        }
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!))
            await Ens.CreateManyAsync(c, "/o", "y", 20);
        await Ens.AssertConvergedAsync(ensemble);
        await using (var r = await Ens.ConnectAsync(observer))
        {
            // A plain local read (no sync) on the observer already sees every converged write.
            var children = (GetChildrenResponse)(await r.GetChildren2Async("/o").OkAsync())!;
            Assert.Equal(40, children.Children.Count);
        }

        // Both followers go: the leader and the observer are up, but an observer is no voter.
        var leader = ensemble.Leader!;
        await using var toLeader = await Ens.ConnectAsync(leader);
        await using var toObserver = await Ens.ConnectAsync(observer);
        foreach (var f in ensemble.Members.Where(m => !m.IsObserver && m.Id != leader.Id).ToList()) await ensemble.KillAsync(f.Id);
        var viaLeader = toLeader.CreateAsync("/o/no-quorum-leader", null);
        var viaObserver = toObserver.CreateAsync("/o/no-quorum-observer", null);
        await Ens.AssertNotAcknowledgedAsync(viaLeader, TimeSpan.FromSeconds(4), "a write to a leader with only an observer");
        await Ens.AssertNotAcknowledgedAsync(viaObserver, TimeSpan.FromSeconds(1), "a write through the observer without a voter quorum");
        // Fresh connections keep failing too, for a bounded while.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            foreach (var m in new[] { leader, observer })
            {
                try
                {
                    await using var c = await WireClient.ConnectAsync("127.0.0.1", m.ClientPort, new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1) });
                    await Ens.AssertNotAcknowledgedAsync(c.CreateAsync($"/o/late{m.Id}", null), TimeSpan.FromMilliseconds(500), "a late write without quorum");
                }
                catch (WireConnectionException) { }
            }
        }
        Assert.NotEqual("leader", leader.Mode);   // it stepped down: it cannot hear a voter quorum
    }

    [Fact]
    public async Task Two_of_three_accept_writes_one_of_three_accepts_none_and_nothing_acknowledged_is_lost()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var acked = new List<string>();
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!))
        {
            await c.CreateAsync("/av", null).OkAsync();
            acked.AddRange(await Ens.CreateManyAsync(c, "/av", "three", 10));
        }

        // Two of three: writes through either survivor succeed.
        var first = Ens.Follower(ensemble);
        await ensemble.KillAsync(first.Id);
        await Ens.WaitSettledAsync(ensemble);
        foreach (var m in ensemble.Members.Where(m => m.IsRunning))
        {
            await using var c = await Ens.ConnectAsync(m);
            acked.AddRange(await Ens.CreateManyAsync(c, "/av", $"two{m.Id}-", 10));
        }

        // One of three: no write is acknowledged. Each attempt is a multi of three creates (all or nothing).
        var last = ensemble.Members.First(m => m.IsRunning);
        var second = ensemble.Members.First(m => m.IsRunning && m.Id != last.Id);
        await using var lone = await Ens.ConnectAsync(last);
        await ensemble.KillAsync(second.Id);
        var attempts = new List<(int I, Task<(ReplyHeader Header, ZkResponse? Response)> Reply)>();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var writer = lone;
        var i = 0;
        while (sw.Elapsed < TimeSpan.FromSeconds(4))
        {
            if (!writer.IsConnected)
            {
                try { writer = await WireClient.ConnectAsync("127.0.0.1", last.ClientPort, new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1) }); }
                catch (WireConnectionException) { await Task.Delay(100); continue; }
            }
            var ops = Enumerable.Range(0, 3).Select(k => new MultiOp(OpCode.Create, new CreateRequest($"/av/one{i}-{k}", null, Acl.OpenAclUnsafe, 0))).ToList();
            attempts.Add((i, writer.MultiAsync(ops)));
            i++;
            await Task.Delay(150);
        }
        foreach (var (_, reply) in attempts) await Ens.AssertNotAcknowledgedAsync(reply, TimeSpan.FromSeconds(1), "a write with one of three up");
        if (writer != lone) await writer.DisposeAsync();

        // One restarts: a quorum again, with everything acknowledged and no half-applied multi.
        await ensemble.RestartAsync(second.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/av", acked);
        foreach (var m in ensemble.Members.Where(m => m.IsRunning))
        {
            var children = await Ens.ChildrenAsync(m, "/av");
            for (var a = 0; a < i; a++)
            {
                var present = Enumerable.Range(0, 3).Count(k => children.Contains($"one{a}-{k}"));
                Assert.True(present is 0 or 3, $"multi {a} is partially applied on {m}: {present} of 3");
            }
        }
    }
}
