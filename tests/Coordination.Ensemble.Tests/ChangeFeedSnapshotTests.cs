using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// The change feed of a follower that is synchronised by SNAP: its history before the snapshot is gone (the snapshot
/// stands in for txns it never applied), so its feed must start again at the snapshot. A subscriber resuming there
/// from a zxid before the snapshot is told Compacted, with the zxid history now starts after, and one subscribing from
/// that zxid gets exactly the changes committed after it, past then live: nothing from the hole is silently skipped.
/// </summary>
public sealed class ChangeFeedSnapshotTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static Task<List<ChangeFrame>> Take(WireClient c, int count) => c.TakeChangesAsync(count, Wait);

    private void Log(string line)
    {
        try { output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}"); } catch (InvalidOperationException) { }
    }

    [Fact]
    public async Task A_follower_that_installs_a_snapshot_answers_Compacted_before_it_and_serves_exactly_the_changes_after_it()
    {
        await using var ensemble = await TestEnsemble.StartAsync(options: new TestEnsembleOptions { SnapshotEveryTxns = 200 });
        var leader = ensemble.Leader!;
        var follower = Ens.Follower(ensemble);
        await using var writer = await Ens.ConnectAsync(leader);
        var written = new List<(long Zxid, string Path, int Value)>();
        async Task WriteAsync(int count)
        {
            // Pipelined, answered in order; each a change under /feed with a value that identifies it.
            var start = written.Count;
            var replies = Enumerable.Range(start, count).Select(i => writer.SetDataAsync("/feed/a", BitConverter.GetBytes(i))).ToList();
            var i = start;
            foreach (var (header, _) in await Task.WhenAll(replies))
            {
                Assert.Equal(ErrorCode.Ok, header.Err);
                written.Add((header.Zxid, "/feed/a", i++));
            }
        }
        await writer.CreateAsync("/feed", null).OkAsync();
        await writer.CreateAsync("/feed/a", null).OkAsync();
        await WriteAsync(50);

        // A subscriber on the follower has everything so far: the follower's feed holds it in memory.
        long seen;
        await using (var before = await Ens.ConnectAsync(follower))
        {
            Assert.Equal(ErrorCode.Ok, (await before.WatchChangesAsync("/feed/a", 0)).Header.Err);
            var frames = await Take(before, 51);   // the create, then the 50 sets
            seen = frames[^1].Zxid;
            Assert.Equal(written[^1].Zxid, seen);
        }

        // Cut off, it misses five snapshots' worth of txns: the leader's log now starts well after what it has.
        var installed = follower.Server!.Ensemble!.SnapshotsInstalled;
        await ensemble.PartitionAsync(follower.Id);
        Log($"follower {follower.Id} isolated, leader {leader.Id}; writing 1000");
        await WriteAsync(1000);
        Log($"written, last 0x{written[^1].Zxid:x}");
        // Snapshots are written in the background, after the writes that start them: the leader may still hold every
        // txn after the follower's in its log (and synchronise it by DIFF) until one is written and its log trimmed.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var startedAfter = leader.Server!.Ensemble!.LogStartZxid;
        while (leader.Server!.Ensemble!.LogStartZxid <= seen && clock.Elapsed < Wait) await Task.Delay(50);
        Log($"after the writes the leader's log started after 0x{startedAfter:x} (the follower has 0x{seen:x}); " +
                         $"after 0x{leader.Server!.Ensemble!.LogStartZxid:x} {clock.ElapsedMilliseconds} ms later");
        Assert.True(leader.Server!.Ensemble!.LogStartZxid > seen,
            $"the leader's log still starts at 0x{leader.Server!.Ensemble!.LogStartZxid:x}, before the follower's 0x{seen:x}, {Wait.TotalSeconds} s after the writes");
        await ensemble.HealAllAsync();
        Log("healed");
        await ensemble.WaitAllServingAsync(Ens.Settle);
        await Ens.AssertConvergedAsync(ensemble);
        Log("all serving, converged");
        Assert.True(follower.Server!.Ensemble!.SnapshotsInstalled > installed, "the follower was not synchronised by SNAP");

        await using var after = await Ens.ConnectAsync(follower);
        var (refused, body) = await after.WatchChangesAsync("/feed/a", seen);
        Assert.Equal(ErrorCode.Compacted, refused.Err);
        var position = Assert.IsType<ChangeFeedPosition>(body);
        Assert.True(position.RetainedAfter > seen, $"history starts after 0x{position.RetainedAfter:x}, not after the subscriber's 0x{seen:x}");
        Assert.True(position.RetainedAfter <= written[^1].Zxid, $"history starts after 0x{position.RetainedAfter:x}, past the last write");

        // From where history starts: every change after it, then live ones, each once and in order.
        Assert.Equal(ErrorCode.Ok, (await after.WatchChangesAsync("/feed/a", position.RetainedAfter)).Header.Err);
        await WriteAsync(20);
        var expected = written.Where(w => w.Zxid > position.RetainedAfter).ToList();
        var got = await Take(after, expected.Count);
        Assert.Equal(expected.Select(e => (e.Zxid, e.Value)),
            got.Select(f => (f.Zxid, BitConverter.ToInt32(((ChangeEvent)f.Body).Data))));
        await Task.Delay(300);
        Assert.False(after.Changes.TryRead(out var extra), $"unexpected change frame at 0x{extra.Zxid:x}");
    }
}
