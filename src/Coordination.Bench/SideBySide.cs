using System.Diagnostics;
using System.Globalization;
using System.Text;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// The side-by-side verb (issue 6): starts our server and Apache ZooKeeper 3.8 on 127.0.0.1 with the same durability,
/// runs identical loads against each, one after the other (interleaved run by run, so drift in the machine's load hits
/// both alike), and prints one table with the ratio ours/ZooKeeper per row. Every figure is the median of --runs runs;
/// the spread (min–max over the runs) is shown for the throughput. Each server is compared at its own best
/// saturation shape (sessions × in-flight), and at half of ZooKeeper's saturation rate (half-load rows). With --nodes 3
/// both run as 3-node ensembles, the sessions spread over the members. Everything it starts, it stops; the whole run is bounded by --time-limit.
/// </summary>
public static class SideBySide
{
    public const string Usage = """
        Coordination.Bench side-by-side: our server beside Apache ZooKeeper 3.8, identical loads, one table.

          --nodes 1|3                 standalone (1) or 3-node ensembles (3): sessions round-robin over the
                                      members, CPU and RSS summed over the three processes              (1)
          --durability fsync|nosync   fsync: ZooKeeper forceSync=yes and ours persistence.force-sync=on;
                                      nosync: forceSync=no and force-sync=off (tests only)             (fsync)
          --runs N                    runs per figure; the table shows the median and the spread      (3)
          --warmup T / --duration T   per run                                                          (2s / 5s)
          --prime T                   after a server starts: T of mixed 16x16 and T/2 of setData 1x1, not
                                      measured, so that JIT compilation (JVM and .NET) stays out of the rows (15s)
          --shapes LIST               saturation shapes tried per row, sessions x in-flight     (4x64,16x16,64x4)
          --rows LIST                 get,set,mixed,create,half-get,half-set,latency-get,latency-set,watch
                                      (all of them); half-get/half-set: p99 at half of ZooKeeper's saturation
                                      throughput of that op, 16x16 paced (run after the get/set rows);
                                      latency-set also times the disk's fdatasync in each run (fsync only);
                                      with --nodes 3 the latency-* rows run once on the leader and once
                                      on a follower (one session on that member);
                                      latency-sync (sync 1x1) runs only when listed, and so do the fresh
                                      reads: linget (linearizable getData, ours only), syncget (sync and
                                      getData pipelined, ZooKeeper's idiom), latency-linget, latency-syncget
          --watchers N                watchers on one znode in the watch row                           (10000)
          --memory                    add the memory and restart rows: RSS with --memory-znodes znodes of
                                      --value-size bytes, then the restart time of that tree (slow)
          --memory-znodes N                                                                            (1000000)
          --value-size B / --znodes N value size and znodes read/written by the load rows              (100 / 1000)
          --targets LIST              ours,apache (one alone is allowed, then no ratio)               (ours,apache)
          --ours-hocon TEXT           extra HOCON for our server
          --apache-cfg LINE           extra zoo.cfg line for ZooKeeper (repeatable)
          --time-limit T              stop everything after this long                                 (60m)
          --out FILE                  also append every single run as a JSON line to FILE
          --tls                       both servers also get a secure client port (client-auth need, certificates
                                      made for the run; ZooKeeper then runs its Netty connection factory on both
                                      ports) and every row runs plain and over TLS ("ours-tls", "ZK 3.8-tls"),
                                      with the TLS/plain ratio of each server (standalone only)
          --server-cpus LIST          start each server under `taskset -c LIST` (standalone only), so that the
                                      load generator can run on the other CPUs: run the bench itself under
                                      `taskset -c` with the rest, e.g. `taskset -c 0 bench/side-by-side.sh
                                      --server-cpus 1`; the table says where each side ran
          --member-tls                a second ensemble of ours with mutual TLS between its members
                                      (coordination.ensemble.ssl, certificates made for the run; --nodes 3):
                                      every row runs on both ("ours", "ours-mtls"), with the mtls/plain ratio
          --one-member                ours also as an ensemble of one member (Zab's write path and journal on
                                      one server, standalone only): every row runs on both ("ours",
                                      "ours-zab1"), with the zab1/standalone ratio (issue 18: one log path)
        """;

    private sealed record Options
    {
        public int Nodes { get; init; } = 1;
        public bool Fsync { get; init; } = true;
        public int Runs { get; init; } = 3;
        public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);
        public TimeSpan Prime { get; init; } = TimeSpan.FromSeconds(15);
        public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(5);
        public IReadOnlyList<(int Sessions, int Inflight)> Shapes { get; init; } = [(4, 64), (16, 16), (64, 4)];
        public IReadOnlyList<string> Rows { get; init; } = AllRows;
        public int Watchers { get; init; } = 10_000;
        public bool Memory { get; init; }
        public int MemoryZnodes { get; init; } = 1_000_000;
        public int ValueSize { get; init; } = 100;
        public int Znodes { get; init; } = 1000;
        public IReadOnlyList<string> Targets { get; init; } = ["ours", "apache"];
        public string? OursHocon { get; init; }
        public IReadOnlyList<string> ApacheCfg { get; init; } = [];
        public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMinutes(60);
        public string? Out { get; init; }
        public bool Tls { get; init; }
        public bool MemberTls { get; init; }
        public bool OneMember { get; init; }
        public string? ServerCpus { get; init; }
        /// <summary>What each server process is started under: taskset when --server-cpus pins it.</summary>
        public IReadOnlyList<string> LaunchPrefix => ServerCpus is null ? [] : ["taskset", "-c", ServerCpus];
        /// <summary>The loads' targets: each server, with --tls each server's secure port ("ours-tls"), and with
        /// --member-tls our ensemble with member TLS ("ours-mtls", a deployment of its own).</summary>
        public IReadOnlyList<string> LoadTargets => Targets
            .SelectMany(t => (string[])[t, .. Tls ? [t + TlsSuffix] : Array.Empty<string>(), .. MemberTls && t == "ours" ? [MemberTlsTarget] : Array.Empty<string>(),
                .. OneMember && t == "ours" ? [OneMemberTarget] : Array.Empty<string>()])
            .ToArray();
    }

    private const string TlsSuffix = "-tls";
    private const string MemberTlsTarget = "ours-mtls";
    private const string OneMemberTarget = "ours-zab1";

    /// <summary>The server a load target runs against ("ours-tls" runs against "ours").</summary>
    private static string ServerOf(string target) => target.EndsWith(TlsSuffix, StringComparison.Ordinal) ? target[..^TlsSuffix.Length] : target;

    private static readonly string[] AllRows = ["get", "set", "mixed", "create", "half-get", "half-set", "latency-get", "latency-set", "watch"];
    private static readonly string[] KnownRows = [.. AllRows, "latency-sync", "linget", "syncget", "latency-linget", "latency-syncget"];

    private sealed record Run(string Row, string Target, int Sessions, int Inflight, BenchResult Result);

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var (o, exit) = await VerbArgument.ParseOrExitAsync(args, Usage, Parse, stdout, stderr);
        if (o is null) return exit!.Value;

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(o.TimeLimit);
        var token = limit.Token;
        var started = Stopwatch.StartNew();
        var runs = new List<Run>();
        var extraRows = new List<string[]>();
        var notes = new List<string>();
        var disk = new List<DiskProbe.Result>();
        var servers = new Dictionary<string, BenchDeployment>();
        await stderr.WriteLineAsync($"side-by-side: {string.Join(",", o.Targets)}, {Topology(o)}, durability {(o.Fsync ? "fsync" : "nosync")}, " +
                                    $"{o.Runs} runs x {o.Warmup.TotalSeconds}s+{o.Duration.TotalSeconds}s, shapes {string.Join(",", o.Shapes.Select(s => $"{s.Sessions}x{s.Inflight}"))}, rows {string.Join(",", o.Rows)}");

        async Task<BenchResult> RunOnceAsync(string row, string target, BenchDeployment server, BenchOptions load, int run, TimeSpan? duration = null,
            string? member = null)
        {
            var secure = target.EndsWith(TlsSuffix, StringComparison.Ordinal);
            var options = load with
            {
                Connect = secure ? server.SecureConnect : member is not null ? [member] : server.Connect, Tls = secure ? server.ClientTls : null, ServerPids = server.Pids, ValueSize = o.ValueSize,
                Warmup = duration is null ? o.Warmup : TimeSpan.Zero, Duration = duration ?? o.Duration,
                Progress = false, Json = true, Root = "/bench-" + row,
            };
            var result = await new BenchRunner(options, TextWriter.Null).RunAsync(token).ConfigureAwait(false);
            result.Target = target;
            await stderr.WriteLineAsync(string.Format(CultureInfo.InvariantCulture,
                "  [{0,5:F0}s] {1,-12} {2,-6} {3,5} run {4}: {5,9:F0} ops/s{6} p50 {7:F2} ms p99 {8:F2} ms p999 {9:F2} ms cpu {10:F2} ms/1k{11}{12}{13}",
                started.Elapsed.TotalSeconds, row, target, $"{options.Sessions}x{options.Inflight}", run, result.OpsPerSecond,
                result.Rate is { } rate ? $" of {rate.TargetOpsPerSecond:F0}{(rate.Reached ? "" : " NOT REACHED")}" : "",
                result.Latency.P50Us / 1000, result.Latency.P99Us / 1000, result.Latency.P999Us / 1000, result.ServerCpuMsPer1kOps ?? double.NaN,
                result.Watch is { } w ? $" all-notified p50 {w.FanOut.P50Us / 1000:F1} ms" : "",
                result.TotalErrors > 0 ? $"  ERRORS {result.TotalErrors}" : "", member is null ? "" : $" on {member}")).ConfigureAwait(false);
            if (o.Out is { } file) await File.AppendAllTextAsync(file, $"{{\"row\":\"{row}\",\"result\":{result.ToJson(false)}}}\n", token).ConfigureAwait(false);
            return result;
        }

        // Half-load rows need ZooKeeper's saturation throughput of their op: from this run's get/set row when it ran,
        // else measured first at 16x16 (on a ZooKeeper started for it when it is not a target).
        async Task<(double Rate, string Source)> ZooKeeperSaturationAsync(string baseRow, BenchOp op)
        {
            if (Best(runs.Where(r => r.Row == baseRow && r.Target == "apache")) is { Ops: > 0 } best)
                return (best.Ops, $"from its {baseRow} row in this run, {best.Shape}");
            var zk = servers.GetValueOrDefault("apache");
            var temporary = zk is null ? await BenchDeployment.StartAsync("apache", o.Nodes, o.Fsync, o.OursHocon, o.ApacheCfg, null, token, launchPrefix: o.LaunchPrefix).ConfigureAwait(false) : null;
            try
            {
                var ops = new List<double>();
                for (var r = 1; r <= o.Runs; r++)
                    ops.Add((await RunOnceAsync("zk-saturation-" + baseRow, "apache", zk ?? temporary!,
                        new BenchOptions { Op = op, Sessions = 16, Inflight = 16, Znodes = o.Znodes }, r).ConfigureAwait(false)).OpsPerSecond);
                return (Median(ops), "measured first at 16x16");
            }
            finally
            {
                if (temporary is not null) await temporary.DisposeAsync().ConfigureAwait(false);
            }
        }

        var tlsDir = o.Tls || o.MemberTls ? Directory.CreateTempSubdirectory("side-by-side-tls-").FullName : null;
        string? oneMemberDir = null;
        var certificates = tlsDir is null ? null : new BenchTls(tlsDir);
        var tls = o.Tls ? certificates : null;
        try
        {
            foreach (var target in o.Targets)
            {
                servers[target] = await BenchDeployment.StartAsync(target, o.Nodes, o.Fsync, o.OursHocon, o.ApacheCfg, null, token, tls, o.LaunchPrefix).ConfigureAwait(false);
                await stderr.WriteLineAsync($"  started {servers[target]}").ConfigureAwait(false);
            }
            if (o.LoadTargets.Contains(MemberTlsTarget))
            {
                servers[MemberTlsTarget] = await BenchDeployment.StartAsync("ours", o.Nodes, o.Fsync, o.OursHocon + certificates!.MemberHocon,
                    o.ApacheCfg, null, token).ConfigureAwait(false);
                await stderr.WriteLineAsync($"  started {servers[MemberTlsTarget]} with member TLS").ConfigureAwait(false);
            }
            if (o.LoadTargets.Contains(OneMemberTarget))
            {
                oneMemberDir = Directory.CreateTempSubdirectory("side-by-side-zab1-").FullName;
                servers[OneMemberTarget] = await BenchDeployment.StartAsync("ours", 1, o.Fsync, o.OursHocon + "\n" + OneMemberHocon(oneMemberDir),
                    o.ApacheCfg, null, token, launchPrefix: o.LaunchPrefix).ConfigureAwait(false);
                // It must really be a member leading itself, not a standalone server that ignored the ensemble settings.
                var srvr = await FourLetterWord.SendAsync(servers[OneMemberTarget].Connect[0], "srvr", TimeSpan.FromSeconds(5), token).ConfigureAwait(false);
                var mode = System.Text.RegularExpressions.Regex.Match(srvr, @"^Mode:\s*(\w+)", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value;
                if (mode != "leader") throw new InvalidOperationException($"--one-member: the member's srvr says Mode: {mode}, not leader");
                await stderr.WriteLineAsync($"  started {servers[OneMemberTarget]} as an ensemble of one (Mode: {mode})").ConfigureAwait(false);
            }
            // Both runtimes compile their hot code during the first seconds under load (the JVM's C1/C2, .NET's tiered
            // JIT, which tiers up only what is called often: a saturated server batches, a lightly loaded one takes other
            // paths). A mixed load and a one-at-a-time write load first, not measured, keep that out of every row.
            if (o.Prime > TimeSpan.Zero)
                foreach (var target in o.LoadTargets)
                {
                    await RunOnceAsync("prime", target, servers[ServerOf(target)],
                        new BenchOptions { Op = BenchOp.Mixed, Sessions = 16, Inflight = 16, Znodes = o.Znodes }, 1, o.Prime).ConfigureAwait(false);
                    await RunOnceAsync("prime", target, servers[ServerOf(target)],
                        new BenchOptions { Op = BenchOp.Set, Sessions = 1, Inflight = 1, Znodes = o.Znodes }, 2, o.Prime / 2).ConfigureAwait(false);
                }
            if (servers.TryGetValue("ours", out var oursServer) && !HasJournal(oursServer))
                notes.Add("ours wrote no journal (its data dir has neither txnlog/log.* nor journal.db): it is NOT durable, so its " +
                          "write rows are not a like-for-like comparison with ZooKeeper's fsync'd log");

            // The half-load rows run last: they take their rate from the saturation rows.
            foreach (var row in o.Rows.OrderBy(r => HalfLoadOp(r) is null ? 0 : 1))
            {
                double? rate = null;
                if (HalfLoadOp(row) is { } halfOp)
                {
                    var (saturation, source) = await ZooKeeperSaturationAsync(halfOp == BenchOp.Get ? "get" : "set", halfOp).ConfigureAwait(false);
                    rate = saturation / 2;
                    notes.Add(string.Format(CultureInfo.InvariantCulture, "{0}: ZooKeeper's saturation {1:F0} ops/s ({2}), so both at {3:F0} ops/s",
                        row, saturation, source, rate));
                }
                var (op, shapes, watchers) = row switch
                {
                    "latency-get" => (BenchOp.Get, new[] { (1, 1) }, 0),
                    "latency-set" => (BenchOp.Set, new[] { (1, 1) }, 0),
                    "latency-sync" => (BenchOp.Sync, new[] { (1, 1) }, 0),
                    "latency-linget" => (BenchOp.LinearizableGet, new[] { (1, 1) }, 0),
                    "latency-syncget" => (BenchOp.SyncGet, new[] { (1, 1) }, 0),
                    "watch" => (BenchOp.Get, new[] { (0, 1) }, o.Watchers),
                    "half-get" or "half-set" => (HalfLoadOp(row)!.Value, new[] { (16, 16) }, 0),
                    _ => (BenchOptions.ParseOp(row), o.Shapes.ToArray(), 0),
                };
                for (var r = 0; r < o.Runs; r++)
                {
                    // The disk's fdatasync floor, measured in each run of the 1x1 write row, beside it.
                    if (row == "latency-set" && o.Fsync)
                    {
                        var probe = DiskProbe.Fdatasync(Path.GetDirectoryName(servers.Values.First().DataDirs[0])!);
                        disk.Add(probe);
                        await stderr.WriteLineAsync(string.Format(CultureInfo.InvariantCulture, "  [{0,5:F0}s] fdatasync probe run {1}: p50 {2:F3} ms p99 {3:F3} ms",
                            started.Elapsed.TotalSeconds, r + 1, probe.P50Ms, probe.P99Ms)).ConfigureAwait(false);
                    }
                    foreach (var (sessions, inflight) in shapes)
                        foreach (var target in o.LoadTargets)
                            foreach (var placement in Placements(o, row))
                            {
                                token.ThrowIfCancellationRequested();
                                // ZooKeeper has no linearizable read (it answers Unimplemented and closes the connection).
                                if (op == BenchOp.LinearizableGet && ServerOf(target) == "apache") continue;
                                var load = new BenchOptions
                                {
                                    Sessions = sessions, Inflight = inflight, Op = op, Znodes = o.Znodes, Watchers = watchers, Rate = rate,
                                    Cleanup = op == BenchOp.Create,
                                };
                                var server = servers[ServerOf(target)];
                                // Asked before every run: a leader may change between runs (it is then the new one's figure).
                                var member = placement is null ? null : await server.MemberConnectAsync(placement, token).ConfigureAwait(false);
                                if (placement is not null && member is null) notes.Add($"{row} {target}: no leader found for the {placement} run; it ran over every member");
                                var result = await RunOnceAsync(RowKey(row, placement), target, server, load, r + 1, member: member).ConfigureAwait(false);
                                runs.Add(new Run(RowKey(row, placement), target, sessions, inflight, result));
                            }
                }
            }

            if (o.Memory)
            {
                // Fresh servers, so the load rows' leftovers do not count.
                foreach (var (_, s) in servers) await s.DisposeAsync().ConfigureAwait(false);
                servers.Clear();
                var mem = new Dictionary<string, (long Rss, double PopulateS, double RestartS, string Restored)>();
                foreach (var target in o.Targets)
                {
                    var dataDir = Directory.CreateTempSubdirectory("side-by-side-mem-").FullName;
                    try
                    {
                        await using var server = await BenchDeployment.StartAsync(target, o.Nodes, o.Fsync, o.OursHocon, o.ApacheCfg, dataDir, token, launchPrefix: o.LaunchPrefix).ConfigureAwait(false);
                        var populate = Stopwatch.StartNew();
                        var options = new BenchOptions
                        {
                            Connect = server.Connect, ServerPids = server.Pids, Sessions = 1, Inflight = 1, Op = BenchOp.Get,
                            ValueSize = o.ValueSize, Znodes = o.MemoryZnodes, Warmup = TimeSpan.Zero, Duration = TimeSpan.FromSeconds(1),
                            Progress = false, Json = true, Root = "/bench-memory",
                        };
                        var result = await new BenchRunner(options, TextWriter.Null).RunAsync(token).ConfigureAwait(false);
                        var populateS = populate.Elapsed.TotalSeconds;
                        await Task.Delay(2000, token).ConfigureAwait(false);
                        var rss = ProcStats.ReadRssBytes(server.Pids);
                        var before = await server.ZnodeCountAsync(token).ConfigureAwait(false);
                        await server.StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                        // Restart time: from starting the process(es) again until every member serves and shows the whole tree.
                        var restart = Stopwatch.StartNew();
                        await server.StartAgainAsync(token).ConfigureAwait(false);
                        var after = await server.ZnodeCountAsync(token).ConfigureAwait(false);
                        while (after < before && restart.Elapsed < TimeSpan.FromMinutes(2))
                        {
                            await Task.Delay(50, token).ConfigureAwait(false);
                            after = await server.ZnodeCountAsync(token).ConfigureAwait(false);
                        }
                        var restartS = restart.Elapsed.TotalSeconds;
                        var restored = after >= before ? "all" : $"{after:N0} of {before:N0} znodes";
                        mem[target] = (rss, populateS, restartS, restored);
                        await stderr.WriteLineAsync($"  memory {target}: {before:N0} znodes, rss {rss >> 20} MiB, populated in {populateS:F1} s, restart {restartS:F1} s, restored {restored}").ConfigureAwait(false);
                        if (result.TotalErrors > 0) notes.Add($"memory row {target}: {result.TotalErrors} errors");
                    }
                    finally
                    {
                        try { Directory.Delete(dataDir, recursive: true); } catch { }
                    }
                }
                var o1 = mem.GetValueOrDefault("ours");
                var a1 = mem.GetValueOrDefault("apache");
                extraRows.Add([$"memory {o.MemoryZnodes:N0} x {o.ValueSize} B", o.Nodes == 1 ? "RSS MiB" : "RSS sum",
                    o1.Rss > 0 ? $"{o1.Rss >> 20}" : "-", a1.Rss > 0 ? $"{a1.Rss >> 20}" : "-", Ratio(o1.Rss, a1.Rss), "target <= 0.8"]);
                // A restart that did not restore the whole tree is not a recovery: no ratio for it.
                extraRows.Add([$"restart of that tree", "seconds",
                    o1.Rss > 0 ? $"{o1.RestartS:F1} ({o1.Restored})" : "-", a1.Rss > 0 ? $"{a1.RestartS:F1} ({a1.Restored})" : "-",
                    o1.Restored == "all" && a1.Restored == "all" ? Ratio(o1.RestartS, a1.RestartS) : "-", "target <= 1.0"]);
            }
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            notes.Add($"stopped by --time-limit {o.TimeLimit}; the table shows what finished");
        }
        finally
        {
            foreach (var (_, s) in servers) await s.DisposeAsync().ConfigureAwait(false);
            if (tlsDir is not null) try { Directory.Delete(tlsDir, recursive: true); } catch (IOException) { }
            if (oneMemberDir is not null) try { Directory.Delete(oneMemberDir, recursive: true); } catch (IOException) { }
        }

        await stdout.WriteLineAsync(Render(o, runs, extraRows, notes, disk, started.Elapsed)).ConfigureAwait(false);
        return runs.Any(r => r.Result.TotalErrors > 0) ? 3 : 0;
    }

    /// <summary>
    /// Where a row's session runs: on an ensemble the 1x1 rows run once on the leader and once on a follower (a write
    /// on a follower also crosses the forward to the leader), the other rows over every member; null = every member.
    /// </summary>
    private static IReadOnlyList<string?> Placements(Options o, string row) =>
        o.Nodes > 1 && row.StartsWith("latency-", StringComparison.Ordinal) ? [BenchDeployment.Leader, BenchDeployment.Follower] : [null];

    private static string RowKey(string row, string? placement) => placement is null ? row : $"{row}@{placement}";

    /// <summary>
    /// Ours as an ensemble of one voter (issue 18's "measure standalone as an ensemble of one"): it leads itself at once
    /// and writes through Zab's path (the peer, its journal) instead of the standalone replica's own log. The member port
    /// is a free loopback port; the members' secret a file made for the run in <paramref name="dir"/>.
    /// </summary>
    private static string OneMemberHocon(string dir)
    {
        var secret = Path.Combine(dir, "ensemble.secret");
        File.WriteAllText(secret, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        return $"coordination.server-id = 1\ncoordination.ensemble.voters {{ 1 = \"127.0.0.1:{ServerProcess.FreeLoopbackPort()}\" }}\n" +
               $"coordination.ensemble.auth.secret-file = \"{secret}\"";
    }

    /// <summary>The op of a half-load row (half-get, half-set), null for any other row.</summary>
    private static BenchOp? HalfLoadOp(string row) => row switch { "half-get" => BenchOp.Get, "half-set" => BenchOp.Set, _ => null };

    private static string Topology(Options o) => o.Nodes == 1 ? "standalone" : $"{o.Nodes}-node ensembles";

    /// <summary>Whether our server keeps a journal: the file journal's segments, or the SQL journal's database.</summary>
    private static bool HasJournal(BenchDeployment server) => server.DataDirs.All(dir =>
        Directory.Exists(dir) &&
        (Directory.EnumerateFiles(dir, "log.*", SearchOption.AllDirectories).Any() ||
         Directory.EnumerateFiles(dir, "journal.db*", SearchOption.AllDirectories).Any()));

    internal static double Median(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).OrderBy(x => x).ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    internal static string Ratio(double ours, double apache) =>
        ours > 0 && apache > 0 && !double.IsNaN(ours) && !double.IsNaN(apache) ? (ours / apache).ToString("F2", CultureInfo.InvariantCulture) : "-";

    private sealed record Figure(string Shape, double Ops, double OpsMin, double OpsMax, double P50, double P99, double P999, double Cpu,
        double RssMiB, double FanoutMs, double FanoutMin, double FanoutMax, long Errors, int Runs, double TargetRate, bool Reached);

    /// <summary>The best shape of one target in one row: the highest median throughput; its medians.</summary>
    private static Figure? Best(IEnumerable<Run> runs)
    {
        Figure? best = null;
        foreach (var g in runs.GroupBy(r => (r.Sessions, r.Inflight)))
        {
            var rs = g.Select(r => r.Result).ToList();
            var ops = rs.Select(r => r.OpsPerSecond).ToList();
            var fan = rs.Select(r => r.Watch is { Rounds: > 0 } w ? w.FanOut.P50Us / 1000 : double.NaN).ToList();
            var f = new Figure($"{g.Key.Sessions}x{g.Key.Inflight}", Median(ops), ops.Min(), ops.Max(),
                Median(rs.Select(r => r.Latency.P50Us / 1000)), Median(rs.Select(r => r.Latency.P99Us / 1000)),
                Median(rs.Select(r => r.Latency.P999Us / 1000)),
                Median(rs.Select(r => r.ServerCpuMsPer1kOps ?? double.NaN)),
                Median(rs.Select(r => r.ServerRssBytes is { } b and >= 0 ? b / 1048576.0 : double.NaN)),
                Median(fan), fan.Where(x => !double.IsNaN(x)).DefaultIfEmpty(double.NaN).Min(), fan.Where(x => !double.IsNaN(x)).DefaultIfEmpty(double.NaN).Max(),
                rs.Sum(r => r.TotalErrors), rs.Count,
                rs.Select(r => r.Rate?.TargetOpsPerSecond ?? double.NaN).First(), rs.All(r => r.Rate is not { Reached: false }));
            if (best is null || f.Ops > best.Ops) best = f;
        }
        return best;
    }

    private static string Render(Options o, List<Run> runs, List<string[]> extraRows, List<string> notes, List<DiskProbe.Result> disk, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        void Line(params object[] cells) =>
            sb.AppendLine(string.Format(inv, "| {0,-30} | {1,-14} | {2,-5} | {3,-32} | {4,8} | {5,8} | {6,8} | {7,13} | {8,7} |", cells));
        string Ms(double ms) => ms.ToString("F3", inv);
        sb.AppendLine();
        sb.AppendLine(inv, $"Side by side, {Topology(o)}, durability {(o.Fsync ? "fsync (ZooKeeper forceSync=yes, ours force-sync=on)" : "nosync (forceSync=no / force-sync=off)")}, " +
                           $"value {o.ValueSize} B, {o.Znodes} znodes; median of {o.Runs} runs of {o.Duration.TotalSeconds:0.#} s (after {o.Warmup.TotalSeconds:0.#} s warm-up), " +
                           $"spread = min-max; each server at its best shape of {string.Join(", ", o.Shapes.Select(s => $"{s.Sessions}x{s.Inflight}"))}.");
        if (o.Nodes > 1)
            sb.AppendLine(inv, $"Sessions spread round-robin over the {o.Nodes} members (session i on member i mod {o.Nodes}); watch row: watchers spread " +
                               $"likewise, its setData sent to member 1, timed until all are notified. Production timing: ours tick-time 2 s, " +
                               $"Zab tick 100 ms, sync-limit 20, init-limit 50; ZooKeeper tickTime=2000 initLimit=10 syncLimit=5, default JVM heap.");
        sb.AppendLine(inv, $"{MachineCpus()} cores, load average at the end {LoadAverage()}, {elapsed.TotalMinutes:F1} min.");
        sb.AppendLine(inv, $"CPUs: servers {o.ServerCpus ?? "any"}, load generator {AllowedCpus()}.");
        sb.AppendLine();
        var header = string.Format(inv, "| {0,-30} | {1,-14} | {2,-5} | {3,-32} | {4,8} | {5,8} | {6,8} | {7,13} | {8,7} |",
            "row", "server", "shape", "ops/s (spread)", "p50 ms", "p99 ms", "p999 ms", "CPU ms/1k ops", o.Nodes == 1 ? "RSS MiB" : "RSS sum");
        sb.AppendLine(header);
        sb.AppendLine(string.Concat(header.Select(c => c == '|' ? '|' : '-')));
        foreach (var row in o.Rows)
        foreach (var placement in Placements(o, row))
        {
            var key = RowKey(row, placement);
            var figures = o.LoadTargets.ToDictionary(t => t, t => Best(runs.Where(r => r.Row == key && r.Target == t)));
            var label = row switch
            {
                "get" => "getData 100 B", "set" => $"setData {o.ValueSize} B", "mixed" => "mixed 90/10", "create" => $"create {o.ValueSize} B",
                "latency-get" => "latency getData 1x1", "latency-set" => "latency setData 1x1", "latency-sync" => "latency sync 1x1",
                "linget" => "linearizable getData", "syncget" => "sync+getData", "latency-linget" => "latency lin. getData 1x1",
                "latency-syncget" => "latency sync+getData 1x1",
                "half-get" => "half-load getData", "half-set" => "half-load setData",
                "watch" => $"watch {o.Watchers:N0} watchers", _ => row,
            } + (placement is null ? "" : $" ({placement})");
            foreach (var t in o.LoadTargets)
            {
                if (figures[t] is not { } f) continue;
                var err = f.Errors > 0 ? $" ERR {f.Errors}" : "";
                if (row == "watch")
                    Line(label, Name(t), "-", $"all notified {f.FanoutMs:F1} ms ({f.FanoutMin:F1}-{f.FanoutMax:F1}){err}", "", "", "", "", f.RssMiB.ToString("F0", inv));
                else
                {
                    // A half-load row shows the achieved rate against its target; "MISSED" when a run fell short of it.
                    var ops = HalfLoadOp(row) is null
                        ? string.Format(inv, "{0,9:F0} ({1:F0}-{2:F0}){3}", f.Ops, f.OpsMin, f.OpsMax, err)
                        : string.Format(inv, "{0,9:F0} of {1:F0}{2}{3}", f.Ops, f.TargetRate, f.Reached ? "" : " MISSED", err);
                    Line(label, Name(t), f.Shape, ops, Ms(f.P50), Ms(f.P99), Ms(f.P999), f.Cpu.ToString("F2", inv), f.RssMiB.ToString("F0", inv));
                }
            }
            if (figures.GetValueOrDefault("ours") is { } ours && figures.GetValueOrDefault("apache") is { } zk)
            {
                if (row == "watch")
                    Line(label, "ratio", "", $"time {Ratio(ours.FanoutMs, zk.FanoutMs)}", "", "", "", "", Ratio(ours.RssMiB, zk.RssMiB));
                else
                    Line(label, "ratio", "", Ratio(ours.Ops, zk.Ops), Ratio(ours.P50, zk.P50), Ratio(ours.P99, zk.P99), Ratio(ours.P999, zk.P999),
                        Ratio(ours.Cpu, zk.Cpu), Ratio(ours.RssMiB, zk.RssMiB));
            }
            // --tls: ours over TLS against ZooKeeper over TLS, and what TLS costs each server (its TLS figure / its plain one).
            void RatioLine(string name, Figure? a, Figure? b)
            {
                if (a is not null && b is not null && row != "watch")
                    Line(label, name, "", Ratio(a.Ops, b.Ops), Ratio(a.P50, b.P50), Ratio(a.P99, b.P99), Ratio(a.P999, b.P999), Ratio(a.Cpu, b.Cpu), "");
            }
            if (o.Tls)
            {
                RatioLine("tls ratio", figures.GetValueOrDefault("ours" + TlsSuffix), figures.GetValueOrDefault("apache" + TlsSuffix));
                RatioLine("ours tls/plain", figures.GetValueOrDefault("ours" + TlsSuffix), figures.GetValueOrDefault("ours"));
                RatioLine("ZK tls/plain", figures.GetValueOrDefault("apache" + TlsSuffix), figures.GetValueOrDefault("apache"));
                PairedLine("ours paired", "ours");
                PairedLine("ZK paired", "apache");
            }
            // The share of throughput TLS leaves, paired: run i over TLS against run i in plain text at the plain row's
            // best shape (they ran back to back, so a drift in the machine's load hits both); median and spread.
            void PairedLine(string name, string target)
            {
                if (row == "watch" || figures.GetValueOrDefault(target) is not { } plain) return;
                bool AtShape(Run r) => $"{r.Sessions}x{r.Inflight}" == plain.Shape && r.Row == key;
                var ratios = runs.Where(r => AtShape(r) && r.Target == target + TlsSuffix)
                    .Zip(runs.Where(r => AtShape(r) && r.Target == target), (tls, p) => tls.Result.OpsPerSecond / p.Result.OpsPerSecond)
                    .ToList();
                if (ratios.Count > 0)
                    Line(label, name, plain.Shape, string.Format(inv, "{0:F2} ({1:F2}-{2:F2})", Median(ratios), ratios.Min(), ratios.Max()), "", "", "", "", "");
            }
            if (o.MemberTls) RatioLine("ours mtls/plain", figures.GetValueOrDefault(MemberTlsTarget), figures.GetValueOrDefault("ours"));
            if (o.OneMember) RatioLine("zab1/standalone", figures.GetValueOrDefault(OneMemberTarget), figures.GetValueOrDefault("ours"));
            if (row == "latency-set" && disk.Count > 0 && placement != BenchDeployment.Follower)
            {
                // Each server's 1x1 write against the disk's floor measured in the same runs (issue 23: ours <= 1.5x).
                var p50s = disk.Select(d => d.P50Ms).ToList();
                var fsyncP50 = Median(p50s);
                Line("fdatasync 128 B", "disk", "1x1", string.Format(inv, "{0} records x {1} runs", disk[0].Records, disk.Count),
                    Ms(fsyncP50), Ms(Median(disk.Select(d => d.P99Ms))), Ms(Median(disk.Select(d => d.P999Ms))), "", "");
                Line("", "p50 spread", "", string.Format(inv, "{0:F3}-{1:F3} ms", p50s.Min(), p50s.Max()), "", "", "", "", "");
                foreach (var t in o.LoadTargets)
                    if (figures[t] is { } f)
                        Line(label, Name(t) + "/fsync", "", "", Ratio(f.P50, fsyncP50), "", "", "", "");
            }
        }
        if (extraRows.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| row                          | unit    | ours                       | ZooKeeper                  | ours/ZK | issue 6 |");
            sb.AppendLine("|------------------------------|---------|----------------------------|----------------------------|---------|---------|");
            foreach (var r in extraRows)
                sb.AppendLine(string.Format(inv, "| {0,-28} | {1,-7} | {2,-26} | {3,-26} | {4,7} | {5} |", r));
        }
        sb.AppendLine();
        sb.AppendLine("ratio = ours / ZooKeeper: above 1 is better for ops/s, below 1 is better for latency, CPU, RSS and time.");
        if (o.Tls)
            sb.AppendLine("--tls: 'tls ratio' = ours over TLS / ZooKeeper over TLS; 'ours tls/plain' and 'ZK tls/plain' = each server's TLS " +
                          "figure / its plain one (the ops/s column is the share of throughput TLS leaves); 'ours paired' and 'ZK paired' = that share " +
                          "run by run (TLS run i / plain run i at the plain row's shape, back to back), median and spread. TLS 1.3, client-auth need; " +
                          "ZooKeeper runs NettyServerCnxnFactory on both ports (its TLS needs it), so its plain rows here are Netty, not NIO.");
        sb.AppendLine(o.Nodes == 1
            ? "CPU = the server process's user+system time from /proc over the measured window, per 1,000 successful ops. RSS at the end of the run."
            : $"CPU = the SUM of the {o.Nodes} member processes' user+system time from /proc over the measured window, per 1,000 successful ops. " +
              $"RSS = the SUM of the {o.Nodes} members' RSS at the end of the run.");
        if (disk.Count > 0)
            sb.AppendLine("fdatasync 128 B: the disk's floor for one durable write, measured by the bench before each run of the 1x1 write row " +
                          "in the data dirs' file system (a 128-byte record appended into a preallocated file, then fdatasync; 2,000 per run); " +
                          "'/fsync' = that server's 1x1 write p50 / the median of those fdatasync p50s.");
        if (o.Rows.Any(r => HalfLoadOp(r) is not null))
            sb.AppendLine("half-load rows: both servers at half of ZooKeeper's best saturation throughput of that op (its get/set row in this run, " +
                          "else measured first at 16x16), 16 sessions each paced on a fixed schedule with up to 16 in flight; latency counts " +
                          "from each request's intended send time (wrk2-style, no coordinated omission); MISSED = a run achieved < 95% of the target.");
        if (o.MemberTls)
            sb.AppendLine("--member-tls: 'ours-mtls' = a second ensemble of ours whose members talk mutual TLS (TLS 1.3, no member secret); " +
                          "'ours mtls/plain' = its figure / the plain ensemble's. Clients connect in plaintext to both.");
        foreach (var n in notes.Distinct()) sb.AppendLine("NOTE: " + n);
        return sb.ToString();
    }

    private static string Name(string target) => target.Replace("apache", "ZK 3.8");

    internal static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch { return "?"; }
    }

    /// <summary>The machine's CPUs (Environment.ProcessorCount counts only those this process may run on).</summary>
    internal static int MachineCpus()
    {
        try { return File.ReadLines("/proc/cpuinfo").Count(l => l.StartsWith("processor", StringComparison.Ordinal)); }
        catch (IOException) { return Environment.ProcessorCount; }
    }

    /// <summary>The CPUs this process (the load generator) may run on, as the kernel reports them.</summary>
    private static string AllowedCpus()
    {
        try { return File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))?.Split(':')[1].Trim() ?? "?"; }
        catch (IOException) { return "?"; }
    }

    private static Options Parse(string[] args)
    {
        var o = new Options();
        foreach (var argument in VerbArgument.Read(args))
        {
            var name = argument.Name;
            string Value() => argument.Value();
            int Int(int min) => argument.Int(min);
            IReadOnlyList<string> List() => argument.List();
            o = name switch
            {
                "nodes" => o with { Nodes = Int(1) is var n && n is 1 or 3 ? n : throw new ArgumentException("--nodes: 1 or 3") },
                "durability" => o with { Fsync = Value() switch { "fsync" => true, "nosync" => false, var v => throw new ArgumentException($"--durability: fsync or nosync, not '{v}'") } },
                "runs" => o with { Runs = Int(1) },
                "warmup" => o with { Warmup = BenchOptions.ParseDuration(Value()) },
                "prime" => o with { Prime = Value() is var prime && prime is "0" or "0s" ? TimeSpan.Zero : BenchOptions.ParseDuration(prime) },
                "duration" => o with { Duration = BenchOptions.ParseDuration(Value()) },
                "shapes" => o with { Shapes = List().Select(ParseShape).ToArray() },
                "rows" => o with { Rows = List().Select(r => KnownRows.Contains(r) ? r : throw new ArgumentException($"--rows: unknown row '{r}' ({string.Join(",", KnownRows)})")).ToArray() },
                "watchers" => o with { Watchers = Int(1) },
                "memory" => o with { Memory = true },
                "memory-znodes" => o with { MemoryZnodes = Int(1) },
                "value-size" => o with { ValueSize = Int(0) },
                "znodes" => o with { Znodes = Int(1) },
                "targets" => o with { Targets = List().Select(t => t is "ours" or "apache" ? t : throw new ArgumentException($"--targets: ours or apache, not '{t}'")).ToArray() },
                "ours-hocon" => o with { OursHocon = Value() },
                "apache-cfg" => o with { ApacheCfg = [.. o.ApacheCfg, Value()] },
                "time-limit" => o with { TimeLimit = BenchOptions.ParseDuration(Value()) },
                "out" => o with { Out = Value() },
                "tls" => o with { Tls = true },
                "member-tls" => o with { MemberTls = true },
                "one-member" => o with { OneMember = true },
                "server-cpus" => o with { ServerCpus = Value() is var cpus && cpus.Length > 0 && cpus.All(c => char.IsAsciiDigit(c) || c is ',' or '-')
                    ? cpus : throw new ArgumentException($"--server-cpus: a CPU list as taskset takes it (0, 1-3, 0,2), not '{cpus}'") },
                _ => throw new ArgumentException($"unknown option --{name}"),
            };
        }
        if (o.Targets.Count == 0) throw new ArgumentException("--targets is empty");
        if (o.ServerCpus is not null && o.Nodes != 1) throw new ArgumentException("--server-cpus is for standalone servers (--nodes 1)");
        if (o.MemberTls && (o.Nodes == 1 || !o.Targets.Contains("ours"))) throw new ArgumentException("--member-tls needs --nodes 3 and ours among --targets");
        if (o.OneMember && (o.Nodes != 1 || !o.Targets.Contains("ours"))) throw new ArgumentException("--one-member needs --nodes 1 and ours among --targets");
        return o;
    }

    private static (int, int) ParseShape(string s)
    {
        var parts = s.Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], out var a) && int.TryParse(parts[1], out var b) && a > 0 && b > 0) return (a, b);
        throw new ArgumentException($"--shapes: expected SESSIONSxINFLIGHT, got '{s}'");
    }
}

/// <summary>One option of a bench verb's command line: <c>--name value</c>, <c>--name=value</c> or a flag <c>--name</c>
/// (a flag never asks for its <see cref="Value"/>, so the next argument stays an option).</summary>
internal sealed class VerbArgument(string name, Func<string> value)
{
    /// <summary>The opening every verb shares: <c>--help</c> prints the usage (exit 0), an argument the verb's parser
    /// refuses prints the error and the usage (exit 2); otherwise the options and no exit code.</summary>
    public static async Task<(T? Options, int? Exit)> ParseOrExitAsync<T>(string[] args, string usage, Func<string[], T> parse,
        TextWriter stdout, TextWriter stderr) where T : class
    {
        if (args.Any(a => a is "--help" or "-h")) { await stdout.WriteLineAsync(usage); return (null, 0); }
        try { return (parse(args), null); }
        catch (ArgumentException e) { await stderr.WriteLineAsync($"error: {e.Message}\n\n{usage}"); return (null, 2); }
    }

    public string Name { get; } = name;
    public string Value() => value();

    public int Int(int min) => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min
        ? n : throw new ArgumentException($"--{Name}: expected an integer >= {min}");

    public IReadOnlyList<string> List() => Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static IEnumerable<VerbArgument> Read(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{arg}'");
            var name = arg[2..];
            string? inline = null;
            if (name.IndexOf('=') is var eq and >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
            yield return new VerbArgument(name, () => inline ?? (i + 1 < args.Length ? args[++i] : throw new ArgumentException($"--{name} needs a value")));
        }
    }
}
