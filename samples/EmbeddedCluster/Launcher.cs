using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace EmbeddedCluster;

/// <summary>
/// <c>[--nodes 5] [--members 3] [--entities 20] [--kill singleton|none|N] [--timeout SECONDS] [--data-dir DIR]</c>.
/// </summary>
public sealed record LaunchOptions(int Nodes, int Members, int Entities, string Kill, TimeSpan Timeout, string? DataDir)
{
    public static LaunchOptions Parse(string[] args)
    {
        string Arg(string name, string fallback) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
        int Int(string name, int fallback) => int.Parse(Arg(name, $"{fallback}"), CultureInfo.InvariantCulture);
        var options = new LaunchOptions(Int("--nodes", 5), Int("--members", 3), Int("--entities", 20), Arg("--kill", "singleton"),
            TimeSpan.FromSeconds(Int("--timeout", 180)), args.Contains("--data-dir") ? Arg("--data-dir", "") : null);
        if (options.Members < 1 || options.Members > options.Nodes) throw new ArgumentException("--members must be 1..--nodes");
        return options;
    }
}

/// <summary>
/// Runs the demo with real processes, one per node (a kill is then a real crash: no PostStop, no goodbye, sessions
/// left to expire): starts the nodes, waits for the cluster, the ensemble, the singleton and every entity, kills the
/// singleton's node, waits until the singleton and that node's entities run elsewhere, stops the rest, and checks from
/// the nodes' own lines that no singleton or entity ever ran twice at once.
/// </summary>
public static class Launcher
{
    public static async Task<int> RunAsync(LaunchOptions o)
    {
        var dataDir = o.DataDir ?? Path.Combine(Path.GetTempPath(), "embedded-cluster-" + Guid.NewGuid().ToString("N")[..8]);
        int[] Free(int n) => Enumerable.Range(0, n).Select(_ => FreePort()).ToArray();
        var nodes = Enumerable.Range(1, o.Nodes)
            .Select(id => new NodeOptions(id, o.Members, [], [], [], dataDir, o.Entities, StopOnStdinClose: true)).ToArray();
        var (remoting, memberPorts, clientPorts) = (Free(o.Nodes), Free(o.Members), Free(o.Members));
        nodes = nodes.Select(n => n with { Remoting = remoting, MemberPorts = memberPorts, ClientPorts = clientPorts }).ToArray();
        var log = new EventLog();
        var processes = new Dictionary<int, Process>();
        using var deadline = new CancellationTokenSource(o.Timeout);
        try
        {
            foreach (var node in nodes)
            {
                Console.Error.WriteLine($"node {node.Id}: {string.Join(' ', Command().Concat(node.ToArgs()))}");
                processes[node.Id] = Start(node, log);
            }
            await log.WaitAsync(l => l.Count("NODE-UP") == o.Nodes && l.Count("ENSEMBLE") == o.Members && l.Count("ENSEMBLE", "mode=leader") == 1
                && l.Count("SINGLETON-START") > 0 && l.Keys("ENTITY-START").Count == o.Entities,
                "the cluster up, the ensemble serving, the singleton and every entity running", deadline.Token);
            await Task.Delay(TimeSpan.FromSeconds(3), deadline.Token);

            if (o.Kill != "none")
            {
                var victim = o.Kill == "singleton" ? log.Last("SINGLETON-START").Node : int.Parse(o.Kill, CultureInfo.InvariantCulture);
                var itsEntities = log.Running("ENTITY").Where(r => r.Node == victim).Select(r => r.Key).ToList();
                processes[victim].Kill(entireProcessTree: true);
                await processes[victim].WaitForExitAsync(deadline.Token);
                var killedAt = log.Add($"KILLED node={victim} at={DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}");
                // (The victim's own last lines may still be read after KILLED: only the survivors' count.)
                await log.WaitAsync(l => l.After(killedAt).Any(e => e.Kind == "SINGLETON-START" && e.Node != victim)
                    && itsEntities.All(id => l.After(killedAt).Any(e => e.Kind == "ENTITY-START" && e.Key == id && e.Node != victim)),
                    $"the singleton and node {victim}'s {itsEntities.Count} entities running on the survivors", deadline.Token);
                await Task.Delay(TimeSpan.FromSeconds(3), deadline.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"TIMEOUT after {o.Timeout.TotalSeconds:F0}s waiting for {log.Waiting}");
            foreach (var p in processes.Values) Stop(p, kill: true);
            Console.Out.WriteLine($"SUMMARY completed=false overlaps={log.Overlaps().Count}");
            return 2;
        }
        finally
        {
            foreach (var p in processes.Values) Stop(p, kill: false);
            foreach (var p in processes.Values) Stop(p, kill: !p.WaitForExit(TimeSpan.FromSeconds(30)));
            try { await log.Drained(); } catch (TimeoutException) { }
            if (o.DataDir is null) try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { }
        }

        var overlaps = log.Overlaps();
        foreach (var overlap in overlaps) Console.Out.WriteLine($"OVERLAP {overlap}");
        Console.Out.WriteLine($"SUMMARY completed=true nodes={o.Nodes} members={o.Members} singleton-incarnations={log.Count("SINGLETON-START")} " +
                              $"entity-incarnations={log.Count("ENTITY-START")} entities={o.Entities} overlaps={overlaps.Count}");
        return overlaps.Count == 0 ? 0 : 1;
    }

    /// <summary>This program again: the apphost, or <c>dotnet EmbeddedCluster.dll</c>.</summary>
    private static IEnumerable<string> Command()
    {
        var self = Environment.ProcessPath!;
        return Path.GetFileNameWithoutExtension(self) == "dotnet" ? [self, typeof(Launcher).Assembly.Location] : [self];
    }

    private static Process Start(NodeOptions node, EventLog log)
    {
        var command = Command().Concat(node.ToArgs()).ToList();
        var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        log.Follow(node.Id, process);
        return process;
    }

    /// <summary>Closing its stdin stops a node gracefully (it leaves the cluster: the singleton and shards hand over).</summary>
    private static void Stop(Process p, bool kill)
    {
        try
        {
            if (p.HasExited) return;
            if (kill) p.Kill(entireProcessTree: true);
            else p.StandardInput.Close();
        }
        catch (Exception e) when (e is InvalidOperationException or IOException) { }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One machine-readable line: its kind, the node that printed it, the entity id (if any), and its time.</summary>
public sealed record NodeEvent(int Seq, string Kind, int Node, string? Key, long At, string Line);

/// <summary>The nodes' machine-readable lines, echoed to stdout in the order read; anything else goes to stderr.</summary>
public sealed partial class EventLog
{
    private readonly List<NodeEvent> _events = [];
    private readonly List<Task> _readers = [];
    public string Waiting { get; private set; } = "";

    [GeneratedRegex(@"^(?<kind>[A-Z][A-Z-]+) (?:id=(?<id>\S+) )?node=(?<node>\d+).* at=(?<at>\d+)$")]
    private static partial Regex Line();

    public void Follow(int node, Process process) => _readers.Add(Task.Run(async () =>
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
            if (Line().IsMatch(line)) Add(line);
            else Console.Error.WriteLine($"[node {node}] {line}");
    }));

    public NodeEvent Add(string line)
    {
        var m = Line().Match(line);
        lock (_events)
        {
            var e = new NodeEvent(_events.Count, m.Groups["kind"].Value, int.Parse(m.Groups["node"].Value, CultureInfo.InvariantCulture),
                m.Groups["id"].Success ? m.Groups["id"].Value : null, long.Parse(m.Groups["at"].Value, CultureInfo.InvariantCulture), line);
            _events.Add(e);
            Console.Out.WriteLine(line);
            return e;
        }
    }

    /// <summary>Every node's output read to its end (bounded: a node that would not exit was killed before).</summary>
    public Task Drained() => Task.WhenAll(_readers).WaitAsync(TimeSpan.FromSeconds(10));

    private List<NodeEvent> Snapshot() { lock (_events) return _events.ToList(); }

    public int Count(string kind, string? containing = null) => Snapshot().Count(e => e.Kind == kind && (containing is null || e.Line.Contains(containing)));
    public HashSet<string> Keys(string kind) => Snapshot().Where(e => e.Kind == kind && e.Key is not null).Select(e => e.Key!).ToHashSet();
    public NodeEvent Last(string kind) => Snapshot().Last(e => e.Kind == kind);
    public IEnumerable<NodeEvent> After(NodeEvent mark) => Snapshot().Where(e => e.Seq > mark.Seq);

    public async Task WaitAsync(Func<EventLog, bool> done, string what, CancellationToken ct)
    {
        Waiting = what;
        while (!done(this)) await Task.Delay(200, ct);
        Console.Error.WriteLine($"reached: {what}");
    }

    /// <summary>Singleton and entity incarnations still running: a START without its STOP.</summary>
    public IEnumerable<(string Key, int Node)> Running(string what) => Incarnations().Where(i => i.Stop == long.MaxValue && i.Kind == what).Select(i => (i.Key, i.Node));

    /// <summary>
    /// Every incarnation of the singleton and of each entity, from its START to its STOP (or its node's KILLED, or
    /// the end), and the pairs of incarnations of one key that overlap in time.
    /// </summary>
    public IReadOnlyList<string> Overlaps()
    {
        var incarnations = Incarnations().ToList();
        return incarnations.SelectMany((a, i) => incarnations.Skip(i + 1)
                .Where(b => a.Kind == b.Kind && a.Key == b.Key && a.Start < b.Stop && b.Start < a.Stop)
                .Select(b => $"{a.Kind} {a.Key} on node {a.Node} ({a.Start}..{a.Stop}) and on node {b.Node} ({b.Start}..{b.Stop})"))
            .ToList();
    }

    private IEnumerable<(string Kind, string Key, int Node, long Start, long Stop)> Incarnations()
    {
        var events = Snapshot();
        var killed = events.Where(e => e.Kind == "KILLED").ToDictionary(e => e.Node, e => e.At);
        var open = new Dictionary<(string, string, int), long>();
        var done = new List<(string, string, int, long, long)>();
        foreach (var e in events)
        {
            var kind = e.Kind.StartsWith("SINGLETON-", StringComparison.Ordinal) ? "SINGLETON" : e.Kind.StartsWith("ENTITY-", StringComparison.Ordinal) ? "ENTITY" : null;
            if (kind is null) continue;
            var key = (kind, e.Key ?? "scheduler", e.Node);
            if (e.Kind.EndsWith("-START", StringComparison.Ordinal)) open[key] = e.At;
            else if (open.Remove(key, out var start)) done.Add((kind, key.Item2, e.Node, start, e.At));
        }
        foreach (var ((kind, key, node), start) in open) done.Add((kind, key, node, start, killed.GetValueOrDefault(node, long.MaxValue)));
        return done;
    }
}
