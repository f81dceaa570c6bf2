using System.Collections.Immutable;
using System.Net;
using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using Akka.Discovery;
using Coordination.Recipes;
using AkkaServiceDiscovery = Akka.Discovery.ServiceDiscovery;

namespace Coordination.Akka.Discovery;

/// <summary>The discovery section (defaults in reference.conf under <c>akka.discovery.coordination</c>).</summary>
public sealed record CoordinationDiscoverySettings(ConnectionSettings Connection, string BasePath)
{
    public static CoordinationDiscoverySettings Create(Config section)
    {
        section = section.WithFallback(CoordinationAkka.DefaultConfig().GetConfig("akka.discovery.coordination"));
        return new CoordinationDiscoverySettings(ConnectionSettings.Create(section), section.GetString("base-path", "/services").TrimEnd('/'));
    }

    public static CoordinationDiscoverySettings Create(ActorSystem system) =>
        Create(system.Settings.Config.GetConfig("akka.discovery.coordination") ?? Config.Empty);
}

/// <summary>
/// Akka.Discovery backed by the coordination service (<c>akka.discovery.method = coordination</c>): a lookup
/// returns the instances registered under <c>base-path/&lt;service name&gt;</c> by the Recipes'
/// <see cref="Recipes.ServiceDiscovery"/> (ephemeral JSON nodes, so dead instances drop out with their sessions).
/// A lookup with a port name takes the port from the instance payload's <c>ports</c> object when it has that name.
/// </summary>
public sealed class CoordinationServiceDiscovery : AkkaServiceDiscovery
{
    private readonly CoordinationDiscoverySettings _settings;
    private readonly CoordinationClients _clients;

    public CoordinationServiceDiscovery(ExtendedActorSystem system) : this(system, CoordinationDiscoverySettings.Create(system)) { }

    public CoordinationServiceDiscovery(ExtendedActorSystem system, Config config) : this(system, CoordinationDiscoverySettings.Create(config)) { }

    private CoordinationServiceDiscovery(ExtendedActorSystem system, CoordinationDiscoverySettings settings)
    {
        _settings = settings;
        _clients = CoordinationClients.Get(system);
    }

    public override async Task<AkkaServiceDiscovery.Resolved> Lookup(Lookup lookup, TimeSpan resolveTimeout)
    {
        using var timeout = new CancellationTokenSource(resolveTimeout);
        var client = await _clients.GetAsync(_settings.Connection).WaitAsync(timeout.Token).ConfigureAwait(false);
        var instances = await new Recipes.ServiceDiscovery(client, _settings.BasePath).QueryForInstancesAsync(lookup.ServiceName, timeout.Token).ConfigureAwait(false);
        var targets = instances.Select(i => new AkkaServiceDiscovery.ResolvedTarget(i.Address, PortOf(i, lookup.PortName), IPAddress.TryParse(i.Address, out var ip) ? ip : null));
        return new AkkaServiceDiscovery.Resolved(lookup.ServiceName, targets.ToImmutableList());
    }

    private static int? PortOf(ServiceInstance instance, string? portName)
    {
        if (portName is null) return instance.Port;
        if (instance.Payload is { ValueKind: JsonValueKind.Object } payload && payload.TryGetProperty("ports", out var ports)
            && ports.ValueKind == JsonValueKind.Object && ports.TryGetProperty(portName, out var port) && port.TryGetInt32(out var value))
            return value;
        return instance.Port;
    }
}
