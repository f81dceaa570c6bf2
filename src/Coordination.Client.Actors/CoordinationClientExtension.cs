using Akka.Actor;

namespace Coordination.Client.Actors;

/// <summary>
/// The Akka.NET extension: reads <c>coordination.client</c> and starts one <see cref="CoordinationProxy"/> per
/// ActorSystem (under /system). Get it with <c>system.Coordination()</c> or <c>Context.System.Coordination()</c>.
/// </summary>
public sealed class CoordinationClientExtension : IExtension
{
    public CoordinationClientSettings Settings { get; }
    /// <summary>The proxy actor: send it <see cref="CoordinationRequest"/>s.</summary>
    public IActorRef Proxy { get; }

    public CoordinationClientExtension(ExtendedActorSystem system)
    {
        system.Settings.InjectTopLevelFallback(CoordinationClientSettings.DefaultConfig());
        Settings = CoordinationClientSettings.Create(system.Settings.Config.GetConfig("coordination.client"));
        Proxy = system.SystemActorOf(CoordinationProxy.Props(Settings), Settings.ProxyName);
    }
}

public sealed class CoordinationClientExtensionProvider : ExtensionIdProvider<CoordinationClientExtension>
{
    public override CoordinationClientExtension CreateExtension(ExtendedActorSystem system) => new(system);
}

public static class CoordinationActorSystemExtensions
{
    /// <summary>The system's coordination client extension (created on first use).</summary>
    public static CoordinationClientExtension Coordination(this ActorSystem system) =>
        system.WithExtension<CoordinationClientExtension, CoordinationClientExtensionProvider>();
}
