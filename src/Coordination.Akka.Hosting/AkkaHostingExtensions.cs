using Akka.Configuration;
using Akka.Coordination;
using Akka.Event;
using Akka.Hosting;
using Coordination.Client.Actors;
using Coordination.Akka.Hosting.Cluster;
using Coordination.Core.Zab;
using Coordination.Server;

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

    /// <summary>
    /// Runs a coordination ensemble member inside this ActorSystem on a node with the option's role: the node's actors
    /// (replica, Zab peer, sessions) are the system's, its journal is on disk, its links to the other members run on
    /// the member transport beside the application's own, and the proxy, the lease and the discovery of this system
    /// reach it in process (<see cref="LocalCoordinationMember"/>). Call it before <c>WithCoordinationClient</c>.
    /// </summary>
    public static AkkaConfigurationBuilder WithCoordinationServer(this AkkaConfigurationBuilder builder, Action<CoordinationServerOptions> configure) =>
        builder.WithCoordinationServer(Configured(configure));

    /// <inheritdoc cref="WithCoordinationServer(AkkaConfigurationBuilder, Action{CoordinationServerOptions})"/>
    public static AkkaConfigurationBuilder WithCoordinationServer(this AkkaConfigurationBuilder builder, CoordinationServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = options.Config ?? throw new ArgumentException("CoordinationServerOptions.Config (the member's coordination section) is required", nameof(options));
        var cluster = ClusterMembershipSettings.Create(config);
        if (cluster.Enabled) return builder.WithClusterMember(options, config, cluster);
        builder.AddHocon(CoordinationServer.EmbeddedRemotingConfig(config, options.HostTransports), HoconAddMode.Prepend);
        // The proxy's connect string is not needed in process; a real one set by the application wins.
        builder.AddHocon("coordination.client.connect-string = \"in-process:1\"", HoconAddMode.Append);
        return builder.WithActors((system, _) =>
        {
            if (!string.IsNullOrEmpty(options.Role) && system.Settings.Config.HasPath("akka.cluster.roles")
                && !system.Settings.Config.GetStringList("akka.cluster.roles").Contains(options.Role))
            {
                system.Log.Info("No coordination member here: this node lacks the role {0}", options.Role);
                return;
            }
            var server = CoordinationServer.StartEmbedded(system, config);
            LocalCoordinationMember.For(system).Register(_ => ValueTask.FromResult(server.ConnectInProcess()));
            system.RegisterOnTermination(() => server.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10)));
        });
    }

    /// <summary>
    /// A member whose ensemble membership comes from Akka.Cluster (<c>coordination.ensemble.cluster.enabled</c>): the
    /// member transport is set up now (its endpoint is this node's own); a node with the role carries its identity role
    /// (added to <c>akka.cluster.roles</c>, so call <c>WithClustering</c> first) and the member starts once the cluster has decided
    /// its first configuration (<see cref="ClusterMembershipActor"/>). Until then, in-process clients wait for it.
    /// </summary>
    private static AkkaConfigurationBuilder WithClusterMember(this AkkaConfigurationBuilder builder, CoordinationServerOptions options, Config config,
        ClusterMembershipSettings cluster)
    {
        // The option's role, when set, is the cluster role of the members (the HOCON's cluster.role otherwise).
        if (!string.IsNullOrEmpty(options.Role)) cluster = cluster with { Role = options.Role };
        var current = builder.Configuration.HasValue ? builder.Configuration.Value : Config.Empty;
        var roles = current.HasPath("akka.cluster.roles") ? current.GetStringList("akka.cluster.roles").ToList() : [];
        // Only a node with the role says who it is: any other node's identity role would make it a member to the others.
        if (roles.Contains(cluster.Role))
        {
            var self = new DynamicConfig([ClusterMembershipPolicy.Spec(cluster.ServerId, cluster.MemberEndpoint, observer: false)], 0);
            builder.AddHocon(CoordinationServer.EmbeddedRemotingConfig(ClusterMembershipSettings.WithMembers(config, self), options.HostTransports), HoconAddMode.Prepend);
            if (!roles.Contains(cluster.IdentityRole)) roles.Add(cluster.IdentityRole);
            builder.AddHocon($"akka.cluster.roles = [{string.Join(", ", roles.Select(r => $"\"{r}\""))}]", HoconAddMode.Prepend);
            builder.AddHocon("coordination.client.connect-string = \"in-process:1\"", HoconAddMode.Append);
        }
        return builder.WithActors((system, _) =>
        {
            var systemRoles = system.Settings.Config.GetStringList("akka.cluster.roles");
            if (!systemRoles.Contains(cluster.Role))
            {
                system.Log.Info("No coordination member here: this node lacks the role {0}", cluster.Role);
                return;
            }
            if (!systemRoles.Contains(cluster.IdentityRole))
                throw new ConfigurationException($"a cluster coordination member needs the cluster role \"{cluster.IdentityRole}\" " +
                    "(WithCoordinationServer adds it to the roles WithClustering set: call WithClustering first)");
            var started = new TaskCompletionSource<CoordinationServer>(TaskCreationOptions.RunContinuationsAsynchronously);
            LocalCoordinationMember.For(system).Register(async ct => (await started.Task.WaitAsync(ct).ConfigureAwait(false)).ConnectInProcess());
            system.ActorOf(ClusterMembershipActor.Props(config, cluster, started), ClusterMembershipActor.Name);
            system.RegisterOnTermination(() =>
            {
                if (started.Task.IsCompletedSuccessfully) started.Task.Result.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
                else started.TrySetCanceled();
            });
        });
    }

    private static T Configured<T>(Action<T> configure) where T : new()
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new T();
        configure(options);
        return options;
    }
}
