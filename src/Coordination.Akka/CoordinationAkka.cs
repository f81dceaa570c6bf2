using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Coordination.Client;

namespace Coordination.Akka;

/// <summary>Entry point for the embedded defaults of the lease and discovery plugins.</summary>
public static class CoordinationAkka
{
    /// <summary>The embedded reference.conf (akka.coordination.lease.coordination and akka.discovery.coordination).</summary>
    public static Config DefaultConfig() => ConfigurationFactory.FromResource<ConnectionSettings>("Coordination.Akka.reference.conf");
}

/// <summary>Where and how a plugin connects: the part of its section that decides which shared client it uses.</summary>
public sealed record ConnectionSettings(string ConnectString, TimeSpan SessionTimeout)
{
    public static ConnectionSettings Create(Config section)
    {
        var connectString = section.GetString("connect-string");
        if (string.IsNullOrWhiteSpace(connectString)) throw new ConfigurationException("connect-string is required");
        Coordination.Client.ConnectString.Parse(connectString); // fail fast on a bad value
        return new ConnectionSettings(connectString, section.GetTimeSpan("session-timeout", TimeSpan.FromSeconds(10)));
    }
}

/// <summary>
/// One client (one session) per ActorSystem and connection settings, shared by every lease and discovery of the
/// system, closed when the system terminates. After an expiry the client is restarted (a new session), once the
/// recipes on it have seen the expiry and given up what they held.
/// </summary>
public sealed class CoordinationClients : IExtension
{
    private readonly ConcurrentDictionary<ConnectionSettings, Lazy<Task<CoordinationClient>>> _clients = new();
    private readonly ExtendedActorSystem _system;

    public CoordinationClients(ExtendedActorSystem system)
    {
        _system = system;
        system.RegisterOnTermination(() =>
        {
            foreach (var client in _clients.Values.Where(c => c.IsValueCreated && c.Value.IsCompletedSuccessfully).Select(c => c.Value.Result))
                try { client.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5)); } catch { }
        });
    }

    public static CoordinationClients Get(ActorSystem system) => system.WithExtension<CoordinationClients, CoordinationClientsProvider>();

    /// <summary>The shared, connected client for <paramref name="settings"/>.</summary>
    public Task<CoordinationClient> GetAsync(ConnectionSettings settings)
    {
        var lazy = _clients.GetOrAdd(settings, s => new Lazy<Task<CoordinationClient>>(() => ConnectAsync(s)));
        if (lazy.Value.IsFaulted) _clients.TryUpdate(settings, new Lazy<Task<CoordinationClient>>(() => ConnectAsync(settings)), lazy);
        return _clients[settings].Value;
    }

    private async Task<CoordinationClient> ConnectAsync(ConnectionSettings settings)
    {
        var log = global::Akka.Event.Logging.GetLogger(_system, "coordination-client");
        var setup = _system.Settings.Setup.Get<CoordinationConnectionSetup>();
        // A member embedded in this system is reached in process (Coordination.Client.Actors.LocalCoordinationMember).
        var client = await CoordinationClient.ConnectAsync(global::Coordination.Client.Actors.LocalCoordinationMember.For(_system).Apply(new CoordinationClientOptions
        {
            ConnectString = settings.ConnectString,
            SessionTimeout = settings.SessionTimeout,
            AuthInfo = setup.HasValue ? setup.Value.Auth : [],
            Tls = setup.HasValue ? setup.Value.Tls : null,
            Log = line => log.Debug("{0}", line),
        })).ConfigureAwait(false);
        client.ConnectionStateChanged += state =>
        {
            if (state != ConnectionState.Expired) return;
            log.Warning("coordination session for {0} expired: starting a new one", settings.ConnectString);
            _ = Task.Run(async () => { try { await client.RestartAsync().ConfigureAwait(false); } catch (Exception e) { log.Error(e, "restart failed"); } });
        };
        return client;
    }
}

/// <summary>
/// What the lease and discovery connections need beyond their HOCON sections, given in code (Akka.NET's Setup
/// convention, as Akka.Management's plugins do): credentials sent on every (re)connect and TLS for the client port.
/// Applies to every connection of the ActorSystem's <see cref="CoordinationClients"/>.
/// </summary>
public sealed class CoordinationConnectionSetup : global::Akka.Actor.Setup.Setup
{
    public IReadOnlyList<AuthInfo> Auth { get; init; } = [];
    public ClientTlsOptions? Tls { get; init; }
}

public sealed class CoordinationClientsProvider : ExtensionIdProvider<CoordinationClients>
{
    public override CoordinationClients CreateExtension(ExtendedActorSystem system) => new(system);
}
