namespace Coordination.Core.Zab;

/// <summary>How the leader brings a learner to its history before broadcasting to it.</summary>
public enum SyncMode
{
    /// <summary>Send the committed txns after <see cref="SyncPlan.SendAfter"/> (possibly none).</summary>
    Diff,
    /// <summary>The learner's log ends beyond the leader's: it truncates to <see cref="SyncPlan.TruncateTo"/>.</summary>
    Trunc,
    /// <summary>The learner logged txns the leader never committed: truncate to <see cref="SyncPlan.TruncateTo"/>, then diff.</summary>
    TruncThenDiff,
    /// <summary>The learner is behind the leader's retained log (purged): send a full snapshot.</summary>
    Snap,
}

public sealed record SyncPlan(SyncMode Mode, long TruncateTo, long SendAfter);

/// <summary>
/// Chooses DIFF, TRUNC or SNAP for a learner, as ZooKeeper's LearnerHandler.syncFollower does. The leader retains
/// the committed txns after <c>retainedFrom</c> (its snapshot or purge point), whose zxids are <c>retained</c> in
/// ascending order; the learner reports the zxid of the last txn it logged.
/// </summary>
public static class SyncPlanner
{
    public static SyncPlan Plan(long learnerLastZxid, long retainedFrom, IReadOnlyList<long> retained)
    {
        var leaderLast = retained.Count > 0 ? retained[^1] : retainedFrom;
        if (learnerLastZxid == leaderLast) return new SyncPlan(SyncMode.Diff, 0, learnerLastZxid);
        if (learnerLastZxid > leaderLast)
        {
            // The leader was elected with the most recent history of a quorum, so all it has is committed and the
            // learner's extra tail never was: it can be dropped.
            return new SyncPlan(SyncMode.Trunc, leaderLast, leaderLast);
        }
        if (learnerLastZxid < retainedFrom) return new SyncPlan(SyncMode.Snap, 0, 0);
        if (learnerLastZxid == retainedFrom) return new SyncPlan(SyncMode.Diff, 0, retainedFrom);

        var index = BinarySearch(retained, learnerLastZxid);
        if (index >= 0) return new SyncPlan(SyncMode.Diff, 0, learnerLastZxid);

        // A txn from an old leader that this leader never committed: cut back to the newest common point.
        var insertion = ~index;
        var truncateTo = insertion == 0 ? retainedFrom : retained[insertion - 1];
        return new SyncPlan(SyncMode.TruncThenDiff, truncateTo, truncateTo);
    }

    private static int BinarySearch(IReadOnlyList<long> sorted, long value)
    {
        int lo = 0, hi = sorted.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var cmp = sorted[mid].CompareTo(value);
            if (cmp == 0) return mid;
            if (cmp < 0) lo = mid + 1; else hi = mid - 1;
        }
        return ~lo;
    }
}
