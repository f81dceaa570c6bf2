using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>A server address of a connect string.</summary>
public readonly record struct HostAndPort(string Host, int Port)
{
    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>
/// A ZooKeeper connect string: <c>host1:port1,host2:port2[/chroot]</c>. A host without a port uses 2181;
/// IPv6 hosts are written in brackets.
/// </summary>
public sealed record ConnectString(IReadOnlyList<HostAndPort> Hosts, string? Chroot)
{
    public const int DefaultPort = 2181;

    public static ConnectString Parse(string connectString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectString);
        var s = connectString.Trim();
        string? chroot = null;
        var slash = s.IndexOf('/');
        if (slash >= 0)
        {
            chroot = s[slash..];
            s = s[..slash];
            if (chroot == "/") chroot = null;
            else if (Paths.Validate(chroot) is { } reason) throw new ArgumentException($"invalid chroot '{chroot}': {reason}", nameof(connectString));
        }
        var hosts = new List<HostAndPort>();
        foreach (var raw in s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string host;
            var port = DefaultPort;
            if (raw.StartsWith('['))
            {
                var close = raw.IndexOf(']');
                if (close < 0) throw new ArgumentException($"unterminated IPv6 address in '{raw}'", nameof(connectString));
                host = raw[1..close];
                if (close + 1 < raw.Length)
                {
                    if (raw[close + 1] != ':') throw new ArgumentException($"bad host '{raw}'", nameof(connectString));
                    port = ParsePort(raw[(close + 2)..], raw);
                }
            }
            else
            {
                var colon = raw.LastIndexOf(':');
                if (colon < 0) host = raw;
                else { host = raw[..colon]; port = ParsePort(raw[(colon + 1)..], raw); }
            }
            if (host.Length == 0) throw new ArgumentException($"empty host in '{raw}'", nameof(connectString));
            hosts.Add(new HostAndPort(host, port));
        }
        if (hosts.Count == 0) throw new ArgumentException("connect string names no host", nameof(connectString));
        return new ConnectString(hosts, chroot);
    }

    private static int ParsePort(string text, string raw) =>
        int.TryParse(text, out var port) && port is > 0 and <= 65535 ? port : throw new ArgumentException($"bad port in '{raw}'");

    /// <summary>The path the server sees for a client path.</summary>
    public string ToServerPath(string clientPath) => Chroot is null ? clientPath : clientPath == "/" ? Chroot : Chroot + clientPath;

    /// <summary>The path the client sees for a server path (paths outside the chroot are returned unchanged).</summary>
    public string ToClientPath(string serverPath)
    {
        if (Chroot is null) return serverPath;
        if (serverPath == Chroot) return "/";
        return serverPath.Length > Chroot.Length && serverPath.StartsWith(Chroot, StringComparison.Ordinal) && serverPath[Chroot.Length] == '/'
            ? serverPath[Chroot.Length..]
            : serverPath;
    }

    public override string ToString() => string.Join(',', Hosts) + (Chroot ?? "");
}
