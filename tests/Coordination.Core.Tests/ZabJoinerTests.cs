using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>
/// Joining voters of a reconfiguration (ZooKeeper's joiners): they sync before they count, and the leader commits a
/// reconfig that adds voters only once they have synced and logged it, or once a bound passes for a joiner that never
/// comes (<c>ZabPeer.JoinerWaitTicks</c>: twice the init limit).
/// </summary>
public sealed partial class ZabSimulationTests
{
    /// <summary>The servers durably holding <paramref name="zxid"/> when it was first committed, as the cluster saw them.</summary>
    private static Func<IReadOnlySet<long>?> HoldersAtCommit(Cluster c, Func<long> zxid)
    {
        IReadOnlySet<long>? holders = null;
        c.FirstCommitted = (committed, at) => { if (committed == zxid()) holders = at; };
        return () => holders;
    }

    [Theory]
    [InlineData(31, false)]
    [InlineData(32, false)]
    [InlineData(33, true)]
    [InlineData(34, true)]
    public void A_reconfig_that_adds_voters_commits_only_once_every_running_joiner_synced_and_logged_it(int seed, bool slowDisks)
    {
        var c = new Cluster(seed, [1, 2, 3]) { MaxFsyncMs = slowDisks ? 200 : 0 };
        c.Run(2_000, writesPerTick: 1);
        Join(c, 4);
        Join(c, 5);
        long zxid = 0;
        var holders = HoldersAtCommit(c, () => zxid);
        var (error, proposed) = Reconfig(c, [1, 2, 3, 4, 5]);
        Assert.Null(error);
        zxid = proposed;
        c.Run(3_000, writesPerTick: 2);
        Assert.NotNull(holders());
        Assert.Superset(new HashSet<long> { 4, 5 }, holders()!.ToHashSet());
        AssertConfigConverged(c, c.Leader!.Peer.Config);
        Assert.Equal(zxid, c.Leader!.Peer.Config.Version);
        // The new configuration tolerates two failures at once, right away: two of the first three crash.
        var leader = c.Leader!.Id;
        foreach (var id in new long[] { 1, 2, 3 }.Where(id => id != leader).ToList()) c.Crash(id);
        var before = c.Acknowledged.Count;
        c.Run(500, writesPerTick: 2);
        Assert.True(c.Acknowledged.Count > before, "the grown ensemble committed nothing with its joiners and its leader");
    }

    [Fact]
    public void A_reconfig_whose_joiner_never_starts_commits_on_its_quorum_after_the_bound_and_writes_go_on()
    {
        var c = new Cluster(35, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        Join(c, 4);
        c.Crash(Join(c, 5).Id);   // server 5 is named but never runs
        var (error, zxid) = Reconfig(c, [1, 2, 3, 4, 5]);
        Assert.Null(error);
        c.Run(400, writesPerTick: 2);
        Assert.DoesNotContain(zxid, c.EverApplied);   // still waiting for server 5 (the bound is 20 ticks of 50 ms)
        var acknowledged = c.Acknowledged.Count;
        c.Run(2_000, writesPerTick: 2);
        Assert.Contains(zxid, c.EverApplied);
        Assert.True(c.Acknowledged.Count > acknowledged, "writes behind the reconfig were never committed");
        AssertConfigConverged(c, c.Leader!.Peer.Config);
        Assert.Equal(zxid, c.Leader!.Peer.Config.Version);
    }

    /// <summary>
    /// A new machine started with the ensemble's first configuration (older than the one in force: a member it lists
    /// was replaced since) learns the current one from the members' election notifications and its leader's sync,
    /// waits as a joiner, and follows once a reconfig names it: it needs no copy of the current dynamic config file.
    /// </summary>
    [Theory]
    [InlineData(36)]
    [InlineData(37)]
    [InlineData(38)]
    public void A_joiner_started_with_an_older_configuration_learns_the_current_one_and_joins(int seed)
    {
        var c = new Cluster(seed, [1, 2, 3]) { MaxFsyncMs = seed % 2 * 200 };
        c.Run(2_000, writesPerTick: 1);
        var replaced = c.Nodes.Keys.First(id => id != c.Leader!.Id);
        Join(c, 6);
        var first = Reconfigured(c, c.InitialConfig.Voters.Where(v => v != replaced).Append(6));
        c.Crash(replaced);
        // Server 7 knows only the first configuration (1, 2, 3 at version 0) and itself.
        var joiner = c.AddNode(7, new ZabConfig(c.InitialConfig.Voters, [7], 0));
        c.Run(1_000, writesPerTick: 1);
        Assert.True(joiner.Peer.IsJoiner, $"server 7 is {joiner.Peer.Role}, member {joiner.Peer.IsMember}, config {joiner.Peer.Config}");
        Assert.Equal(first.Version, joiner.Peer.Config.Version);   // learned from the members' notifications
        Assert.Empty(joiner.Applied);
        var grown = Reconfigured(c, first.Voters.Append(7));
        Assert.Equal(PeerState.Following, joiner.Peer.Role);
        AssertQuorumOf(c, grown);
    }

    /// <summary>
    /// The learner's sync bound (init limit: 10 ticks of 50 ms here) catches a lost SYNC or UPTODATE, but a sync whose
    /// disk writes take longer than the bound (a large snapshot, a slow disk) makes progress and must not be cut short:
    /// re-electing would start it over, for ever on such a disk.
    /// </summary>
    [Fact]
    public void A_follower_whose_sync_writes_outlast_the_init_limit_is_not_cut_short()
    {
        var c = new Cluster(39, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var follower = c.Nodes.Keys.First(id => id != c.Leader!.Id);
        c.Crash(follower);
        c.Run(500, writesPerTick: 2);
        c.DiskLatencyMs[follower] = 800;
        c.Restart(follower);
        var node = c.Nodes[follower];
        node.Roles.Clear();
        c.Run(4_000, writesPerTick: 1);
        Assert.True(node.Peer.ServesClients, $"server {follower} is {node.Peer.Role}, roles {string.Join(",", node.Roles)}");
        Assert.DoesNotContain(PeerState.Looking, node.Roles.SkipWhile(r => r == PeerState.Looking));
    }
}
