namespace Coordination.Core.Zab;

/// <summary>
/// An ensemble configuration (ZooKeeper's QuorumVerifier and dynamic config file): its voters, its observers, and its
/// version, the zxid of the reconfig txn that made it (0 for the configuration an ensemble was first started with).
/// </summary>
public sealed class ZabConfig
{
    public IReadOnlySet<long> Voters { get; }
    public IReadOnlySet<long> Observers { get; }
    public long Version { get; }
    /// <summary>The configuration as ZooKeeper's dynamic config text (members with their addresses), when known;
    /// carried along so that a member learning a configuration also learns where its members are.</summary>
    public string? Text { get; init; }

    public ZabConfig(IEnumerable<long> voters, IEnumerable<long> observers, long version)
    {
        Voters = voters.ToHashSet();
        Observers = observers.Where(o => !Voters.Contains(o)).ToHashSet();
        Version = version;
    }

    public bool IsMember(long id) => Voters.Contains(id) || Observers.Contains(id);

    /// <summary>The same configuration made by the txn at <paramref name="zxid"/>.</summary>
    public ZabConfig WithVersion(long zxid) => new(Voters, Observers, zxid) { Text = Text };

    /// <summary>Same members in the same roles (the version aside).</summary>
    public bool SameMembers(ZabConfig other) => Voters.SetEquals(other.Voters) && Observers.SetEquals(other.Observers);

    public override string ToString() =>
        $"v{Zxids.Format(Version)} voters [{string.Join(",", Voters.Order())}] observers [{string.Join(",", Observers.Order())}]";
}

/// <summary>Why a leader refuses a reconfiguration (ZooKeeper's error codes of the same names).</summary>
public enum ReconfigError
{
    /// <summary>Another reconfiguration is proposed and not yet committed.</summary>
    ReconfigInProgress,
    /// <summary>The expected <c>from config version</c> is not the version of the active configuration.</summary>
    BadVersion,
    /// <summary>The voters of the new configuration that are synchronised with this leader are no quorum of it: it could not commit.</summary>
    NewConfigNoQuorum,
    /// <summary>No voters, or an id both voter and observer.</summary>
    BadArguments,
}
