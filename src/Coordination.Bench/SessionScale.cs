using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// <c>Coordination.Bench sessions</c>: how many sessions and watches one server holds, and what they cost (issue 23's
/// scale row). One run opens N sessions (a <see cref="SessionSwarm"/>, one process, no thread per session) at a bounded
/// concurrency, sets W watches per session, arms one more watch per session on one znode and changes it, then closes
/// every session; it reports the establishment rate, the server's RSS growth per session and per watch, and the time
/// until the last session has its notification. Against --connect, or servers it starts in turn (--targets ours,zk).
/// </summary>
public static class SessionScale
{
    public const string Usage = """
        Coordination.Bench sessions: sessions and watches on one server, against ZooKeeper.

          --targets ours,zk                start each server in turn (standalone on 127.0.0.1, tickTime 2 s) and
                                           measure it; runs alternate between them                      (ours,zk)
          --connect host:port              or measure a running server (with --server-pid for its RSS)
          --server-pid PID                 the --connect server's pid (RSS from /proc)
          --sessions N                     sessions opened                                             (10000)
          --watches-per-session W          exists/getData watches each session sets (alternating)      (10)
          --watch-paths K                  distinct znodes those watches spread over                   (1000)
          --concurrency C                  sessions connecting (or waiting for replies) at once        (200)
          --per-source-address M           sessions per loopback source address 127.0.0.2, .3, ...;
                                           past ~28,000 a (source, server) pair runs out of ports       (20000)
          --session-timeout T              requested; pings go every third of the negotiated timeout    (40s)
          --settle T                       wait before each RSS reading                                (5s)
          --step-limit T                   a step (connect all, set all watches, ...) failing after     (300s)
          --runs R                         runs per target; the table shows medians (min-max)          (1)
          --zk-heap SIZE                   ZooKeeper's -Xmx                                            (3g)
          --apache-cfg LINE                an extra zoo.cfg line (repeatable)
          --hocon TEXT                     extra HOCON for ours
          --time-limit T                   the whole command stops after this                          (30m)
          --json                           one JSON object per run on stdout (progress on stderr)

        Raises RLIMIT_NOFILE (soft and hard; root) to N + 10,000 for itself and the servers it starts. The servers'
        connection limits are off: ours max-client-connections = 0 and max-connections = auto (the open-files limit
        less a reserve), ZooKeeper maxClientCnxns=0 (maxCnxns is 0 by default).
        """;

    internal sealed record Options
    {
        public IReadOnlyList<string> Targets { get; init; } = ["ours", "zk"];
        public string? Connect { get; init; }
        public int? ServerPid { get; init; }
        public int Sessions { get; init; } = 10_000;
        public int WatchesPerSession { get; init; } = 10;
        public int WatchPaths { get; init; } = 1000;
        public int Concurrency { get; init; } = 200;
        public int PerSourceAddress { get; init; } = 20_000;
        public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(40);
        public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(5);
        public TimeSpan StepLimit { get; init; } = TimeSpan.FromSeconds(300);
        public int Runs { get; init; } = 1;
        public string ZkHeap { get; init; } = "3g";
        public IReadOnlyList<string> ApacheCfg { get; init; } = [];
        public string? Hocon { get; init; }
        public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMinutes(30);
        public bool Json { get; init; }
    }

    /// <summary>The figures of one run against one server.</summary>
    public sealed record RunResult
    {
        public required string Target { get; init; }
        public int Sessions { get; init; }
        public int WatchesPerSession { get; init; }
        public long Connected { get; set; }
        public double ConnectSeconds { get; set; }
        public double SessionsPerSec { get; set; }
        public long RssBaselineBytes { get; set; } = -1;
        public long RssSessionsBytes { get; set; } = -1;
        public long RssWatchesBytes { get; set; } = -1;
        public double BytesPerSession { get; set; } = double.NaN;
        public double BytesPerWatch { get; set; } = double.NaN;
        public double WatchSeconds { get; set; }
        public double WatchesPerSec { get; set; }
        public long ServerWatchCount { get; set; } = -1;
        public long ServerConnections { get; set; } = -1;
        public long Notified { get; set; }
        public double NotifyAllMs { get; set; }
        public double NotifyP50Ms { get; set; }
        public double NotifyP99Ms { get; set; }
        public double CloseSeconds { get; set; }
        public double ClosesPerSec { get; set; }
        public long Errors { get; set; }
        public long Lost { get; set; }
        public long ClientRssBytes { get; set; }
        public string LoadAverage { get; set; } = "";
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        Options o;
        try
        {
            if (args.Any(a => a is "--help" or "-h"))
            {
                await stdout.WriteLineAsync(Usage);
                return 0;
            }
            o = Parse(args);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            await stderr.WriteLineAsync($"error: {e.Message}\n\n{Usage}");
            return 2;
        }

        var progress = o.Json ? stderr : stdout;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(o.TimeLimit);
        // This process holds a socket per session, and a server started here inherits the limit: past it the run
        // would measure refused connections. Raising the hard limit needs CAP_SYS_RESOURCE (a container may drop it).
        var openFiles = ResourceLimits.EnsureOpenFiles(o.Sessions + 10_000);
        if (openFiles >= 0 && openFiles < o.Sessions + 500)
        {
            await stderr.WriteLineAsync($"error: the open-files limit is {openFiles} and cannot be raised here; {o.Sessions} sessions need {o.Sessions + 500} " +
                $"(at most {openFiles - 500} sessions fit; or raise `ulimit -Hn` before starting the bench)");
            return 2;
        }
        var results = new List<RunResult>();
        try
        {
            for (var run = 0; run < o.Runs; run++)
                foreach (var target in o.Connect is null ? o.Targets : new[] { o.Connect })
                {
                    var r = await RunTargetAsync(o, target, progress, limit.Token).ConfigureAwait(false);
                    results.Add(r);
                    if (o.Json) await stdout.WriteLineAsync(JsonSerializer.Serialize(r, JsonOptions));
                    else await progress.WriteLineAsync(Describe(r));
                }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync(limit.IsCancellationRequested && !ct.IsCancellationRequested
                ? $"sessions: stopped by --time-limit {o.TimeLimit}"
                : $"sessions failed: {e.GetType().Name}: {e.Message}");
            return 1;
        }
        await progress.WriteLineAsync(Table(o, results));
        return results.Any(r => r.Errors > 0 || r.Lost > 0 || r.Notified < r.Connected) ? 3 : 0;
    }

    private static async Task<RunResult> RunTargetAsync(Options o, string target, TextWriter progress, CancellationToken ct)
    {
        if (o.Connect is not null) return await MeasureAsync(o, target, o.Connect, o.ServerPid, progress, ct).ConfigureAwait(false);
        var kind = ServerProcess.ParseKind(target);
        await using var server = await ServerProcess.StartAsync(kind, new ServerProcessOptions
        {
            TickTimeMs = 2000,
            JavaOptions = [$"-Xmx{o.ZkHeap}"],
            ExtraZooCfg = o.ApacheCfg,
            ExtraHocon = o.Hocon,
            StartTimeout = TimeSpan.FromSeconds(120),
        }, ct).ConfigureAwait(false);
        await progress.WriteLineAsync($"started {server}").ConfigureAwait(false);
        var name = kind == ServerKind.Ours ? "ours" : "zk";
        return await MeasureAsync(o, name, server.ConnectString, server.Pid, progress, ct).ConfigureAwait(false);
    }

    private static async Task<RunResult> MeasureAsync(Options o, string target, string connect, int? pid, TextWriter progress, CancellationToken ct)
    {
        const string root = "/sessions-bench";
        const string hot = root + "/hot";
        var r = new RunResult { Target = target, Sessions = o.Sessions, WatchesPerSession = o.WatchesPerSession, LoadAverage = LoadAverage() };
        var (host, port) = WireClient.ParseHostPort(connect);
        var endpoint = new IPEndPoint((await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false)).First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork), port);
        long Rss() => pid is { } p ? ProcStats.ReadRssBytes(p) : -1;

        await using var control = await WireClient.ConnectAsync(connect, new WireClientOptions { EventChannel = false, SessionTimeoutMs = 30_000 }, ct).ConfigureAwait(false);
        var paths = Enumerable.Range(0, o.WatchPaths).Select(k => $"{root}/w{k}").ToArray();
        await control.CreateAsync(root, null).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
        await control.CreateAsync(hot, "0"u8.ToArray()).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
        foreach (var chunk in paths.Chunk(500))
            await Task.WhenAll(chunk.Select(p => control.CreateAsync(p, "watched"u8.ToArray()).OkAsync(ErrorCode.NodeExists))).ConfigureAwait(false);

        await Task.Delay(o.Settle, ct).ConfigureAwait(false);
        r.RssBaselineBytes = Rss();
        await using var swarm = new SessionSwarm(endpoint, o.Sessions, o.Concurrency, o.PerSourceAddress, (int)o.SessionTimeout.TotalMilliseconds);

        var took = await swarm.ConnectAllAsync(o.StepLimit, ct).ConfigureAwait(false);
        r.Connected = swarm.Sessions.Count(s => s.SessionId != 0 && !s.Failed);
        r.ConnectSeconds = took.TotalSeconds;
        r.SessionsPerSec = r.Connected / took.TotalSeconds;
        swarm.StartPinging();
        await progress.WriteLineAsync(Invariant($"{target}: {r.Connected} sessions in {took.TotalSeconds:F1} s from {swarm.SourceAddressesUsed.Count} source address(es)")).ConfigureAwait(false);
        await Task.Delay(o.Settle, ct).ConfigureAwait(false);
        r.RssSessionsBytes = Rss();

        var w = o.WatchesPerSession;
        took = await swarm.RequestAllAsync(i =>
        {
            var frames = new byte[w][];
            for (var k = 0; k < w; k++)
                frames[k] = WireFrames.Request(k + 1, k % 2 == 0 ? OpCode.Exists : OpCode.GetData,
                    new PathWatchRequest(paths[(int)(((long)i * w + k) % paths.Length)], true));
            return frames;
        }, o.StepLimit, ct).ConfigureAwait(false);
        r.WatchSeconds = took.TotalSeconds;
        r.WatchesPerSec = r.Connected * w / took.TotalSeconds;
        await progress.WriteLineAsync(Invariant($"{target}: {r.Connected * w} watches in {took.TotalSeconds:F1} s")).ConfigureAwait(false);
        await Task.Delay(o.Settle, ct).ConfigureAwait(false);
        r.RssWatchesBytes = Rss();
        if (r.RssBaselineBytes > 0 && r.Connected > 0)
        {
            r.BytesPerSession = (r.RssSessionsBytes - r.RssBaselineBytes) / (double)r.Connected;
            if (w > 0) r.BytesPerWatch = (r.RssWatchesBytes - r.RssSessionsBytes) / ((double)r.Connected * w);
        }
        var mntr = await FourLetterWord.MntrAsync(host, port, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        r.ServerWatchCount = (long)(mntr.Number("zk_watch_count") ?? -1);
        r.ServerConnections = (long)(mntr.Number("zk_num_alive_connections") ?? -1);

        // Fan-out: every session watches the hot znode, one setData, until the last session has its event.
        swarm.ResetNotifications();
        var arm = WireFrames.Request(w + 1, OpCode.GetData, new PathWatchRequest(hot, true));
        await swarm.RequestAllAsync(_ => [arm], o.StepLimit, ct).ConfigureAwait(false);
        var sent = Stopwatch.GetTimestamp();
        await control.SetDataAsync(hot, "1"u8.ToArray()).OkAsync().ConfigureAwait(false);
        var waiting = Stopwatch.StartNew();
        var expected = swarm.Sessions.Count(s => !s.Failed);
        while (swarm.Notified < expected && waiting.Elapsed < o.StepLimit) await Task.Delay(5, ct).ConfigureAwait(false);
        var delays = new LatencyHistogram();
        foreach (var s in swarm.Sessions)
            if (s.NotifiedAt != 0) delays.Record((long)((s.NotifiedAt - sent) * 1e9 / Stopwatch.Frequency));
        r.Notified = delays.Count;
        r.NotifyAllMs = delays.Max / 1e6;
        r.NotifyP50Ms = delays.Percentile(0.50) / 1e6;
        r.NotifyP99Ms = delays.Percentile(0.99) / 1e6;
        r.ClientRssBytes = Environment.WorkingSet;
        r.Lost = swarm.Lost;

        took = await swarm.CloseAllAsync(o.StepLimit, ct).ConfigureAwait(false);
        r.CloseSeconds = took.TotalSeconds;
        r.ClosesPerSec = r.Connected / took.TotalSeconds;
        r.Errors = swarm.Errors;
        r.LoadAverage += " -> " + LoadAverage();
        return r;
    }

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string Describe(RunResult r) =>
        Invariant($"{r.Target}: {r.Connected} sessions at {r.SessionsPerSec:F0}/s, {Mib(r.RssSessionsBytes - r.RssBaselineBytes)} for them ({r.BytesPerSession:F0} B each); ") +
        Invariant($"{r.Connected * r.WatchesPerSession} watches at {r.WatchesPerSec:F0}/s, {r.BytesPerWatch:F0} B each (server counts {r.ServerWatchCount}); ") +
        Invariant($"{r.Notified} notified, last after {r.NotifyAllMs:F1} ms (p50 {r.NotifyP50Ms:F1}, p99 {r.NotifyP99Ms:F1}); closed at {r.ClosesPerSec:F0}/s; ") +
        Invariant($"errors {r.Errors}, lost {r.Lost}; client RSS {Mib(r.ClientRssBytes)}; load {r.LoadAverage}");

    private static string Mib(long bytes) => Invariant($"{bytes / 1048576.0:F1} MiB");

    /// <summary>Medians over the runs of each target, with the spread (min-max) when there are several.</summary>
    internal static string Table(Options o, IReadOnlyList<RunResult> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Invariant($"sessions {o.Sessions}, {o.WatchesPerSession} watches each on {o.WatchPaths} znodes, concurrency {o.Concurrency}, session timeout {o.SessionTimeout.TotalSeconds:F0} s, {o.Runs} run(s) per server"));
        sb.AppendLine("| server | sessions/s | RSS per session | watches/s | RSS per watch | last notified ms | notify p50 ms | notify p99 ms | closes/s | errors, lost | load (1-min) |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var g in results.GroupBy(r => r.Target))
        {
            string Cell(Func<RunResult, double> f, string format)
            {
                var v = g.Select(f).Order().ToList();
                var median = v[v.Count / 2];
                return v.Count == 1 ? median.ToString(format, CultureInfo.InvariantCulture)
                    : Invariant($"{median.ToString(format, CultureInfo.InvariantCulture)} ({v[0].ToString(format, CultureInfo.InvariantCulture)}-{v[^1].ToString(format, CultureInfo.InvariantCulture)})");
            }
            sb.AppendLine($"| {g.Key} | {Cell(r => r.SessionsPerSec, "F0")} | {Cell(r => r.BytesPerSession, "F0")} B | {Cell(r => r.WatchesPerSec, "F0")} | {Cell(r => r.BytesPerWatch, "F0")} B | " +
                $"{Cell(r => r.NotifyAllMs, "F0")} | {Cell(r => r.NotifyP50Ms, "F0")} | {Cell(r => r.NotifyP99Ms, "F0")} | {Cell(r => r.ClosesPerSec, "F0")} | " +
                $"{g.Sum(r => r.Errors)}, {g.Sum(r => r.Lost)} | {string.Join(" ", g.Select(r => r.LoadAverage.Split(' ')[0]))} |");
        }
        return sb.ToString();
    }

    internal static Options Parse(IReadOnlyList<string> args)
    {
        var o = new Options();
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int(int min) => int.Parse(Value(), CultureInfo.InvariantCulture) is var n && n >= min ? n : throw new ArgumentException($"{args[i - 1]} must be at least {min}");
            o = args[i] switch
            {
                "--targets" => o with { Targets = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--connect" => o with { Connect = Value() },
                "--server-pid" => o with { ServerPid = Int(1) },
                "--sessions" => o with { Sessions = Int(1) },
                "--watches-per-session" => o with { WatchesPerSession = Int(0) },
                "--watch-paths" => o with { WatchPaths = Int(1) },
                "--concurrency" => o with { Concurrency = Int(1) },
                "--per-source-address" => o with { PerSourceAddress = Int(1) },
                "--session-timeout" => o with { SessionTimeout = BenchOptions.ParseDuration(Value()) },
                "--settle" => o with { Settle = BenchOptions.ParseDuration(Value()) },
                "--step-limit" => o with { StepLimit = BenchOptions.ParseDuration(Value()) },
                "--runs" => o with { Runs = Int(1) },
                "--zk-heap" => o with { ZkHeap = Value() },
                "--apache-cfg" => o with { ApacheCfg = [.. o.ApacheCfg, Value()] },
                "--hocon" => o with { Hocon = Value() },
                "--time-limit" => o with { TimeLimit = BenchOptions.ParseDuration(Value()) },
                "--json" => o with { Json = true },
                _ => throw new ArgumentException($"unexpected argument '{args[i]}'"),
            };
        }
        foreach (var t in o.Targets) ServerProcess.ParseKind(t);
        return o;
    }
}
