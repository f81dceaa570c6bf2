using Coordination.Core.Zab;
using Coordination.Server.Feed;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// Which trees the change feed may rebuild history from (<see cref="JournalHistory.Bases"/>): only those the journal
/// continues without a hole up to the member's state. A follower that installed its leader's snapshot keeps its older
/// segments; whether or not it has journalled a txn after that snapshot yet, history before the snapshot is gone.
/// </summary>
public sealed class JournalHistoryBasesTests
{
    private static long Z(long counter) => Zxids.Make(1, counter);

    private static List<long> Txns(long from, long to) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(c => Z(c)).ToList();

    private static List<(long Zxid, string Path)> Snapshots(params long[] counters) => counters.Select(c => (Z(c), $"snapshot.{Z(c):x}")).ToList();

    private static List<long> BaseZxids(List<long> kept, List<(long, string)> snapshots) =>
        JournalHistory.Bases(KeptZxids.Of(kept), snapshots).Select(b => b.Zxid).ToList();

    [Fact]
    public void A_journal_from_the_first_txn_rebuilds_from_the_empty_tree_and_from_each_snapshot_it_passes()
    {
        Assert.Equal([0, Z(100), Z(200)], BaseZxids(Txns(1, 250), Snapshots(100, 200)));
        // A snapshot at the journal's last txn: the journal reaches it.
        Assert.Equal([0, Z(250)], BaseZxids(Txns(1, 250), Snapshots(250)));
    }

    [Fact]
    public void A_snapshot_installed_after_the_journals_last_txn_is_the_only_base_before_a_txn_after_it_is_journalled()
    {
        // The follower journalled up to 0x37, was cut off, then installed the leader's snapshot at 0x41f; the txn
        // after it is applied but not journalled yet. From the empty tree the journal ends at 0x37: a hole to 0x41f.
        Assert.Equal([Z(0x41f)], BaseZxids(Txns(1, 0x37), Snapshots(0x41f)));
        // Two such snapshots: only the newest is the state.
        Assert.Equal([Z(0x41f)], BaseZxids(Txns(1, 0x37), Snapshots(0x200, 0x41f)));
    }

    [Fact]
    public void A_snapshot_installed_then_continued_by_the_journal_is_the_only_base()
    {
        var kept = Txns(1, 0x37).Concat(Txns(0x420, 0x430)).ToList();
        Assert.Equal([Z(0x41f)], BaseZxids(kept, Snapshots(0x41f)));
    }

    [Fact]
    public void The_floor_is_computed_again_after_a_second_or_twenty_times_what_the_last_computation_took()
    {
        // A read of the whole journal that took 300 ms (tens of MB, at saturation) is not done again for 6 s: at most
        // a twentieth of a core; a small journal's is done again after a second, as before.
        Assert.Equal(TimeSpan.FromSeconds(1), Coordination.Server.Pipeline.ReplicaActor.HistoryFloorDelay(TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromSeconds(1), Coordination.Server.Pipeline.ReplicaActor.HistoryFloorDelay(TimeSpan.FromMilliseconds(20)));
        Assert.Equal(TimeSpan.FromSeconds(6), Coordination.Server.Pipeline.ReplicaActor.HistoryFloorDelay(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public void A_subscription_that_finds_the_floor_stale_waits_out_the_same_delay_from_the_last_computation()
    {
        // Subscribing cannot make the journal be read more often than the timer would: 400 ms after a computation that
        // took 300 ms, the next waits 5.6 s more; 6 s after it, none; a clock that went back counts as no time passed.
        Assert.Equal(TimeSpan.FromMilliseconds(5600), Coordination.Server.Pipeline.ReplicaActor.HistoryFloorWait(400, TimeSpan.FromMilliseconds(300)));
        Assert.Equal(TimeSpan.Zero, Coordination.Server.Pipeline.ReplicaActor.HistoryFloorWait(6000, TimeSpan.FromMilliseconds(300)));
        Assert.Equal(TimeSpan.Zero, Coordination.Server.Pipeline.ReplicaActor.HistoryFloorWait(long.MaxValue / 2, TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromSeconds(1), Coordination.Server.Pipeline.ReplicaActor.HistoryFloorWait(-5, TimeSpan.Zero));
    }
}
