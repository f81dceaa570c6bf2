using System.Diagnostics;
using System.Net.Sockets;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Invariant 10 as a whole (issue 16's acceptance): every kind of abusive client at once against a server that 20
/// well-behaved sessions are using. The abusers are cut off, the memory the server holds (its RSS less the GC's free
/// committed space) and its RSS stay under their bounds, and the good sessions' p99 stays within 3x of their p99
/// without the abusers (or under a 20 ms scheduling floor), measured in the same test: the unloaded samples
/// come from a window before and one after the abuse, so that a change in the machine's other load during the test
/// (it is shared) weighs on both figures alike. Each abuser comes from its own loopback address, so that the
/// per-address connection limit applies to each on its own.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class AbuseTests(ITestOutputHelper output)
{
    private const int GoodSessions = 20;
    /// <summary>Each of the two unloaded windows (before and after the abuse).</summary>
    private static readonly TimeSpan Unloaded = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan UnderAbuse = TimeSpan.FromSeconds(20);
    /// <summary>Each good session sends one request per period (paced, so that the latency is service time, not queueing behind itself).</summary>
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(10);
    /// <summary>
    /// How far the memory the server holds may grow over what it held before the abuse: its RSS less what its GC has
    /// committed without live objects in it (<see cref="Held"/>). Queues, buffers and sessions kept per abusive client
    /// are in it, managed (the live heap grows) or native (the RSS grows beside the GC's committed bytes).
    /// </summary>
    private const long HeldGrowthBound = 256L << 20;
    /// <summary>
    /// How far the RSS itself may grow. Above the held memory it has the GC's free committed space, which under a
    /// burst of large allocations on a loaded machine was measured at up to ~265 MiB: bounded by the GC, not by us.
    /// </summary>
    private const long RssGrowthBound = 512L << 20;
    /// <summary>
    /// Below this a p99 under abuse passes whatever the unloaded one was: on 2 cores the abusers' own clients (in this
    /// process) and the server's work of cutting them off share the cores with the good sessions, so a p99 of a few
    /// ms is the kernel's scheduling period, not the server starving anyone (CI, two assemblies at once: p50 0.74 ms
    /// unchanged, p99 2.2 -> 8.1 ms). A starved session shows tens to hundreds of ms.
    /// </summary>
    private const double SchedulingFloorMs = 20;

    [Fact]
    public async Task Abusive_clients_are_cut_off_while_good_sessions_keep_their_latency()
    {
        ResourceLimits.EnsureOpenFiles(8192);
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            // The production defaults (ServerProcess lifts the per-address limit for other tests).
            // The flood holds raw sessions that never ping: long timeouts, so that none expires (and frees its slot) mid-test.
            ExtraHocon = "coordination { max-client-connections = 60, max-session-timeout = 180s }",
        });
        await Targets.WithServerOutputOnFailure(server, output, () => RunAsync(server));
    }

    private async Task RunAsync(ServerProcess server)
    {
        await using (var setup = await WireClient.ConnectAsync(server.ConnectString))
        {
            await setup.CreateAsync("/big", new byte[1_000_000]).OkAsync();
            for (var i = 0; i < GoodSessions; i++) await setup.CreateAsync($"/good{i}", new byte[100]).OkAsync();
        }
        var good = await Task.WhenAll(Enumerable.Range(0, GoodSessions).Select(_ => WireClient.ConnectAsync(server.ConnectString)));
        try
        {
            // Warm up, then the unloaded figure.
            await MeasureAsync(good, TimeSpan.FromSeconds(2), CancellationToken.None);
            var before = await MeasureAsync(good, Unloaded, CancellationToken.None);
            var rssBefore = server.RssBytes;
            var heldBefore = Held(rssBefore, await FourLetterWord.MntrAsync(server.Host, server.Port));
            output.WriteLine($"unloaded before: {before.Count} requests, p50 {Percentile(before, 0.50):F2} ms, p99 {Percentile(before, 0.99):F2} ms; RSS {ProcStats.FormatBytes(rssBefore)}, {heldBefore.Describe()}");

            using var stop = new CancellationTokenSource();
            var rssMax = 0L;
            // What the RSS peak is made of, for a failure to explain itself: the server's managed heap and what its GC
            // has committed (mntr), and its queued and outstanding work, sampled every 500 ms next to the RSS.
            var heapMax = 0.0;
            var atPeak = "";
            var heldMax = heldBefore;
            var sampler = Task.Run(async () =>
            {
                var nextMntr = Stopwatch.StartNew();
                while (!stop.IsCancellationRequested)
                {
                    var rss = server.RssBytes;
                    if (nextMntr.Elapsed >= TimeSpan.FromMilliseconds(500))
                    {
                        nextMntr.Restart();
                        try
                        {
                            var m = await FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(2), stop.Token);
                            var heap = m.Number("zk_heap_used_bytes") ?? 0;
                            heapMax = Math.Max(heapMax, heap);
                            var held = Held(rss, m);
                            if (held.Bytes > heldMax.Bytes) heldMax = held;
                            if (rss >= rssMax)
                                atPeak = $"RSS {ProcStats.FormatBytes(rss)}, managed heap {ProcStats.FormatBytes((long)heap)}, {held.Describe()}, " +
                                         $"outstanding {m.GetValueOrDefault("zk_outstanding_requests")}, connections {m.GetValueOrDefault("zk_num_alive_connections")}";
                        }
                        catch (Exception e) when (e is not OperationCanceledException) { /* a refused 4lw during the flood: next time */ }
                        catch (OperationCanceledException) { }
                    }
                    rssMax = Math.Max(rssMax, rss);
                    try { await Task.Delay(100, stop.Token); } catch (OperationCanceledException) { }
                }
            });
            // ABUSE_ONLY=reads|handshake|flood|multiread|setwatches runs one abuser, to see what each costs the good sessions.
            var only = Environment.GetEnvironmentVariable("ABUSE_ONLY") ?? "";
            var abusers = new List<Task<Outcome>>();
            if (only is "" or "reads") abusers.Add(NeverReadsAsync(server.Port, stop.Token));
            if (only is "" or "handshake") abusers.Add(NeverHandshakesAsync(server.Port));
            if (only is "" or "flood") abusers.Add(FloodAsync(server.Port, stop.Token));
            if (only is "" or "multiread") abusers.Add(MultiReadAmplificationAsync(server.Port, stop.Token));
            if (only is "" or "setwatches") abusers.Add(SetWatchesAmplificationAsync(server.Port, stop.Token));
            var loaded = await MeasureAsync(good, UnderAbuse, CancellationToken.None);
            stop.Cancel();
            var outcomes = await Task.WhenAll(abusers);
            await sampler;
            var after = await MeasureAsync(good, Unloaded, CancellationToken.None);
            output.WriteLine($"unloaded after: {after.Count} requests, p50 {Percentile(after, 0.50):F2} ms, p99 {Percentile(after, 0.99):F2} ms");
            var unloaded = before.Concat(after).ToList();

            foreach (var line in outcomes) output.WriteLine(line.Report);
            var (p99Unloaded, p99Loaded) = (Percentile(unloaded, 0.99), Percentile(loaded, 0.99));
            output.WriteLine($"under abuse: {loaded.Count} requests, p50 {Percentile(loaded, 0.50):F2} ms, p99 {p99Loaded:F2} ms " +
                             $"({p99Loaded / p99Unloaded:F2}x unloaded); RSS max {ProcStats.FormatBytes(rssMax)} (+{ProcStats.FormatBytes(rssMax - rssBefore)}); " +
                             $"managed heap max {ProcStats.FormatBytes((long)heapMax)}; near the RSS peak: {atPeak}; " +
                             $"held by the server at most {ProcStats.FormatBytes(heldMax.Bytes)} (+{ProcStats.FormatBytes(heldMax.Bytes - heldBefore.Bytes)}: {heldMax.Describe()})");
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            foreach (var key in mntr.Keys.Where(k => k is "zk_connection_rejected" or "zk_sessionless_connections_expired" or "zk_connections_dropped_queue_full"
                         or "zk_connections_dropped_flush_timeout" or "zk_request_throttle_wait_count" or "zk_large_responses_rejected" or "zk_num_alive_connections"))
                output.WriteLine($"{key} {mntr[key]}");

            foreach (var outcome in outcomes) Assert.True(outcome.CutOff, outcome.Report);
            Assert.True(heldMax.Bytes - heldBefore.Bytes < HeldGrowthBound,
                $"the memory the server holds grew by {ProcStats.FormatBytes(heldMax.Bytes - heldBefore.Bytes)} under abuse (bound {ProcStats.FormatBytes(HeldGrowthBound)}): " +
                $"{heldMax.Describe()}, before {heldBefore.Describe()}; RSS grew by {ProcStats.FormatBytes(rssMax - rssBefore)}; near the RSS peak: {atPeak}");
            Assert.True(rssMax - rssBefore < RssGrowthBound, $"RSS grew by {ProcStats.FormatBytes(rssMax - rssBefore)} under abuse (bound {ProcStats.FormatBytes(RssGrowthBound)}); managed heap max {ProcStats.FormatBytes((long)heapMax)}; near the RSS peak: {atPeak}");
            Assert.True(p99Loaded <= Math.Max(3 * p99Unloaded, SchedulingFloorMs),
                $"good sessions' p99 {p99Loaded:F2} ms under abuse, more than 3x the unloaded {p99Unloaded:F2} ms and more than {SchedulingFloorMs} ms");
            // The good sessions were never disturbed: every one of their requests succeeded (MeasureAsync checks each).
        }
        finally
        {
            foreach (var c in good) await c.DisposeAsync();
        }
    }

    /// <summary>Every good session reads its own node once per <see cref="Pace"/> for <paramref name="duration"/>; latencies in ms.</summary>
    private static async Task<List<double>> MeasureAsync(WireClient[] sessions, TimeSpan duration, CancellationToken ct)
    {
        var all = await Task.WhenAll(sessions.Select((c, i) => Task.Run(async () =>
        {
            var latencies = new List<double>();
            var clock = Stopwatch.StartNew();
            var next = TimeSpan.Zero;
            while (clock.Elapsed < duration && !ct.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                var (header, _) = await c.GetDataAsync($"/good{i}");
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"a good session's getData failed with {header.Err}");
                next += Pace;
                var wait = next - clock.Elapsed;
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
                else next = clock.Elapsed;   // fell behind: do not burst to catch up
            }
            return latencies;
        })));
        return all.SelectMany(l => l).ToList();
    }

    /// <summary>The server's memory less the GC's free committed space, from one mntr and the RSS read beside it.</summary>
    private sealed record HeldMemory(long Bytes, long Rss, long Committed, long HeapAtLastGc, long Fragmented)
    {
        public string Describe() =>
            $"held {ProcStats.FormatBytes(Bytes)} = RSS {ProcStats.FormatBytes(Rss)} - (GC committed {ProcStats.FormatBytes(Committed)} - " +
            $"live heap at its last GC {ProcStats.FormatBytes(HeapAtLastGc - Fragmented)}); outside the GC {ProcStats.FormatBytes(Rss - Committed)}";
    }

    private static HeldMemory Held(long rss, IReadOnlyDictionary<string, string> mntr)
    {
        long Key(string name) => (long)(mntr.Number(name) ?? throw new InvalidOperationException($"mntr has no {name}"));
        var (committed, heap, fragmented) = (Key("zk_gc_committed_bytes"), Key("zk_gc_heap_size_bytes"), Key("zk_gc_fragmented_bytes"));
        return new HeldMemory(rss - Math.Max(0, committed - (heap - fragmented)), rss, committed, heap, fragmented);
    }

    private static double Percentile(List<double> values, double q)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
    }

    private sealed record Outcome(bool CutOff, string Report);

    /// <summary>Five sessions that ask for the 1 MB node again and again and read nothing.</summary>
    private static async Task<Outcome> NeverReadsAsync(int port, CancellationToken stop)
    {
        var getBig = WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/big", false));
        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(async _ =>
        {
            using var socket = await Abuse.ConnectFromAsync("127.0.0.2", port);
            if (!await Abuse.HandshakeAsync(socket, TimeSpan.FromSeconds(10))) return false;
            var sending = Task.Run(async () => { while (!stop.IsCancellationRequested && await Abuse.TrySendAsync(socket, getBig)) { } });
            var closed = await Abuse.ClosedByServerAsync(socket, UnderAbuse, readNothing: true);
            socket.Dispose();
            await sending;
            return closed;
        }));
        return new Outcome(results.All(c => c), $"never-reads: {results.Count(c => c)} of 5 disconnected by the server");
    }

    /// <summary>Fifty connections that never send their handshake.</summary>
    private static async Task<Outcome> NeverHandshakesAsync(int port)
    {
        var sockets = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Abuse.ConnectFromAsync("127.0.0.3", port)));
        var closed = await Task.WhenAll(sockets.Select(s => Abuse.ClosedByServerAsync(s, UnderAbuse - TimeSpan.FromSeconds(2))));
        foreach (var s in sockets) s.Dispose();
        return new Outcome(closed.All(c => c), $"never-handshakes: {closed.Count(c => c)} of 50 closed by the server");
    }

    /// <summary>1,000 connections from one address, 400 a second, each asking for a session; the granted ones are held.</summary>
    private static async Task<Outcome> FloodAsync(int port, CancellationToken stop)
    {
        var held = new List<Socket>();
        int attempts = 0, granted = 0;
        try
        {
            while (attempts < 1000 && !stop.IsCancellationRequested)
            {
                // 20 connects every 50 ms (400 a second): far past the limit, without the test process itself
                // (which also measures the good sessions) spending its cores on the flood.
                var paced = Task.Delay(50);
                var batch = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Abuse.TryConnectFromAsync("127.0.0.4", port)));
                var sessions = await Task.WhenAll(batch.Select(s => s is null ? Task.FromResult(false) : Abuse.HandshakeAsync(s, TimeSpan.FromSeconds(2), sessionTimeoutMs: 180_000)));
                attempts += batch.Length;
                for (var i = 0; i < batch.Length; i++)
                {
                    if (sessions[i]) { granted++; held.Add(batch[i]!); }
                    else batch[i]?.Dispose();
                }
                await paced;
            }
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
        return new Outcome(granted <= 60 && attempts > 60, $"flood: {granted} of {attempts} connections got a session (limit 60)");
    }

    /// <summary>multiRead of 1000 x the 1 MB node (a 1 GB response), pipelined, reading the replies.</summary>
    private static async Task<Outcome> MultiReadAmplificationAsync(int port, CancellationToken stop)
    {
        var ops = Enumerable.Range(0, 1000).Select(_ => new MultiOp(OpCode.GetData, new PathWatchRequest("/big", false))).ToList();
        var request = WireFrames.Request(7, OpCode.MultiRead, new MultiRequest(ops));
        using var socket = await Abuse.ConnectFromAsync("127.0.0.5", port);
        if (!await Abuse.HandshakeAsync(socket, TimeSpan.FromSeconds(10))) return new Outcome(false, "multiRead: no session");
        int sent = 0, refused = 0, other = 0;
        var reading = Task.Run(async () =>
        {
            while (await Abuse.ReadFrameAsync(socket, CancellationToken.None) is { } frame)
            {
                var r = new JuteReader(frame);
                var header = ReplyHeader.Read(ref r);
                if (header.Err == ErrorCode.MarshallingError) Interlocked.Increment(ref refused);
                else Interlocked.Increment(ref other);
            }
        });
        while (!stop.IsCancellationRequested && sent < 2000 && await Abuse.TrySendAsync(socket, request)) sent++;
        await Task.Delay(500);
        socket.Dispose();
        try { await reading; } catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException) { }
        return new Outcome(refused > 0 && other == 0, $"multiRead amplification: {sent} sent, {refused} refused with MarshallingError, {other} other replies");
    }

    /// <summary>setWatches with ~8,000 paths that no longer exist (each fires an event at once), repeated, reading nothing.</summary>
    private static async Task<Outcome> SetWatchesAmplificationAsync(int port, CancellationToken stop)
    {
        var paths = Enumerable.Range(0, 8000).Select(i => $"/gone/{i:D6}-{new string('x', 110)}").ToList();
        var request = WireFrames.Request(9, OpCode.SetWatches, new SetWatchesRequest(0, paths, [], [], [], [], false));
        using var socket = await Abuse.ConnectFromAsync("127.0.0.6", port);
        if (!await Abuse.HandshakeAsync(socket, TimeSpan.FromSeconds(10))) return new Outcome(false, "setWatches: no session");
        var sent = 0;
        var sending = Task.Run(async () => { while (!stop.IsCancellationRequested && await Abuse.TrySendAsync(socket, request)) sent++; });
        var closed = await Abuse.ClosedByServerAsync(socket, UnderAbuse, readNothing: true);
        socket.Dispose();
        await sending;
        return new Outcome(closed, $"setWatches amplification: {sent} requests of {request.Length >> 10} KiB sent, disconnected {closed}");
    }
}
