using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Coordination.Protocol;
using Coordination.TestKit;
using Microsoft.Diagnostics.NETCore.Client;

namespace Coordination.Bench;

/// <summary>
/// The scale verb (issue 23): the scale curve of each server, one server at a time. For every point of --points
/// (znodes of --value-size bytes under /scale/dNNNNN/nNNNN, at most --fanout per directory, plus /wide with --wide
/// children) it grows the tree with pipelined multis of creates, then records the server's RSS after a forced full GC,
/// the getChildren latency of a small directory and the time of one getChildren of /wide, the size of a snapshot of
/// the whole tree, and the restart time (SIGKILL, then start until the first successful getData of the newest znode),
/// repeated --restarts times with the servers alternating. Everything it starts it kills; --time-limit bounds the run.
/// </summary>
public static partial class ScaleBench
{
    public const string Usage = """
        Coordination.Bench scale: RSS, snapshot size, restart time and getChildren latency as the tree grows,
        our server against Apache ZooKeeper 3.8 (fsync on both), one server running at a time.

          --points LIST        znodes under /scale at each point, ascending          (1000000,5000000,10000000)
          --targets LIST       ours,apache in this order                                            (ours,apache)
          --wide N             children of /wide (created at the first point), 0 = none              (1000000)
          --fanout N           znodes per /scale directory = creates per multi                       (1000)
          --value-size B       bytes of data per znode                                                (100)
          --connections N / --inflight N   growth: connections, multis in flight on each          (2 / 4)
          --restarts N         timed restarts per point and server, alternating the servers            (3)
          --samples N          getChildren of /small (10 children), one at a time, per point           (2000)
          --settle T           how long the RSS must stay within 1 % with the server idle, per reading  (15s)
          --zk-heap SIZE       ZooKeeper's -Xmx, e.g. 6g; auto = 512 MiB + 700 B per znode of the point (auto)
          --gcdump-at N        at point N, also write a heap dump of our server (dotnet-gcdump collect) next to
                               --out: where its memory goes, by type (`dotnet-gcdump report FILE`)
          --apache-up-to N     run ZooKeeper only at the points up to N (its heap must fit in memory)     (all)
          --ours-hocon TEXT    extra HOCON for our server
          --apache-cfg LINE    extra zoo.cfg line for ZooKeeper (repeatable)
          --data-root DIR      where the data dirs go (deleted at the end unless --keep)         (temp dir)
          --keep               keep the data dirs
          --time-limit T       stop everything after this long                                         (100m)
          --out FILE           also write the JSON to FILE
          --json               print only the JSON on stdout (progress goes to stderr)

        RSS: VmRSS after a forced full GC (ours: an EventPipe session with the GCHeapCollect keyword; ZooKeeper:
        jcmd GC.run) once it has settled: the process idle and its RSS within 1 % for --settle (15 s: longer
        than our server's memory-trim quiet period). The log also gives the first steady RSS after the GC, and ours' GC
        committed bytes and live heap. Snapshot: ours takes one on the admin command snapshot; ZooKeeper 3.8 has
        none and writes one when it starts, so it is started once untimed after the load (its "first start", which
        replays the log of the load); the size is the newest snapshot file's. Restart: SIGKILL, then from starting
        the process until a new session's getData of the newest znode succeeds (polled every 20 ms).
        """;

    private sealed record Options
    {
        public IReadOnlyList<long> Points { get; init; } = [1_000_000, 5_000_000, 10_000_000];
        public IReadOnlyList<string> Targets { get; init; } = ["ours", "apache"];
        public int Wide { get; init; } = 1_000_000;
        public int Fanout { get; init; } = 1000;
        public int ValueSize { get; init; } = 100;
        public int Connections { get; init; } = 2;
        public int Inflight { get; init; } = 4;
        public int Restarts { get; init; } = 3;
        public int Samples { get; init; } = 2000;
        public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(15);
        public long? ZkHeapBytes { get; init; }
        public long ApacheUpTo { get; init; } = long.MaxValue;
        public long? GcdumpAt { get; init; }
        public string? OursHocon { get; init; }
        public IReadOnlyList<string> ApacheCfg { get; init; } = [];
        public string? DataRoot { get; init; }
        public bool Keep { get; init; }
        public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMinutes(100);
        public string? Out { get; init; }
        public bool Json { get; init; }
    }

    private const string SmallDir = "/small";
    private const int SmallChildren = 10;
    private const string SuperPassword = "scale-bench";

    /// <summary>One server's state across the points: its data dir and ports, and how far its tree has grown.</summary>
    private sealed class Server(string name, string dataDir)
    {
        public string Name { get; } = name;
        public ServerKind Kind { get; } = ServerProcess.ParseKind(name);
        public string DataDir { get; } = dataDir;
        public int Port { get; } = ServerProcess.FreeLoopbackPort();
        public int AdminPort { get; } = ServerProcess.FreeLoopbackPort();
        public long Leaves;
        public int Dirs;
        public int WideChildren;
        /// <summary>The newest znode: a restart is over when a getData of it succeeds.</summary>
        public string Newest = "/";
        public long HeapBytes;
        public ServerProcess? Process;
    }

    /// <summary>The figures of one server at one point.</summary>
    private sealed record PointFigures
    {
        public required string Server { get; init; }
        public required long Point { get; init; }
        public long Znodes { get; set; }
        public long? HeapBytes { get; set; }
        public double GrowSeconds { get; set; }
        public double CreatesPerSecond { get; set; }
        public long RssBytes { get; set; }
        public long? JavaHeapUsedBytes { get; set; }
        /// <summary>RSS as first steady after the forced GC (the RSS figure before session 19's settle window).</summary>
        public long RssAfterGcBytes { get; set; }
        /// <summary>Ours: the GC's committed bytes and live heap (mntr), and the memory trims it ran, when settled.</summary>
        public long? GcCommittedBytes { get; set; }
        public long? GcLiveBytes { get; set; }
        public long? MemoryTrims { get; set; }
        public double SmallP50Ms { get; set; }
        public double SmallP99Ms { get; set; }
        public double WideMs { get; set; }
        public int WideChildren { get; set; }
        public long SnapshotBytes { get; set; }
        public string SnapshotHow { get; set; } = "";
        public long DataDirBytes { get; set; }
        public double FirstStartSeconds { get; set; }
        public List<double> RestartSeconds { get; } = [];
        /// <summary>The process's CPU time (user + system) when it was ready: less sensitive to the machine's load than the wall time.</summary>
        public List<double> RestartCpuSeconds { get; } = [];
        public List<long> RssAfterRestartBytes { get; } = [];
        public List<string> LoadAverages { get; } = [];
        public double RestartMedian => Median(RestartSeconds);
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var (o, exit) = await VerbArgument.ParseOrExitAsync(args, Usage, Parse, stdout, stderr);
        if (o is null) return exit!.Value;

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(o.TimeLimit);
        var token = limit.Token;
        var progress = o.Json ? stderr : stdout;
        var clock = Stopwatch.StartNew();
        var root = o.DataRoot ?? Directory.CreateTempSubdirectory("scale-").FullName;
        var servers = o.Targets.Select(t => new Server(t, Path.Combine(root, t))).ToList();
        var figures = new List<PointFigures>();
        var notes = new List<string>();
        var failed = false;
        void Log(string line) => progress.WriteLine(string.Format(CultureInfo.InvariantCulture, "  [{0,6:F0}s] {1}", clock.Elapsed.TotalSeconds, line));
        Log($"scale: {string.Join(",", o.Targets)}, points {string.Join(",", o.Points)}, /wide {o.Wide}, fanout {o.Fanout}, value {o.ValueSize} B, data in {root}, load {LoadAverage()}");
        try
        {
            foreach (var point in o.Points)
            {
                var atPoint = new Dictionary<string, PointFigures>();
                var here = servers.Where(s => s.Kind != ServerKind.Apache || point <= o.ApacheUpTo).ToList();
                foreach (var s in here)
                {
                    var f = atPoint[s.Name] = new PointFigures { Server = s.Name, Point = point };
                    figures.Add(f);
                    s.HeapBytes = s.Kind == ServerKind.Apache ? o.ZkHeapBytes ?? AutoHeap(point + o.Wide) : 0;
                    f.HeapBytes = s.Kind == ServerKind.Apache ? s.HeapBytes : null;
                    await StartAsync(s, o, token);
                    var grow = Stopwatch.StartNew();
                    var before = s.Leaves + s.WideChildren;
                    await GrowAsync(s, point, o, Log, token);
                    f.GrowSeconds = grow.Elapsed.TotalSeconds;
                    f.CreatesPerSecond = (s.Leaves + s.WideChildren - before) / Math.Max(f.GrowSeconds, 1e-9);
                    (f.RssBytes, f.RssAfterGcBytes, f.JavaHeapUsedBytes) = await SettledRssAsync(s, o.Settle, token);
                    f.Znodes = await ZnodeCountAsync(s, token);
                    if (s.Kind == ServerKind.Ours && await OurGcAsync(s, token) is { } gc)
                    {
                        var (committed, live, trims) = gc;
                        (f.GcCommittedBytes, f.GcLiveBytes, f.MemoryTrims) = (committed, live, trims);
                        Log($"ours at {point:N0}: RSS {f.RssAfterGcBytes >> 20} MiB after the forced GC, {f.RssBytes >> 20} MiB settled; GC committed {committed >> 20} MiB, live heap {live >> 20} MiB ({live / Math.Max(1, f.Znodes)} B/znode), memory trims {trims}");
                    }
                    if (s.Kind == ServerKind.Ours && point == o.GcdumpAt)
                    {
                        var dump = Path.GetFullPath((o.Out ?? "scale") + $".ours-{point}.gcdump");
                        Log($"ours: gcdump {dump}: {(await RunToolAsync("dotnet-gcdump", ["collect", "-p", s.Process!.Pid.ToString(CultureInfo.InvariantCulture), "-o", dump], token)).Trim()}");
                    }
                    await MeasureReadsAsync(s, f, o, token);
                    if (s.Kind == ServerKind.Ours) await TakeOurSnapshotAsync(s, Log, token);
                    await KillAsync(s);
                    // ZooKeeper writes its snapshot when it starts: the first start after the load (its log replayed).
                    var first = Stopwatch.StartNew();
                    await StartAsync(s, o, token);
                    f.FirstStartSeconds = first.Elapsed.TotalSeconds;
                    await KillAsync(s);
                    (f.SnapshotBytes, f.SnapshotHow) = NewestSnapshot(s);
                    f.DataDirBytes = DirectoryBytes(s.DataDir);
                    Log(string.Format(CultureInfo.InvariantCulture,
                        "{0} at {1:N0}: {2:N0} znodes, grown in {3:F1} s ({4:F0} creates/s), RSS {5} MiB{6}, getChildren small p50 {7:F3} ms p99 {8:F3} ms, /wide {9:F0} ms, snapshot {10} MiB, first start {11:F1} s",
                        s.Name, point, f.Znodes, f.GrowSeconds, f.CreatesPerSecond, f.RssBytes >> 20,
                        f.JavaHeapUsedBytes is { } used ? $" (heap used {used >> 20} MiB of -Xmx {s.HeapBytes >> 20} MiB)" : "",
                        f.SmallP50Ms, f.SmallP99Ms, f.WideMs, f.SnapshotBytes >> 20, f.FirstStartSeconds));
                }
                // Restart timing, the servers alternating (the order reversed every round) so that a drift in the
                // machine's load hits them alike.
                for (var r = 0; r < o.Restarts; r++)
                    foreach (var s in r % 2 == 0 ? here : Enumerable.Reverse(here))
                    {
                        var f = atPoint[s.Name];
                        var restart = Stopwatch.StartNew();
                        await StartAsync(s, o, token);
                        var seconds = restart.Elapsed.TotalSeconds;
                        f.RestartCpuSeconds.Add(s.Process!.CpuTime?.TotalSeconds ?? double.NaN);
                        var count = await ZnodeCountAsync(s, token);
                        if (count != f.Znodes) throw new InvalidOperationException($"{s.Name} restarted with {count} znodes, not {f.Znodes}");
                        f.RestartSeconds.Add(seconds);
                        f.RssAfterRestartBytes.Add(s.Process!.RssBytes);
                        f.LoadAverages.Add(LoadAverage());
                        Log(string.Format(CultureInfo.InvariantCulture, "{0} at {1:N0}: restart {2}: {3:F2} s, CPU {4:F2} s (load {5})", s.Name, point, r + 1, seconds, f.RestartCpuSeconds[^1], f.LoadAverages[^1]));
                        await KillAsync(s);
                    }
            }
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            notes.Add($"stopped by --time-limit {o.TimeLimit}; the table shows what finished");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failed = true;
            notes.Add($"FAILED: {e.GetType().Name}: {e.Message}");
            foreach (var s in servers.Where(s => s.Process is not null))
                await stderr.WriteLineAsync($"{s.Name} output:\n{s.Process!.OutputTail}");
        }
        finally
        {
            foreach (var s in servers) await KillAsync(s);
            if (!o.Keep && o.DataRoot is null) try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }

        notes.AddRange(TargetNotes(figures));
        var json = ToJson(o, figures, notes, clock.Elapsed);
        if (o.Out is { } file) await File.WriteAllTextAsync(file, json, CancellationToken.None);
        if (o.Json) await stdout.WriteLineAsync(json);
        else await stdout.WriteLineAsync(Render(o, figures, notes, clock.Elapsed));
        return failed ? 1 : 0;
    }

    /// <summary>ZooKeeper's heap for a tree: 512 MiB plus 700 B per znode (it holds about 450 B per 100-B znode;
    /// the rest is the headroom G1 needs to collect without thrashing), rounded up to 256 MiB.</summary>
    private static long AutoHeap(long znodes)
    {
        const long step = 256L << 20;
        var bytes = (512L << 20) + 700 * znodes;
        return (bytes + step - 1) / step * step;
    }

    // ------------------------------------------------------------------------------------------------ servers

    private static async Task StartAsync(Server s, Options o, CancellationToken ct)
    {
        var newest = s.Newest;
        var options = new ServerProcessOptions
        {
            DataDir = s.DataDir,
            Port = s.Port,
            TickTimeMs = 2000,
            StartTimeout = TimeSpan.FromMinutes(20),
            ReadyProbe = probeCt => CanReadAsync(s.Port, newest, probeCt),
        };
        options = s.Kind == ServerKind.Ours
            ? options with
            {
                ExtraHocon = $$"""
                    coordination {
                      client-address = "127.0.0.1"
                      persistence.force-sync = on
                      max-response-size = 64MiB
                      super-digest = "super:{{Convert.ToBase64String(SHA1.HashData(Encoding.UTF8.GetBytes("super:" + SuperPassword)))}}"
                      admin { enabled = on, port = {{s.AdminPort}}, auth-required = [] }
                    }
                    {{o.OursHocon}}
                    """,
            }
            : options with
            {
                ExtraZooCfg = ["forceSync=yes", .. o.ApacheCfg],
                JavaOptions = [$"-Xmx{s.HeapBytes >> 20}m", "-Djute.maxbuffer=67108864"],
            };
        s.Process = await ServerProcess.StartAsync(s.Kind, options, ct).ConfigureAwait(false);
    }

    /// <summary>Ready when a new session reads <paramref name="path"/>; tried every 20 ms for up to a second per call
    /// (the caller polls again after its own pause, so the restart time is exact to about 20 ms).</summary>
    private static async Task<bool> CanReadAsync(int port, string path, CancellationToken ct)
    {
        var until = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        do
        {
            try
            {
                await using var client = await WireClient.ConnectAsync("127.0.0.1", port, new WireClientOptions
                {
                    ConnectTimeout = TimeSpan.FromSeconds(5), AutoPing = false, EventChannel = false,
                }, ct).ConfigureAwait(false);
                var (header, _) = await client.GetDataAsync(path).WaitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
                if (header.Err == ErrorCode.Ok) return true;
            }
            catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException) { }
            await Task.Delay(20, ct).ConfigureAwait(false);
        } while (Stopwatch.GetTimestamp() < until);
        return false;
    }

    private static async Task KillAsync(Server s)
    {
        if (s.Process is not { } process) return;
        process.Kill();
        await process.DisposeAsync().ConfigureAwait(false);
        s.Process = null;
    }

    private static async Task<long> ZnodeCountAsync(Server s, CancellationToken ct)
    {
        var mntr = await FourLetterWord.MntrAsync("127.0.0.1", s.Port, TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        return (long)(mntr.Number("zk_znode_count") ?? -1);
    }

    // ------------------------------------------------------------------------------------------------ growth

    /// <summary>Creates /scale, /small and /wide's children on the first call, then /scale's leaves up to
    /// <paramref name="point"/>: one directory per multi (its create, then up to --fanout children), pipelined.</summary>
    private static async Task GrowAsync(Server s, long point, Options o, Action<string> log, CancellationToken ct)
    {
        var clients = new List<WireClient>();
        try
        {
            for (var i = 0; i < o.Connections; i++)
                clients.Add(await WireClient.ConnectAsync("127.0.0.1", s.Port, new WireClientOptions { EventChannel = false }, ct).ConfigureAwait(false));
            var setup = clients[0];
            if (s.Leaves == 0 && s.Dirs == 0)
            {
                await setup.CreateAsync("/scale", null).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
                await setup.CreateAsync(SmallDir, null).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
                for (var i = 0; i < SmallChildren; i++) await setup.CreateAsync($"{SmallDir}/c{i}", [1]).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
                if (o.Wide > 0) await setup.CreateAsync("/wide", null).OkAsync(ErrorCode.NodeExists).ConfigureAwait(false);
            }
            var data = new byte[o.ValueSize];
            new Random(23).NextBytes(data);
            var acl = Acl.OpenAclUnsafe;
            MultiOp Create(string path) => new(OpCode.Create, new CreateRequest(path, data, acl, 0));

            var newest = s.Newest;
            IEnumerable<MultiRequest> Batches()
            {
                while (s.WideChildren < o.Wide)
                {
                    var first = s.WideChildren;
                    var n = Math.Min(o.Fanout, o.Wide - first);
                    var ops = new MultiOp[n];
                    for (var i = 0; i < n; i++) ops[i] = Create($"/wide/n{first + i:D7}");
                    s.WideChildren += n;
                    newest = $"/wide/n{first + n - 1:D7}";
                    yield return new MultiRequest(ops);
                }
                while (s.Leaves < point)
                {
                    var dir = $"/scale/d{s.Dirs++:D5}";
                    var n = (int)Math.Min(o.Fanout, point - s.Leaves);
                    var ops = new MultiOp[n + 1];
                    ops[0] = new MultiOp(OpCode.Create, new CreateRequest(dir, null, acl, 0));
                    for (var i = 0; i < n; i++) ops[i + 1] = Create($"{dir}/n{i:D4}");
                    s.Leaves += n;
                    newest = $"{dir}/n{n - 1:D4}";
                    yield return new MultiRequest(ops);
                }
            }

            var slots = o.Connections * o.Inflight;
            using var window = new SemaphoreSlim(slots);
            string? failure = null;
            var sent = 0L;
            var report = Stopwatch.StartNew();
            foreach (var request in Batches())
            {
                await window.WaitAsync(ct).ConfigureAwait(false);
                if (Volatile.Read(ref failure) is { } f) throw new InvalidOperationException($"{s.Name}: a multi failed: {f}");
                clients[(int)(sent++ % clients.Count)].Send(OpCode.Multi, request, (header, response, error, _, _) =>
                {
                    var problem = error?.Message
                        ?? (header.Err != ErrorCode.Ok ? header.Err.ToString() : null)
                        ?? (response is MultiResponse m && m.Results.FirstOrDefault(x => x.Err != ErrorCode.Ok) is { Type: OpCode.Error } bad ? bad.Err.ToString() : null);
                    if (problem is not null) Interlocked.CompareExchange(ref failure, problem, null);
                    window.Release();
                });
                if (report.Elapsed > TimeSpan.FromSeconds(15))
                {
                    log($"{s.Name}: {s.Leaves:N0} of {point:N0} under /scale, /wide {s.WideChildren:N0}");
                    report.Restart();
                }
            }
            for (var i = 0; i < slots; i++) await window.WaitAsync(ct).ConfigureAwait(false);
            if (failure is not null) throw new InvalidOperationException($"{s.Name}: a multi failed: {failure}");
            s.Newest = newest;
        }
        finally
        {
            foreach (var c in clients) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------------------------------------------ figures

    /// <summary>VmRSS after a forced full GC, settled: the process idle (under 0.1 s of CPU a second) and its RSS
    /// within 1 % of every reading (one a second) of the last <paramref name="settle"/>, at most 150 s. The default
    /// window (15 s) is longer than our server's memory-trim quiet period (10 s), so what a server gives back on its own
    /// when it is idle after a load counts, for both servers alike (a smoke test on a tiny tree takes a shorter one).
    /// Also the first reading that was within 1 % of the one a second before (the figure before session 19, "after
    /// GC"), and for ZooKeeper the heap it uses after that GC.</summary>
    private static async Task<(long Rss, long FirstSteady, long? HeapUsed)> SettledRssAsync(Server s, TimeSpan settle, CancellationToken ct)
    {
        var pid = s.Process!.Pid;
        var window = Math.Max(1, (int)Math.Ceiling(settle.TotalSeconds));
        long? heapUsed = null;
        if (s.Kind == ServerKind.Ours) await ForceDotnetGcAsync(pid, ct).ConfigureAwait(false);
        else
        {
            await RunToolAsync("jcmd", [pid.ToString(CultureInfo.InvariantCulture), "GC.run"], ct).ConfigureAwait(false);
            var info = await RunToolAsync("jcmd", [pid.ToString(CultureInfo.InvariantCulture), "GC.heap_info"], ct).ConfigureAwait(false);
            if (HeapUsedPattern().Match(info) is { Success: true } m) heapUsed = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * 1024;
        }
        var readings = new List<long> { ProcStats.ReadRssBytes(pid) };
        var cpu = ProcStats.ReadCpuTime(pid) ?? TimeSpan.Zero;
        long firstSteady = 0;
        var idleFor = 0;
        for (var i = 0; i < 150; i++)
        {
            await Task.Delay(1000, ct).ConfigureAwait(false);
            var rss = ProcStats.ReadRssBytes(pid);
            var previousCpu = cpu;
            cpu = ProcStats.ReadCpuTime(pid) ?? TimeSpan.Zero;
            idleFor = cpu - previousCpu < TimeSpan.FromSeconds(0.1) ? idleFor + 1 : 0;
            readings.Add(rss);
            if (idleFor == 0) continue;
            if (firstSteady == 0 && Math.Abs(rss - readings[^2]) <= readings[^2] / 100) firstSteady = rss;
            if (idleFor >= window && readings.TakeLast(window + 1).All(r => Math.Abs(r - rss) <= rss / 100)) break;
        }
        return (readings[^1], firstSteady == 0 ? readings[^1] : firstSteady, heapUsed);
    }

    /// <summary>Our server's GC figures from mntr: committed, the live heap at its last collection, trims so far.</summary>
    private static async Task<(long Committed, long Live, long Trims)?> OurGcAsync(Server s, CancellationToken ct)
    {
        var mntr = await FourLetterWord.MntrAsync("127.0.0.1", s.Port, TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        long Key(string name) => (long)(mntr.Number(name) ?? -1);
        return mntr.Number("zk_gc_committed_bytes") is null ? null
            : (Key("zk_gc_committed_bytes"), Key("zk_gc_heap_size_bytes") - Key("zk_gc_fragmented_bytes"), Key("zk_memory_trims"));
    }

    [GeneratedRegex(@"heap\s+total \d+K, used (\d+)K")]
    private static partial Regex HeapUsedPattern();

    /// <summary>An induced, blocking full GC in a .NET process from outside: the runtime collects when an EventPipe
    /// session enables the GCHeapCollect keyword (what dotnet-gcdump relies on).</summary>
    private static async Task ForceDotnetGcAsync(int pid, CancellationToken ct)
    {
        const long gcKeyword = 0x1, gcHeapCollectKeyword = 0x800000;
        var client = new DiagnosticsClient(pid);
        using var session = client.StartEventPipeSession(
            [new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, gcKeyword | gcHeapCollectKeyword)], requestRundown: false);
        var drain = Task.Run(() => session.EventStream.CopyTo(Stream.Null), CancellationToken.None);
        await Task.Delay(1000, ct).ConfigureAwait(false);
        session.Stop();
        await drain.WaitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
    }

    private static async Task<string> RunToolAsync(string file, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        return await output.ConfigureAwait(false);
    }

    /// <summary>getChildren of /small one at a time (p50, p99 after 10 % warm-up), then of /wide (the median of three
    /// after one), each checked for the children it must have.</summary>
    private static async Task MeasureReadsAsync(Server s, PointFigures f, Options o, CancellationToken ct)
    {
        await using var client = await WireClient.ConnectAsync("127.0.0.1", s.Port, new WireClientOptions { EventChannel = false }, ct).ConfigureAwait(false);
        async Task<double> TimedGetChildrenAsync(string path, int expected)
        {
            var start = Stopwatch.GetTimestamp();
            var (header, response) = await client.SendAsync(OpCode.GetChildren, new PathWatchRequest(path, false)).ConfigureAwait(false);
            var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var got = (response as GetChildrenResponse)?.Children.Count ?? -1;
            if (header.Err != ErrorCode.Ok || got != expected)
                throw new InvalidOperationException($"{s.Name}: getChildren {path} answered {header.Err} with {got} children, expected {expected}");
            return ms;
        }
        for (var i = 0; i < Math.Max(1, o.Samples / 10); i++) await TimedGetChildrenAsync(SmallDir, SmallChildren).ConfigureAwait(false);
        var small = new List<double>(o.Samples);
        for (var i = 0; i < o.Samples; i++) small.Add(await TimedGetChildrenAsync(SmallDir, SmallChildren).ConfigureAwait(false));
        f.SmallP50Ms = Median(small);
        f.SmallP99Ms = Percentile(small, 0.99);
        f.WideChildren = s.WideChildren;
        if (s.WideChildren == 0) return;
        await TimedGetChildrenAsync("/wide", s.WideChildren).ConfigureAwait(false);
        var wide = new List<double>();
        for (var i = 0; i < 3; i++) wide.Add(await TimedGetChildrenAsync("/wide", s.WideChildren).ConfigureAwait(false));
        f.WideMs = Median(wide);
    }

    /// <summary>Our snapshot on demand: the admin command (at most one a second, refused while one is being written,
    /// e.g. one the load started), then wait until its file is complete.</summary>
    private static async Task TakeOurSnapshotAsync(Server s, Action<string> log, CancellationToken ct)
    {
        var before = SnapshotFilesOf(s.DataDir).Select(f => f.Name).ToHashSet();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{s.AdminPort}/"), Timeout = TimeSpan.FromMinutes(10) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "commands/snapshot?streaming=false");
            request.Headers.Authorization = new AuthenticationHeaderValue("digest", "super:" + SuperPassword);
            using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
            // 200: written; 500 may only mean "not complete in time": the file shows up later.
            if (response.StatusCode is System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.InternalServerError) break;
            if (response.StatusCode != System.Net.HttpStatusCode.TooManyRequests || deadline.Elapsed > TimeSpan.FromMinutes(10))
                throw new InvalidOperationException($"{s.Name}: the snapshot command answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false)}");
            await Task.Delay(1000, ct).ConfigureAwait(false);
        }
        while (!SnapshotFilesOf(s.DataDir).Any(f => !before.Contains(f.Name)))
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(15)) throw new TimeoutException($"{s.Name}: no new snapshot file after the snapshot command");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        log($"{s.Name}: snapshot taken in {deadline.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Complete snapshot files (ours: snapshot.&lt;zxid&gt; in the data dir; ZooKeeper's in version-2).</summary>
    private static IEnumerable<FileInfo> SnapshotFilesOf(string dataDir) =>
        new DirectoryInfo(dataDir).EnumerateFiles("snapshot.*", SearchOption.AllDirectories).Where(f => f.Extension != ".tmp");

    private static (long Bytes, string How) NewestSnapshot(Server s) =>
        SnapshotFilesOf(s.DataDir).MaxBy(f => f.LastWriteTimeUtc) is { } newest
            ? (newest.Length, s.Kind == ServerKind.Ours ? "admin snapshot command after the load" : "written by its first start after the load")
            : (0, "none");

    private static long DirectoryBytes(string dir) => new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    // ------------------------------------------------------------------------------------------------ output

    private static string Render(Options o, List<PointFigures> figures, List<string> notes, TimeSpan elapsed)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine(inv, $"Scale curve: znodes of {o.ValueSize} B under /scale (at most {o.Fanout} per directory) plus /wide with {o.Wide:N0} children; " +
                           $"fsync on; one server running at a time; restart = median of {o.Restarts} (min-max), servers alternating.");
        sb.AppendLine(inv, $"{SideBySide.MachineCpus()} cores, load average at the end {LoadAverage()}, {elapsed.TotalMinutes:F1} min.");
        sb.AppendLine();
        var header = string.Format(inv, "| {0,10} | {1,-6} | {2,10} | {3,8} | {4,7} | {5,7} | {6,9} | {7,8} | {8,-22} | {9,7} | {10,8} | {11,15} | {12,9} |",
            "point", "server", "znodes", "RSS MiB", "B/znode", "slope", "heap MiB", "snap MiB", "restart s (spread)", "CPU s", "1st s", "small p50/p99 ms", "/wide ms");
        sb.AppendLine(header);
        sb.AppendLine(string.Concat(header.Select(c => c == '|' ? '|' : '-')));
        foreach (var group in figures.GroupBy(f => f.Point))
        {
            foreach (var f in group)
            {
                var previous = figures.LastOrDefault(p => p.Server == f.Server && p.Point < f.Point && p.RssBytes > 0);
                var slope = previous is null || f.RssBytes <= 0 ? "-" : ((f.RssBytes - previous.RssBytes) / (double)(f.Znodes - previous.Znodes)).ToString("F0", inv);
                var restart = f.RestartSeconds.Count == 0 ? "-" : $"{f.RestartMedian:F2} ({f.RestartSeconds.Min():F2}-{f.RestartSeconds.Max():F2})";
                sb.AppendLine(string.Format(inv, "| {0,10:N0} | {1,-6} | {2,10:N0} | {3,8} | {4,7} | {5,7} | {6,9} | {7,8} | {8,-22} | {9,7} | {10,8} | {11,15} | {12,9} |",
                    f.Point, f.Server, f.Znodes, f.RssBytes > 0 ? (f.RssBytes >> 20).ToString(inv) : "-",
                    f.RssBytes > 0 && f.Znodes > 0 ? (f.RssBytes / (double)f.Znodes).ToString("F0", inv) : "-", slope,
                    f.HeapBytes is { } heap ? $"{(f.JavaHeapUsedBytes ?? 0) >> 20}/{heap >> 20}" : f.GcLiveBytes is { } live ? $"{live >> 20}/{(f.GcCommittedBytes ?? 0) >> 20}" : "-",
                    f.SnapshotBytes > 0 ? (f.SnapshotBytes / 1048576.0).ToString("F0", inv) : "-", restart,
                    f.RestartCpuSeconds.Count > 0 ? Median(f.RestartCpuSeconds).ToString("F2", inv) : "-",
                    f.FirstStartSeconds > 0 ? f.FirstStartSeconds.ToString("F1", inv) : "-",
                    f.SmallP50Ms > 0 ? $"{f.SmallP50Ms:F3}/{f.SmallP99Ms:F3}" : "-", f.WideMs > 0 ? f.WideMs.ToString("F0", inv) : "-"));
            }
            if (group.FirstOrDefault(f => f.Server == "ours") is { } ours && group.FirstOrDefault(f => f.Server == "apache") is { } zk)
            {
                var rss = Ratio(ours.RssBytes, zk.RssBytes);
                var restart = Ratio(ours.RestartMedian, zk.RestartMedian);
                sb.AppendLine(string.Format(inv, "| {0,10:N0} | {1,-6} | {2,10} | {3,8} | {4,7} | {5,7} | {6,9} | {7,8} | {8,-22} | {9,7} | {10,8} | {11,15} | {12,9} |",
                    group.Key, "ratio", "", rss, "", "", "", Ratio(ours.SnapshotBytes, zk.SnapshotBytes), restart,
                    Ratio(Median(ours.RestartCpuSeconds), Median(zk.RestartCpuSeconds)), Ratio(ours.FirstStartSeconds, zk.FirstStartSeconds),
                    $"{Ratio(ours.SmallP50Ms, zk.SmallP50Ms)}/{Ratio(ours.SmallP99Ms, zk.SmallP99Ms)}", Ratio(ours.WideMs, zk.WideMs)));
            }
        }
        sb.AppendLine();
        sb.AppendLine("ratio = ours / ZooKeeper. RSS: VmRSS after a forced full GC (ours: EventPipe GCHeapCollect; ZooKeeper: jcmd GC.run), settled. " +
                      "B/znode = RSS / znodes; slope = RSS growth / znode growth since the previous point. heap MiB: ZooKeeper = used after that GC / -Xmx; " +
                      "ours = live heap at the GC's last collection / GC committed (mntr), settled.");
        sb.AppendLine("snap MiB: ours = the snapshot its admin command wrote after the load; ZooKeeper (no snapshot command in 3.8) = the one it wrote " +
                      "at its first start after the load. 1st s = that first start (ZooKeeper replays the load's log there). restart = SIGKILL, then " +
                      "from starting the process until a new session's getData of the newest znode succeeds; CPU s = the process's CPU time then (median). small = getChildren of a 10-child " +
                      "directory, one at a time; /wide = one getChildren of /wide (median of 3).");
        foreach (var n in notes.Distinct()) sb.AppendLine("NOTE: " + n);
        return sb.ToString();
    }

    /// <summary>Issue 23's targets at each point where both servers were measured: RSS at most 0.5x, restart at most 0.7x ZooKeeper's.</summary>
    private static IEnumerable<string> TargetNotes(List<PointFigures> figures) =>
        from g in figures.GroupBy(f => f.Point)
        let ours = g.FirstOrDefault(f => f.Server == "ours")
        let zk = g.FirstOrDefault(f => f.Server == "apache")
        where ours is not null && zk is not null
        select string.Format(CultureInfo.InvariantCulture, "{0:N0}: RSS ours/ZooKeeper {1} (target <= 0.5: {2}), restart {3} (target <= 0.7: {4})", g.Key,
            Ratio(ours.RssBytes, zk.RssBytes), Holds(ours.RssBytes, zk.RssBytes, 0.5),
            Ratio(ours.RestartMedian, zk.RestartMedian), Holds(ours.RestartMedian, zk.RestartMedian, 0.7));

    private static string Holds(double ours, double zk, double target) =>
        ours > 0 && zk > 0 ? ours / zk <= target ? "holds" : "MISSED" : "-";

    private static string ToJson(Options o, List<PointFigures> figures, List<string> notes, TimeSpan elapsed)
    {
        var document = new
        {
            points = o.Points, targets = o.Targets, wide = o.Wide, fanout = o.Fanout, value_size = o.ValueSize, restarts = o.Restarts,
            load_average = LoadAverage(), elapsed_s = elapsed.TotalSeconds, notes,
            figures = figures.Select(f => new
            {
                server = f.Server, point = f.Point, znodes = f.Znodes, rss_bytes = f.RssBytes, java_heap_max_bytes = f.HeapBytes,
                java_heap_used_bytes = f.JavaHeapUsedBytes, rss_after_gc_bytes = f.RssAfterGcBytes,
                gc_committed_bytes = f.GcCommittedBytes, gc_live_bytes = f.GcLiveBytes, memory_trims = f.MemoryTrims, grow_s = f.GrowSeconds, creates_per_s = f.CreatesPerSecond,
                small_get_children_p50_ms = f.SmallP50Ms, small_get_children_p99_ms = f.SmallP99Ms,
                wide_children = f.WideChildren, wide_get_children_ms = f.WideMs,
                snapshot_bytes = f.SnapshotBytes, snapshot_how = f.SnapshotHow, data_dir_bytes = f.DataDirBytes,
                first_start_s = f.FirstStartSeconds, restart_s = f.RestartSeconds, restart_cpu_s = f.RestartCpuSeconds, restart_median_s = f.RestartSeconds.Count > 0 ? f.RestartMedian : (double?)null,
                rss_after_restart_bytes = f.RssAfterRestartBytes, load_averages = f.LoadAverages,
            }),
        };
        return JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true });
    }

    private static double Median(IEnumerable<double> values) => SideBySide.Median(values);
    private static string Ratio(double ours, double zk) => SideBySide.Ratio(ours, zk);
    private static string LoadAverage() => SideBySide.LoadAverage();

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
    }

    // ------------------------------------------------------------------------------------------------ options

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
                "points" => o with { Points = List().Select(p => long.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n : throw new ArgumentException($"--points: '{p}' is not a positive integer")).ToArray() },
                "targets" => o with { Targets = List().Select(t => t is "ours" or "apache" ? t : throw new ArgumentException($"--targets: ours or apache, not '{t}'")).Distinct().ToArray() },
                "wide" => o with { Wide = Int(0) },
                "fanout" => o with { Fanout = Int(1) is var f && f <= 9999 ? f : throw new ArgumentException("--fanout: at most 9999") },
                "value-size" => o with { ValueSize = Int(0) },
                "connections" => o with { Connections = Int(1) },
                "inflight" => o with { Inflight = Int(1) },
                "restarts" => o with { Restarts = Int(1) },
                "samples" => o with { Samples = Int(1) },
                "settle" => o with { Settle = BenchOptions.ParseDuration(Value()) },
                "apache-up-to" => o with { ApacheUpTo = long.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n : throw new ArgumentException("--apache-up-to: a positive number of znodes") },
                "gcdump-at" => o with { GcdumpAt = long.Parse(Value(), CultureInfo.InvariantCulture) },
                "zk-heap" => o with { ZkHeapBytes = Value() is var h && h == "auto" ? null : ParseSize(h) },
                "ours-hocon" => o with { OursHocon = Value() },
                "apache-cfg" => o with { ApacheCfg = [.. o.ApacheCfg, Value()] },
                "data-root" => o with { DataRoot = Value() },
                "keep" => o with { Keep = true },
                "time-limit" => o with { TimeLimit = BenchOptions.ParseDuration(Value()) },
                "out" => o with { Out = Value() },
                "json" => o with { Json = true },
                _ => throw new ArgumentException($"unknown option --{name}"),
            };
        }
        if (o.Targets.Count == 0) throw new ArgumentException("--targets is empty");
        if (!o.Points.SequenceEqual(o.Points.Order()) || o.Points.Distinct().Count() != o.Points.Count) throw new ArgumentException("--points must be ascending");
        if (o.Points[^1] > 99_999L * o.Fanout) throw new ArgumentException("--points: at most 99,999 directories of --fanout znodes");
        if (o.Wide > 9_999_999) throw new ArgumentException("--wide: at most 9,999,999");
        return o;
    }

    private static long ParseSize(string value)
    {
        var v = value.Trim().ToLowerInvariant();
        var (digits, shift) = v[^1] switch { 'g' => (v[..^1], 30), 'm' => (v[..^1], 20), _ => (v, 0) };
        return long.TryParse(digits, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n << shift : throw new ArgumentException($"--zk-heap: a size such as 6g or 4096m, or auto; not '{value}'");
    }
}
