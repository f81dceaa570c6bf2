using Coordination.Protocol;

namespace Coordination.Client.Actors;

/// <summary>The ensemble's configuration (<see cref="CoordinationClient.GetConfigAsync"/>); replies <see cref="ConfigData"/>.
/// With <see cref="Watch"/> the next reconfiguration arrives as a <see cref="WatchEvent"/>.</summary>
public sealed record GetConfig(bool Watch = false) : CoordinationRequest
{
    internal override bool Watches => Watch;
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.GetConfigAsync(w).ConfigureAwait(false);
        return new ConfigData(r.Config, r.Stat);
    }
}

/// <summary>Incremental reconfiguration (<see cref="CoordinationClient.ReconfigAsync"/>); replies <see cref="ConfigData"/>
/// with the committed configuration.</summary>
public sealed record Reconfig(IReadOnlyList<string>? Joining, IReadOnlyList<long>? Leaving, long FromConfigVersion = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.ReconfigAsync(Joining, Leaving, FromConfigVersion).ConfigureAwait(false);
        return new ConfigData(r.Config, r.Stat);
    }
}

/// <summary>Non-incremental reconfiguration (<see cref="CoordinationClient.ReconfigMembersAsync"/>); replies <see cref="ConfigData"/>.</summary>
public sealed record ReconfigMembers(IReadOnlyList<string> Members, long FromConfigVersion = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.ReconfigMembersAsync(Members, FromConfigVersion).ConfigureAwait(false);
        return new ConfigData(r.Config, r.Stat);
    }
}

public sealed record ConfigData(QuorumConfig Config, Stat Stat);
