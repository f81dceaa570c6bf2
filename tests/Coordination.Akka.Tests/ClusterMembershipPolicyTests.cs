using Coordination.Akka.Hosting.Cluster;
using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Akka.Tests;

/// <summary>
/// The decisions an embedded ensemble takes from Akka.Cluster, without actors (issue 21, scope 2): who bootstraps the
/// voters (every node must compute the same set) and which reconfig the leader's host proposes.
/// </summary>
public sealed class ClusterMembershipPolicyTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private static RoleMember M(long id, int upNumber, RoleMemberHealth health = RoleMemberHealth.Up, long sinceMs = 0) =>
        new(id, $"10.0.0.{id}:3888", upNumber, $"akka.tcp://app@10.0.0.{id}:2551", health, sinceMs);

    private static DynamicConfig Config(string text) => DynamicConfig.Parse(text, out var error) ?? throw new FormatException(error);

    private const string ThreeVoters = "server.1=10.0.0.1:3888:0:participant\nserver.2=10.0.0.2:3888:0:participant\nserver.3=10.0.0.3:3888:0:participant\nversion=100000003";
    private const string ThreeVotersTwoObservers = "server.1=10.0.0.1:3888:0:participant\nserver.2=10.0.0.2:3888:0:participant\nserver.3=10.0.0.3:3888:0:participant\n" +
        "server.4=10.0.0.4:3888:0:observer\nserver.5=10.0.0.5:3888:0:observer\nversion=100000007";

    [Fact]
    public void Identity_roles_round_trip_and_other_roles_are_ignored()
    {
        var role = ClusterMembershipPolicy.IdentityRole("coordination", 7, "127.0.0.1:3897");
        Assert.Equal("coordination:7@127.0.0.1:3897", role);
        Assert.Equal<(long, string)?>((7L, "127.0.0.1:3897"), ClusterMembershipPolicy.IdentityOf(["coordination", "web", role], "coordination"));
        Assert.Null(ClusterMembershipPolicy.IdentityOf(["coordination", role], "other"));
        Assert.Null(ClusterMembershipPolicy.IdentityOf(["coordination:x@127.0.0.1:1", "coordination:300@h:1", "coordination:3@nohost"], "coordination"));
    }

    [Fact]
    public void No_initial_configuration_until_enough_role_members_came_up()
    {
        Assert.Null(ClusterMembershipPolicy.InitialConfiguration([M(1, 1), M(2, 2)], 3));
        // Joining members have no up number yet (int.MaxValue): they do not count.
        Assert.Null(ClusterMembershipPolicy.InitialConfiguration([M(1, 1), M(2, 2), M(3, int.MaxValue)], 3));
        Assert.Null(ClusterMembershipPolicy.InitialConfiguration([M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Gone)], 3));
    }

    [Fact]
    public void The_oldest_members_bootstrap_the_voters_whatever_order_and_reachability_a_node_sees()
    {
        RoleMember[] view = [M(5, 9), M(4, 2), M(2, 7), M(1, 4), M(3, 3, RoleMemberHealth.Unreachable)];
        var expected = "server.1=10.0.0.1:3888:0:participant\nserver.3=10.0.0.3:3888:0:participant\nserver.4=10.0.0.4:3888:0:participant\nversion=0";
        for (var seed = 0; seed < 10; seed++)
        {
            var shuffled = view.ToArray();
            new Random(seed).Shuffle(shuffled);
            var config = ClusterMembershipPolicy.InitialConfiguration(shuffled, 3);
            Assert.NotNull(config);
            Assert.Equal(expected, config!.ToString());
        }
    }

    [Fact]
    public void Two_members_claiming_one_id_make_no_configuration()
    {
        var twin = M(1, 2) with { Endpoint = "10.0.0.9:3888" };
        Assert.Null(ClusterMembershipPolicy.InitialConfiguration([M(1, 1), twin, M(3, 3)], 3));
    }

    [Fact]
    public void A_joiner_starts_with_the_first_voters_and_itself_as_an_observer()
    {
        var initial = ClusterMembershipPolicy.InitialConfiguration([M(1, 1), M(2, 2), M(3, 3)], 3)!;
        var joiner = ClusterMembershipPolicy.JoinerConfiguration(initial, 4, "10.0.0.4:3888");
        Assert.Equal(new long[] { 1, 2, 3 }, joiner.Voters.Order());
        Assert.Equal(new long[] { 4 }, joiner.Observers);
    }

    [Fact]
    public void Nothing_to_propose_when_the_configuration_fits_the_cluster()
    {
        Assert.Null(Plan(ThreeVoters, [M(1, 1), M(2, 2), M(3, 3)], nowMs: 60_000));
        Assert.Null(Plan(ThreeVotersTwoObservers, [M(1, 1), M(2, 2), M(3, 3), M(4, 4), M(5, 5)], nowMs: 60_000));
    }

    [Fact]
    public void Role_members_up_and_not_in_the_configuration_join_as_observers()
    {
        var plan = Plan(ThreeVoters, [M(1, 1), M(2, 2), M(3, 3), M(5, 5), M(4, 4), M(6, 6, RoleMemberHealth.Unreachable)], nowMs: 1_000);
        Assert.NotNull(plan);
        Assert.Equal(new[] { "server.4=10.0.0.4:3888:0:observer", "server.5=10.0.0.5:3888:0:observer" }, plan!.Joining);
    }

    [Fact]
    public void A_voter_gone_from_the_cluster_is_replaced_by_the_oldest_healthy_observer_at_once()
    {
        var plan = Plan(ThreeVotersTwoObservers, [M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Gone, sinceMs: 9_000), M(4, 8), M(5, 5)], nowMs: 9_001);
        Assert.NotNull(plan);
        Assert.Equal(new[] { "server.5=10.0.0.5:3888:0:participant", "server.3=10.0.0.3:3888:0:observer" }, plan!.Joining);
        // The result is a configuration with as many voters as before, the failed one an observer.
        var next = Config(ThreeVotersTwoObservers).Reconfigure(string.Join(",", plan.Joining), null, null, out _)!;
        Assert.Equal(new long[] { 1, 2, 5 }, next.Voters.Order());
        Assert.Equal(new long[] { 3, 4 }, next.Observers.Order());
    }

    [Fact]
    public void An_unreachable_voter_is_replaced_only_after_the_grace_period()
    {
        RoleMember[] view = [M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Unreachable, sinceMs: 10_000), M(4, 4), M(5, 5)];
        Assert.Null(Plan(ThreeVotersTwoObservers, view, nowMs: 14_999));
        var plan = Plan(ThreeVotersTwoObservers, view, nowMs: 15_000);
        Assert.NotNull(plan);
        Assert.Equal(new[] { "server.4=10.0.0.4:3888:0:participant", "server.3=10.0.0.3:3888:0:observer" }, plan!.Joining);
    }

    [Fact]
    public void A_voter_absent_from_the_view_counts_as_failed_once_the_grace_has_passed_since_watching_began()
    {
        RoleMember[] view = [M(1, 1), M(2, 2), M(4, 4), M(5, 5)];
        Assert.Null(Plan(ThreeVotersTwoObservers, view, nowMs: 4_000, watchingSinceMs: 0));
        Assert.Equal("server.4=10.0.0.4:3888:0:participant", Plan(ThreeVotersTwoObservers, view, nowMs: 5_000, watchingSinceMs: 0)!.Joining[0]);
    }

    [Fact]
    public void With_promotion_off_a_failed_voter_stays_and_newcomers_still_join()
    {
        RoleMember[] view = [M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Gone), M(4, 4), M(5, 5)];
        Assert.Null(Plan(ThreeVotersTwoObservers, view, nowMs: 60_000, promote: false));
        var plan = Plan(ThreeVoters, view, nowMs: 60_000, promote: false);
        Assert.Equal(new[] { "server.4=10.0.0.4:3888:0:observer", "server.5=10.0.0.5:3888:0:observer" }, plan!.Joining);
    }

    [Fact]
    public void No_healthy_observer_means_no_swap_and_fewer_voters_than_the_target_get_one_back()
    {
        // Both observers unreachable: nothing to promote yet.
        Assert.Null(Plan(ThreeVotersTwoObservers,
            [M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Gone), M(4, 4, RoleMemberHealth.Unreachable), M(5, 5, RoleMemberHealth.Unreachable)], nowMs: 60_000));
        // Two voters of three (a voter was removed by hand): the oldest healthy observer is promoted.
        var two = "server.1=10.0.0.1:3888:0:participant\nserver.2=10.0.0.2:3888:0:participant\nserver.4=10.0.0.4:3888:0:observer\nversion=5";
        Assert.Equal(new[] { "server.4=10.0.0.4:3888:0:participant" }, Plan(two, [M(1, 1), M(2, 2), M(4, 4)], nowMs: 60_000)!.Joining);
    }

    [Fact]
    public void An_observer_whose_node_departed_the_cluster_leaves_the_configuration()
    {
        // Observer 4 was downed (Gone) at 1 s; observer 5 is healthy; nothing else to do. It leaves once the grace has passed.
        RoleMember[] view = [M(1, 1), M(2, 2), M(3, 3), M(4, 4, RoleMemberHealth.Gone, sinceMs: 1_000), M(5, 5)];
        Assert.Null(Plan(ThreeVotersTwoObservers, view, nowMs: 5_999));
        var plan = Plan(ThreeVotersTwoObservers, view, nowMs: 6_000);
        Assert.NotNull(plan);
        Assert.Empty(plan!.Joining);
        Assert.Equal(new long[] { 4 }, plan.Leaving);
        var next = Config(ThreeVotersTwoObservers).Reconfigure(null, string.Join(",", plan.Leaving), null, out _)!;
        Assert.Equal(new long[] { 1, 2, 3 }, next.Voters.Order());
        Assert.Equal(new long[] { 5 }, next.Observers);
    }

    [Fact]
    public void Observers_absent_from_the_view_leave_after_the_grace_and_unreachable_ones_stay()
    {
        // 4 is absent (Removed: the cluster no longer lists it), 5 unreachable for long: only 4 leaves, after the grace.
        RoleMember[] view = [M(1, 1), M(2, 2), M(3, 3), M(5, 5, RoleMemberHealth.Unreachable, sinceMs: 0)];
        Assert.Null(Plan(ThreeVotersTwoObservers, view, nowMs: 4_999, watchingSinceMs: 0));
        Assert.Equal(new long[] { 4 }, Plan(ThreeVotersTwoObservers, view, nowMs: 60_000, watchingSinceMs: 0)!.Leaving);
    }

    [Fact]
    public void A_replaced_voter_that_departed_is_swapped_first_and_removed_next()
    {
        RoleMember[] view = [M(1, 1), M(2, 2), M(3, 3, RoleMemberHealth.Gone), M(4, 4), M(5, 5)];
        var swap = Plan(ThreeVotersTwoObservers, view, nowMs: 60_000)!;
        Assert.Empty(swap.Leaving); // one step at a time: the swap keeps a quorum of the old voters
        var swapped = Config(ThreeVotersTwoObservers).Reconfigure(string.Join(",", swap.Joining), null, null, out _)!;
        var removal = ClusterMembershipPolicy.Plan(swapped, view, 60_000, 0, Grace, targetVoters: 3, promote: true)!;
        Assert.Empty(removal.Joining);
        Assert.Equal(new long[] { 3 }, removal.Leaving);
        // Back in the cluster (a new incarnation, Up) after the removal: it joins again as an observer.
        var removed = swapped.Reconfigure(null, "3", null, out _)!;
        RoleMember[] back = [M(1, 1), M(2, 2), M(3, 6), M(4, 4), M(5, 5)];
        Assert.Equal(new[] { "server.3=10.0.0.3:3888:0:observer" }, ClusterMembershipPolicy.Plan(removed, back, 90_000, 0, Grace, 3, true)!.Joining);
    }

    private static ReconfigPlan? Plan(string config, IReadOnlyCollection<RoleMember> view, long nowMs, long watchingSinceMs = 0, bool promote = true) =>
        ClusterMembershipPolicy.Plan(Config(config), view, nowMs, watchingSinceMs, Grace, targetVoters: 3, promote);
}
