using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

[Collection(LoadAndTimingCollection.Name)]
public sealed class GrowthTests(ITestOutputHelper output)
{
    /// <summary>The data dir must stay under this many bytes during and after 200,000 writes with purge on.</summary>
    private const long BoundBytes = 20L << 20;

    [Fact]
    public async Task Two_hundred_thousand_writes_with_purge_keep_the_data_dir_bounded()
    {
        // force-sync = off (the tests-only opt-out): this test is about disk growth, not fsync, and must stay short.
        await using var server = await Servers.StartAsync(output, """
            coordination.persistence { force-sync = off, snapshot-every-txns = 20000, snapshots-retained = 2 }
            """);
        const int total = 200_000, clients = 4, window = 250, keys = 1000;
        var value = new byte[100];
        var list = new List<WireClient>();
        for (var c = 0; c < clients; c++) list.Add(await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { EventChannel = false }));
        await list[0].CreateAsync("/g", null).OkAsync();
        for (var k = 0; k < keys; k++) await list[0].CreateAsync($"/g/k{k}", value).OkAsync();

        long maxSize = 0, errors = 0, done = 0;
        var clock = Stopwatch.StartNew();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                try { maxSize = Math.Max(maxSize, Servers.DirectorySize(server.DataDir)); } catch (IOException) { }
                try { await Task.Delay(250, sampling.Token); } catch (OperationCanceledException) { }
            }
        });
        await Task.WhenAll(list.Select((client, c) => Task.Run(async () =>
        {
            using var slots = new SemaphoreSlim(window);
            var perClient = total / clients;
            var finished = new TaskCompletionSource();
            var remaining = perClient;
            for (var i = 0; i < perClient; i++)
            {
                await slots.WaitAsync();
                client.Send(OpCode.SetData, new SetDataRequest($"/g/k{(i * clients + c) % keys}", value, -1), (h, _, e, _, _) =>
                {
                    if (e is not null || h.Err != ErrorCode.Ok) Interlocked.Increment(ref errors);
                    Interlocked.Increment(ref done);
                    slots.Release();
                    if (Interlocked.Decrement(ref remaining) == 0) finished.TrySetResult();
                });
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), "the write load took too long");
            }
            await finished.Task.WaitAsync(TimeSpan.FromMinutes(3));
        })));
        // Let the last snapshot and purge finish.
        await Task.Delay(2000);
        sampling.Cancel();
        await sampler;
        var final = Servers.DirectorySize(server.DataDir);
        maxSize = Math.Max(maxSize, final);
        output.WriteLine($"{done} writes in {clock.Elapsed.TotalSeconds:F1} s, errors {errors}; data dir max {maxSize / 1024} KiB, final {final / 1024} KiB");
        foreach (var f in new DirectoryInfo(server.DataDir).GetFiles()) output.WriteLine($"  {f.Name} {f.Length / 1024} KiB");
        Assert.Equal(0, errors);
        Assert.Equal(total, done);
        Assert.True(Directory.GetFiles(server.DataDir, "snapshot.*").Length <= 3, "old snapshots were not removed");
        Assert.True(maxSize < BoundBytes, $"data dir reached {maxSize} bytes, bound {BoundBytes}");
        foreach (var client in list) await client.CloseAsync();
    }
}
