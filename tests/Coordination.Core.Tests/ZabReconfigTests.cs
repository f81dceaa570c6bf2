using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>
/// Dynamic reconfiguration (ZooKeeper 3.5+) in the simulated ensemble of <see cref="ZabSimulationTests"/>: a reconfig
/// is a txn carrying the new configuration; while it is pending every proposal needs a quorum of the old and of the
/// new voters (the cluster checks that on every first commit, see <c>CheckCommitQuorum</c>); its commit activates it.
/// </summary>
public sealed partial class ZabSimulationTests
{
    /// <summary>Proposes a reconfiguration through the current leader, as the server does for a client's reconfig op.</summary>
    private static (ReconfigError? Error, long Zxid) Reconfig(Cluster c, IEnumerable<long> voters, IEnumerable<long>? observers = null, long fromVersion = -1)
    {
        var leader = c.Leader ?? throw new Xunit.Sdk.XunitException("no leader to reconfigure through");
        observers ??= [];
        if (leader.Peer.CheckReconfig(voters, observers, fromVersion) is { } error) return (error, 0);
        var zxid = leader.Peer.AllocateZxid()!.Value;
        c.Execute(leader, leader.Peer.Propose(new LogEntry(zxid, BitConverter.GetBytes(zxid), new ZabConfig(voters, observers, zxid))));
        return (null, zxid);
    }

    /// <summary>A new machine joining: it knows the ensemble's configuration and itself as an observer (never a voter before
    /// a committed configuration says so), like the config a ZooKeeper joiner is started with.</summary>
    private static Node Join(Cluster c, long id)
    {
        var current = c.Leader!.Peer.Config;
        return c.AddNode(id, new ZabConfig(current.Voters, current.Observers.Append(id), current.Version));
    }

    /// <summary>Every running member serves, has applied the same txns, and has activated the same configuration: the
    /// newest one among its applied txns, and it has the roles it gives.</summary>
    private static void AssertConfigConverged(Cluster c, ZabConfig expected)
    {
        // Joiners of a reconfiguration that never committed are not members, whatever they believe.
        c.AssertConverged(expected.Voters.Concat(expected.Observers));
        foreach (var node in c.Nodes.Values.Where(n => n.Up && expected.IsMember(n.Id)))
        {
            Assert.True(node.Peer.ServesClients, $"server {node.Id} is {node.Peer.Role}, not serving");
            Assert.True(expected.SameMembers(node.Peer.Config) && expected.Version == node.Peer.Config.Version, $"server {node.Id} has {node.Peer.Config}, not {expected}");
            Assert.Null(node.Peer.PendingConfig);
            Assert.Equal(expected.Version, node.Config.Version);   // what a restart would start from
            var role = node.Peer.Role;
            if (expected.Observers.Contains(node.Id)) Assert.Equal(PeerState.Observing, role);
            else Assert.True(role is PeerState.Leading or PeerState.Following, $"voter {node.Id} is {role}");
        }
        var everMember = c.Nodes.Keys.Where(id => c.InitialConfig.IsMember(id) || c.EverActivated.Any(config => config.IsMember(id)));
        // A removed server is idle, or (when it learned its removal from others, after a restart) a joiner no one counts.
        foreach (var node in everMember.Select(id => c.Nodes[id]).Where(n => n.Up && !expected.IsMember(n.Id)))
            Assert.True(!node.Peer.IsMember || (node.Peer.IsJoiner && !node.Peer.ServesClients), $"server {node.Id} was removed but still takes part");
        var leader = c.Leader!;
        var newestApplied = leader.Entries.Where(e => e.Config is not null && e.Zxid <= leader.LastApplied).Select(e => e.Zxid).DefaultIfEmpty(0).Max();
        // The first configuration has its first leader's epoch zxid as version (counter 0), which no txn has.
        Assert.Equal(Zxids.CounterOf(expected.Version) == 0 ? 0 : expected.Version, newestApplied);
    }

    /// <summary>Reconfigures under writes, lets the ensemble settle, and checks everyone runs the new configuration.</summary>
    private static ZabConfig Reconfigured(Cluster c, IEnumerable<long> voters, IEnumerable<long>? observers = null, long fromVersion = -1)
    {
        var (error, zxid) = Reconfig(c, voters, observers, fromVersion);
        Assert.Null(error);
        c.Run(2_000, writesPerTick: 2);
        c.Run(500);
        var config = c.Leader!.Peer.Config;
        Assert.Equal(zxid, config.Version);
        AssertConfigConverged(c, config);
        return config;
    }

    /// <summary>Writes still commit with only a bare quorum of <paramref name="config"/> running (the others crashed), so
    /// the new configuration is in force, and the others catch up when they come back.</summary>
    private static void AssertQuorumOf(Cluster c, ZabConfig config)
    {
        var leader = c.Leader!;
        var down = config.Voters.Where(v => v != leader.Id).Take(config.Voters.Count - (config.Voters.Count / 2 + 1)).ToList();
        foreach (var id in down) c.Crash(id);
        var before = c.Acknowledged.Count;
        c.Run(1_000, writesPerTick: 2);
        Assert.True(c.Acknowledged.Count > before, $"nothing committed with [{string.Join(",", config.Voters.Except(down).Order())}] of {config}");
        foreach (var id in down) c.Restart(id);
        c.Run(2_000, writesPerTick: 1);
        c.Run(500);
        AssertConfigConverged(c, config);
    }

    [Fact]
    public void Reconfig_grows_three_voters_to_five()
    {
        var c = new Cluster(21, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        Join(c, 4);
        Join(c, 5);
        c.Run(500, writesPerTick: 1);
        Assert.Equal(0, c.Nodes[4].LastApplied);   // not a member yet: the leader does not take it in
        var grown = Reconfigured(c, [1, 2, 3, 4, 5]);
        Assert.Equal(5, grown.Voters.Count);
        AssertQuorumOf(c, grown);
    }

    [Fact]
    public void Reconfig_shrinks_five_voters_to_three_and_the_removed_ones_stop_counting()
    {
        var c = new Cluster(22, [1, 2, 3, 4, 5]);
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var kept = c.Nodes.Keys.Where(id => id != leader.Id).Take(2).Append(leader.Id).ToList();
        var shrunk = Reconfigured(c, kept);
        foreach (var removed in c.Nodes.Keys.Except(kept)) Assert.False(c.Nodes[removed].Peer.IsMember);
        Assert.Equal(leader.Id, c.Leader!.Id);
        Assert.Equal(2, leader.Peer.LearnerCount);   // the leader dropped them
        // Two of five could not commit; two of three can.
        AssertQuorumOf(c, shrunk);
    }

    [Fact]
    public void Reconfig_replaces_a_member_by_a_new_machine_with_a_new_id()
    {
        var c = new Cluster(23, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var old = c.Nodes.Keys.First(id => id != leader.Id);
        Join(c, 6);
        var replaced = Reconfigured(c, c.InitialConfig.Voters.Where(v => v != old).Append(6));
        Assert.Equal(PeerState.Following, c.Nodes[6].Peer.Role);
        Assert.Equal(c.Leader!.Applied, c.Nodes[6].Applied);   // synchronised from nothing
        AssertQuorumOf(c, replaced);
    }

    [Fact]
    public void Reconfig_that_removes_the_leader_commits_then_the_remaining_voters_elect_a_new_leader()
    {
        var c = new Cluster(24, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var old = c.Leader!;
        var (error, zxid) = Reconfig(c, c.InitialConfig.Voters.Where(v => v != old.Id));
        Assert.Null(error);
        c.Run(50, writesPerTick: 2);
        c.Run(2_000, writesPerTick: 2);
        var next = c.Leader!;
        Assert.NotEqual(old.Id, next.Id);
        Assert.False(old.Peer.IsMember);
        Assert.NotEqual(PeerState.Leading, old.Peer.Role);
        Assert.Contains(zxid, next.Applied);
        Assert.True(c.Acknowledged.Any(z => Zxids.EpochOf(z) > Zxids.EpochOf(zxid)), "the new leader committed nothing");
        AssertConfigConverged(c, next.Peer.Config);
        Assert.Equal(zxid, next.Peer.Config.Version);
    }

    [Fact]
    public void Reconfig_turns_a_voter_into_an_observer_and_back()
    {
        var c = new Cluster(25, [1, 2, 3, 4, 5]);
        c.Run(2_000, writesPerTick: 1);
        var member = c.Nodes.Keys.First(id => id != c.Leader!.Id);
        var voters = c.InitialConfig.Voters.ToList();
        var demoted = Reconfigured(c, voters.Where(v => v != member), [member]);
        Assert.Contains(member, demoted.Observers);
        Assert.Equal(PeerState.Observing, c.Nodes[member].Peer.Role);

        var promoted = Reconfigured(c, voters, fromVersion: demoted.Version);
        Assert.Contains(member, promoted.Voters);
        Assert.True(promoted.Version > demoted.Version);
        Assert.Equal(PeerState.Following, c.Nodes[member].Peer.Role);
    }

    [Fact]
    public void A_second_reconfig_while_one_is_pending_a_stale_version_and_a_config_without_a_synced_quorum_are_refused()
    {
        var c = new Cluster(26, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var others = c.InitialConfig.Voters.Where(v => v != leader.Id).ToList();
        // Only the leader of the new voters is synchronised with it: it could never commit.
        Assert.Equal(ReconfigError.NewConfigNoQuorum, Reconfig(c, [leader.Id, 7, 8]).Error);
        Assert.Equal(ReconfigError.BadVersion, Reconfig(c, [1, 2, 3, 4], fromVersion: 12345).Error);
        Assert.Equal(ReconfigError.BadArguments, Reconfig(c, [], [1]).Error);
        Assert.Equal(ReconfigError.BadArguments, Reconfig(c, [1, 2, 3], [3]).Error);
        // The first configuration's version is its epoch's first zxid (as Apache's), not 0.
        var initial = leader.Peer.Config.Version;
        Assert.NotEqual(0, initial);
        var (error, zxid) = Reconfig(c, [leader.Id, others[0]], [others[1]], fromVersion: initial);
        Assert.Null(error);
        Assert.Equal(ReconfigError.ReconfigInProgress, Reconfig(c, [1, 2, 3]).Error);
        Assert.Throws<InvalidOperationException>(() => leader.Peer.Propose(new LogEntry(leader.Peer.NextZxid!.Value, [], new ZabConfig([1, 2, 3], [], leader.Peer.NextZxid!.Value))));
        c.Run(1_000, writesPerTick: 1);
        Assert.Equal(zxid, leader.Peer.Config.Version);
        Assert.Equal(ReconfigError.BadVersion, Reconfig(c, [1, 2, 3], fromVersion: initial).Error);
        Assert.Null(Reconfig(c, [1, 2, 3], fromVersion: zxid).Error);
        c.Run(1_000, writesPerTick: 1);
        AssertConfigConverged(c, c.Leader!.Peer.Config);
    }

    /// <summary>
    /// A reconfiguration the test proposes: grow by two new machines, shrink by two (the leader among them), replace a
    /// voter by a new machine, remove the leader, or turn a voter into an observer or an observer back into a voter;
    /// never one leaving fewer than <paramref name="minVoters"/> voters. New machines are started for the one chosen.
    /// </summary>
    private static (IReadOnlyList<long> Voters, IReadOnlyList<long> Observers) RandomChange(Cluster c, Random faults, ref long nextId, int minVoters = 1)
    {
        var config = c.Leader!.Peer.Config;
        var leader = c.Leader!.Id;
        var voters = config.Voters.Order().ToList();
        var observers = config.Observers.Order().ToList();
        var other = voters.Where(v => v != leader).OrderBy(_ => faults.Next()).First();
        long a = nextId, b = nextId + 1;
        var changes = new List<(List<long> Voters, List<long> Observers, long[] Joiners)>
        {
            ([.. voters, a, b], observers, [a, b]),
            ([.. voters.Where(v => v != other), a], observers, [a]),
            ([.. voters.Where(v => v != leader)], observers, []),
            ([.. voters.Where(v => v != leader && v != other)], observers, []),
            observers.Count > 0 ? ([.. voters, observers[0]], observers.Skip(1).ToList(), []) : ([.. voters.Where(v => v != other)], [other], []),
        };
        var candidates = changes.Where(change => change.Voters.Count >= minVoters).ToList();
        var (newVoters, newObservers, joiners) = candidates[faults.Next(candidates.Count)];
        foreach (var id in joiners) Join(c, id);
        nextId += joiners.Length;
        return (newVoters, newObservers);
    }

    /// <summary>Seeds 1..N of the randomized reconfig runs: N is 24 (crash) and 16 (schedule) by default, or
    /// <c>COORDINATION_RECONFIG_SEEDS</c> for the longer run (README, "Longer runs").</summary>
    private static IEnumerable<object[]> Seeds(int byDefault) =>
        Enumerable.Range(1, int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_RECONFIG_SEEDS"), out var n) && n > 0 ? n : byDefault)
            .Select(seed => new object[] { seed });

    public static IEnumerable<object[]> CrashSeeds => Seeds(24);

    /// <summary>
    /// The leader that proposed a reconfiguration crashes a random moment later (before anyone logged it, while it is
    /// being acked, or after it committed) with fsyncs pending. The ensemble then runs either the new configuration,
    /// when the reconfig txn was committed, or the old one, never anything else and never a mix: every member
    /// activates the same one, no configuration but those two was ever activated, and every committed txn survives.
    /// </summary>
    [Theory]
    [MemberData(nameof(CrashSeeds))]
    public void A_reconfig_interrupted_by_a_crash_of_its_leader_completes_or_leaves_the_old_configuration(int seed)
    {
        var faults = new Random(seed);
        var c = new Cluster(seed, seed % 2 == 0 ? [1, 2, 3] : [1, 2, 3, 4, 5]) { MaxFsyncMs = faults.Next(2) * 200 };
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var before = leader.Peer.Config;
        long nextId = 10;
        var (voters, observers) = RandomChange(c, faults, ref nextId);
        // One time in four the leader is cut off before its proposal leaves, so that no one ever logs it.
        var neverSent = faults.Next(4) == 0;
        if (neverSent) c.Partition(leader.Id);
        var (error, zxid) = Reconfig(c, voters, observers);
        Assert.Null(error);
        c.Run(faults.Next(0, 200), writesPerTick: 2);
        c.Crash(leader.Id);
        c.Heal();
        c.Run(3_000, writesPerTick: 2);
        c.Restart(leader.Id);
        c.Run(3_000, writesPerTick: 1);
        c.Run(1_000);
        var completed = c.EverApplied.Contains(zxid);
        if (neverSent) Assert.False(completed, "a reconfig no one else logged was committed");
        AssertConfigConverged(c, completed ? new ZabConfig(voters, observers, zxid) : before);
        Assert.All(c.EverActivated, config => Assert.Equal(zxid, config.Version));
    }

    /// <summary>
    /// CI's stall of a grow (docs/architecture.md §7), with links authenticated as the host's member handshake does:
    /// the leader of {1,2,3} → {1,2,3,4,5} dies when one of its two followers has logged the reconfig and the other
    /// has not. The one that logged it wins the election with the pending configuration, so its quorums need a
    /// majority of the new voters too, which it has only with a joiner. The joiners (started as ZooKeeper's are, with
    /// the current configuration and themselves as voters) follow only a leader that a quorum of the members they know
    /// vouches for, and the follower that did not log it, which knows no configuration naming them, refused their
    /// links. The survivors and the joiners must still elect a leader and end in the old or the new configuration.
    /// The same with joiners started as <see cref="Join"/> starts them (themselves as observers, which the members'
    /// configuration does not name either).
    /// </summary>
    [Theory]
    [InlineData(41, false)]
    [InlineData(42, false)]
    [InlineData(43, false)]
    [InlineData(41, true)]
    [InlineData(42, true)]
    [InlineData(43, true)]
    public void A_grow_whose_leader_died_when_only_one_of_two_followers_logged_it_does_not_stall(int seed, bool joinersAsObservers)
    {
        var c = new Cluster(seed, [1, 2, 3]) { AuthenticatedLinks = true };
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var before = leader.Peer.Config;
        foreach (var joiner in new long[] { 4, 5 })
            if (joinersAsObservers) Join(c, joiner);
            else c.AddNode(joiner, new ZabConfig(before.Voters.Append(joiner), before.Observers, before.Version));
        c.Run(500, writesPerTick: 1);
        var followers = before.Voters.Where(v => v != leader.Id).Order().ToList();
        var (logged, notLogged) = (c.Nodes[followers[0]], c.Nodes[followers[1]]);
        // The proposal reaches one follower only; the leader dies before anything else leaves it.
        c.Cut.Add((leader.Id, notLogged.Id));
        c.Cut.Add((notLogged.Id, leader.Id));
        var (error, zxid) = Reconfig(c, [1, 2, 3, 4, 5]);
        Assert.Null(error);
        c.DeliverAll();
        c.Crash(leader.Id);
        c.Heal();
        Assert.Equal(zxid, logged.Peer.PendingConfig?.Version);
        Assert.Null(notLogged.Peer.PendingConfig);
        Assert.DoesNotContain(zxid, c.EverApplied);

        c.Run(5_000, writesPerTick: 1);
        Assert.True(c.Leader is not null, $"no leader 5 s after leader {leader.Id} died:\n{c.Describe()}");
        var grown = new ZabConfig([1, 2, 3, 4, 5], [], zxid);
        var final = c.Leader!.Peer.Config;
        Assert.True(final.Version == before.Version || final.Version == zxid, $"neither the old nor the new configuration: {final}");
        AssertConfigConverged(c, final.Version == zxid ? grown : before);
        c.Restart(leader.Id);
        c.Run(2_000, writesPerTick: 1);
        c.Run(500);
        AssertConfigConverged(c, final);
        Assert.All(c.EverActivated, config => Assert.Equal(zxid, config.Version));
    }

    /// <summary>
    /// The host authenticates an election message's sender, not the notification inside it: one that names another
    /// server is dropped, so a member (or a joiner only heard of) cannot cast a vote in another voter's name.
    /// </summary>
    [Fact]
    public void A_notification_in_another_servers_name_is_not_counted_as_its_vote()
    {
        var config = new ZabConfig([1, 2, 3, 4, 5], [], Zxids.Make(1, 0));
        var peer = new ZabPeer(3, config, new Node(3, config), acceptedEpoch: 1, currentEpoch: 1, new ZabSettings(TickMs: 50));
        peer.Start(0);
        var vote = new Vote(1, Zxids.Make(1, 9), 1);
        peer.Receive(new ElectionMessage(1, new Notification(1, vote, 1, PeerState.Looking)), 0);
        // Server 1 again, as if it were server 2: with it, 1, 2 and 3 would be a quorum of five for leader 1.
        var answer = peer.Receive(new ElectionMessage(1, new Notification(2, vote, 1, PeerState.Looking)), 0);
        Assert.Empty(answer);
        peer.Tick(300);   // past the finalize wait
        Assert.Equal((PeerState.Looking, -1L), (peer.Role, peer.Leader));
        // Server 2's own vote completes the quorum.
        peer.Receive(new ElectionMessage(2, new Notification(2, vote, 1, PeerState.Looking)), 0);
        peer.Tick(600);
        Assert.Equal((PeerState.Following, 1L), (peer.Role, peer.Leader));
    }

    /// <summary>
    /// What a member takes from the pending configuration an election notification carries: the servers it names are
    /// to be linked with (<see cref="ZabPeer.HeardOfConfig"/>) when a member it knows sent it, and not when a server it
    /// only heard of did; its quorum stays its own; and once it logs that reconfiguration it is pending as any other.
    /// </summary>
    [Fact]
    public void A_pending_configuration_heard_from_a_member_names_whom_to_link_with_and_nothing_more()
    {
        var committed = new ZabConfig([1, 2, 3], [], Zxids.Make(1, 0));
        var grown = new ZabConfig([1, 2, 3, 4, 5], [], Zxids.Make(1, 7));
        var peer = new ZabPeer(3, committed, new Node(3, committed), acceptedEpoch: 1, currentEpoch: 1, new ZabSettings(TickMs: 50));
        peer.Start(0);
        var vote = new Vote(1, grown.Version, 1);

        // Joiner 4, which no configuration of server 3 names (its link was let in for a configuration heard of): its
        // notification is answered, and what it says about configurations is not taken.
        var answer = peer.Receive(new ElectionMessage(4, new Notification(4, vote, 1, PeerState.Looking), new ZabConfig([1, 2, 3, 4], [], Zxids.Make(1, 9)), grown), 0);
        Assert.Contains(answer, o => o is SendTo { To: 4, Message: ElectionMessage });
        Assert.Null(peer.HeardOfConfig);
        Assert.Equal(committed.Version, peer.Config.Version);

        // Member 1 logged the grow: server 3 links with its joiners from now on, and counts quorums as before.
        peer.Receive(new ElectionMessage(1, new Notification(1, vote, 1, PeerState.Looking), committed, grown), 0);
        Assert.Same(grown, peer.HeardOfConfig);
        Assert.Null(peer.PendingConfig);
        Assert.Equal(committed.Version, peer.Config.Version);
        peer.Tick(300);   // past the finalize wait: 1 and 3 are a quorum of {1,2,3}, not of {1,2,3,4,5}
        Assert.Equal((PeerState.Following, 1L), (peer.Role, peer.Leader));

        // Its leader's sync brings the reconfig txn: pending as any logged one, and no longer only heard of.
        peer.Receive(new LeaderInfo(1, 2), 0);
        var entries = Enumerable.Range(1, 7).Select(i => new LogEntry(Zxids.Make(1, i), [], i == 7 ? grown : null)).ToList();
        peer.Receive(new SyncLearner(1, SyncMode.Diff, 0, 0, entries, 2, Zxids.Make(1, 6)), 0);
        Assert.Equal(grown.Version, peer.PendingConfig?.Version);
        Assert.Null(peer.HeardOfConfig);
    }

    public static IEnumerable<object[]> ScheduleSeeds => Seeds(16);

    /// <summary>
    /// Several reconfigurations in a row, each under writes, with a fault injected while it is pending: lost messages
    /// on some links, a partitioned member, or a crashed one (the leader most often), and delayed fsyncs throughout.
    /// Every first commit is checked to have a quorum of each configuration in force (the cluster fails the test at
    /// once otherwise); at the end the members converge on the last committed configuration with no txn lost.
    /// <c>dotnet test tests/Coordination.Core.Tests --filter "FullyQualifiedName~Reconfigurations_under"</c>; more seeds by
    /// widening <see cref="ScheduleSeeds"/>.
    /// </summary>
    [Theory]
    [MemberData(nameof(ScheduleSeeds))]
    public void Reconfigurations_under_message_loss_partitions_and_crashes_lose_nothing_and_converge(int seed)
    {
        var faults = new Random(seed);
        var c = new Cluster(seed, [1, 2, 3]) { MaxFsyncMs = 300 };
        c.Run(2_000, writesPerTick: 1);
        long nextId = 10;
        var proposed = 0;
        for (var round = 0; round < 8; round++)
        {
            c.Run(faults.Next(200, 800), writesPerTick: 2);
            if (c.Leader is null || c.Leader.Peer.PendingConfig is not null) continue;
            // A quorum of the new voters must already be synchronised (see CheckReconfig): from three voters up, every
            // change here has one unless a member is catching up.
            var (voters, observers) = RandomChange(c, faults, ref nextId, minVoters: 3);
            if (Reconfig(c, voters, observers).Error is { } refused)
            {
                    Assert.Equal(ReconfigError.NewConfigNoQuorum, refused);   // a member is still catching up
                continue;
            }
            proposed++;
            c.Run(faults.Next(0, 150), writesPerTick: 2);
            var members = c.Nodes.Values.Where(n => n.Up && n.Peer.IsMember).ToList();
            var victim = c.Leader is { } leader && faults.Next(2) == 0 ? leader : members[faults.Next(members.Count)];
            switch (faults.Next(3))
            {
                case 0:
                    c.Lose = (from, to) => (from == victim.Id || to == victim.Id) && faults.Next(3) == 0;
                    c.Run(faults.Next(200, 1_000), writesPerTick: 2);
                    c.Lose = null;
                    break;
                case 1:
                    c.Partition(victim.Id);
                    c.Run(faults.Next(200, 1_500), writesPerTick: 2);
                    c.Heal();
                    break;
                default:
                    c.Crash(victim.Id);
                    c.Run(faults.Next(200, 1_500), writesPerTick: 2);
                    c.Restart(victim.Id);
                    break;
            }
            c.Run(2_000, writesPerTick: 1);
        }
        c.Run(3_000);
        Assert.True(proposed >= 2, $"only {proposed} reconfigurations were proposed");
        AssertConfigConverged(c, c.Leader!.Peer.Config);
        Assert.True(c.EverApplied.Count > 100, "too little was committed to show anything");
    }
}
