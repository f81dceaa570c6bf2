using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// Figures, not a default test (minutes of load): restart time after SIGKILL with N znodes of 100 bytes, ours vs
/// Apache ZooKeeper, and the snapshot size on disk. Run with
/// <c>COORDINATION_RECOVERY_FIGURE=1000000 dotnet test tests/Coordination.Persistence.Tests -c Release --filter RecoveryFigure</c>.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class RecoveryFigureTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task RecoveryFigure(string target)
    {
        var env = Environment.GetEnvironmentVariable("COORDINATION_RECOVERY_FIGURE");
        Skip.If(string.IsNullOrEmpty(env), "set COORDINATION_RECOVERY_FIGURE=<znodes> to measure recovery time");
        if (target == "apache" && !ServerProcess.ApacheAvailable())
        {
            const string reason = "Apache ZooKeeper 3.8 is not installed (apt-get install zookeeper)";
            if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_COMPAT") == "1") Assert.Fail($"COORDINATION_REQUIRE_COMPAT=1 but {reason}");
            Skip.If(true, reason);
        }
        var count = int.Parse(env!);
        await using var server = await ServerProcess.StartAsync(target, new ServerProcessOptions { StartTimeout = TimeSpan.FromMinutes(10) });
        var value = new byte[100];
        new Random(1).NextBytes(value);
        const int clients = 4, window = 500, dirs = 1000;
        var list = new List<WireClient>();
        for (var c = 0; c < clients; c++) list.Add(await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { EventChannel = false }));
        await list[0].CreateAsync("/r", null).OkAsync();
        for (var d = 0; d < dirs; d++) await list[0].CreateAsync($"/r/d{d}", null).OkAsync();
        long errors = 0;
        var load = Stopwatch.StartNew();
        await Task.WhenAll(list.Select((client, c) => Task.Run(async () =>
        {
            using var slots = new SemaphoreSlim(window);
            var per = count / clients;
            var remaining = per;
            var finished = new TaskCompletionSource();
            for (var i = 0; i < per; i++)
            {
                await slots.WaitAsync();
                var n = i * clients + c;
                client.Send(OpCode.Create, new CreateRequest($"/r/d{n % dirs}/n{n}", value, Acl.OpenAclUnsafe, 0), (h, _, e, _, _) =>
                {
                    if (e is not null || h.Err != ErrorCode.Ok) Interlocked.Increment(ref errors);
                    slots.Release();
                    if (Interlocked.Decrement(ref remaining) == 0) finished.TrySetResult();
                });
            }
            await finished.Task;
        })));
        output.WriteLine($"{target}: {count} creates in {load.Elapsed.TotalSeconds:F1} s ({count / load.Elapsed.TotalSeconds:F0}/s), errors {errors}");
        foreach (var client in list) await client.DisposeAsync();
        Assert.Equal(0, errors);

        server.Kill();
        var files = new DirectoryInfo(server.DataDir).EnumerateFiles("*", SearchOption.AllDirectories).ToList();
        foreach (var f in files.Where(f => f.Name.StartsWith("snapshot", StringComparison.Ordinal) || f.Name.StartsWith("journal", StringComparison.Ordinal) || f.Name.StartsWith("log", StringComparison.Ordinal)))
            output.WriteLine($"  {f.Name} {f.Length / 1024.0 / 1024.0:F1} MiB");
        output.WriteLine($"  data dir total {files.Sum(f => f.Length) / 1024.0 / 1024.0:F1} MiB");

        var restart = Stopwatch.StartNew();
        await server.RestartAsync(); // until ruok=imok and a session handshake succeeds
        output.WriteLine($"{target}: restart after SIGKILL with {count} znodes took {restart.ElapsedMilliseconds} ms (process start to first session)");
        await using var check = await WireClient.ConnectAsync(server.ConnectString);
        var (h, _) = await check.ExistsAsync($"/r/d{(count - 1) % dirs}/n{count - 1}");
        Assert.Equal(ErrorCode.Ok, h.Err);
    }
}
