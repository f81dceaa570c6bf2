using System.Globalization;
using System.Text;

namespace Coordination.Core.Zab;

/// <summary>
/// One member of a <see cref="DynamicConfig"/>: ZooKeeper's "server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]".
/// Our members talk over one port, the quorum port; the election port is kept only to write the line back as it was
/// given, and is 0 for a member configured in HOCON (ZooKeeper's clients refuse a line whose two ports are equal).
/// </summary>
public sealed record MemberSpec(long Id, string Host, int MemberPort, int ElectionPort, bool Observer, string? ClientHost, int ClientPort)
{
    /// <summary>The member endpoint (host:port) our transport dials.</summary>
    public string Endpoint => $"{Host}:{MemberPort}";

    /// <summary>ZooKeeper's QuorumServer.toString: "host:port:port:role" and ";clientHost:clientPort" when known.</summary>
    public override string ToString() =>
        $"{Host}:{MemberPort}:{ElectionPort}:{(Observer ? "observer" : "participant")}" +
        (ClientPort > 0 ? $";{ClientHost ?? "0.0.0.0"}:{ClientPort}" : "");

    /// <summary>Parses the right-hand side of a "server.N=" line; null with <paramref name="error"/> when it is not one.</summary>
    public static MemberSpec? Parse(long id, string spec, out string? error)
    {
        error = null;
        var semicolon = spec.IndexOf(';');
        var server = (semicolon < 0 ? spec : spec[..semicolon]).Trim();
        var client = semicolon < 0 ? null : spec[(semicolon + 1)..].Trim();
        if (server.Contains('|')) { error = "several addresses per server are not supported"; return null; }
        var parts = server.Split(':');
        if (parts.Length is < 3 or > 4 || parts[0].Length == 0 || !Port(parts[1], out var memberPort)
            || !(Port(parts[2], out var electionPort) || parts[2] == "0"))
        {
            error = $"'{spec}': expected host:port:port[:role][;[clientHost:]clientPort]";
            return null;
        }
        var observer = false;
        if (parts.Length == 4)
        {
            if (parts[3] == "observer") observer = true;
            else if (parts[3] != "participant") { error = $"'{parts[3]}' is not participant or observer"; return null; }
        }
        string? clientHost = null;
        var clientPort = 0;
        if (!string.IsNullOrEmpty(client))
        {
            var colon = client.LastIndexOf(':');
            if (colon > 0) clientHost = client[..colon];
            if (!Port(colon < 0 ? client : client[(colon + 1)..], out clientPort)) { error = $"'{client}' is not [host:]port"; return null; }
        }
        return new MemberSpec(id, parts[0], memberPort, electionPort, observer, clientHost, clientPort);
    }

    private static bool Port(string text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536;
}

/// <summary>
/// An ensemble's membership with addresses, as ZooKeeper writes it in the <c>/zookeeper/config</c> znode and in its
/// <c>zoo.cfg.dynamic.&lt;version&gt;</c> file: "server.N=..." lines in id order, then "version=&lt;hex&gt;". Pure: parsing,
/// formatting, and the new membership a reconfig request asks for.
/// </summary>
public sealed class DynamicConfig
{
    public IReadOnlyList<MemberSpec> Members { get; }
    /// <summary>The zxid of the reconfig txn that made it (0 for an ensemble's first configuration).</summary>
    public long Version { get; }

    public DynamicConfig(IEnumerable<MemberSpec> members, long version)
    {
        Members = members.OrderBy(m => m.Id).ToList();
        Version = version;
    }

    public IEnumerable<long> Voters => Members.Where(m => !m.Observer).Select(m => m.Id);
    public IEnumerable<long> Observers => Members.Where(m => m.Observer).Select(m => m.Id);

    public DynamicConfig WithVersion(long version) => new(Members, version);

    /// <summary>The ids and roles as the Zab core counts them, with this text attached so that members learn the addresses.</summary>
    public ZabConfig ToZabConfig() => new(Voters, Observers, Version) { Text = ToString() };

    /// <summary>ZooKeeper's QuorumMaj.toString.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var m in Members) sb.Append("server.").Append(m.Id).Append('=').Append(m).Append('\n');
        return sb.Append("version=").Append(Version.ToString("x", CultureInfo.InvariantCulture)).ToString();
    }

    public byte[] ToBytes() => Encoding.UTF8.GetBytes(ToString());

    /// <summary>Parses "server.N=spec" lines (commas also separate them, as in a reconfig's member list) and an optional
    /// "version=hex"; blank lines and '#' comments are skipped. Null with <paramref name="error"/> on anything else.</summary>
    public static DynamicConfig? Parse(string text, out string? error)
    {
        error = null;
        var members = new Dictionary<long, MemberSpec>();
        long version = 0;
        foreach (var raw in text.Split('\n', ','))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var eq = line.IndexOf('=');
            if (eq < 0) { error = $"'{line}' is not key=value"; return null; }
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (key == "version")
            {
                if (!long.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out version)) { error = $"'{value}' is not a hex version"; return null; }
                continue;
            }
            if (!TryServerId(key, out var id)) { error = $"'{key}' is not server.N"; return null; }
            if (MemberSpec.Parse(id, value, out error) is not { } member) return null;
            if (!members.TryAdd(id, member)) { error = $"server.{id} appears twice"; return null; }
        }
        return new DynamicConfig(members.Values, version);
    }

    private static bool TryServerId(string key, out long id)
    {
        id = 0;
        return key.StartsWith("server.", StringComparison.Ordinal)
            && long.TryParse(key.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out id) && id is >= 1 and <= 254;
    }

    /// <summary>
    /// The membership a reconfig asks for, as ZooKeeper's PrepRequestProcessor computes it: <paramref name="newMembers"/>
    /// replaces everything (non-incremental); otherwise <paramref name="leaving"/> ids are removed and each
    /// <paramref name="joining"/> "server.N=spec" added or replaced. Null with <paramref name="error"/> for bad arguments.
    /// </summary>
    public DynamicConfig? Reconfigure(string? joining, string? leaving, string? newMembers, out string? error)
    {
        error = null;
        if (newMembers is not null)
        {
            var whole = Parse(newMembers, out error);
            return whole is null ? null : new DynamicConfig(whole.Members, Version);
        }
        var next = Members.ToDictionary(m => m.Id);
        foreach (var item in (leaving ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!long.TryParse(item, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var id)) { error = $"'{item}' is not a server id"; return null; }
            next.Remove(id);
        }
        if (!string.IsNullOrEmpty(joining))
        {
            var added = Parse(joining, out error);
            if (added is null) return null;
            foreach (var member in added.Members)
            {
                if (next.Values.Any(m => m.Id != member.Id && m.Host == member.Host
                        && (m.MemberPort == member.MemberPort || (m.ElectionPort > 0 && m.ElectionPort == member.ElectionPort))))
                {
                    error = $"server.{member.Id}'s address is already used by another server";
                    return null;
                }
                next[member.Id] = member;
            }
        }
        return new DynamicConfig(next.Values, Version);
    }
}
