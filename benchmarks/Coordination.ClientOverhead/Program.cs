// Client overhead: getData ops/s (100-byte values) through the Task API and through the Akka actor proxy, against the
// same server and with the same shape (sessions x in-flight requests per session) as the raw load generator:
//   dotnet run -c Release --project benchmarks/Coordination.ClientOverhead -- --connect 127.0.0.1:2181 --sessions 4 --inflight 16 --duration 5
//   dotnet run -c Release --project src/Coordination.Bench -- --connect 127.0.0.1:2181 --sessions 4 --inflight 16 --op get --duration 5s
// (--launch ours starts a server on a free port instead of --connect.)

using System.Diagnostics;
using Akka.Actor;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.TestKit;

string Arg(string name, string fallback) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
var sessions = int.Parse(Arg("--sessions", "4"));
var inflight = int.Parse(Arg("--inflight", "16"));
var duration = TimeSpan.FromSeconds(double.Parse(Arg("--duration", "5"), System.Globalization.CultureInfo.InvariantCulture));
var warmup = TimeSpan.FromSeconds(double.Parse(Arg("--warmup", "2"), System.Globalization.CultureInfo.InvariantCulture));
const int Znodes = 100;
const string Root = "/client-overhead";

await using var launched = Arg("--launch", "") is { Length: > 0 } kind ? await ServerProcess.StartAsync(kind) : null;
var connect = launched?.ConnectString ?? Arg("--connect", "127.0.0.1:2181");
Console.WriteLine($"client overhead against {connect}: {sessions} sessions x {inflight} in flight, getData of {Znodes} znodes (100 B), warmup {warmup.TotalSeconds} s, {duration.TotalSeconds} s measured");

await using (var setup = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = connect }))
{
    for (var i = 0; i < Znodes; i++)
    {
        try { await setup.CreateRecursiveAsync($"{Root}/n{i}", new byte[100]); } catch (NodeExistsException) { }
    }
}

// Task API: one client per session, `inflight` loops each awaiting GetDataAsync.
var clients = await Task.WhenAll(Enumerable.Range(0, sessions).Select(_ => CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = connect })));
var taskRate = await MeasureAsync("Task API", (session, loop, n) => clients[session].GetDataAsync($"{Root}/n{(loop * 7 + n) % Znodes}"));
foreach (var c in clients) await c.DisposeAsync();

// Actor proxy: one proxy (own client and session) per session, `inflight` loops each Asking GetData.
using var system = ActorSystem.Create("overhead", "akka.loglevel = WARNING");
var settings = new CoordinationClientSettings { ConnectString = connect, MaxInFlight = inflight * 2 };
var proxies = Enumerable.Range(0, sessions).Select(i => system.ActorOf(CoordinationProxy.Props(settings with { ProxyName = $"p{i}" }), $"proxy-{i}")).ToArray();
foreach (var proxy in proxies) await proxy.Ask<NodeStat>(new Exists(Root), TimeSpan.FromSeconds(20)); // connected
var proxyRate = await MeasureAsync("actor proxy (Ask)", (session, loop, n) => proxies[session].Ask<NodeData>(new GetData($"{Root}/n{(loop * 7 + n) % Znodes}"), TimeSpan.FromSeconds(10)));
await system.Terminate();

Console.WriteLine();
Console.WriteLine($"| path | getData ops/s |");
Console.WriteLine($"|---|---|");
Console.WriteLine($"| Task API (CoordinationClient) | {taskRate:N0} |");
Console.WriteLine($"| actor proxy (Ask per request) | {proxyRate:N0} |");
Console.WriteLine($"proxy / Task API = {proxyRate / taskRate:P0}");

async Task<double> MeasureAsync(string name, Func<int, int, int, Task> op)
{
    long completed = 0;
    var measuring = false;
    using var stop = new CancellationTokenSource();
    var loops = Enumerable.Range(0, sessions).SelectMany(s => Enumerable.Range(0, inflight).Select(l => Task.Run(async () =>
    {
        for (var n = 0; !stop.IsCancellationRequested; n++)
        {
            await op(s, l, n);
            if (Volatile.Read(ref measuring)) Interlocked.Increment(ref completed);
        }
    }))).ToList();
    await Task.Delay(warmup);
    Volatile.Write(ref measuring, true);
    var clock = Stopwatch.StartNew();
    await Task.Delay(duration);
    var count = Interlocked.Read(ref completed);
    var elapsed = clock.Elapsed.TotalSeconds;
    stop.Cancel();
    await Task.WhenAll(loops);
    var rate = count / elapsed;
    Console.WriteLine($"{name}: {count:N0} ops in {elapsed:F1} s = {rate:N0} ops/s");
    return rate;
}
