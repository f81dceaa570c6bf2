using Coordination.Core;

namespace Coordination.Server.Pipeline;

/// <summary>The peer refused a prepared reconfig at proposal time: <see cref="Proposal"/> (an error txn) is what commits at its zxid.</summary>
public sealed record ReconfigRefused(long Zxid, Proposal Proposal);

/// <summary>A new configuration is active: these are the members the replica now trusts and forwards to.</summary>
public sealed record MembersChanged(Ensemble.EnsembleMembers Members);

/// <summary>The members whose forwarded requests the replica accepts: those of the committed configuration and of a pending
/// reconfiguration (a joiner serves, and forwards its clients' writes, once synchronised, which may be before it commits).</summary>
public sealed record TrustedMembersChanged(Ensemble.EnsembleMembers Members)
{
    /// <summary>The Akka address of member <paramref name="id"/>'s node, or null when no configuration has it.</summary>
    public string? AddressOf(long id) => Members.Voters.TryGetValue(id, out var address) ? address : Members.Observers.GetValueOrDefault(id);
}
