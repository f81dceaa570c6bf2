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
[Collection(LoadAndTimingCollection.Name)]
public sealed class MemoryTrimTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task A_quiet_server_gives_back_the_memory_a_load_freed_once()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.memory-trim { enabled = on, quiet-period = 2s, check-interval = 200ms }",
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

        // Once quiet, the server holds at most min-excess (64 MiB, reference.conf) beyond its live heap: given back by a
        // trim, or by the GC itself when a collection after the load (a snapshot's allocations can start one) already
        // compacted; the trim is then not needed and does not run. Either way the RSS comes down from the load's.
        static double Excess(Dictionary<string, string> m) => (m.Number("zk_gc_committed_bytes") ?? 0) - (m.Number("zk_gc_heap_size_bytes") ?? 0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (mntr.Number("zk_memory_trims") is not > 0 && Excess(mntr) > 64 << 20)
        {
            Assert.True(DateTime.UtcNow < deadline, $"still more than 64 MiB beyond the live heap 60 s after the load, no trim: {Describe(mntr)}");
            await Task.Delay(500);
            mntr = await MntrAsync(server);
        }
        await Task.Delay(500);
        var trimmed = server.RssBytes;
        mntr = await MntrAsync(server);
        output.WriteLine($"after the trim (or the GC's own compaction): RSS {ProcStats.FormatBytes(trimmed)}, {Describe(mntr)}");
        if (mntr.Number("zk_memory_trims") > 0)
        {
            Assert.True(trimmed < loaded - (64L << 20), $"RSS {ProcStats.FormatBytes(loaded)} after the load, {ProcStats.FormatBytes(trimmed)} after the trim");
            Assert.True(mntr.Number("zk_memory_trimmed_bytes") > 64L << 20, Describe(mntr));
        }

        // Idle (pings and mntr only) for three quiet periods: nothing new to give back, so no second trim.
        await Task.Delay(TimeSpan.FromSeconds(6));
        mntr = await MntrAsync(server);
        Assert.InRange(mntr.Number("zk_memory_trims") ?? -1, 0, 1);
    }

    private static Task<Dictionary<string, string>> MntrAsync(ServerProcess server) =>
        FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(30));

    private static string Describe(Dictionary<string, string> mntr) =>
        $"GC committed {ProcStats.FormatBytes((long)(mntr.Number("zk_gc_committed_bytes") ?? -1))}, heap at its last collection " +
        $"{ProcStats.FormatBytes((long)(mntr.Number("zk_gc_heap_size_bytes") ?? -1))}, trims {mntr.Number("zk_memory_trims")}, " +
        $"trimmed {ProcStats.FormatBytes((long)(mntr.Number("zk_memory_trimmed_bytes") ?? -1))}";
}
