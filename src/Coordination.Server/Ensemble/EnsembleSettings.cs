using Akka.Configuration;
using Coordination.Core.Zab;

namespace Coordination.Server.Ensemble;

/// <summary>
/// The <c>coordination.ensemble</c> section (documented in reference.conf): the members, as ZooKeeper's
/// <c>server.N</c> lines, each with the host:port of its Akka remoting endpoint, and Zab's timing.
/// No voters means a standalone server.
/// </summary>
public sealed record EnsembleSettings(
    IReadOnlyDictionary<long, string> Voters,
    IReadOnlyDictionary<long, string> Observers,
    ZabSettings Zab,
    long MaxFrameBytes,
    TimeSpan MemberLinkTimeout,
    MemberAuthSettings Auth,
    MemberTlsSettings Tls,
    MemberSaslSettings Sasl)
{
    /// <summary>The Kerberos keys this member's SASL needs (acceptor, initiator), for <see cref="Sessions.KerberosKeys"/>.</summary>
    public (IEnumerable<Sessions.KerberosKey> Acceptors, Sessions.KerberosKey? Initiator) KerberosKeys =>
        Sasl.Mechanism == MemberSaslMechanism.Kerberos && Sasl.Enabled ? ([Sasl.ServerKey!], Sasl.LearnerKey) : ([], null);

    /// <summary>Every node of an ensemble runs an ActorSystem of this name, so addresses differ only by host and port.</summary>
    public const string SystemName = "coordination";

    public bool Enabled => Voters.Count > 0;

    /// <summary>The version of this membership: 0 for the HOCON's, else the zxid of the reconfig that made it
    /// (read back from the dynamic config file, see <see cref="DynamicConfigFile"/>).</summary>
    public long ConfigVersion { get; init; }

    /// <summary>Each member's client address (host:port), as the ";clientHost:clientPort" of ZooKeeper's server lines:
    /// written into /zookeeper/config so that clients learn where to connect (<c>client-addresses</c>, optional).</summary>
    public IReadOnlyDictionary<long, string> ClientAddresses { get; init; } = new Dictionary<long, string>();

    public static EnsembleSettings Create(Config full)
    {
        var c = full.GetConfig("coordination.ensemble");
        var tick = c.GetTimeSpan("tick", TimeSpan.FromMilliseconds(100));
        var zab = new ZabSettings(
            TickMs: (long)tick.TotalMilliseconds,
            InitLimitTicks: c.GetInt("init-limit", 50),
            SyncLimitTicks: c.GetInt("sync-limit", 20),
            FinalizeWaitMs: (long)c.GetTimeSpan("election-finalize-wait", TimeSpan.FromMilliseconds(200)).TotalMilliseconds);
        var transport = c.GetString("transport", "socket");
        if (transport != "socket")
            throw new ConfigurationException($"coordination.ensemble.transport: '{transport}' is not supported (only socket: " +
                "Akka's dot-netty transport was dropped because it cannot authenticate members)");
        var voters = Members(c, "voters");
        var observers = Members(c, "observers");
        var settings = new EnsembleSettings(voters, observers, zab, c.GetByteSize("max-frame-size") ?? 4L << 20,
            c.GetTimeSpan("member-link-timeout", TimeSpan.FromSeconds(10)), MemberAuthSettings.Create(c.GetConfig("auth")),
            MemberTlsSettings.Create(c.GetConfig("ssl")), MemberSaslSettings.Create(c.GetConfig("sasl"), voters.Keys.Concat(observers.Keys)))
        {
            ClientAddresses = Members(c, "client-addresses"),
        };
        if (settings.Enabled && settings.Auth.Secret is null && !settings.Tls.Enabled)
        {
            if (settings.Sasl.Enabled && !(settings.Sasl.ServerRequire && settings.Sasl.LearnerRequire))
                throw new ConfigurationException(MemberSaslSettings.NotAlone);
            if (!settings.Sasl.Enabled && !settings.Auth.Insecure)
                throw new ConfigurationException("coordination.ensemble.auth: a member needs the ensemble's shared secret (auth.secret or " +
                    "auth.secret-file, the same on every member), member TLS (ensemble.ssl) or SASL (ensemble.sasl) so that only members " +
                    "can talk to it; set auth.insecure = on to run without member authentication on a network nobody else can reach");
        }
        return settings;
    }

    private static Dictionary<long, string> Members(Config section, string key)
    {
        var members = new Dictionary<long, string>();
        var config = section.GetConfig(key);
        if (config is null || config.IsEmpty) return members;
        foreach (var (id, value) in config.Root.GetObject().Items)
        {
            if (!long.TryParse(id, out var serverId) || serverId is < 1 or > 254)
                throw new ConfigurationException($"coordination.ensemble.{key}: '{id}' is not a server id (1..254)");
            var endpoint = value.GetString();
            if (!TrySplit(endpoint, out _, out _))
                throw new ConfigurationException($"coordination.ensemble.{key}.{id}: '{endpoint}' is not host:port");
            members[serverId] = endpoint;
        }
        return members;
    }

    public static bool TrySplit(string endpoint, out string host, out int port)
    {
        var colon = endpoint.LastIndexOf(':');
        host = colon > 0 ? endpoint[..colon] : "";
        port = 0;
        return colon > 0 && int.TryParse(endpoint.AsSpan(colon + 1), out port) && port is > 0 and < 65536;
    }

    /// <summary>This server's remoting endpoint, from its own entry.</summary>
    public (string Host, int Port) EndpointOf(long serverId)
    {
        var endpoint = Voters.TryGetValue(serverId, out var v) ? v
            : Observers.TryGetValue(serverId, out var o) ? o
            : throw new ConfigurationException($"coordination.server-id = {serverId} is not among coordination.ensemble.voters or observers");
        TrySplit(endpoint, out var host, out var port);
        return (host, port);
    }

    /// <summary>The members as Akka addresses, spelled with the transport protocol this node's system uses
    /// (e.g. akka.tcp, or akka.trttl.tcp when tests apply the throttler).</summary>
    public EnsembleMembers Members(string protocol, string systemName = SystemName)
    {
        string Address(string endpoint) => $"{protocol}://{systemName}@{endpoint}";
        return new EnsembleMembers(
            Voters.ToDictionary(kv => kv.Key, kv => Address(kv.Value)),
            Observers.ToDictionary(kv => kv.Key, kv => Address(kv.Value))) { Config = DynamicConfigFile.Of(this).ToZabConfig(), Protocol = protocol, SystemName = systemName };
    }

    /// <summary>The Akka.Remote settings this node needs: its transport and endpoint, frames large enough for a
    /// 1 MiB znode write, the members' shared secret for the transport's handshake, member TLS and SASL, and the ensemble's serializer
    /// as the only one for application messages (Akka's JSON fallback is replaced by one that refuses, so that
    /// nothing on the member port deserializes a type its sender names).</summary>
    public Config RemotingConfig(long serverId)
    {
        return ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
            akka.actor.serializers.json = "Coordination.Server.Ensemble.RefusingSerializer, Coordination.Server"
            akka.actor.serialization-bindings {
              "System.Object" = json
              "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
              "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab
            }
            # A member writes only on links it dialed itself. With passive links, a member restarted just as a peer
            # redialed its old incarnation stopped reading the one link that peer then wrote on, and stayed
            # Looking for good (RejoinTests).
            akka.remote.use-passive-connections = off
            # Heartbeats keep an idle link talking, well inside silence-timeout (coordination.ensemble.member-link-timeout).
            akka.remote.transport-failure-detector.heartbeat-interval = 1s
            akka.remote.enabled-transports = ["akka.remote.coordination-socket"]
            {{MemberTransport(serverId, SocketTransport.Scheme)}}
            """);
    }

    /// <summary>The member transport's section (<c>akka.remote.coordination-socket</c>): its endpoint, frame sizes,
    /// link timeout and the members' authentication (shared secret, TLS, SASL). <paramref name="scheme"/> makes its
    /// protocol (akka.<paramref name="scheme"/>), which must differ from any other transport of the same system.</summary>
    public string MemberTransport(long serverId, string scheme)
    {
        var (host, port) = EndpointOf(serverId);
        var members = string.Join("\n", Voters.Concat(Observers).Select(kv => $"    {kv.Key} = \"{kv.Value}\""));
        return $$"""
            akka.remote.coordination-socket {
              scheme-identifier = "{{scheme}}"
              transport-class = "Coordination.Server.Ensemble.SocketTransport, Coordination.Server"
              applied-adapters = []
              hostname = "{{host}}"
              port = {{port}}
              connection-timeout = 15s
              silence-timeout = {{(long)MemberLinkTimeout.TotalMilliseconds}}ms
              maximum-frame-size = {{MaxFrameBytes}}b
              send-buffer-size = {{MaxFrameBytes * 2}}b
              receive-buffer-size = {{MaxFrameBytes * 2}}b
              auth {
                insecure = {{(Auth.Insecure ? "on" : "off")}}
                secret-base64 = "{{(Auth.Secret is null ? "" : Convert.ToBase64String(Auth.Secret))}}"
                handshake-timeout = {{(long)Auth.HandshakeTimeout.TotalMilliseconds}}ms
                max-handshakes-per-address = {{Auth.MaxHandshakesPerAddress}}
                member-id = {{serverId}}
                members {
            {{members}}
                }
              }
              {{Tls.ToHocon()}}
              {{Sasl.ToHocon()}}
            }
            """;
    }
}

/// <summary>
/// <c>coordination.ensemble.auth</c>: the secret every member proves it knows, in the member transport's
/// handshake, before Akka sees a byte of the link (see <see cref="MemberHandshake"/>). From <c>secret</c> (its
/// UTF-8 bytes) or <c>secret-file</c> (the file's bytes, a trailing newline dropped); at least
/// <see cref="MinimumSecretBytes"/> bytes. <c>insecure = on</c> turns authentication off.
/// </summary>
public sealed record MemberAuthSettings(byte[]? Secret, bool Insecure, TimeSpan HandshakeTimeout, int MaxHandshakesPerAddress)
{
    public const int MinimumSecretBytes = 16;

    public static MemberAuthSettings Create(Config? auth)
    {
        var secret = auth?.GetString("secret", "") ?? "";
        var file = auth?.GetString("secret-file", "") ?? "";
        if (secret.Length > 0 && file.Length > 0)
            throw new ConfigurationException("coordination.ensemble.auth: set secret or secret-file, not both");
        byte[]? bytes = null;
        if (secret.Length > 0) bytes = System.Text.Encoding.UTF8.GetBytes(secret);
        else if (file.Length > 0)
        {
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigurationException($"coordination.ensemble.auth.secret-file: cannot read '{file}': {e.Message}");
            }
            var length = bytes.Length;
            while (length > 0 && bytes[length - 1] is (byte)'\n' or (byte)'\r') length--;
            bytes = bytes[..length];
        }
        if (bytes is not null && bytes.Length < MinimumSecretBytes)
            throw new ConfigurationException($"coordination.ensemble.auth: the secret has {bytes.Length} bytes; at least {MinimumSecretBytes} are needed");
        var perAddress = auth?.GetInt("max-handshakes-per-address", 8) ?? 8;
        if (perAddress < 1) throw new ConfigurationException("coordination.ensemble.auth.max-handshakes-per-address must be at least 1");
        return new MemberAuthSettings(bytes, auth?.GetBoolean("insecure", false) ?? false,
            auth?.GetTimeSpan("handshake-timeout", TimeSpan.FromSeconds(5)) ?? TimeSpan.FromSeconds(5), perAddress);
    }
}
