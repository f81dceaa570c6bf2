using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Scale: 100,000 znodes (multi batches, pipelined), 1,000 concurrent sessions, 10,000 data watches (5,000 nodes
/// watched by two sessions each); every watch fires exactly once when its node changes, and not again on a second
/// change. mntr must report the totals; the server's RSS is printed for the notes.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class ScaleTests(ITestOutputHelper output)
{
    private const int Dirs = 100;
    private const int PerDir = 1000;
    private const int Znodes = Dirs * PerDir;
    private const int Sessions = 1000;
    private const int WatchesPerSession = 10;
    private const int WatchedNodes = Sessions / 2 * WatchesPerSession; // 5,000, each watched by two sessions
    private const int BatchSize = 200;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(90);

    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Hundred_thousand_znodes_thousand_sessions_ten_thousand_watches(string target)
    {
        var limit = ResourceLimits.EnsureOpenFiles(8192);
        output.WriteLine($"open-files limit {limit}");
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, () => RunAsync(server));
    }

    private static string Dir(int d) => $"/scale/d{d:D3}";
    private static string Node(int i) => $"{Dir(i / PerDir)}/n{i % PerDir:D4}";
    /// <summary>The k-th watched node (k &lt; 5,000), spread over all directories.</summary>
    private static string WatchedNode(int k) => Node(k * (Znodes / WatchedNodes));

    private async Task RunAsync(ServerProcess server)
    {
        var total = Stopwatch.StartNew();
        var phase = Stopwatch.StartNew();
        void Phase(string what)
        {
            output.WriteLine($"[{total.Elapsed.TotalSeconds,5:F1}s] {what} in {phase.Elapsed.TotalSeconds:F1} s; server RSS {ProcStats.FormatBytes(server.RssBytes)}");
            phase.Restart();
        }

        // 1. 100,000 znodes: multis of 200 creates, 4 loader sessions, 8 multis in flight each.
        var loaders = new WireClient[4];
        for (var i = 0; i < loaders.Length; i++) loaders[i] = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { EventChannel = false });
        await loaders[0].CreateAsync("/scale", null).OkAsync();
        var dirOps = Enumerable.Range(0, Dirs).Select(d => new MultiOp(OpCode.Create, new CreateRequest(Dir(d), null, Acl.OpenAclUnsafe, 0))).ToArray();
        await CheckMulti(loaders[0].MultiAsync(dirOps), "create directories");
        var value = new byte[32];
        var batches = Znodes / BatchSize;
        await Task.WhenAll(loaders.Select(async (loader, li) =>
        {
            using var gate = new SemaphoreSlim(8);
            var pending = new List<Task>();
            for (var b = li; b < batches; b += loaders.Length)
            {
                await gate.WaitAsync();
                var ops = Enumerable.Range(b * BatchSize, BatchSize)
                    .Select(i => new MultiOp(OpCode.Create, new CreateRequest(Node(i), value, Acl.OpenAclUnsafe, 0))).ToArray();
                var batch = b;
                pending.Add(CheckMulti(loader.MultiAsync(ops), $"batch {batch}").ContinueWith(t => { gate.Release(); return t; }).Unwrap());
            }
            await Task.WhenAll(pending);
        })).WaitAsync(Budget);
        Phase($"created {Znodes:N0} znodes in {batches} multis");

        // 2. 1,000 sessions, connected 50 at a time; each counts the events it receives.
        var events = new List<WatchNotification>[Sessions];
        var eventTotal = 0;
        var allFired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clients = new WireClient[Sessions];
        using (var gate = new SemaphoreSlim(50))
        {
            await Task.WhenAll(Enumerable.Range(0, Sessions).Select(async s =>
            {
                await gate.WaitAsync();
                try
                {
                    var list = events[s] = new List<WatchNotification>();
                    clients[s] = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions
                    {
                        SessionTimeoutMs = 30_000,
                        EventChannel = false,
                        ParseResponses = true,
                        OnEvent = n =>
                        {
                            lock (list) list.Add(n);
                            if (Interlocked.Increment(ref eventTotal) == Sessions * WatchesPerSession) allFired.TrySetResult();
                        },
                    });
                }
                finally { gate.Release(); }
            })).WaitAsync(Budget);
        }
        Phase($"connected {Sessions:N0} sessions");

        // 3. 10,000 data watches: session s watches nodes (s % 500) * 10 + j, j < 10.
        string[] WatchesOf(int s) => Enumerable.Range(0, WatchesPerSession).Select(j => WatchedNode(s % (Sessions / 2) * WatchesPerSession + j)).ToArray();
        using (var gate = new SemaphoreSlim(100))
        {
            await Task.WhenAll(Enumerable.Range(0, Sessions).Select(async s =>
            {
                await gate.WaitAsync();
                try
                {
                    var replies = await Task.WhenAll(WatchesOf(s).Select(p => clients[s].GetDataAsync(p, watch: true)));
                    foreach (var (h, _) in replies)
                        if (h.Err != ErrorCode.Ok) throw new InvalidOperationException($"session {s}: getData -> {h.Err}");
                }
                finally { gate.Release(); }
            })).WaitAsync(Budget);
        }
        Phase($"set {Sessions * WatchesPerSession:N0} watches on {WatchedNodes:N0} nodes");

        // 4. mntr reports the totals.
        var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
        var summary = string.Join(", ", new[] { "zk_znode_count", "zk_num_alive_connections", "zk_watch_count", "zk_global_sessions", "zk_approximate_data_size" }
            .Select(k => $"{k}={mntr.GetValueOrDefault(k, "?")}"));
        output.WriteLine($"mntr: {summary}");
        Assert.True(mntr.Number("zk_znode_count") >= Znodes, $"zk_znode_count: {summary}");
        Assert.True(mntr.Number("zk_num_alive_connections") >= Sessions, $"zk_num_alive_connections: {summary}");
        Assert.True(mntr.Number("zk_watch_count") >= Sessions * WatchesPerSession, $"zk_watch_count: {summary}");

        // 5. Change every watched node once: each of the 10,000 watches fires exactly once.
        var writer = loaders[0];
        await SetAll(writer, value);
        await allFired.Task.WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }); // checked below
        Phase($"changed {WatchedNodes:N0} nodes; {Volatile.Read(ref eventTotal):N0} events delivered");

        // 6. Change them again: one-shot watches must not fire a second time. A round trip on every session after
        //    the writes orders any (wrong) second event before its reply.
        await SetAll(writer, value);
        using (var gate = new SemaphoreSlim(100))
        {
            await Task.WhenAll(Enumerable.Range(0, Sessions).Select(async s =>
            {
                await gate.WaitAsync();
                try { await clients[s].ExistsAsync("/scale").OkAsync(); }
                finally { gate.Release(); }
            })).WaitAsync(Budget);
        }
        Phase("changed them again and synced every session");

        var problems = new List<string>();
        for (var s = 0; s < Sessions; s++)
        {
            List<WatchNotification> got;
            lock (events[s]) got = events[s].ToList();
            var expected = WatchesOf(s).ToHashSet();
            var paths = got.Select(e => e.Event.Path).ToList();
            if (got.Count != WatchesPerSession || !paths.ToHashSet().SetEquals(expected) || got.Any(e => e.Event.Type != EventType.NodeDataChanged))
                problems.Add($"session {s}: {got.Count} events [{string.Join(", ", got.Take(12).Select(e => $"{e.Event.Type} {e.Event.Path}"))}], expected one NodeDataChanged on each of {WatchesPerSession} nodes");
            if (!clients[s].IsConnected) problems.Add($"session {s}: connection lost");
        }
        output.WriteLine($"events: {Volatile.Read(ref eventTotal):N0} delivered for {Sessions * WatchesPerSession:N0} watches");
        var rss = server.RssBytes;
        var cpu = server.CpuTime;
        output.WriteLine($"SERVER RSS at scale ({server.Kind}): {ProcStats.FormatBytes(rss)} ({rss:N0} bytes) with {Znodes:N0} znodes, {Sessions:N0} sessions, " +
                         $"{Sessions * WatchesPerSession:N0} watches; server CPU so far {cpu?.TotalSeconds:F1} s; open fds {server.OpenFiles}");
        output.WriteLine($"test process RSS {ProcStats.FormatBytes(ProcStats.ReadRssBytes(Environment.ProcessId))}; total {total.Elapsed.TotalSeconds:F1} s");
        Assert.True(problems.Count == 0, $"{problems.Count} sessions saw the wrong events:\n" + string.Join("\n", problems.Take(20)));
        Assert.True(total.Elapsed < Budget + TimeSpan.FromSeconds(30), $"took {total.Elapsed}");

        // Tear down quickly: drop the connections (the server is stopped right after).
        await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        await Task.WhenAll(loaders.Select(c => c.DisposeAsync().AsTask()));
    }

    private static async Task SetAll(WireClient writer, byte[] value)
    {
        using var gate = new SemaphoreSlim(256);
        var tasks = new List<Task>();
        for (var k = 0; k < WatchedNodes; k++)
        {
            await gate.WaitAsync();
            var path = WatchedNode(k);
            tasks.Add(writer.SetDataAsync(path, value).OkAsync().ContinueWith(t => { gate.Release(); return t; }).Unwrap());
        }
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
    }

    private static async Task CheckMulti(Task<(ReplyHeader Header, ZkResponse? Response)> multi, string what)
    {
        var (h, r) = await multi;
        if (h.Err != ErrorCode.Ok) throw new InvalidOperationException($"{what}: multi -> {h.Err}");
        if (r is not MultiResponse m) throw new InvalidOperationException($"{what}: multi returned {r}");
        var failed = m.Results.FirstOrDefault(x => x.Type == OpCode.Error);
        if (failed.Type == OpCode.Error) throw new InvalidOperationException($"{what}: an op in the multi failed with {failed.Err}");
    }
}
