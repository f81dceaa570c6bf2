using Akka.Configuration;
using Coordination.Server;
using Coordination.Server.Ensemble;

namespace Coordination.Akka.Hosting.Cluster;

/// <summary>
/// <c>coordination.ensemble.cluster</c> (documented in the server's reference.conf): an embedded member whose
/// ensemble membership comes from Akka.Cluster instead of a voter list.
/// </summary>
/// <param name="ServerId">This member's id (<c>coordination.server-id</c>): fixed for its data dir, carried to the others
/// in its identity role.</param>
/// <param name="MemberEndpoint">host:port of this member's transport, as the others dial it.</param>
/// <param name="InitialVoters">How many of the first role members to come Up bootstrap the voters.</param>
/// <param name="PromoteObservers">Promote an observer in place of a failed voter (through a reconfig).</param>
/// <param name="UnreachableGrace">How long a voter may be Unreachable (or absent) before it counts as failed.</param>
/// <param name="CheckInterval">How often the leader's host compares the cluster with the configuration.</param>
internal sealed record ClusterMembershipSettings(
    bool Enabled, string Role, long ServerId, string MemberEndpoint, int InitialVoters, bool PromoteObservers,
    TimeSpan UnreachableGrace, TimeSpan CheckInterval)
{
    public static ClusterMembershipSettings Create(Config member)
    {
        var full = member.WithFallback(ServerSettings.Reference);
        var c = full.GetConfig("coordination.ensemble.cluster");
        var settings = new ClusterMembershipSettings(
            c.GetBoolean("enabled", false), c.GetString("role", "coordination"), full.GetLong("coordination.server-id", 0),
            c.GetString("member-endpoint", ""), c.GetInt("initial-voters", 3), c.GetBoolean("promote-observers", true),
            c.GetTimeSpan("unreachable-grace", TimeSpan.FromSeconds(5)), c.GetTimeSpan("check-interval", TimeSpan.FromSeconds(1)));
        if (!settings.Enabled) return settings;
        if (settings.ServerId is < 1 or > 254)
            throw new ConfigurationException("coordination.server-id: a cluster member needs its own id (1..254), fixed for its data dir");
        if (!EnsembleSettings.TrySplit(settings.MemberEndpoint, out _, out _))
            throw new ConfigurationException($"coordination.ensemble.cluster.member-endpoint: '{settings.MemberEndpoint}' is not host:port");
        if (settings.InitialVoters < 1)
            throw new ConfigurationException("coordination.ensemble.cluster.initial-voters must be at least 1");
        if (string.IsNullOrEmpty(settings.Role) || settings.Role.Contains(':'))
            throw new ConfigurationException("coordination.ensemble.cluster.role must be a non-empty role name without ':'");
        if (full.GetConfig("coordination.ensemble.voters") is { IsEmpty: false })
            throw new ConfigurationException("coordination.ensemble: with cluster.enabled the cluster supplies the members; list no voters");
        return settings;
    }

    /// <summary>The cluster role that tells the others this node's member id and endpoint.</summary>
    public string IdentityRole => ClusterMembershipPolicy.IdentityRole(Role, ServerId, MemberEndpoint);

    /// <summary>
    /// The member's HOCON with the given configuration as its start-up membership (<c>voters</c>/<c>observers</c>), and
    /// reconfig on (the leader's host proposes the cluster's changes as reconfigs). A committed configuration in the
    /// data dir still wins over it at start (<see cref="DynamicConfigFile"/>).
    /// </summary>
    public static Config WithMembers(Config member, Coordination.Core.Zab.DynamicConfig members)
    {
        string Lines(bool observers) => string.Join("\n", members.Members.Where(m => m.Observer == observers).Select(m => $"      {m.Id} = \"{m.Endpoint}\""));
        return ConfigurationFactory.ParseString($$"""
            coordination {
              reconfig-enabled = on
              ensemble {
                voters {
            {{Lines(false)}}
                }
                observers {
            {{Lines(true)}}
                }
              }
            }
            """).WithFallback(member);
    }
}
