namespace Coordination.Core.Zab;

/// <summary>A zxid is (epoch &lt;&lt; 32) | counter: the epoch of the leader that proposed it and its position in that epoch.</summary>
public static class Zxids
{
    public static long Make(long epoch, long counter) => (epoch << 32) | (counter & 0xffffffffL);
    public static long EpochOf(long zxid) => zxid >>> 32;
    public static long CounterOf(long zxid) => zxid & 0xffffffffL;
    public static string Format(long zxid) => $"0x{zxid:x}";

    /// <summary>True when <paramref name="next"/> directly follows <paramref name="zxid"/> in one history: the next
    /// counter of the same epoch, or the first txn of a later epoch.</summary>
    public static bool Follows(long zxid, long next) =>
        next == zxid + 1 || (EpochOf(next) > EpochOf(zxid) && CounterOf(next) == 1);
}

/// <summary>The voting members (ids) of an ensemble and the quorum rule. Observers are not in it.</summary>
public sealed class Quorum
{
    public IReadOnlySet<long> Voters { get; }
    public int Size => Voters.Count / 2 + 1;

    public Quorum(IEnumerable<long> voters)
    {
        Voters = voters.ToHashSet();
        if (Voters.Count == 0) throw new ArgumentException("an ensemble needs at least one voter");
    }

    /// <summary>True when the given ids include a majority of the voters (non-voters are ignored).</summary>
    public bool IsQuorum(IEnumerable<long> ids)
    {
        var count = 0;
        foreach (var id in ids.Distinct())
            if (Voters.Contains(id) && ++count >= Size) return true;
        return false;
    }

    public bool IsVoter(long id) => Voters.Contains(id);
}
