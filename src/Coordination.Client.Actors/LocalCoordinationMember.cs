using Akka.Actor;

namespace Coordination.Client.Actors;

/// <summary>
/// The in-process path to a coordination member embedded in this ActorSystem (<c>WithCoordinationServer</c>):
/// while one is registered, the actor proxy (<c>system.Coordination()</c>) and the lease and discovery plugins
/// connect through it instead of TCP, with the same session semantics (the server serves the link as a client port
/// connection). Register before the proxy or a plugin starts its client.
/// </summary>
public sealed class LocalCoordinationMember : IExtension
{
    private volatile Func<CancellationToken, ValueTask<Stream>>? _connector;

    /// <summary>Opens a connection to the local member; null when this system embeds none.</summary>
    public Func<CancellationToken, ValueTask<Stream>>? Connector => _connector;

    /// <summary>Makes <paramref name="connector"/> the system's path to its member (null: none).</summary>
    public void Register(Func<CancellationToken, ValueTask<Stream>>? connector) => _connector = connector;

    /// <summary>Options with the in-process connector when this system embeds a member, else as they are.</summary>
    public CoordinationClientOptions Apply(CoordinationClientOptions options) =>
        _connector is { } connector ? options with { Connector = connector } : options;

    public static LocalCoordinationMember For(ActorSystem system) =>
        system.WithExtension<LocalCoordinationMember, LocalCoordinationMemberProvider>();
}

public sealed class LocalCoordinationMemberProvider : ExtensionIdProvider<LocalCoordinationMember>
{
    public override LocalCoordinationMember CreateExtension(ExtendedActorSystem system) => new();
}
