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
}
