using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Issue 23: after a load the GC keeps the memory the load's garbage occupied, even through full collections, so the
/// RSS stayed about twice the live heap. The server's memory trim gives it back once the process has been quiet
/// (memory-trim in reference.conf), and only once per burst of allocation: an idle server is not collected again and again.
/// </summary>
public sealed class MemoryTrimTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task A_quiet_server_gives_back_the_memory_a_load_freed_once()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.memory-trim { quiet-period = 2s, check-interval = 200ms }",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        // Hundreds of MB of garbage, most of it on the large-object heap: 1 MB znodes written and deleted.
        var data = new byte[1_000_000];
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 50; i++) await client.CreateAsync($"/big-{i}", data, CreateMode.Persistent).OkAsync();
            for (var i = 0; i < 50; i++) await client.SetDataAsync($"/big-{i}", data).OkAsync();
            for (var i = 0; i < 50; i++) await client.DeleteAsync($"/big-{i}").OkAsync();
        }
        var loaded = server.RssBytes;
        var mntr = await MntrAsync(server);
        output.WriteLine($"after the load: RSS {ProcStats.FormatBytes(loaded)}, {Describe(mntr)}");

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (mntr.Number("zk_memory_trims") is not > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"no memory trim within 60 s of the load: {Describe(mntr)}");
            await Task.Delay(500);
            mntr = await MntrAsync(server);
        }
        await Task.Delay(500);
        var trimmed = server.RssBytes;
        mntr = await MntrAsync(server);
        output.WriteLine($"after the trim: RSS {ProcStats.FormatBytes(trimmed)}, {Describe(mntr)}");
        Assert.True(trimmed < loaded - (100L << 20), $"RSS {ProcStats.FormatBytes(loaded)} after the load, {ProcStats.FormatBytes(trimmed)} after the trim");
        Assert.True(mntr.Number("zk_memory_trimmed_bytes") > 100L << 20, Describe(mntr));

        // Idle (pings and mntr only) for three quiet periods: nothing new to give back, so no second trim.
        await Task.Delay(TimeSpan.FromSeconds(6));
        mntr = await MntrAsync(server);
        Assert.Equal(1, mntr.Number("zk_memory_trims"));
    }

    private static Task<Dictionary<string, string>> MntrAsync(ServerProcess server) =>
        FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(30));

    private static string Describe(Dictionary<string, string> mntr) =>
        $"GC committed {ProcStats.FormatBytes((long)(mntr.Number("zk_gc_committed_bytes") ?? -1))}, heap at its last collection " +
        $"{ProcStats.FormatBytes((long)(mntr.Number("zk_gc_heap_size_bytes") ?? -1))}, trims {mntr.Number("zk_memory_trims")}, " +
        $"trimmed {ProcStats.FormatBytes((long)(mntr.Number("zk_memory_trimmed_bytes") ?? -1))}";
}
