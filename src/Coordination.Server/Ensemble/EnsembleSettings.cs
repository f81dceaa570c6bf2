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
    string Transport)
{
    /// <summary>Every node of an ensemble runs an ActorSystem of this name, so addresses differ only by host and port.</summary>
    public const string SystemName = "coordination";

    public bool Enabled => Voters.Count > 0;

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
        if (transport is not ("socket" or "dot-netty"))
            throw new ConfigurationException($"coordination.ensemble.transport: '{transport}' is neither socket nor dot-netty");
        return new EnsembleSettings(Members(c, "voters"), Members(c, "observers"), zab, c.GetByteSize("max-frame-size") ?? 4L << 20, transport);
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
    public EnsembleMembers Members(string protocol)
    {
        string Address(string endpoint) => $"{protocol}://{SystemName}@{endpoint}";
        return new EnsembleMembers(
            Voters.ToDictionary(kv => kv.Key, kv => Address(kv.Value)),
            Observers.ToDictionary(kv => kv.Key, kv => Address(kv.Value)));
    }

    /// <summary>The Akka.Remote settings this node needs: its transport and endpoint, frames large enough for a
    /// 1 MiB znode write, and the ensemble's serializer. Both transports are described, so that adapters (the
    /// tests' throttler) can be applied to either; <see cref="Transport"/> picks the one that is enabled.</summary>
    public Config RemotingConfig(long serverId)
    {
        var (host, port) = EndpointOf(serverId);
        return ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
            akka.actor.serialization-bindings {
              "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
              "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab
            }
            # A member writes only on links it dialed itself. With passive links, a member restarted just as a peer
            # redialed its old incarnation stopped reading the one link that peer then wrote on, and stayed
            # Looking for good (RejoinTests).
            akka.remote.use-passive-connections = off
            akka.remote.enabled-transports = [{{(Transport == "socket" ? "\"akka.remote.coordination-socket\"" : "\"akka.remote.dot-netty.tcp\"")}}]
            akka.remote.coordination-socket {
              transport-class = "Coordination.Server.Ensemble.SocketTransport, Coordination.Server"
              applied-adapters = []
              hostname = "{{host}}"
              port = {{port}}
              connection-timeout = 15s
              maximum-frame-size = {{MaxFrameBytes}}b
              send-buffer-size = {{MaxFrameBytes * 2}}b
              receive-buffer-size = {{MaxFrameBytes * 2}}b
            }
            akka.remote.dot-netty.tcp {
              hostname = "{{host}}"
              port = {{port}}
              maximum-frame-size = {{MaxFrameBytes}}b
              send-buffer-size = {{MaxFrameBytes * 2}}b
              receive-buffer-size = {{MaxFrameBytes * 2}}b
            }
            """);
    }
}
