using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Core.Tests;

public sealed class ZabBroadcastTests
{
    private static long Z(long counter) => Zxids.Make(1, counter);

    [Fact]
    public void A_proposal_commits_once_a_quorum_has_logged_it_and_commits_stay_in_order()
    {
        var tracker = new CommitTracker(new Quorum([1, 2, 3]), lastCommitted: 0);
        for (var i = 1; i <= 3; i++) tracker.Proposed(Z(i));

        Assert.Empty(tracker.Acked(1, Z(3)));                     // the leader alone is no quorum
        Assert.Equal([Z(1)], tracker.Acked(2, Z(1)));               // leader + follower 2 have Z1
        Assert.Equal([Z(2), Z(3)], tracker.Acked(3, Z(3)));         // cumulative ack commits the rest, in order
        Assert.Equal(Z(3), tracker.LastCommitted);
        Assert.Equal(0, tracker.OutstandingCount);
    }

    [Fact]
    public void Observer_acks_never_count_and_stale_acks_are_ignored()
    {
        var tracker = new CommitTracker(new Quorum([1, 2, 3]), 0);
        tracker.Proposed(Z(1));
        Assert.Empty(tracker.Acked(9, Z(1)));   // observer
        Assert.Empty(tracker.Acked(1, Z(1)));
        Assert.Empty(tracker.Acked(2, 0));      // behind: nothing
        Assert.Equal([Z(1)], tracker.Acked(2, Z(1)));
        Assert.Empty(tracker.Acked(2, Z(1)));   // repeated
    }

    [Fact]
    public void Proposals_must_increase()
    {
        var tracker = new CommitTracker(new Quorum([1]), Z(5));
        Assert.Throws<InvalidOperationException>(() => tracker.Proposed(Z(5)));
        tracker.Proposed(Z(6));
        Assert.Throws<InvalidOperationException>(() => tracker.Proposed(Z(6)));
        Assert.Equal([Z(6)], tracker.Acked(1, Z(6)));   // an ensemble of one commits on its own write
    }

    [Fact]
    public void Five_voters_need_three()
    {
        var tracker = new CommitTracker(new Quorum([1, 2, 3, 4, 5]), 0);
        tracker.Proposed(Z(1));
        Assert.Empty(tracker.Acked(1, Z(1)));
        Assert.Empty(tracker.Acked(4, Z(1)));
        Assert.Equal([Z(1)], tracker.Acked(5, Z(1)));
    }

    [Theory]
    [InlineData(10, SyncMode.Diff, 0, 10)]          // up to date
    [InlineData(7, SyncMode.Diff, 0, 7)]            // behind, inside the retained window
    [InlineData(5, SyncMode.Diff, 0, 5)]            // exactly at the window's base
    [InlineData(4, SyncMode.Snap, 0, 0)]            // before the window: purged
    [InlineData(12, SyncMode.Trunc, 10, 10)]        // ahead: an uncommitted tail to drop
    public void Sync_plan_within_one_epoch(long learner, SyncMode mode, long truncateTo, long sendAfter)
    {
        var retained = new long[] { Z(6), Z(7), Z(8), Z(9), Z(10) };
        var plan = SyncPlanner.Plan(learner == 0 ? 0 : Z(learner), Z(5), retained);
        Assert.Equal(mode, plan.Mode);
        Assert.Equal(truncateTo == 0 ? 0 : Z(truncateTo), plan.TruncateTo);
        Assert.Equal(sendAfter == 0 ? 0 : Z(sendAfter), plan.SendAfter);
    }

    [Fact]
    public void A_tail_left_by_an_old_leader_is_truncated_then_diffed()
    {
        // Epoch 1 committed 1..4; the old leader also logged 1:5 on this learner but never committed it.
        // The new leader (epoch 2) retains 1:1..1:4 and 2:1..2:2.
        var retained = new[] { Zxids.Make(1, 1), Zxids.Make(1, 2), Zxids.Make(1, 3), Zxids.Make(1, 4), Zxids.Make(2, 1), Zxids.Make(2, 2) };
        var plan = SyncPlanner.Plan(Zxids.Make(1, 5), 0, retained);
        Assert.Equal(SyncMode.TruncThenDiff, plan.Mode);
        Assert.Equal(Zxids.Make(1, 4), plan.TruncateTo);
        Assert.Equal(Zxids.Make(1, 4), plan.SendAfter);
    }

    private sealed class FixedLog(params long[] zxids) : IZabLogView
    {
        public long LastZxid => zxids.Length > 0 ? zxids[^1] : 0;
        public long RetainedFrom => 0;
        public IReadOnlyList<LogEntry> EntriesAfter(long zxid) => zxids.Where(z => z > zxid).Select(z => new LogEntry(z, [])).ToList();
    }

    [Fact]
    public void A_follower_acks_a_pure_trunc_and_takes_the_new_epoch_only_once_the_truncation_is_durable()
    {
        // Server 2 logged 1:1..1:5; the leader (server 1, already leading with server 3) has only up to 1:3.
        var peer = new ZabPeer(2, [1, 2, 3], [], new FixedLog(Z(1), Z(2), Z(3), Z(4), Z(5)), acceptedEpoch: 1, currentEpoch: 1);
        peer.Start(0);
        var vote = new Vote(1, Z(3), 1);
        peer.Receive(new ElectionMessage(1, new Notification(1, vote, 1, PeerState.Leading)), 0);
        peer.Receive(new ElectionMessage(3, new Notification(3, vote, 1, PeerState.Following)), 0);
        Assert.Equal(PeerState.Following, peer.Role);
        peer.Receive(new LeaderInfo(1, 2), 0);

        var outputs = peer.Receive(new SyncLearner(1, SyncMode.Trunc, Z(3), 0, [], 2, Z(3)), 0);
        Assert.Contains(new TruncateLog(Z(3)), outputs);
        // Not yet on disk: no NEWLEADER ack, and the epoch stays (a crash now leaves the old log).
        Assert.DoesNotContain(outputs, o => o is SendTo { Message: AckNewLeader });
        Assert.DoesNotContain(outputs, o => o is SaveEpochs { CurrentEpoch: 2 });
        Assert.Equal(1, peer.CurrentEpoch);

        var durable = peer.OnPersisted(Z(3), 0).ToList();
        Assert.Contains(new SaveEpochs(2, 2), durable);
        Assert.Contains(new SendTo(1, new AckNewLeader(2, 2, Z(3))), durable);
        Assert.True(durable.IndexOf(new SaveEpochs(2, 2)) < durable.IndexOf(new SendTo(1, new AckNewLeader(2, 2, Z(3)))), "the epoch is saved before the ack");
    }

    /// <summary>A member whose whole history is a snapshot at <paramref name="baseZxid"/> (restored with --restore).</summary>
    private sealed class RestoredLog(long baseZxid) : IZabLogView
    {
        public long LastZxid => baseZxid;
        public long RetainedFrom => baseZxid;
        public IReadOnlyList<LogEntry> EntriesAfter(long zxid) => [];
    }

    [Fact]
    public void A_learner_restored_alone_refuses_a_truncation_below_its_snapshot_and_looks_again()
    {
        // Server 2 was restored from a snapshot at 3:0 while servers 1 and 3 kept their history (1:1..1:3) and lead
        // epoch 4. Truncating its log to 1:3 would leave the restored tree applied under the leader's txns: a mix.
        var restoredBase = Zxids.Make(3, 0);
        var peer = new ZabPeer(2, [1, 2, 3], [], new RestoredLog(restoredBase), acceptedEpoch: 3, currentEpoch: 3);
        peer.Start(0);
        var vote = new Vote(1, Z(3), 4);
        peer.Receive(new ElectionMessage(1, new Notification(1, vote, 4, PeerState.Leading)), 0);
        peer.Receive(new ElectionMessage(3, new Notification(3, vote, 4, PeerState.Following)), 0);
        Assert.Equal(PeerState.Following, peer.Role);
        peer.Receive(new LeaderInfo(1, 4), 0);

        var outputs = peer.Receive(new SyncLearner(1, SyncMode.TruncThenDiff, Z(3), 0, [], 4, Z(3)), 0);
        Assert.Contains(new SyncRefused(1, Z(3), restoredBase), outputs);
        Assert.DoesNotContain(outputs, o => o is TruncateLog);
        Assert.DoesNotContain(outputs, o => o is SendTo { Message: AckNewLeader });
        Assert.Equal(PeerState.Looking, peer.Role);
    }

    [Fact]
    public void An_empty_learner_gets_the_whole_history_when_nothing_was_purged()
    {
        var plan = SyncPlanner.Plan(0, 0, [Z(1), Z(2)]);
        Assert.Equal(SyncMode.Diff, plan.Mode);
        Assert.Equal(0, plan.SendAfter);
    }
}
