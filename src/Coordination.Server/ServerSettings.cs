using System.Reflection;
using Akka.Configuration;

namespace Coordination.Server;

/// <summary>Typed view of the <c>coordination</c> HOCON section; defaults live in the embedded reference.conf.</summary>
public sealed record ServerSettings
{
    public required long ServerId { get; init; }
    /// <summary>The plain client port; -1 = none (client-port = off: only the secure port serves), 0 = any free port.</summary>
    public required int ClientPort { get; init; }
    /// <summary>The TLS client port (ZooKeeper's secureClientPort); -1 = none, 0 = any free port.</summary>
    public required int SecureClientPort { get; init; }
    public required Network.ClientTlsSettings ClientTls { get; init; }
    /// <summary>The x509 id (certificate subject) that is the super user (zookeeper.X509AuthenticationProvider.superUser).</summary>
    public required string? X509SuperUser { get; init; }
    public required string ClientAddress { get; init; }
    public required string DataDir { get; init; }
    public required TimeSpan TickTime { get; init; }
    public required int MinSessionTimeoutMs { get; init; }
    public required int MaxSessionTimeoutMs { get; init; }
    public required int MaxFrameSize { get; init; }
    public required int MaxDataSize { get; init; }
    public required int MaxInflightPerConnection { get; init; }
    /// <summary>Bytes of requests one connection may have outstanding before the server stops reading from it; 0 = unlimited.</summary>
    public long MaxInflightBytesPerConnection { get; init; } = 4L << 20;
    public required int MaxClientConnections { get; init; }
    /// <summary>Client connections allowed in total (ZooKeeper's maxCnxns; 0 = unlimited); null = derived from the open-files limit.</summary>
    public required int? MaxConnections { get; init; }
    /// <summary>Descriptors kept free of client connections when <see cref="MaxConnections"/> is derived.</summary>
    public required int FileDescriptorReserve { get; init; }
    /// <summary>A connection that has not completed its handshake this long after accept is closed.</summary>
    public required TimeSpan HandshakeTimeout { get; init; }
    /// <summary>Responses and events queued to one connection (estimated bytes) past which it is disconnected.</summary>
    public required long MaxQueuedBytesPerConnection { get; init; }
    /// <summary>A write to a client's socket that does not complete within this closes the connection.</summary>
    public required TimeSpan FlushTimeout { get; init; }
    /// <summary>Requests outstanding across the server past which connections stop reading; 0 = unlimited.</summary>
    public required int GlobalOutstandingLimit { get; init; }
    /// <summary>Bytes of requests outstanding across the server past which connections stop reading; 0 = unlimited.</summary>
    public long GlobalOutstandingBytes { get; init; } = 100L << 20;
    /// <summary>Largest response body a read may build; bigger ones fail with MarshallingError.</summary>
    public required int MaxResponseSize { get; init; }
    /// <summary>A burst's batch of txns (or of forwards to the leader) goes out once it holds this many; 0 = at the burst's end.</summary>
    public int MaxWriteBatch { get; init; } = 64;
    public required IReadOnlySet<string> FourLetterWords { get; init; }
    /// <summary>A member cut off from its quorum serves read-only clients (ZooKeeper's readonlymode.enabled).</summary>
    public bool ReadOnlyMode { get; init; }
    /// <summary>Ensemble sessions start local to their member (ZooKeeper's localSessionsEnabled).</summary>
    public bool LocalSessionsEnabled { get; init; }
    /// <summary>An ephemeral create upgrades a local session to a global one (localSessionsUpgradingEnabled).</summary>
    public bool LocalSessionsUpgradingEnabled { get; init; }
    public required string? SuperDigest { get; init; }
    /// <summary>SASL DIGEST-MD5 users and passwords (ZooKeeper's JAAS Server section, user_NAME="password").</summary>
    public required IReadOnlyDictionary<string, string> SaslUsers { get; init; }
    /// <summary>SASL authorization ids that are the super user (zookeeper.superUser, zookeeper.superUser.N).</summary>
    public required IReadOnlySet<string> SaslSuperUsers { get; init; }
    /// <summary>Schemes one of which a session must have authenticated with (zookeeper.enforce.auth.*); empty = not enforced.</summary>
    public required IReadOnlySet<string> EnforceAuthSchemes { get; init; }
    /// <summary>SASL GSSAPI (Kerberos) for clients: the <c>sasl.kerberos</c> section.</summary>
    public required Sessions.KerberosSettings Kerberos { get; init; }
    public required TimeSpan ContainerCheckInterval { get; init; }
    public required int ContainerMaxPerMinute { get; init; }
    /// <summary>ZooKeeper's zookeeper.enforceQuota: hard quota limits refuse writes with QuotaExceeded.</summary>
    public bool EnforceQuota { get; init; }
    /// <summary>ZooKeeper's reconfigEnabled: clients may change an ensemble's membership (op reconfig).</summary>
    public bool ReconfigEnabled { get; init; }
    public required int WatchDispatchers { get; init; }
    /// <summary>The <c>admin</c> section: ZooKeeper's AdminServer (commands as JSON over HTTP).</summary>
    public required AdminHttpSettings Admin { get; init; }
    /// <summary>The <c>metrics</c> section: Prometheus text on its own endpoint (or the admin one, when they share it).</summary>
    public required AdminHttpSettings Metrics { get; init; }
    /// <summary>The <c>change-feed</c> section: what the change feed (op WatchChanges) retains.</summary>
    public Feed.ChangeFeedSettings ChangeFeed { get; init; } = Feed.ChangeFeedSettings.Default;
    /// <summary>The <c>memory-trim</c> section: memory a load freed is given back once the process is quiet.</summary>
    public MemoryTrimSettings MemoryTrim { get; init; } = MemoryTrimSettings.Default;

    /// <summary>
    /// x509 ACLs need TLS with client certificates (the secure client port, port unification, or the admin or metrics
    /// endpoint over HTTPS, whose callers prove x509 ids), sasl ACLs SASL users or Kerberos: ZooKeeper needs their providers.
    /// </summary>
    public Core.AclProviders AclProviders =>
        new(SecureClientPort >= 0 || ClientTls.PortUnification || Admin is { Enabled: true, Tls: not null } || Metrics is { Enabled: true, Tls: not null },
            SaslUsers.Count > 0 || Kerberos.Enabled);

    public static Config Reference { get; } = LoadReference();

    private static Config LoadReference()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Coordination.Server.reference.conf")
            ?? throw new InvalidOperationException("embedded reference.conf missing");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }

    /// <summary>Reads settings from a config that already has <see cref="Reference"/> as fallback.</summary>
    public static ServerSettings Create(Config config) => Create(config, inProcessClients: false);

    /// <summary>As <see cref="Create(Config)"/>; with <paramref name="inProcessClients"/> (an embedded member) both client
    /// ports may be off, since the application's clients connect in process.</summary>
    public static ServerSettings Create(Config config, bool inProcessClients)
    {
        var c = config.GetConfig("coordination");
        var tick = c.GetTimeSpan("tick-time");
        var minTimeout = (int)c.GetTimeSpan("min-session-timeout").TotalMilliseconds;
        var maxTimeout = (int)c.GetTimeSpan("max-session-timeout").TotalMilliseconds;
        var words = c.GetStringList("four-letter-words");
        var superDigest = c.GetString("super-digest");
        var clientPort = ParseClientPort(c.GetString("client-port"));
        var securePort = c.GetInt("secure-client-port");
        var clientTls = Network.ClientTlsSettings.Create(c.GetConfig("client-ssl"));
        if (clientPort < 0 && securePort < 0 && !inProcessClients)
            throw new ConfigurationException("client-port is off and there is no secure-client-port: the server would serve no client");
        if (clientPort < 0 && clientTls.PortUnification)
            throw new ConfigurationException("client-ssl.port-unification needs the plain client-port, which is off");
        var saslUsers = ReadSaslUsers(c);
        var kerberos = Sessions.KerberosSettings.Create(c.GetConfig("sasl.kerberos"));
        return new ServerSettings
        {
            ServerId = c.GetLong("server-id"),
            ClientPort = clientPort,
            SecureClientPort = securePort,
            ClientTls = clientTls,
            X509SuperUser = string.IsNullOrWhiteSpace(c.GetString("x509-super-user")) ? null : c.GetString("x509-super-user"),
            ClientAddress = c.GetString("client-address"),
            DataDir = c.GetString("data-dir"),
            TickTime = tick,
            MinSessionTimeoutMs = minTimeout > 0 ? minTimeout : (int)(2 * tick.TotalMilliseconds),
            MaxSessionTimeoutMs = maxTimeout > 0 ? maxTimeout : (int)(20 * tick.TotalMilliseconds),
            MaxFrameSize = c.GetInt("max-frame-size"),
            MaxDataSize = c.GetInt("max-data-size"),
            MaxInflightPerConnection = Math.Max(1, c.GetInt("max-inflight-per-connection")),
            MaxInflightBytesPerConnection = Math.Max(0, c.GetByteSize("max-inflight-bytes-per-connection") ?? 4L << 20),
            MaxClientConnections = c.GetInt("max-client-connections"),
            MaxConnections = c.GetString("max-connections") is "auto" ? null : c.GetInt("max-connections"),
            FileDescriptorReserve = Math.Max(0, c.GetInt("file-descriptor-reserve")),
            HandshakeTimeout = c.GetTimeSpan("handshake-timeout"),
            MaxQueuedBytesPerConnection = c.GetByteSize("max-queued-bytes-per-connection") ?? 32L << 20,
            FlushTimeout = c.GetTimeSpan("flush-timeout"),
            GlobalOutstandingLimit = c.GetInt("global-outstanding-limit"),
            GlobalOutstandingBytes = Math.Max(0, c.GetByteSize("global-outstanding-bytes") ?? 100L << 20),
            MaxResponseSize = checked((int)(c.GetByteSize("max-response-size") ?? 1049599)),
            MaxWriteBatch = Math.Max(0, c.GetInt("max-write-batch")),
            FourLetterWords = words.Contains("*") ? Protocol.FourLetterWords.All.ToHashSet() : words.ToHashSet(),
            ReadOnlyMode = c.GetBoolean("read-only-mode"),
            LocalSessionsEnabled = c.GetBoolean("local-sessions-enabled"),
            LocalSessionsUpgradingEnabled = c.GetBoolean("local-sessions-upgrading-enabled"),
            SuperDigest = string.IsNullOrWhiteSpace(superDigest) ? null : superDigest,
            SaslUsers = saslUsers,
            SaslSuperUsers = c.GetStringList("sasl.super-users").ToHashSet(StringComparer.Ordinal),
            EnforceAuthSchemes = EnforcedSchemes(c.GetConfig("auth.enforce"), securePort >= 0 || clientTls.PortUnification, saslUsers.Count > 0 || kerberos.Enabled),
            Kerberos = kerberos,
            ContainerCheckInterval = c.GetTimeSpan("container-check-interval"),
            ContainerMaxPerMinute = c.GetInt("container-max-per-minute"),
            EnforceQuota = c.GetBoolean("enforce-quota"),
            ReconfigEnabled = c.GetBoolean("reconfig-enabled", false),
            WatchDispatchers = Math.Max(1, c.GetInt("watch-dispatchers")),
            Admin = AdminHttpSettings.Create(c.GetConfig("admin"), c.GetConfig("client-ssl")),
            Metrics = AdminHttpSettings.Create(c.GetConfig("metrics"), c.GetConfig("client-ssl")),
            ChangeFeed = Feed.ChangeFeedSettings.Create(c.GetConfig("change-feed")),
            MemoryTrim = MemoryTrimSettings.Create(c.GetConfig("memory-trim")),
        };
    }

    /// <summary>sasl.users, and the user_NAME options of the JAAS file's section when sasl.jaas-file is set.</summary>
    private static Dictionary<string, string> ReadSaslUsers(Config c)
    {
        var users = c.GetConfig("sasl.users") is { IsEmpty: false } section
            ? section.AsEnumerable().ToDictionary(kv => kv.Key.Trim('"'), kv => kv.Value.GetString(), StringComparer.Ordinal)
            : new Dictionary<string, string>(StringComparer.Ordinal);
        var jaasFile = c.GetString("sasl.jaas-file", "");
        if (string.IsNullOrWhiteSpace(jaasFile)) return users;
        Dictionary<string, string> fromFile;
        try { fromFile = Sessions.JaasFile.ReadUsers(jaasFile, c.GetString("sasl.jaas-section", "Server")); }
        catch (FormatException e) { throw new ConfigurationException("sasl.jaas-file: " + e.Message); }
        foreach (var (user, password) in fromFile)
            if (!users.TryAdd(user, password))
                throw new ConfigurationException($"sasl.jaas-file: user {user} is also in sasl.users; define it once");
        return users;
    }

    /// <summary>auth.enforce: the schemes, each of which must have its provider here (as ZooKeeper's AuthenticationHelper checks).</summary>
    private static HashSet<string> EnforcedSchemes(Config c, bool tls, bool sasl)
    {
        if (!c.GetBoolean("enabled")) return [];
        var schemes = c.GetStringList("schemes").Select(s => s.Trim()).ToHashSet(StringComparer.Ordinal);
        if (schemes.Count == 0) throw new ConfigurationException("auth.enforce.enabled is on: auth.enforce.schemes must name at least one scheme");
        foreach (var scheme in schemes)
        {
            var available = scheme switch
            {
                Core.Acls.DigestScheme or Core.Acls.IpScheme => true,
                Core.Acls.X509Scheme => tls,
                Core.Acls.SaslScheme => sasl,
                _ => false,
            };
            if (!available)
                throw new ConfigurationException($"auth.enforce.schemes: authentication scheme '{scheme}' is not available" +
                    (scheme == Core.Acls.X509Scheme ? " (x509 needs secure-client-port or port unification)" : scheme == Core.Acls.SaslScheme ? " (sasl needs sasl.users or sasl.jaas-file)" : ""));
        }
        return schemes;
    }

    /// <summary>A port number, or off (HOCON's off/false/none, or -1): no plain client port, as ZooKeeper without clientPort.</summary>
    private static int ParseClientPort(string value) => value.Trim().ToLowerInvariant() switch
    {
        "off" or "false" or "none" or "-1" => -1,
        var text when int.TryParse(text, out var port) && port is >= 0 and <= 65535 => port,
        _ => throw new ConfigurationException($"client-port must be a port number or off, not '{value}'"),
    };

    /// <summary>Negotiates a client's requested timeout into [min, max], as ZooKeeper does.</summary>
    public int NegotiateTimeout(int requestedMs) => Math.Clamp(requestedMs, MinSessionTimeoutMs, MaxSessionTimeoutMs);
}

/// <summary>One HTTP endpoint of the server (<c>coordination.admin</c> or <c>coordination.metrics</c>).</summary>
public sealed record AdminHttpSettings(bool Enabled, string Address, int Port, int MaxConnections, IReadOnlySet<string> CommandsRequiringAuth,
    Network.ClientTlsSettings? Tls)
{
    /// <summary>Largest snapshot the restore command accepts (<c>restore-max-size</c>).</summary>
    public long RestoreMaxBytes { get; init; } = 1L << 30;

    /// <summary>The snapshot and restore commands' rate limit (<c>rate-limiter-interval</c>, ZooKeeper's
    /// zookeeper.admin.rateLimiterIntervalInMS): one restore per interval; 3.9 reads the same number as microseconds
    /// for snapshot, so one snapshot per interval / 1000.</summary>
    public TimeSpan RateLimiterInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>ZooKeeper's zookeeper.admin.snapshot.enabled / zookeeper.admin.restore.enabled: off answers 503.</summary>
    public bool SnapshotEnabled { get; init; } = true;
    public bool RestoreEnabled { get; init; } = true;

    /// <summary>Reads the section <paramref name="c"/>; its <c>ssl</c> falls back to <paramref name="clientSsl"/>.</summary>
    public static AdminHttpSettings Create(Config c, Config clientSsl)
    {
        var maxConnections = c.GetInt("max-connections", 64);
        if (maxConnections < 1) throw new ConfigurationException($"max-connections must be at least 1, not {maxConnections}");
        // The names are checked against the admin commands when the endpoint starts (AdminHttpServer).
        var auth = c.HasPath("auth-required") ? c.GetStringList("auth-required").ToHashSet(StringComparer.Ordinal) : [];
        var tls = c.GetBoolean("ssl.enabled") ? Network.ClientTlsSettings.Create(c.GetConfig("ssl").WithFallback(clientSsl)) : null;
        return new AdminHttpSettings(c.GetBoolean("enabled"), c.GetString("address"), c.GetInt("port"), maxConnections, auth, tls)
        {
            RestoreMaxBytes = c.HasPath("restore-max-size") ? c.GetByteSize("restore-max-size") ?? (1L << 30) : 1L << 30,
            RateLimiterInterval = c.HasPath("rate-limiter-interval") ? c.GetTimeSpan("rate-limiter-interval") : TimeSpan.FromMinutes(5),
            SnapshotEnabled = !c.HasPath("snapshot-enabled") || c.GetBoolean("snapshot-enabled"),
            RestoreEnabled = !c.HasPath("restore-enabled") || c.GetBoolean("restore-enabled"),
        };
    }

    /// <summary>Whether <paramref name="other"/> is the same endpoint, so that one listener serves both.</summary>
    public bool SharesEndpointWith(AdminHttpSettings other) => Enabled && other.Enabled && Address == other.Address && Port == other.Port;
}
