using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The scenario of <see cref="OrderingTests"/> (invariants 3 and 4 under load), over any connections: the
/// Akka tests run it through an embedded member's in-process path.</summary>
public static class OrderingScenario
{
    private const int Keys = 5;
    private const int Readers = 5;
    private const int WriterInflight = 16;
    private const int ReaderInflight = 8;
    private static readonly TimeSpan WriteFor = TimeSpan.FromSeconds(6);
    private const int MaxWrites = 20_000; // bounds the logs (and the test's time) on a fast server

    /// <summary>Runs the scenario on connections from <paramref name="connect"/> (TCP to a server, or in process).</summary>
    public static async Task RunAsync(Func<WireClientOptions?, Task<WireClient>> connect, ITestOutputHelper output)
    {
        var root = "/ordering";
        var keys = Enumerable.Range(0, Keys).Select(i => $"{root}/k{i}").ToArray();
        var keySet = keys.ToHashSet();

        await using (var setup = await connect(null))
        {
            await setup.CreateAsync(root, null).OkAsync();
            foreach (var k in keys) await setup.CreateAsync(k, "init"u8.ToArray()).OkAsync();
            await setup.CloseAsync();
        }

        var changes = new List<Change>();
        var writerFailures = new List<string>();
        var writer = await connect(new WireClientOptions { EventChannel = false });
        var readers = new List<(WireClient Client, SemaphoreSlim Gate)>();
        var readerFailures = new List<string>();
        for (var i = 0; i < Readers; i++)
        {
            WireClient? self = null;
            var client = await connect(new WireClientOptions
            {
                RecordArrivals = true,
                EventChannel = false,
                // Re-arm on every event, from the receive loop, as a real client's watcher would.
                OnEvent = n =>
                {
                    var c = Volatile.Read(ref self);
                    if (c is null) return;
                    if (n.Event.Path == root) c.Send(OpCode.GetChildren2, new PathWatchRequest(root, true), Ignore);
                    else c.Send(OpCode.Exists, new PathWatchRequest(n.Event.Path, true), Ignore);
                },
            });
            Volatile.Write(ref self, client);
            readers.Add((client, new SemaphoreSlim(ReaderInflight)));
        }

        using var stop = new CancellationTokenSource();
        var readerTasks = readers.Select((r, index) => Task.Run(async () =>
        {
            var rng = new Random(1000 + index);
            while (!stop.IsCancellationRequested)
            {
                try { await r.Gate.WaitAsync(stop.Token); } catch (OperationCanceledException) { break; }
                var key = keys[rng.Next(keys.Length)];
                var roll = rng.Next(100);
                var (op, request) = roll switch
                {
                    < 35 => (OpCode.GetData, new PathWatchRequest(key, true)),
                    < 65 => (OpCode.Exists, new PathWatchRequest(key, true)),
                    < 85 => (OpCode.GetChildren2, new PathWatchRequest(root, true)),
                    < 95 => (OpCode.GetData, new PathWatchRequest(key, false)),
                    _ => (OpCode.GetChildren2, new PathWatchRequest(root, false)),
                };
                r.Client.Send(op, request, (h, _, error, state, _) =>
                {
                    if (error is not null) lock (readerFailures) readerFailures.Add($"reader {index}: {error.Message}");
                    ((SemaphoreSlim)state!).Release();
                }, r.Gate);
            }
        })).ToArray();

        // The writer: a model of which keys exist lets every write succeed, so any error reply is a failure.
        var exists = new bool[Keys];
        Array.Fill(exists, true);
        var gate = new SemaphoreSlim(WriterInflight);
        var wrng = new Random(7);
        var sw = Stopwatch.StartNew();
        var writes = 0;
        while (sw.Elapsed < WriteFor && writes < MaxWrites)
        {
            await gate.WaitAsync();
            var i = wrng.Next(Keys);
            var key = keys[i];
            OpCode op;
            ZkRequest request;
            if (!exists[i])
            {
                op = OpCode.Create2;
                request = new CreateRequest(key, BitConverter.GetBytes(writes), Acl.OpenAclUnsafe, 0);
                exists[i] = true;
            }
            else if (wrng.Next(100) < 20)
            {
                op = OpCode.Delete;
                request = new PathVersionRequest(key, -1);
                exists[i] = false;
            }
            else
            {
                op = OpCode.SetData;
                request = new SetDataRequest(key, BitConverter.GetBytes(writes), -1);
            }
            writes++;
            writer.Send(op, request, (h, response, error, _, _) =>
            {
                // Runs on the writer's receive loop, so changes are appended in response (= zxid) order.
                lock (changes)
                {
                    if (error is not null) writerFailures.Add($"writer: {error.Message}");
                    else if (h.Err != ErrorCode.Ok) writerFailures.Add($"writer: {op} {key} -> {h.Err}");
                    else
                    {
                        var kind = op switch { OpCode.Create2 => ChangeKind.Created, OpCode.Delete => ChangeKind.Deleted, _ => ChangeKind.DataChanged };
                        changes.Add(new Change(h.Zxid, key, kind));
                        if (response is StatResponse s && s.Stat.Mzxid != h.Zxid)
                            writerFailures.Add($"writer: setData reply zxid 0x{h.Zxid:x} != stat.mzxid 0x{s.Stat.Mzxid:x}");
                        if (response is Create2Response c && c.Stat.Czxid != h.Zxid)
                            writerFailures.Add($"writer: create2 reply zxid 0x{h.Zxid:x} != stat.czxid 0x{c.Stat.Czxid:x}");
                    }
                }
                gate.Release();
            });
        }
        for (var i = 0; i < WriterInflight; i++) await gate.WaitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        stop.Cancel();
        await Task.WhenAll(readerTasks).WaitAsync(TimeSpan.FromSeconds(10));
        foreach (var r in readers)
            for (var i = 0; i < ReaderInflight; i++) await r.Gate.WaitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        // Final reads: they show the final state, so every watch still armed on an older state must have fired first.
        foreach (var r in readers)
        {
            foreach (var k in keys) await r.Client.ExistsAsync(k).WaitAsync(TimeSpan.FromSeconds(10));
            await r.Client.GetChildren2Async(root).WaitAsync(TimeSpan.FromSeconds(10));
        }

        output.WriteLine($"writer: {writes} writes in {sw.Elapsed.TotalSeconds:F1} s, {changes.Count} changes applied, last zxid 0x{writer.LastZxid:x}");
        Assert.True(writerFailures.Count == 0, string.Join("\n", writerFailures.Take(20)));
        Assert.True(readerFailures.Count == 0, string.Join("\n", readerFailures.Take(20)));
        Assert.True(changes.Count > 200, $"only {changes.Count} writes applied in {sw.Elapsed}");
        for (var i = 1; i < changes.Count; i++)
            Assert.True(changes[i].Zxid > changes[i - 1].Zxid, $"writer reply zxids not increasing at {i}: 0x{changes[i - 1].Zxid:x} then 0x{changes[i].Zxid:x}");

        var history = new WatchOrder.History(changes, root);
        var allViolations = new List<string>();
        var totalEvents = 0;
        for (var i = 0; i < readers.Count; i++)
        {
            var log = readers[i].Client.Arrivals;
            var checker = new WatchOrder.SessionChecker(history, root, keySet);
            var violations = checker.Check(log);
            totalEvents += checker.Events;
            output.WriteLine($"reader {i}: {log.Count} arrivals, {checker.Responses} responses, {checker.Events} events " +
                             $"(max event header zxid {(checker.MaxEventHeaderZxid == -1 ? "-1: none sent" : $"0x{checker.MaxEventHeaderZxid:x}")}), {violations.Count} violations");
            allViolations.AddRange(violations.Select(v => $"reader {i}: {v}"));
        }
        Assert.True(totalEvents > 100, $"only {totalEvents} watch events: the test did not exercise watches");
        Assert.True(allViolations.Count == 0, $"{allViolations.Count} violations:\n" + string.Join("\n", allViolations.Take(30)));

        foreach (var r in readers) await r.Client.CloseAsync();
        await writer.CloseAsync();
    }

    private static void Ignore(ReplyHeader h, ZkResponse? r, Exception? e, object? s, long t) { }
}
