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

/// <summary>
/// The voting members (ids) of an ensemble and the quorum rule: a majority of the voters. While a reconfiguration is
/// pending the rule is joint (<see cref="Joint"/>): a majority of the old voters AND a majority of the new ones, as
/// ZooKeeper's proposals carry one QuorumVerifier per configuration in force. Observers are not in it.
/// </summary>
public sealed class Quorum
{
    private readonly IReadOnlySet<long>[] _majorities;

    /// <summary>Every id that votes in at least one of the majorities.</summary>
    public IReadOnlySet<long> Voters { get; }

    public Quorum(IEnumerable<long> voters) : this([voters.ToHashSet()]) { }

    private Quorum(IReadOnlySet<long>[] majorities)
    {
        if (majorities.Any(m => m.Count == 0)) throw new ArgumentException("an ensemble needs at least one voter");
        _majorities = majorities;
        Voters = majorities.Length == 1 ? majorities[0] : majorities.SelectMany(m => m).ToHashSet();
    }

    /// <summary>A quorum that needs a majority of each of <paramref name="configurations"/>' voters.</summary>
    public static Quorum Joint(IEnumerable<IReadOnlySet<long>> configurations) =>
        new(configurations.DistinctBy(v => string.Join(",", v.Order())).ToArray());

    /// <summary>True when the given ids include a majority of the voters of every configuration (non-voters are ignored).</summary>
    public bool IsQuorum(IEnumerable<long> ids)
    {
        var distinct = ids as IReadOnlySet<long> ?? ids.ToHashSet();
        foreach (var voters in _majorities)
        {
            var count = 0;
            foreach (var id in distinct) if (voters.Contains(id)) count++;
            if (!IsMajorityOf(voters, count)) return false;
        }
        return true;
    }

    /// <summary><see cref="IsQuorum"/> of the peers whose logs reach <paramref name="zxid"/> in <paramref name="loggedUpTo"/>
    /// (peer → last logged zxid), counted without building the set: a leader asks this on every ack.</summary>
    public bool IsQuorumAt(Dictionary<long, long> loggedUpTo, long zxid)
    {
        foreach (var voters in _majorities)
        {
            var count = 0;
            foreach (var (id, at) in loggedUpTo) if (at >= zxid && voters.Contains(id)) count++;
            if (!IsMajorityOf(voters, count)) return false;
        }
        return true;
    }

    private static bool IsMajorityOf(IReadOnlySet<long> voters, int count) => count >= voters.Count / 2 + 1;

    public bool IsVoter(long id) => Voters.Contains(id);
}
