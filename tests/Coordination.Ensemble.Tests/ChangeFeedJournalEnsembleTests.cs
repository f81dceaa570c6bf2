using Coordination.Protocol;
using Coordination.Server.Persistence;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// A restarted ensemble member's in-memory feed starts at its newest snapshot; a subscriber asking it for a zxid from
/// before its restart (and before that snapshot) is served from the member's own journal on disk, then live: exactly
/// the committed changes under the prefix, each once, in zxid order.
/// </summary>
public sealed class ChangeFeedJournalEnsembleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_restarted_member_serves_a_zxid_before_its_restart_from_its_journal_then_live()
    {
        await using var ensemble = await TestEnsemble.StartAsync(options: new TestEnsembleOptions { SnapshotEveryTxns = 100, ExtraHocon = "coordination.change-feed.history-from-journal = on" });
        var leader = ensemble.Leader!;
        var follower = Ens.Follower(ensemble);
        var written = new List<(long Zxid, int Value)>();
        async Task WriteAsync(WireClient writer, int count)
        {
            var start = written.Count;
            var replies = Enumerable.Range(start, count).Select(i => writer.SetDataAsync("/feed/a", BitConverter.GetBytes(i))).ToList();
            var i = start;
            foreach (var (header, _) in await Task.WhenAll(replies))
            {
                Assert.Equal(ErrorCode.Ok, header.Err);
                written.Add((header.Zxid, i++));
            }
        }
        await using (var writer = await Ens.ConnectAsync(leader))
        {
            await writer.CreateAsync("/feed", null).OkAsync();
            await writer.CreateAsync("/feed/a", null).OkAsync();
            await WriteAsync(writer, 400);
            await writer.SyncAsync().OkAsync();
        }
        // After its restart the follower's memory starts at its newest snapshot, which it writes in the background:
        // restarted as soon as the writes were done, it had (under load) finished only the one it began at about the
        // 100th txn, and its memory still held the zxid asked for. It is restarted once it has written one past it.
        var from = written[100].Zxid;
        var snapshots = new SnapshotFiles(follower.DataDir, retained: 1, purge: false);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!snapshots.List().Any(s => s.Zxid > from))
        {
            Assert.True(waited.Elapsed < Wait, $"member {follower.Id} wrote no snapshot after 0x{from:x} within {Wait}");
            await Task.Delay(50);
        }
        await ensemble.RestartAsync(follower.Id);
        await ensemble.WaitAllServingAsync(Wait);
        var member = ensemble[follower.Id];
        var mntr = await FourLetterWord.MntrAsync("127.0.0.1", member.ClientPort);
        output.WriteLine($"restarted {member}: memory after 0x{long.Parse(mntr["zk_change_feed_retained_after_zxid"]):x}, journal after {mntr["zk_change_feed_journal_after_zxid"]}; " +
            $"snapshots {string.Join(", ", snapshots.List().Select(s => $"0x{s.Zxid:x}"))}; asking from 0x{from:x}");

        Assert.True(long.Parse(mntr["zk_change_feed_retained_after_zxid"]) > from, "the restarted member's memory still holds the zxid asked for");
        await using var reader = await Ens.ConnectAsync(member);
        // The member works out how far back its journal reaches in the background after its start.
        using (var cts = new CancellationTokenSource(Wait))
        {
            while (true)
            {
                var (subscribed, body) = await reader.WatchChangesAsync("/feed/a", from);
                if (subscribed.Err == ErrorCode.Ok) break;
                Assert.Equal(ErrorCode.Compacted, subscribed.Err);
                output.WriteLine($"Compacted, oldest 0x{((ChangeFeedPosition)body!).RetainedAfter:x}");
                await Task.Delay(200, cts.Token);
            }
        }
        await using (var writer = await Ens.ConnectAsync(ensemble.Leader!))
            await WriteAsync(writer, 50);
        var want = written.Where(w => w.Zxid > from).ToList();
        var frames = await reader.TakeChangesAsync(want.Count, Wait);
        Assert.Equal(want.Select(w => w.Zxid), frames.Select(f => f.Zxid));
        Assert.Equal(want.Select(w => w.Value), frames.Select(f => BitConverter.ToInt32(((ChangeEvent)f.Body).Data)));
        await Task.Delay(300);
        Assert.False(reader.Changes.TryRead(out var extra), $"unexpected frame {extra}");
    }
}
