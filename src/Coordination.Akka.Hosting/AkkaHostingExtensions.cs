using Akka.Coordination;
using Akka.Hosting;
using Coordination.Client.Actors;

namespace Coordination.Akka.Hosting;

/// <summary>
/// Akka.Hosting entry points of Coordination.Akka, following Akka.Management's plugins: an option object applied to
/// the builder (HOCON prepended), the embedded reference.conf appended as the fallback, and a Setup for what does
/// not belong in HOCON.
/// </summary>
public static class AkkaHostingExtensions
{
    /// <summary>
    /// Adds the coordination lease plugin. This only makes the lease available: point SBR (<c>LeaseMajorityOption</c>),
    /// Cluster Singleton and Sharding (their options' <c>LeaseImplementation</c>) at the same option instance.
    /// </summary>
    public static AkkaConfigurationBuilder WithCoordinationLease(this AkkaConfigurationBuilder builder, Action<CoordinationLeaseOption> configure) =>
        builder.WithCoordinationLease(Configured(configure));

    /// <inheritdoc cref="WithCoordinationLease(AkkaConfigurationBuilder, Action{CoordinationLeaseOption})"/>
    public static AkkaConfigurationBuilder WithCoordinationLease(this AkkaConfigurationBuilder builder, CoordinationLeaseOption? options = null)
    {
        options?.Apply(builder);
        builder.AddHocon(CoordinationAkka.DefaultConfig(), HoconAddMode.Append);
        builder.AddHocon(LeaseProvider.DefaultConfig(), HoconAddMode.Append);
        return builder;
    }

    /// <summary>Adds Akka.Discovery over the coordination service (by default as <c>akka.discovery.method</c>).</summary>
    public static AkkaConfigurationBuilder WithCoordinationDiscovery(this AkkaConfigurationBuilder builder, Action<CoordinationDiscoveryOptions> configure) =>
        builder.WithCoordinationDiscovery(Configured(configure));

    /// <inheritdoc cref="WithCoordinationDiscovery(AkkaConfigurationBuilder, Action{CoordinationDiscoveryOptions})"/>
    public static AkkaConfigurationBuilder WithCoordinationDiscovery(this AkkaConfigurationBuilder builder, CoordinationDiscoveryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Apply(builder);
        return builder;
    }

    /// <summary>
    /// Configures and starts the actor proxy (<c>system.Coordination()</c>) with the system, and registers it in the
    /// ActorRegistry, so that <c>IRequiredActor&lt;CoordinationProxy&gt;</c> resolves to it.
    /// </summary>
    public static AkkaConfigurationBuilder WithCoordinationClient(this AkkaConfigurationBuilder builder, Action<CoordinationProxyOptions> configure) =>
        builder.WithCoordinationClient(Configured(configure));

    /// <inheritdoc cref="WithCoordinationClient(AkkaConfigurationBuilder, Action{CoordinationProxyOptions})"/>
    public static AkkaConfigurationBuilder WithCoordinationClient(this AkkaConfigurationBuilder builder, CoordinationProxyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Apply(builder);
        builder.AddHocon(CoordinationClientSettings.DefaultConfig(), HoconAddMode.Append);
        return builder.WithActors((system, registry) => registry.Register<CoordinationProxy>(system.Coordination().Proxy));
    }

    private static T Configured<T>(Action<T> configure) where T : new()
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new T();
        configure(options);
        return options;
    }
}
