// In-process path vs TCP to the same embedded member (issue 21, scope 3): one ActorSystem embeds a standalone member
// with a client port on loopback; the same Task API client runs each shape once over TCP and once in process,
// alternating, for --rounds rounds. setData and getData of 100-byte values on --znodes znodes.
//   dotnet run -c Release --project benchmarks/Coordination.InProcess -- --duration 3 --rounds 3 --sessions 8 --inflight 16 [--fsync on]

using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Client;
using Coordination.Server;

string Arg(string name, string fallback) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
var duration = TimeSpan.FromSeconds(double.Parse(Arg("--duration", "3"), System.Globalization.CultureInfo.InvariantCulture));
var rounds = int.Parse(Arg("--rounds", "3"));
var sessions = int.Parse(Arg("--sessions", "8"));
var inflight = int.Parse(Arg("--inflight", "16"));
var fsync = Arg("--fsync", "on");
const int Znodes = 100;
const string Root = "/inprocess-bench";

var dataDir = Path.Combine(Path.GetTempPath(), "inprocess-bench-" + Guid.NewGuid().ToString("N")[..8]);
using var system = ActorSystem.Create("app", "akka.loglevel = WARNING");
var server = CoordinationServer.StartEmbedded(system, ConfigurationFactory.ParseString($$"""
    coordination {
      data-dir = "{{dataDir}}"
      client-port = 0
      persistence.force-sync = {{fsync}}
    }
    """));
var tcp = new CoordinationClientOptions { ConnectString = $"127.0.0.1:{server.ClientPort}" };
var inProcess = tcp with { Connector = _ => ValueTask.FromResult(server.ConnectInProcess()) };
Console.WriteLine($"embedded standalone member, fsync {fsync}; {rounds} rounds of {duration.TotalSeconds} s per row and path, alternating; " +
                  $"Environment.ProcessorCount = {Environment.ProcessorCount}");

await using (var setup = await CoordinationClient.ConnectAsync(tcp))
{
    for (var i = 0; i < Znodes; i++)
        try { await setup.CreateRecursiveAsync($"{Root}/n{i}", new byte[100]); } catch (NodeExistsException) { }
}

var value = new byte[100];
var rows = new (string Name, int Sessions, int Inflight, Func<CoordinationClient, int, Task> Op)[]
{
    ("setData 1x1", 1, 1, (c, n) => c.SetDataAsync($"{Root}/n{n % Znodes}", value)),
    ("getData 1x1", 1, 1, (c, n) => c.GetDataAsync($"{Root}/n{n % Znodes}")),
    ($"setData {sessions}x{inflight}", sessions, inflight, (c, n) => c.SetDataAsync($"{Root}/n{n % Znodes}", value)),
    ($"getData {sessions}x{inflight}", sessions, inflight, (c, n) => c.GetDataAsync($"{Root}/n{n % Znodes}")),
};
Console.WriteLine();
Console.WriteLine("| row | path | ops/s (median) | p50 µs | p99 µs | process CPU ms per 1k ops |");
Console.WriteLine("|---|---|---|---|---|---|");
foreach (var row in rows)
{
    var results = new Dictionary<string, List<Result>> { ["tcp"] = new(), ["in-process"] = new() };
    await MeasureAsync(row, tcp, TimeSpan.FromSeconds(1)); // warm-up of both paths
    await MeasureAsync(row, inProcess, TimeSpan.FromSeconds(1));
    for (var r = 0; r < rounds; r++)
    {
        results["tcp"].Add(await MeasureAsync(row, tcp, duration));
        results["in-process"].Add(await MeasureAsync(row, inProcess, duration));
    }
    foreach (var (path, list) in results)
    {
        var m = list.OrderBy(x => x.OpsPerSecond).ElementAt(list.Count / 2);
        Console.WriteLine($"| {row.Name} | {path} | {m.OpsPerSecond:N0} | {m.P50:N0} | {m.P99:N0} | {m.CpuPerThousand:F1} |");
    }
}

await server.DisposeAsync();
await system.Terminate();
try { Directory.Delete(dataDir, recursive: true); } catch { }

static async Task<Result> MeasureAsync((string Name, int Sessions, int Inflight, Func<CoordinationClient, int, Task> Op) row, CoordinationClientOptions options, TimeSpan duration)
{
    var clients = await Task.WhenAll(Enumerable.Range(0, row.Sessions).Select(_ => CoordinationClient.ConnectAsync(options)));
    var latencies = new List<double>[row.Sessions * row.Inflight];
    var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var started = Stopwatch.GetTimestamp();
    await Task.WhenAll(Enumerable.Range(0, row.Sessions * row.Inflight).Select(async loop =>
    {
        var mine = latencies[loop] = new List<double>(4096);
        var client = clients[loop / row.Inflight];
        for (var n = loop; Stopwatch.GetTimestamp() < stopAt; n += 7)
        {
            var t = Stopwatch.GetTimestamp();
            await row.Op(client, n);
            mine.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
        }
    }));
    var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
    var cpuMs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds;
    foreach (var c in clients) await c.DisposeAsync();
    var all = latencies.SelectMany(l => l).OrderBy(x => x).ToArray();
    return new Result(all.Length / elapsed, all[all.Length / 2], all[(int)(all.Length * 0.99)], cpuMs / all.Length * 1000);
}

internal readonly record struct Result(double OpsPerSecond, double P50, double P99, double CpuPerThousand);
