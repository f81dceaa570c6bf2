using System.Diagnostics;
using System.Globalization;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// <c>Coordination.Bench session-churn</c>: the rate at which an ensemble opens and closes sessions (ZooKeeper's
/// localSessionsEnabled is about this). Each worker loops: connect a new session, optionally create one ephemeral
/// znode (which turns a local session global), close the session. Against --connect servers, or a 3-member ensemble it
/// starts itself (--ensemble ours|apache); with --compare, ours and Apache ZooKeeper 3.8 with local sessions off and
/// on, run by run in turn, as one table of medians with their spread (issue 19: "measure session creation and close
/// rates with and without").
/// </summary>
public static class SessionChurn
{
    public const string Usage = """
        Coordination.Bench session-churn: sessions opened and closed per second.

          --connect host:port[,host:port]  servers (workers spread round-robin)   or:
          --ensemble ours|apache           start a 3-member ensemble on 127.0.0.1 (production timing, fsync) and
                                           measure it                                                  or:
          --compare                        ours and Apache ZooKeeper 3.8 as 3-member ensembles, each with local
                                           sessions off and on (--targets), every mode (--modes), --runs times in
                                           turn (each run starts each ensemble afresh), workers on one follower;
                                           prints the medians with their spread (min-max)
          --apache-cfg LINE                an extra zoo.cfg line for --ensemble apache (repeatable),
                                           e.g. localSessionsEnabled=true; with --ephemeral add
                                           localSessionsUpgradingEnabled=true (zoo.cfg's default is false:
                                           every ephemeral create then fails with EphemeralOnLocalSession)
          --hocon TEXT                     extra HOCON for --ensemble ours
          --on all|follower                workers on every member round-robin, or all on one follower
                                           (all; --compare: follower)
          --workers N                      concurrent connect/close loops               (16)
          --ephemeral                      create an ephemeral znode in each session before closing it
          --warmup T                                                                    (2s)
          --duration T                                                                  (10s)
        --compare only:
          --targets LIST                   ours,ours-local,apache,apache-local (all four); -local: local sessions
                                           and their upgrading on (ours local-sessions-enabled and
                                           local-sessions-upgrading-enabled, ZooKeeper localSessionsEnabled and
                                           localSessionsUpgradingEnabled), else off
          --modes LIST                     close (connect + close), ephemeral (connect + create an ephemeral +
                                           close)                                            (close,ephemeral)
          --runs N                                                                      (3)
          --time-limit T                   stop everything after this long              (40m)
        Figures: sessions/s (connect to close done), the cycle's p50/p99, txns/session (the ensemble's zxid
        counter over the window per session: what a session costs the leader and the journals), the servers' CPU
        per 1,000 sessions (ensembles this verb starts), errors.
        """;

    private static readonly string[] AllTargets = ["ours", "ours-local", "apache", "apache-local"];
    private static readonly string[] AllModes = ["close", "ephemeral"];

    private sealed record Options
    {
        public string[] Connect { get; init; } = [];
        public ServerKind? Ensemble { get; init; }
        public IReadOnlyList<string> ApacheCfg { get; init; } = [];
        public string? Hocon { get; init; }
        public bool Compare { get; init; }
        public bool? OnFollower { get; init; }
        public int Workers { get; init; } = 16;
        public bool Ephemeral { get; init; }
        public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);
        public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);
        public IReadOnlyList<string> Targets { get; init; } = AllTargets;
        public IReadOnlyList<string> Modes { get; init; } = AllModes;
        public int Runs { get; init; } = 3;
        public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMinutes(40);
    }

    /// <summary>One measured window.</summary>
    public sealed record ChurnResult(long Sessions, long Errors, double Seconds, double CycleP50Ms, double CycleP99Ms, double? TxnsPerSession,
        double? CpuMsPer1kSessions, string LoadAverage)
    {
        public double SessionsPerSecond => Sessions / Seconds;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (args.Any(a => a is "--help" or "-h")) { await stdout.WriteLineAsync(Usage); return 0; }
        Options o;
        try
        {
            o = Parse(args);
            if (o.Connect.Length == 0 && o.Ensemble is null && !o.Compare) throw new ArgumentException("--connect, --ensemble or --compare is needed");
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            await stderr.WriteLineAsync($"error: {e.Message}\n\n{Usage}");
            return 2;
        }
        if (o.Compare) return await CompareAsync(o, stdout, stderr, ct).ConfigureAwait(false);

        BenchDeployment? ensemble = null;
        try
        {
            var connect = o.Connect;
            IReadOnlyList<int> pids = [];
            if (o.Ensemble is { } kind)
            {
                ensemble = await BenchDeployment.StartAsync(kind == ServerKind.Ours ? "ours" : "apache", 3, fsync: true, o.Hocon, o.ApacheCfg, null, ct).ConfigureAwait(false);
                connect = [.. ensemble.Connect];
                pids = ensemble.Pids;
                await stdout.WriteLineAsync($"started {ensemble} {string.Join(' ', o.ApacheCfg)}{o.Hocon}");
            }
            var all = connect;
            if (o.OnFollower == true) connect = [await FollowerAsync(connect, ct).ConfigureAwait(false)];
            var r = await MeasureAsync(connect, all, pids, o.Workers, o.Ephemeral, o.Warmup, o.Duration, ct).ConfigureAwait(false);
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"session-churn {(o.Ensemble?.ToString() ?? string.Join(',', o.Connect))} {string.Join(' ', o.ApacheCfg)}{o.Hocon} workers={o.Workers} on {string.Join(',', connect)} ephemeral={o.Ephemeral}: " +
                $"{r.SessionsPerSecond:F0} sessions/s, cycle p50 {r.CycleP50Ms:F2} ms p99 {r.CycleP99Ms:F2} ms, {Format(r.TxnsPerSession, "F2")} txns/session, " +
                $"{Format(r.CpuMsPer1kSessions, "F0")} CPU ms/1k sessions, {r.Errors} errors in {r.Seconds:F1} s, load {r.LoadAverage}"));
            return r.Errors > 0 ? 3 : 0;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"session-churn failed: {e.GetType().Name}: {e.Message}");
            return 1;
        }
        finally
        {
            if (ensemble is not null) await ensemble.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// --compare: each run starts each target's ensemble in turn (one at a time, so they do not share the cores),
    /// measures every mode on it with the workers on one follower, and stops it; so drift in the machine's load falls
    /// on every target alike.
    /// </summary>
    private static async Task<int> CompareAsync(Options o, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(o.TimeLimit);
        var token = limit.Token;
        var started = Stopwatch.StartNew();
        var loadAtStart = LoadAverage();
        var results = new List<(string Target, string Mode, ChurnResult Result)>();
        var notes = new List<string>();
        await stderr.WriteLineAsync($"session-churn --compare: {string.Join(",", o.Targets)}, modes {string.Join(",", o.Modes)}, {o.Runs} runs x {o.Warmup.TotalSeconds}s+{o.Duration.TotalSeconds}s, {o.Workers} workers on a follower, load {loadAtStart}");
        try
        {
            for (var run = 1; run <= o.Runs; run++)
                foreach (var target in o.Targets)
                {
                    var (server, local) = (target.Split('-')[0], target.EndsWith("-local", StringComparison.Ordinal));
                    string? hocon = server == "ours"
                        ? $"coordination.local-sessions-enabled = {(local ? "on" : "off")}\ncoordination.local-sessions-upgrading-enabled = {(local ? "on" : "off")}\n"
                        : null;
                    string[] zooCfg = server == "apache" ? [$"localSessionsEnabled={(local ? "true" : "false")}", $"localSessionsUpgradingEnabled={(local ? "true" : "false")}"] : [];
                    await using var ensemble = await BenchDeployment.StartAsync(server, 3, fsync: true, hocon, zooCfg, null, token).ConfigureAwait(false);
                    var follower = await FollowerAsync([.. ensemble.Connect], token).ConfigureAwait(false);
                    foreach (var mode in o.Modes)
                    {
                        var r = await MeasureAsync([follower], [.. ensemble.Connect], ensemble.Pids, o.Workers, mode == "ephemeral", o.Warmup, o.Duration, token).ConfigureAwait(false);
                        results.Add((target, mode, r));
                        await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                            $"  [{started.Elapsed.TotalSeconds,5:F0}s] run {run} {target,-12} {mode,-9} {r.SessionsPerSecond,7:F0} sessions/s p50 {r.CycleP50Ms:F2} ms p99 {r.CycleP99Ms:F2} ms " +
                            $"{Format(r.TxnsPerSession, "F2")} txns/session {Format(r.CpuMsPer1kSessions, "F0")} CPU ms/1k {(r.Errors > 0 ? $"ERRORS {r.Errors} " : "")}load {r.LoadAverage}")).ConfigureAwait(false);
                    }
                }
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            notes.Add($"stopped by --time-limit {o.TimeLimit}; the table shows what finished");
        }
        await stdout.WriteLineAsync(Render(o, results, notes, loadAtStart, started.Elapsed)).ConfigureAwait(false);
        return results.Any(r => r.Result.Errors > 0) ? 3 : 0;
    }

    /// <summary>A member that says it follows (the ensemble settled: one leader), waited for up to a minute.</summary>
    private static async Task<string> FollowerAsync(IReadOnlyList<string> members, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            var modes = await Task.WhenAll(members.Select(async m => (m, srvr: await SrvrAsync(m, ct).ConfigureAwait(false)))).ConfigureAwait(false);
            if (modes.Count(x => x.srvr.Contains("Mode: leader", StringComparison.Ordinal)) == 1 &&
                modes.FirstOrDefault(x => x.srvr.Contains("Mode: follower", StringComparison.Ordinal)).m is { } follower)
                return follower;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no follower among {string.Join(",", members)}");
            await Task.Delay(200, ct).ConfigureAwait(false);
        }
    }

    private static async Task<string> SrvrAsync(string member, CancellationToken ct)
    {
        try { return await FourLetterWord.SendAsync(member, "srvr", TimeSpan.FromSeconds(5), ct).ConfigureAwait(false); }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or OperationCanceledException && !ct.IsCancellationRequested) { return ""; }
    }

    /// <summary>The newest zxid any of <paramref name="members"/> reports (srvr's "Zxid:"), null when none answers.</summary>
    private static async Task<long?> ZxidAsync(IReadOnlyList<string> members, CancellationToken ct)
    {
        var zxids = await Task.WhenAll(members.Select(async m =>
        {
            var line = (await SrvrAsync(m, ct).ConfigureAwait(false)).Split('\n').FirstOrDefault(l => l.StartsWith("Zxid: 0x", StringComparison.Ordinal));
            return line is not null && long.TryParse(line.AsSpan("Zxid: 0x".Length).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var z) ? z : (long?)null;
        })).ConfigureAwait(false);
        return zxids.Max();
    }

    private static async Task<ChurnResult> MeasureAsync(string[] connect, IReadOnlyList<string> members, IReadOnlyList<int> pids, int workers,
        bool ephemeral, TimeSpan warmup, TimeSpan duration, CancellationToken ct)
    {
        long sessions = 0, errors = 0;
        var measuring = false;
        var clock = Stopwatch.StartNew();
        var stopAt = warmup + duration;
        var cycles = new LatencyHistogram[workers];
        async Task Loop(int worker)
        {
            var histogram = cycles[worker] = new LatencyHistogram();
            for (var n = 0; clock.Elapsed < stopAt && !ct.IsCancellationRequested; n++)
            {
                var counted = Volatile.Read(ref measuring);
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await using var client = await WireClient.ConnectAsync(connect[(worker + n) % connect.Length], new WireClientOptions { SessionTimeoutMs = 10_000 }, ct);
                    if (ephemeral) await client.CreateAsync($"/churn-{client.SessionId:x}", [], CreateMode.Ephemeral).OkAsync();
                    var (header, _) = await client.SendAsync(OpCode.CloseSession, EmptyRequest.Instance);
                    if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"closeSession answered {header.Err}");
                    if (counted)
                    {
                        Interlocked.Increment(ref sessions);
                        histogram.Record((long)Stopwatch.GetElapsedTime(start).TotalNanoseconds);
                    }
                }
                catch (Exception) when (!ct.IsCancellationRequested)
                {
                    if (counted) Interlocked.Increment(ref errors);
                }
            }
        }
        var loops = Enumerable.Range(0, workers).Select(Loop).ToList();
        await Task.Delay(warmup, ct).ConfigureAwait(false);
        var zxidBefore = await ZxidAsync(members, ct).ConfigureAwait(false);
        var cpuBefore = CpuTime(pids);
        Volatile.Write(ref measuring, true);
        var windowStart = clock.Elapsed;
        await Task.WhenAll(loops).ConfigureAwait(false);
        var seconds = (clock.Elapsed - windowStart).TotalSeconds;
        var cpuAfter = CpuTime(pids);
        var zxidAfter = await ZxidAsync(members, ct).ConfigureAwait(false);
        var all = new LatencyHistogram();
        foreach (var h in cycles) all.Add(h);
        // The zxid's counter counts txns within one epoch; across a leader change the difference means nothing.
        double? txns = zxidBefore is { } zb && zxidAfter is { } za && za >>> 32 == zb >>> 32 && sessions > 0 ? (double)(za - zb) / sessions : null;
        double? cpu = cpuBefore is { } cb && cpuAfter is { } ca && sessions > 0 ? (ca - cb).TotalMilliseconds * 1000 / sessions : null;
        return new ChurnResult(sessions, errors, seconds, all.Percentile(0.5) / 1e6, all.Percentile(0.99) / 1e6, txns, cpu, LoadAverage());
    }

    private static TimeSpan? CpuTime(IReadOnlyList<int> pids)
    {
        if (pids.Count == 0) return null;
        var total = TimeSpan.Zero;
        foreach (var pid in pids)
        {
            if (ProcStats.ReadCpuTime(pid) is not { } t) return null;
            total += t;
        }
        return total;
    }

    private static string Render(Options o, List<(string Target, string Mode, ChurnResult Result)> results, List<string> notes, string loadAtStart, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var loads = results.Select(r => double.TryParse(r.Result.LoadAverage.Split(' ')[0], NumberStyles.Float, inv, out var l) ? l : double.NaN).Where(l => !double.IsNaN(l)).ToList();
        sb.AppendLine();
        sb.AppendLine(inv, $"Session churn, 3-node ensembles (production timing, fsync), {o.Workers} workers all on one follower; median of {o.Runs} runs " +
                           $"of {o.Duration.TotalSeconds:0.#} s (after {o.Warmup.TotalSeconds:0.#} s warm-up), spread = min-max; each run starts each ensemble afresh, targets in turn.");
        sb.AppendLine(inv, $"Load average (1 min) at the start {loadAtStart.Split(' ')[0]}, over the runs {(loads.Count > 0 ? $"{loads.Min():F1}-{loads.Max():F1}" : "?")}; {elapsed.TotalMinutes:F1} min.");
        sb.AppendLine();
        void Line(params object[] cells) =>
            sb.AppendLine(string.Format(inv, "| {0,-26} | {1,-14} | {2,-24} | {3,-22} | {4,12} | {5,17} | {6,6} |", cells));
        Line("mode", "server", "sessions/s (spread)", "cycle p50 / p99 ms", "txns/session", "CPU ms/1k sessions", "errors");
        sb.AppendLine(string.Format(inv, "|{0}|{1}|{2}|{3}|{4}|{5}|{6}|", new string('-', 28), new string('-', 16), new string('-', 26), new string('-', 24), new string('-', 14), new string('-', 19), new string('-', 8)));
        foreach (var mode in o.Modes)
        {
            var label = mode == "ephemeral" ? "connect+ephemeral+close" : "connect+close";
            var medians = new Dictionary<string, double>();
            foreach (var target in o.Targets)
            {
                var rs = results.Where(r => r.Target == target && r.Mode == mode).Select(r => r.Result).ToList();
                if (rs.Count == 0) continue;
                var rates = rs.Select(r => r.SessionsPerSecond).ToList();
                medians[target] = Median(rates);
                Line(label, Name(target), string.Format(inv, "{0,7:F0} ({1:F0}-{2:F0})", Median(rates), rates.Min(), rates.Max()),
                    string.Format(inv, "{0:F2} / {1:F2}", Median(rs.Select(r => r.CycleP50Ms)), Median(rs.Select(r => r.CycleP99Ms))),
                    Format(MedianOrNull(rs.Select(r => r.TxnsPerSession)), "F2"), Format(MedianOrNull(rs.Select(r => r.CpuMsPer1kSessions)), "F0"),
                    rs.Sum(r => r.Errors));
            }
            foreach (var server in new[] { "ours", "apache" })
                if (medians.TryGetValue(server, out var global) && medians.TryGetValue(server + "-local", out var local))
                    Line(label, $"{Name(server)} on/off", (local / global).ToString("F2", inv), "", "", "", "");
            foreach (var suffix in new[] { "", "-local" })
                if (medians.TryGetValue("ours" + suffix, out var ours) && medians.TryGetValue("apache" + suffix, out var zk))
                    Line(label, $"ours/ZK{(suffix == "" ? "" : " local")}", (ours / zk).ToString("F2", inv), "", "", "", "");
        }
        sb.AppendLine();
        sb.AppendLine("local = local sessions on (with upgrading); on/off = sessions/s with local sessions on / off; ours/ZK = ours / ZooKeeper 3.8 at the same setting.");
        sb.AppendLine("txns/session = the leader's zxid counter over the window / sessions; CPU = the SUM of the 3 members' user+system time from /proc per 1,000 sessions.");
        foreach (var n in notes) sb.AppendLine("NOTE: " + n);
        return sb.ToString();
    }

    private static string Name(string target) => target.Replace("apache", "ZK 3.8").Replace("-local", " local");

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static double? MedianOrNull(IEnumerable<double?> values)
    {
        var known = values.OfType<double>().ToList();
        return known.Count == 0 ? null : Median(known);
    }

    private static string Format(double? value, string format) => value?.ToString(format, CultureInfo.InvariantCulture) ?? "-";

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
    }

    private static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            IReadOnlyList<string> List(string[] known) => Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(v => known.Contains(v) ? v : throw new ArgumentException($"{args[i - 1]}: unknown '{v}' ({string.Join(",", known)})")).ToArray();
            o = args[i] switch
            {
                "--connect" => o with { Connect = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--ensemble" => o with { Ensemble = ServerProcess.ParseKind(Value()) },
                "--compare" => o with { Compare = true },
                "--apache-cfg" => o with { ApacheCfg = [.. o.ApacheCfg, Value()] },
                "--hocon" => o with { Hocon = Value() },
                "--on" => o with { OnFollower = Value() switch { "all" => false, "follower" => true, var v => throw new ArgumentException($"--on: all or follower, not '{v}'") } },
                "--workers" => o with { Workers = AtLeastOne(Value(), "--workers") },
                "--ephemeral" => o with { Ephemeral = true },
                "--warmup" => o with { Warmup = BenchOptions.ParseDuration(Value()) },
                "--duration" => o with { Duration = BenchOptions.ParseDuration(Value()) },
                "--targets" => o with { Targets = List(AllTargets) },
                "--modes" => o with { Modes = List(AllModes) },
                "--runs" => o with { Runs = AtLeastOne(Value(), "--runs") },
                "--time-limit" => o with { TimeLimit = BenchOptions.ParseDuration(Value()) },
                _ => throw new ArgumentException($"unexpected argument '{args[i]}'"),
            };
        }
        if (o.Compare && (o.Connect.Length > 0 || o.Ensemble is not null)) throw new ArgumentException("--compare starts its own ensembles: no --connect or --ensemble");
        if (o.Compare && o.OnFollower == false) throw new ArgumentException("--compare runs the workers on a follower");
        if (o.Duration <= TimeSpan.Zero) throw new ArgumentException("--duration must be positive");
        return o;
    }

    private static int AtLeastOne(string value, string option) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 1 ? n : throw new ArgumentException($"{option}: expected an integer >= 1");
}
