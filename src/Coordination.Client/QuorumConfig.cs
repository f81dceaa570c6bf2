using System.Globalization;

namespace Coordination.Client;

/// <summary>A member's vote: a participant (voter) or an observer.</summary>
public enum QuorumRole { Participant, Observer }

/// <summary>One quorum address of a member: <c>host:quorumPort:electionPort</c> (ZooKeeper 3.6+ allows several, joined by '|').</summary>
public readonly record struct QuorumAddress(string Host, int QuorumPort, int ElectionPort)
{
    public override string ToString() => $"{FormatHost(Host)}:{QuorumPort}:{ElectionPort}";
    internal static string FormatHost(string host) => host.Contains(':') ? $"[{host}]" : host;
}

/// <summary>One <c>server.N=...</c> line of a configuration.</summary>
/// <param name="ClientAddress">Where clients connect, null when the line has no client part. Its host may be a
/// wildcard (0.0.0.0, ::) when the member listens on every interface; <see cref="ClientEndpoint"/> resolves that.</param>
public sealed record QuorumServer(long Id, IReadOnlyList<QuorumAddress> Addresses, QuorumRole Role, HostAndPort? ClientAddress)
{
    /// <summary>The client address to connect to: a wildcard host is replaced by the member's first quorum host, null without a client address.</summary>
    public HostAndPort? ClientEndpoint => ClientAddress is { } client
        ? client.Host is "0.0.0.0" or "::" or "0:0:0:0:0:0:0:0" ? client with { Host = Addresses[0].Host } : client
        : null;

    /// <summary>The whole line, <c>server.N=...</c>, as a reconfig's joining servers or members take it.</summary>
    public string ToConfigLine() => $"server.{Id}={this}";

    /// <summary>The line's value in ZooKeeper's format.</summary>
    public override string ToString() =>
        string.Join('|', Addresses) + ":" + (Role == QuorumRole.Observer ? "observer" : "participant")
        + (ClientAddress is { } c ? $";{QuorumAddress.FormatHost(c.Host)}:{c.Port}" : "");
}

/// <summary>
/// The ensemble's configuration as the <c>/zookeeper/config</c> znode holds it (ZooKeeper 3.5's dynamic configuration):
/// <c>server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]</c> lines and <c>version=HEX</c>
/// (the zxid that committed it). Other keys (group., weight.) are kept in <see cref="Text"/> only.
/// </summary>
public sealed record QuorumConfig(IReadOnlyList<QuorumServer> Servers, long Version, string Text)
{
    /// <summary>Where ZooKeeper keeps the configuration; it is outside any chroot.</summary>
    public const string ZnodePath = "/zookeeper/config";

    public IEnumerable<QuorumServer> Participants => Servers.Where(s => s.Role == QuorumRole.Participant);
    public IEnumerable<QuorumServer> Observers => Servers.Where(s => s.Role == QuorumRole.Observer);

    /// <summary>Every member's client endpoint, in id order (members without a client address are left out).</summary>
    public IReadOnlyList<HostAndPort> ClientEndpoints =>
        Servers.OrderBy(s => s.Id).Select(s => s.ClientEndpoint).OfType<HostAndPort>().ToList();

    /// <summary>zkCli's <c>config -c</c> line: <c>VERSION host:port,...</c> (the client addresses as written).</summary>
    public string ToClientConfigString() =>
        $"{Version:x} " + string.Join(',', Servers.Where(s => s.ClientAddress is not null).Select(s => s.ClientAddress!.Value.ToString()));

    public static QuorumConfig Parse(string text) =>
        TryParse(text, out var config, out var error) ? config : throw new FormatException(error);

    public static bool TryParse(string text, out QuorumConfig config, out string error)
    {
        ArgumentNullException.ThrowIfNull(text);
        config = null!;
        var servers = new List<QuorumServer>();
        long version = 0;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var eq = line.IndexOf('=');
            if (eq < 0) { error = $"not key=value: '{line}'"; return false; }
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (key == "version")
            {
                if (!long.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out version)) { error = $"bad version '{value}'"; return false; }
            }
            else if (key.StartsWith("server.", StringComparison.Ordinal))
            {
                if (!long.TryParse(key.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) { error = $"bad server id in '{key}'"; return false; }
                if (ParseServer(id, value, out var server) is { } why) { error = $"{key}: {why}"; return false; }
                servers.Add(server);
            }
        }
        config = new QuorumConfig(servers, version, text);
        error = "";
        return true;
    }

    /// <summary>Parses a server line's value; returns why it is bad, or null.</summary>
    private static string? ParseServer(long id, string value, out QuorumServer server)
    {
        server = null!;
        var semicolon = value.IndexOf(';');
        var quorumPart = semicolon < 0 ? value : value[..semicolon];
        HostAndPort? client = null;
        if (semicolon >= 0)
        {
            var clientPart = value[(semicolon + 1)..].Trim();
            var fields = SplitHostFields(clientPart);
            if (fields is null) return $"bad client address '{clientPart}'";
            if (fields.Count == 1 && Port(fields[0]) is { } onlyPort) client = new HostAndPort("0.0.0.0", onlyPort);
            else if (fields.Count == 2 && Port(fields[1]) is { } port && fields[0].Length > 0) client = new HostAndPort(fields[0], port);
            else return $"bad client address '{clientPart}'";
        }
        var role = QuorumRole.Participant;
        var addresses = new List<QuorumAddress>();
        var parts = quorumPart.Split('|');
        for (var i = 0; i < parts.Length; i++)
        {
            var fields = SplitHostFields(parts[i].Trim());
            if (fields is null) return $"bad address '{parts[i]}'";
            // The role follows the last address: host:q:e:role.
            if (i == parts.Length - 1 && fields.Count == 4)
            {
                switch (fields[3].ToLowerInvariant())
                {
                    case "participant": role = QuorumRole.Participant; break;
                    case "observer": role = QuorumRole.Observer; break;
                    default: return $"unknown role '{fields[3]}'";
                }
                fields.RemoveAt(3);
            }
            if (fields.Count != 3 || fields[0].Length == 0 || Port(fields[1]) is not { } quorumPort || Port(fields[2], allowZero: true) is not { } electionPort)
                return $"bad address '{parts[i]}' (want host:quorumPort:electionPort)";
            addresses.Add(new QuorumAddress(fields[0], quorumPort, electionPort));
        }
        server = new QuorumServer(id, addresses, role, client);
        return null;
    }

    /// <summary>Splits <c>host:a:b...</c> at colons, with an IPv6 host in brackets; null when a bracket is unterminated.</summary>
    private static List<string>? SplitHostFields(string text)
    {
        var fields = new List<string>();
        var rest = text;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']');
            if (close < 0) return null;
            fields.Add(rest[1..close]);
            rest = rest[(close + 1)..];
            if (rest.Length == 0) return fields;
            if (rest[0] != ':') return null;
            rest = rest[1..];
        }
        fields.AddRange(rest.Split(':'));
        return fields;
    }

    private static int? Port(string text, bool allowZero = false) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= 65535 && (port > 0 || allowZero) ? port : null;
}
