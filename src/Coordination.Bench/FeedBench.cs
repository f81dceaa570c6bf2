using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// <c>feed [--launch ours | --connect host:port] [--subscribers 1,100] [--seconds 10] [--inflight 64] [--size 100]</c>:
/// the change feed's throughput and lag. For each subscriber count, that many connections subscribe to /feedbench
/// from the current zxid while one writer pipelines setData on /feedbench for the given time; the figures are the
/// changes delivered per second (over all subscribers), and the lag of each delivery behind the writer's reply for
/// that write (its commit as a client sees it; 0 when the change arrived first), p50 and p99.
/// </summary>
public static class FeedBench
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        string Arg(string name, string fallback) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        var counts = Arg("--subscribers", "1,100").Split(',').Select(int.Parse).ToArray();
        var seconds = double.Parse(Arg("--seconds", "10"), System.Globalization.CultureInfo.InvariantCulture);
        var inflight = int.Parse(Arg("--inflight", "64"));
        var size = int.Parse(Arg("--size", "100"));
        ServerProcess? launched = null;
        var connect = Arg("--connect", "");
        if (connect.Length == 0)
        {
            launched = await ServerProcess.StartAsync(Arg("--launch", "ours"), new ServerProcessOptions(), ct);
            connect = launched.ConnectString;
            await stdout.WriteLineAsync($"launched {launched}");
        }
        try
        {
            await stdout.WriteLineAsync("subscribers  writes/s  changes delivered/s  lag p50 ms  lag p99 ms  lag max ms");
            foreach (var n in counts) await stdout.WriteLineAsync(await RunOnceAsync(connect, n, seconds, inflight, size, ct));
            return 0;
        }
        finally
        {
            if (launched is not null) await launched.DisposeAsync();
        }
    }

    private static async Task<string> RunOnceAsync(string connect, int subscribers, double seconds, int inflight, int size, CancellationToken ct)
    {
        await using var writer = await WireClient.ConnectAsync(connect, new WireClientOptions { EventChannel = false });
        await writer.CreateAsync("/feedbench", null).OkAsync(ErrorCode.NodeExists);
        var start = writer.LastZxid;
        var clients = new List<WireClient>();
        var arrivals = new List<(long Zxid, long Ticks)>[subscribers];
        var readers = new List<Task>();
        for (var i = 0; i < subscribers; i++)
        {
            var c = await WireClient.ConnectAsync(connect, new WireClientOptions { EventChannel = false });
            clients.Add(c);
            await c.WatchChangesAsync("/feedbench", start).OkAsync();
            var mine = arrivals[i] = new List<(long, long)>(1 << 16);
            readers.Add(Task.Run(async () =>
            {
                await foreach (var frame in c.Changes.ReadAllAsync(CancellationToken.None))
                    lock (mine) mine.Add((frame.Zxid, Stopwatch.GetTimestamp()));
            }));
        }

        var replies = new System.Collections.Concurrent.ConcurrentDictionary<long, long>();
        var data = new byte[size];
        var window = new SemaphoreSlim(inflight);
        var clock = Stopwatch.StartNew();
        var writes = 0;
        while (clock.Elapsed.TotalSeconds < seconds && !ct.IsCancellationRequested)
        {
            await window.WaitAsync(ct);
            writer.Send(OpCode.SetData, new SetDataRequest("/feedbench", data, -1), (header, _, _, _, _) =>
            {
                replies[header.Zxid] = Stopwatch.GetTimestamp();
                window.Release();
            });
            writes++;
        }
        for (var i = 0; i < inflight; i++) await window.WaitAsync(ct);
        var elapsed = clock.Elapsed.TotalSeconds;
        var last = writer.LastZxid;
        // Every subscriber must get every write: wait (bounded) for the last one, then stop reading.
        var drain = Stopwatch.StartNew();
        while (arrivals.Any(a => { lock (a) return a.Count == 0 || a[^1].Zxid < last; }) && drain.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(20, ct);
        var delivered = clock.Elapsed.TotalSeconds;
        foreach (var c in clients) await c.DisposeAsync();
        await Task.WhenAll(readers);

        var lag = new LatencyHistogram();
        long total = 0;
        foreach (var list in arrivals)
            foreach (var (zxid, ticks) in list)
            {
                total++;
                if (replies.TryGetValue(zxid, out var replied))
                    lag.Record(Math.Max(0, (long)((ticks - replied) * 1e9 / Stopwatch.Frequency)));
            }
        var complete = total == (long)writes * subscribers ? "" : $"  (INCOMPLETE: {total} of {(long)writes * subscribers})";
        return $"{subscribers,11}  {writes / elapsed,8:F0}  {total / delivered,19:F0}  {lag.Percentile(0.5) / 1e6,10:F2}  {lag.Percentile(0.99) / 1e6,10:F2}  {lag.Max / 1e6,10:F2}{complete}";
    }
}
