using System.Globalization;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;

namespace Coordination.Akka.Hosting.Cluster;

/// <summary>How a role member stands in this node's view of the cluster.</summary>
internal enum RoleMemberHealth
{
    /// <summary>Up (or WeaklyUp, Joining) and reachable.</summary>
    Up,
    /// <summary>Some node's failure detector lost it.</summary>
    Unreachable,
    /// <summary>Down, Leaving, Exiting or Removed: the cluster is letting it go.</summary>
    Gone,
}

/// <summary>
/// A role member as this node's cluster view shows it: its member id and endpoint (from its identity role), its age
/// rank <see cref="UpNumber"/> (1 the oldest, in Akka.Cluster's age order: the order in which the cluster moved
/// members Up, then address; int.MaxValue while it is not Up yet) and its health since <see cref="SinceMs"/>
/// (monotonic milliseconds).
/// </summary>
internal sealed record RoleMember(long Id, string Endpoint, int UpNumber, string Address, RoleMemberHealth Health, long SinceMs);

/// <summary>A reconfig the leader's host proposes: joining "server.N=..." lines, leaving ids, and the reason, for the log.</summary>
internal sealed record ReconfigPlan(IReadOnlyList<string> Joining, IReadOnlyList<long> Leaving, string Reason);

/// <summary>
/// What an embedded ensemble takes from Akka.Cluster (docs/architecture.md §10), as pure functions of a cluster view
/// and the ensemble's configuration, so that every node computes the same answer from the same view: who bootstraps
/// the voters, and which reconfig the leader's host proposes. The answers are proposals only: the bootstrap is decided
/// once and then lives in each voter's data dir; a reconfig is prepared by the leader against the configuration
/// version it read (a stale view fails the version check) and committed by Zab, or not at all.
/// </summary>
internal static class ClusterMembershipPolicy
{
    /// <summary>The cluster role that carries a member's id and member endpoint: "<paramref name="role"/>:id@host:port".</summary>
    public static string IdentityRole(string role, long id, string endpoint) => $"{role}:{id.ToString(CultureInfo.InvariantCulture)}@{endpoint}";

    /// <summary>The member id and endpoint of a cluster member's roles, when it is a member of <paramref name="role"/>.</summary>
    public static (long Id, string Endpoint)? IdentityOf(IEnumerable<string> roles, string role)
    {
        var prefix = role + ":";
        foreach (var r in roles)
        {
            if (!r.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var at = r.IndexOf('@', prefix.Length);
            if (at < 0 || !long.TryParse(r.AsSpan(prefix.Length, at - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) continue;
            var endpoint = r[(at + 1)..];
            if (id is >= 1 and <= 254 && EnsembleSettings.TrySplit(endpoint, out _, out _)) return (id, endpoint);
        }
        return null;
    }

    /// <summary>
    /// The ensemble's first configuration: null until <paramref name="initialVoters"/> role members have come Up; then the
    /// oldest that many (cluster age: up number, then address) as the voters, version 0. Members come Up in age order
    /// (the cluster leader numbers them as it moves them Up), so every node that sees that many sees the same oldest
    /// ones. Two members claiming one id, or one endpoint, make no configuration (a deployment error: logged by the caller).
    /// </summary>
    public static DynamicConfig? InitialConfiguration(IEnumerable<RoleMember> members, int initialVoters)
    {
        // Reachability is each node's own view, so it must not change the answer: every member the cluster moved Up
        // counts (an up number is given when it comes Up), reachable or not.
        var up = members.Where(m => m.Health != RoleMemberHealth.Gone && m.UpNumber < int.MaxValue).OrderBy(m => m.UpNumber).ThenBy(m => m.Address, StringComparer.Ordinal).ToList();
        if (up.Count < initialVoters) return null;
        var voters = up.Take(initialVoters).ToList();
        if (voters.Select(m => m.Id).Distinct().Count() != voters.Count || voters.Select(m => m.Endpoint).Distinct().Count() != voters.Count) return null;
        return new DynamicConfig(voters.Select(m => Spec(m.Id, m.Endpoint, observer: false)), 0);
    }

    /// <summary>
    /// The configuration a member that is not among the first voters starts with: those voters and itself as an
    /// observer. The ensemble may have moved on since; the Zab core then makes it a joiner that learns the current
    /// configuration from the members and waits until a reconfig names it.
    /// </summary>
    public static DynamicConfig JoinerConfiguration(DynamicConfig initial, long selfId, string selfEndpoint) =>
        new(initial.Members.Where(m => m.Id != selfId).Append(Spec(selfId, selfEndpoint, observer: true)), 0);

    /// <summary>
    /// The reconfig the leader's host proposes for <paramref name="current"/> given this cluster view (one entry per
    /// role member id: its latest incarnation), or null when the
    /// configuration already fits it. In order of urgency:
    /// <list type="number">
    /// <item>A failed voter (Gone; Unreachable for <paramref name="grace"/>; or absent from the view for that long since
    /// <paramref name="watchingSinceMs"/>) is swapped with the oldest healthy observer (promotion on): one swap per reconfig,
    /// so that each step keeps a quorum of the old voters.</item>
    /// <item>Fewer voters than <paramref name="targetVoters"/> (an earlier swap found no observer): the oldest healthy
    /// observer is promoted (promotion on).</item>
    /// <item>Observers whose node departed (Down, Leaving, Exiting or Removed, or absent from the view, for
    /// <paramref name="grace"/>: no reconfig for a node that is back at once) leave the configuration. An unreachable
    /// one stays: it may come back, and if it does not the cluster downs it.</item>
    /// <item>Role members Up that the configuration does not name join as observers.</item>
    /// </list>
    /// </summary>
    public static ReconfigPlan? Plan(DynamicConfig current, IReadOnlyCollection<RoleMember> members, long nowMs, long watchingSinceMs,
        TimeSpan grace, int targetVoters, bool promote)
    {
        var byId = members.ToDictionary(m => m.Id);
        var graceMs = (long)grace.TotalMilliseconds;
        bool Failed(long id) => byId.TryGetValue(id, out var m)
            ? m.Health == RoleMemberHealth.Gone || (m.Health == RoleMemberHealth.Unreachable && nowMs - m.SinceMs >= graceMs)
            : nowMs - watchingSinceMs >= graceMs;
        bool Departed(long id) => byId.TryGetValue(id, out var m)
            ? m.Health == RoleMemberHealth.Gone && nowMs - m.SinceMs >= graceMs
            : nowMs - watchingSinceMs >= graceMs;
        bool Healthy(long id) => byId.TryGetValue(id, out var m) && m.Health == RoleMemberHealth.Up;
        int Age(long id) => byId.TryGetValue(id, out var m) ? m.UpNumber : int.MaxValue;

        var voters = current.Members.Where(m => !m.Observer).OrderBy(m => m.Id).ToList();
        var candidates = current.Members.Where(m => m.Observer && Healthy(m.Id)).OrderBy(m => Age(m.Id)).ThenBy(m => m.Id).ToList();
        if (promote && candidates.Count > 0)
        {
            var failed = voters.FirstOrDefault(v => Failed(v.Id));
            if (failed is not null)
                return new ReconfigPlan([Line(candidates[0] with { Observer = false }), Line(failed with { Observer = true })], [],
                    $"voter {failed.Id} failed ({Describe(byId.GetValueOrDefault(failed.Id))}): observer {candidates[0].Id} takes its place");
            if (voters.Count < targetVoters)
                return new ReconfigPlan([Line(candidates[0] with { Observer = false })], [],
                    $"{voters.Count} voters of {targetVoters}: observer {candidates[0].Id} becomes a voter");
        }
        var departed = current.Members.Where(m => m.Observer && Departed(m.Id)).Select(m => m.Id).Order().ToList();
        if (departed.Count > 0)
            return new ReconfigPlan([], departed,
                $"observers {string.Join(", ", departed.Select(id => $"{id} ({Describe(byId.GetValueOrDefault(id))})"))} departed from the cluster: they leave the configuration");
        var named = current.Members.Select(m => m.Id).ToHashSet();
        var usedEndpoints = current.Members.Select(m => m.Endpoint).ToHashSet();
        var newcomers = byId.Values.Where(m => m.Health == RoleMemberHealth.Up && !named.Contains(m.Id) && !usedEndpoints.Contains(m.Endpoint))
            .OrderBy(m => m.UpNumber).ThenBy(m => m.Id).ToList();
        if (newcomers.Count > 0)
            return new ReconfigPlan(newcomers.Select(m => Line(Spec(m.Id, m.Endpoint, observer: true))).ToList(), [],
                $"role members {string.Join(", ", newcomers.Select(m => m.Id))} are Up and not in the configuration: they join as observers");
        return null;
    }

    private static string Describe(RoleMember? m) => m is null ? "absent from the cluster" : m.Health.ToString().ToLowerInvariant();

    /// <summary>A member's server line: its member endpoint, no election port, no client address (the client port is off).</summary>
    public static MemberSpec Spec(long id, string endpoint, bool observer)
    {
        EnsembleSettings.TrySplit(endpoint, out var host, out var port);
        return new MemberSpec(id, host, port, 0, observer, null, 0);
    }

    private static string Line(MemberSpec m) => $"server.{m.Id.ToString(CultureInfo.InvariantCulture)}={m}";
}
