using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The server process as an operator runs it: SIGTERM (what Ctrl-C and service managers send) shuts it down cleanly.</summary>
public sealed class LifecycleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Sigterm_with_connected_clients_exits_cleanly_and_promptly()
    {
        await using var server = await Targets.StartAsync("ours", output);
        var client = await WireClient.ConnectAsync(server.ConnectString);
        await client.CreateAsync("/before-stop", [1], CreateMode.Persistent).OkAsync();

        var stopwatch = Stopwatch.StartNew();
        await server.StopAsync(TimeSpan.FromSeconds(15));
        output.WriteLine($"stopped in {stopwatch.ElapsedMilliseconds} ms, exit code {server.ExitCode}");

        Assert.True(server.HasExited);
        Assert.Equal(0, server.ExitCode);                        // 137 would mean StopAsync had to SIGKILL it
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"shutdown took {stopwatch.Elapsed}");
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));   // the client saw its connection end (throws on timeout)
    }

    [SkippableFact]
    public async Task Arrays_under_1_MiB_start_in_gen0_not_on_the_large_object_heap()
    {
        // The runtime setting the server's runtimeconfig carries (Coordination.Server.csproj), as mntr reports it. A
        // multi's request, txn and journal batch are 100-300 KB: on the large-object heap (from 85,000 B by default)
        // only gen2 collections free them, and its free space stayed in the RSS (issue 23).
        await using var server = await Targets.StartAsync("ours", output);
        var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(30));
        Assert.Equal(1 << 20, mntr.Number("zk_gc_loh_threshold_bytes") ?? -1);
    }
}
