using System.Text;
using Akka.Actor;
using Akka.Configuration;

namespace Coordination.Client.Actors;

/// <summary>The <c>coordination.client</c> HOCON section (defaults in the embedded reference.conf).</summary>
public sealed record CoordinationClientSettings
{
    public required string ConnectString { get; init; }
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan? ConnectionTimeout { get; init; }
    public bool CanBeReadOnly { get; init; }
    /// <summary><c>update-hosts-from-config</c>: see <see cref="CoordinationClientOptions.UpdateHostsFromConfig"/>.</summary>
    public bool UpdateHostsFromConfig { get; init; }
    public IRetryPolicy RetryPolicy { get; init; } = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(100), 10, TimeSpan.FromSeconds(5));
    public IReadOnlyList<AuthInfo> Auth { get; init; } = [];
    public string ProxyName { get; init; } = "coordination-client";
    public int MaxInFlight { get; init; } = 10_000;
    public bool RestartOnExpiry { get; init; } = true;
    public TimeSpan RestartBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The embedded reference.conf.</summary>
    public static Config DefaultConfig() => Defaults.Value;

    /// <summary>reference.conf and the serializer of the proxy's messages (<see cref="ProxyMessageSerializer.Config"/>).</summary>
    private static readonly Lazy<Config> Defaults = new(() => ConfigurationFactory.ParseString(ProxyMessageSerializer.Config)
        .WithFallback(ConfigurationFactory.FromResource<CoordinationClientSettings>("Coordination.Client.reference.conf")));

    /// <summary>Reads <c>coordination.client</c> of the system's configuration (with the reference defaults).</summary>
    public static CoordinationClientSettings Create(ActorSystem system) =>
        Create(system.Settings.Config.WithFallback(DefaultConfig()).GetConfig("coordination.client"));

    /// <summary>Reads a <c>coordination.client</c> section.</summary>
    public static CoordinationClientSettings Create(Config section)
    {
        if (section is null || section.IsEmpty) throw new ConfigurationException("missing coordination.client configuration");
        section = section.WithFallback(DefaultConfig().GetConfig("coordination.client"));
        var retry = section.GetConfig("retry");
        IRetryPolicy policy = retry.GetString("policy", "exponential-backoff") switch
        {
            "exponential-backoff" => new ExponentialBackoffRetry(retry.GetTimeSpan("base-sleep"), retry.GetInt("max-retries"), retry.GetTimeSpan("max-sleep")),
            "until-elapsed" => new RetryUntilElapsed(retry.GetTimeSpan("max-elapsed"), retry.GetTimeSpan("sleep-between")),
            "never" => RetryNever.Instance,
            var other => throw new ConfigurationException($"coordination.client.retry.policy: unknown policy '{other}' (exponential-backoff | until-elapsed | never)"),
        };
        var auth = new List<AuthInfo>();
        foreach (var entry in section.GetValue("auth")?.GetArray() ?? [])
        {
            var obj = entry.GetObject();
            var scheme = obj.GetKey("scheme")?.GetString() ?? throw new ConfigurationException("coordination.client.auth entries need a scheme");
            var data = obj.GetKey("auth")?.GetString() ?? "";
            auth.Add(new AuthInfo(scheme, Encoding.UTF8.GetBytes(data)));
        }
        var connectionTimeout = section.GetTimeSpan("connection-timeout", TimeSpan.Zero);
        var proxy = section.GetConfig("proxy");
        var connectString = section.GetString("connect-string");
        Client.ConnectString.Parse(connectString); // fail fast on a bad value
        return new CoordinationClientSettings
        {
            ConnectString = connectString,
            SessionTimeout = section.GetTimeSpan("session-timeout"),
            ConnectionTimeout = connectionTimeout > TimeSpan.Zero ? connectionTimeout : null,
            CanBeReadOnly = section.GetBoolean("can-be-read-only"),
            UpdateHostsFromConfig = section.GetBoolean("update-hosts-from-config"),
            RetryPolicy = policy,
            Auth = auth,
            ProxyName = proxy.GetString("name", "coordination-client"),
            MaxInFlight = proxy.GetInt("max-in-flight", 10_000),
            RestartOnExpiry = proxy.GetBoolean("restart-on-expiry", true),
            RestartBackoff = proxy.GetTimeSpan("restart-backoff", TimeSpan.FromSeconds(1)),
        };
    }

    public CoordinationClientOptions ToOptions(Action<string>? log = null) => new()
    {
        ConnectString = ConnectString,
        SessionTimeout = SessionTimeout,
        ConnectionTimeout = ConnectionTimeout,
        CanBeReadOnly = CanBeReadOnly,
        UpdateHostsFromConfig = UpdateHostsFromConfig,
        RetryPolicy = RetryPolicy,
        AuthInfo = Auth,
        Log = log,
    };
}
