using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Coordination.TestKit;

/// <summary>
/// Real network namespaces for process-level fault tests (Linux, root, iproute2 and iptables): one namespace per
/// member and one for the test's clients, each joined by a veth pair to a bridge in a hub namespace. The addresses
/// (10.201.0.0/24) exist only on interfaces of these namespaces, so no traffic leaves the machine and the root
/// namespace is not touched. The test process reaches the members through sockets created in the client namespace
/// (<see cref="CreateSocket"/>), client processes through <see cref="ClientLaunchPrefix"/>; members run through <c>ip netns exec</c> (<see cref="LaunchPrefixOf"/>).
/// Faults are iptables rules and htb classes inside the member namespaces: <see cref="Isolate"/>,
/// <see cref="CutLink"/>, <see cref="Slow"/>, <see cref="Lossy"/>; <see cref="HealAll"/> removes them all.
/// This kernel has no netem (no sch_netem, no modules to load), so delay is an htb bandwidth cap on the member links
/// (queueing delay: 64 kbit/s adds ~20 ms per 100-byte round trip, ~130 ms per 1 KB) and loss is an iptables
/// <c>statistic --mode random</c> DROP. Namespaces are named <c>coordlab-PID-…</c>; those of runs whose process is gone
/// are removed (with the processes left in them) when a lab is created.
/// </summary>
public sealed class NetworkLab : IEnsembleNetwork, IDisposable
{
    private const string Prefix = "coordlab-";
    private const string Subnet = "10.201.0";
    private const string SlowClass = "1:20";
    private const int CloneNewNet = 0x40000000;

    private readonly string _name;
    private readonly int _members;
    private readonly Action<string> _log;
    private readonly List<string> _namespaces = new();
    private readonly HashSet<long> _shaped = new();
    private readonly BlockingCollection<TaskCompletionSource<Socket>> _socketRequests = new();
    private Thread? _clientThread;

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nsType);

    private NetworkLab(int members, Action<string>? log)
    {
        _members = members;
        _log = log ?? (_ => { });
        _name = Prefix + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Why network namespaces cannot be used here, or null when they can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces need Linux";
        if (GetEuid() != 0) return "creating network namespaces needs root";
        foreach (var tool in new[] { "ip", "iptables", "tc" })
            if (!new[] { "/usr/sbin", "/sbin", "/usr/bin", "/bin" }.Any(d => File.Exists(Path.Combine(d, tool))))
                return $"{tool} is not installed (apt-get install iproute2 iptables)";
        var probe = $"{Prefix}{Environment.ProcessId}-probe";
        var (code, output) = Run(["ip", "netns", "add", probe]);
        if (code != 0) return $"ip netns add failed: {output.Trim()}";
        try
        {
            (code, output) = Run(["ip", "netns", "exec", probe, "iptables", "-w", "-A", "INPUT", "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"]);
            if (code != 0) return $"iptables inside a network namespace failed: {output.Trim()}";
        }
        finally { Run(["ip", "netns", "del", probe]); }
        return null;
    }

    /// <summary>
    /// Why a test that needs network namespaces is skipped here (with how to make that a failure), or null when they can
    /// be used; throws when they cannot but COORDINATION_REQUIRE_NETNS=1 (set by CI) requires them.
    /// </summary>
    public static string? SkipReason()
    {
        if (Unavailable() is not { } reason) return null;
        if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_NETNS") == "1")
            throw new InvalidOperationException($"COORDINATION_REQUIRE_NETNS=1 but {reason}");
        return reason + " (set COORDINATION_REQUIRE_NETNS=1 to fail instead)";
    }

    /// <summary>Creates the namespaces, bridge and links for <paramref name="members"/> members (ids 1..N) and the client namespace.</summary>
    public static NetworkLab Create(int members, Action<string>? log = null)
    {
        if (members is < 1 or > 200) throw new ArgumentOutOfRangeException(nameof(members));
        RemoveStale(log);
        var lab = new NetworkLab(members, log);
        try
        {
            lab.Build();
            return lab;
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    private string Hub => _name + "-hub";
    private string ClientNamespace => _name + "-cli";
    public string NamespaceOf(long id) => $"{_name}-n{id}";
    public string AddressOf(long id) => $"{Subnet}.{10 + id}";
    public string ClientAddress => $"{Subnet}.2";
    public IReadOnlyList<string> LaunchPrefixOf(long id) => ["ip", "netns", "exec", NamespaceOf(id)];
    /// <summary>The command prefix that starts a client process (kazoo, the Java client) in the client namespace, beside <see cref="CreateSocket"/>'s sockets.</summary>
    public IReadOnlyList<string> ClientLaunchPrefix => ["ip", "netns", "exec", ClientNamespace];
    private IEnumerable<long> Ids => Enumerable.Range(1, _members).Select(i => (long)i);

    private void Build()
    {
        foreach (var ns in new[] { Hub, ClientNamespace }.Concat(Ids.Select(NamespaceOf)))
        {
            Must("ip", "netns", "add", ns);
            _namespaces.Add(ns);
            Must("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Must("ip", "-n", Hub, "link", "add", "br0", "type", "bridge");
        Must("ip", "-n", Hub, "link", "set", "br0", "up");
        Attach(ClientNamespace, "cli", ClientAddress);
        foreach (var id in Ids) Attach(NamespaceOf(id), $"n{id}", AddressOf(id));

        _clientThread = new Thread(ServeSocketRequests) { IsBackground = true, Name = "netns-client-sockets" };
        _clientThread.Start();
        CreateSocket().Dispose(); // fails here, not in the test, when setns does not work
        _log($"network lab {_name}: members {string.Join(", ", Ids.Select(id => $"{id}={AddressOf(id)}"))}, clients {ClientAddress}");
    }

    /// <summary>A veth pair: eth0 with <paramref name="address"/> inside <paramref name="ns"/>, <paramref name="port"/> on the hub's bridge.</summary>
    private void Attach(string ns, string port, string address)
    {
        Must("ip", "-n", Hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
        Must("ip", "-n", Hub, "link", "set", port, "master", "br0", "up");
        Must("ip", "-n", ns, "addr", "add", address + "/24", "dev", "eth0");
        Must("ip", "-n", ns, "link", "set", "eth0", "up");
    }

    /// <summary>A thread that joins the client namespace once and creates every socket there (a socket stays in the namespace it was created in).</summary>
    private void ServeSocketRequests()
    {
        Exception? failure = null;
        try
        {
            using var handle = File.OpenHandle($"/run/netns/{ClientNamespace}");
            if (SetNs((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                failure = new IOException($"setns({ClientNamespace}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        catch (Exception e) { failure = e; }
        foreach (var request in _socketRequests.GetConsumingEnumerable())
        {
            if (failure is not null) { request.SetException(failure); continue; }
            try { request.SetResult(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)); }
            catch (Exception e) { request.SetException(e); }
        }
    }

    /// <summary>A TCP socket in the client namespace, from which every member's address is reachable.</summary>
    public Socket CreateSocket()
    {
        var request = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        _socketRequests.Add(request);
        return request.Task.GetAwaiter().GetResult();
    }

    // ---------------------------------------------------------------- faults

    /// <summary>Drops every packet between member <paramref name="id"/> and the other members (clients still reach it).</summary>
    public void Isolate(long id)
    {
        foreach (var other in Ids.Where(o => o != id)) CutLink(id, other);
    }

    /// <summary>Drops every packet between members <paramref name="a"/> and <paramref name="b"/>, both ways.</summary>
    public void CutLink(long a, long b)
    {
        Iptables(a, "-A", "INPUT", "-s", AddressOf(b), "-j", "DROP");
        Iptables(a, "-A", "OUTPUT", "-d", AddressOf(b), "-j", "DROP");
    }

    /// <summary>
    /// Makes the TCP connections open now between members <paramref name="at"/> and <paramref name="from"/> half-open:
    /// <paramref name="at"/> stops receiving anything <paramref name="from"/> sends on them (data and ACKs), while
    /// <paramref name="from"/> still receives what <paramref name="at"/> sends, and new connections pass. This is what a
    /// stateful firewall or NAT that forgets a flow does; only a read timeout notices it. Returns the connections hit.
    /// </summary>
    public int HalfOpenFlows(long at, long from)
    {
        var peer = AddressOf(from);
        var flows = 0;
        // "0 0 10.201.0.11:2881 10.201.0.12:40412": Recv-Q, Send-Q, local, peer (no state column with a state filter).
        foreach (var line in Run(["ip", "netns", "exec", NamespaceOf(at), "ss", "-tnH", "state", "established"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4 || !fields[3].StartsWith(peer + ":", StringComparison.Ordinal)) continue;
            var localPort = fields[2][(fields[2].LastIndexOf(':') + 1)..];
            var peerPort = fields[3][(peer.Length + 1)..];
            Iptables(at, "-A", "INPUT", "-s", peer, "-p", "tcp", "--sport", peerPort, "--dport", localPort, "-j", "DROP");
            flows++;
        }
        return flows;
    }

    /// <summary>Drops each packet between member <paramref name="id"/> and the other members with <paramref name="probability"/>, both ways.</summary>
    public void Lossy(long id, double probability)
    {
        var p = probability.ToString("0.###", CultureInfo.InvariantCulture);
        foreach (var other in Ids.Where(o => o != id))
        {
            Iptables(id, "-A", "INPUT", "-s", AddressOf(other), "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP");
            Iptables(id, "-A", "OUTPUT", "-d", AddressOf(other), "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP");
        }
    }

    /// <summary>
    /// Caps the links between member <paramref name="id"/> and the other members at <paramref name="kbitPerSecond"/>
    /// both ways (an htb class on each sender's eth0; packets to the peer are steered into it with iptables CLASSIFY),
    /// which delays every message by its queueing time. Client traffic is not slowed.
    /// </summary>
    public void Slow(long id, int kbitPerSecond)
    {
        foreach (var other in Ids.Where(o => o != id))
        {
            Shape(id, other, kbitPerSecond);
            Shape(other, id, kbitPerSecond);
        }
    }

    private void Shape(long from, long to, int kbitPerSecond)
    {
        var ns = NamespaceOf(from);
        var rate = $"{kbitPerSecond}kbit";
        if (_shaped.Add(from))
        {
            Must("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1", "r2q", "1");
            Must("ip", "netns", "exec", ns, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit", "quantum", "60000");
            Must("ip", "netns", "exec", ns, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", SlowClass, "htb", "rate", rate, "ceil", rate, "quantum", "1600");
        }
        else Must("ip", "netns", "exec", ns, "tc", "class", "change", "dev", "eth0", "parent", "1:", "classid", SlowClass, "htb", "rate", rate, "ceil", rate, "quantum", "1600");
        Iptables(from, "-t", "mangle", "-A", "POSTROUTING", "-d", AddressOf(to), "-j", "CLASSIFY", "--set-class", SlowClass);
    }

    /// <summary>Removes every fault: iptables rules and traffic shaping in all member namespaces.</summary>
    public void HealAll()
    {
        foreach (var id in Ids)
        {
            Iptables(id, "-F");
            Iptables(id, "-t", "mangle", "-F");
            if (_shaped.Remove(id)) Must("ip", "netns", "exec", NamespaceOf(id), "tc", "qdisc", "del", "dev", "eth0", "root");
        }
    }

    /// <summary>
    /// What the faults of member <paramref name="id"/> did so far: packets its DROP rules dropped, and bytes sent through
    /// its slow class (0 when its links are not slowed).
    /// </summary>
    public (long DroppedPackets, long SlowedBytes) Counters(long id)
    {
        var ns = NamespaceOf(id);
        var dropped = Run(["ip", "netns", "exec", ns, "iptables", "-w", "-L", "-v", "-n", "-x"]).Output.Split('\n')
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length > 2 && f[2] == "DROP" && long.TryParse(f[0], out _))
            .Sum(f => long.Parse(f[0], CultureInfo.InvariantCulture));
        if (!_shaped.Contains(id)) return (dropped, 0);
        // "Sent 43047 bytes 46 pkt (dropped 0, overlimits 18 requeues 0)"
        var sent = Run(["ip", "netns", "exec", ns, "tc", "-s", "class", "show", "dev", "eth0", "classid", SlowClass]).Output
            .Split(' ', '\n').SkipWhile(w => w != "Sent").Skip(1).FirstOrDefault();
        return (dropped, long.TryParse(sent, out var bytes) ? bytes : 0);
    }

    private void Iptables(long id, params string[] rule) => Must(["ip", "netns", "exec", NamespaceOf(id), "iptables", "-w", .. rule]);

    // ---------------------------------------------------------------- processes

    private static void Must(params string[] command)
    {
        var (code, output) = Run(command);
        if (code != 0) throw new IOException($"{string.Join(' ', command)} failed with exit code {code}: {output.Trim()}");
    }

    private static (int Code, string Output) Run(IReadOnlyList<string> command)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi) ?? throw new IOException($"could not start {command[0]}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(30_000))
        {
            process.Kill();
            return (-1, $"{string.Join(' ', command)} did not finish in 30 s");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Deletes a namespace after killing the processes still in it (servers a test started there).</summary>
    private static void Delete(string ns)
    {
        foreach (var line in Run(["ip", "netns", "pids", ns]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (int.TryParse(line, out var pid))
                try { using var p = Process.GetProcessById(pid); p.Kill(); p.WaitForExit(5_000); }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { }
        Run(["ip", "netns", "del", ns]);
    }

    /// <summary>Removes the namespaces of earlier labs whose process no longer runs (a crashed or killed test run).</summary>
    private static void RemoveStale(Action<string>? log)
    {
        foreach (var line in Run(["ip", "netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var ns = line.Split(' ')[0];
            if (!ns.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            var owner = ns[Prefix.Length..].Split('-')[0];
            if (int.TryParse(owner, out var pid) && Directory.Exists($"/proc/{pid}")) continue;
            log?.Invoke($"removing stale network namespace {ns}");
            Delete(ns);
        }
    }

    public void Dispose()
    {
        _socketRequests.CompleteAdding();
        _clientThread?.Join(5_000);
        foreach (var ns in Enumerable.Reverse(_namespaces)) Delete(ns);
        _namespaces.Clear();
    }

    public override string ToString() => $"network lab {_name} ({_members} members)";
}
