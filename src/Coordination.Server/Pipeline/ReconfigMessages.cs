namespace Coordination.Server.Pipeline;

/// <summary>The peer refused a prepared reconfig at proposal time: <see cref="Proposal"/> (an error txn) is what commits at its zxid.</summary>
public sealed record ReconfigRefused(long Zxid, Proposal Proposal);

/// <summary>A new configuration is active: these are the members the replica now trusts and forwards to.</summary>
public sealed record MembersChanged(Ensemble.EnsembleMembers Members);
