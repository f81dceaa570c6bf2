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
    /// <summary>The load: hundreds of MB of garbage, most of it on the large-object heap (1 MB znodes written and
    /// deleted). Returns mntr after it.</summary>
    private async Task<Dictionary<string, string>> LoadAsync(ServerProcess server, WireClient client)
    {
        var data = new byte[1_000_000];
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 50; i++) await client.CreateAsync($"/big-{i}", data, CreateMode.Persistent).OkAsync();
            for (var i = 0; i < 50; i++) await client.SetDataAsync($"/big-{i}", data).OkAsync();
            for (var i = 0; i < 50; i++) await client.DeleteAsync($"/big-{i}").OkAsync();
        }
        var mntr = await MntrAsync(server);
        output.WriteLine($"after the load: RSS {ProcStats.FormatBytes(server.RssBytes)}, {Describe(mntr)}");
        return mntr;
    }

    /// <summary>mntr once <paramref name="done"/> holds, polled for at most 60 s.</summary>
    private static async Task<Dictionary<string, string>> MntrUntilAsync(ServerProcess server, Func<Dictionary<string, string>, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var mntr = await MntrAsync(server);
            if (done(mntr)) return mntr;
            Assert.True(DateTime.UtcNow < deadline, $"{what} 60 s after the load: {Describe(mntr)}");
            await Task.Delay(250);
        }
    }

    [SkippableFact]
    public async Task A_quiet_server_gives_back_the_memory_a_load_freed_once()
    {
        // min-excess 8 MiB and no ratio: after the load the trim is due whether or not the GC compacted by itself
        // (it sometimes does: a snapshot's allocations can start a collection), so a trim that does not run fails here.
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.memory-trim { enabled = on, quiet-period = 2s, check-interval = 200ms, min-excess = 8MiB, min-excess-ratio = 0, max-pause = 10s }",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await LoadAsync(server, client);
        var loaded = server.RssBytes;

        var mntr = await MntrUntilAsync(server, m => m.Number("zk_memory_trims") > 0, "no trim");
        await Task.Delay(500);
        var trimmed = server.RssBytes;
        mntr = await MntrAsync(server);
        output.WriteLine($"after the trim: RSS {ProcStats.FormatBytes(trimmed)}, {Describe(mntr)}");
        // An aggressive collection compacts every generation and gives back what is free: the GC holds no more than
        // min-excess (64 MiB by default) beyond the live heap.
        Assert.True(Excess(mntr) <= 64 << 20, $"still more than 64 MiB beyond the live heap after the trim: {Describe(mntr)}");
        // What it gave back left the process: when the load's garbage was still held, the RSS came down with it.
        if (mntr.Number("zk_memory_trimmed_bytes") > 64L << 20)
            Assert.True(trimmed < loaded - (64L << 20), $"RSS {ProcStats.FormatBytes(loaded)} after the load, {ProcStats.FormatBytes(trimmed)} after the trim");
        // The trim itself ran a full compacting collection (whether or not the GC had already given the load's memory
        // back by itself, which it sometimes does: the figures above cannot tell a trim that does nothing from that).
        var trim = Assert.Single(server.OutputTail.Split('\n'), l => l.Contains("memory trim: GC committed"));
        output.WriteLine(trim);
        Assert.Contains("a full compacting collection", trim);

        // Idle (pings and mntr only) for three quiet periods: nothing new to give back, so no second trim.
        await Task.Delay(TimeSpan.FromSeconds(6));
        mntr = await MntrAsync(server);
        Assert.Equal(1, mntr.Number("zk_memory_trims"));
        Assert.Equal(0, mntr.Number("zk_memory_trims_refused"));
    }

    /// <summary>
    /// The pause bound, end to end: a trim estimated (1 ms per MiB of live heap) to pause longer than max-pause, or
    /// than a share of the shortest session timeout in use (the client's session here, through the session tracker),
    /// does not run; it is counted and logged once, with the estimate.
    /// </summary>
    [SkippableTheory]
    [InlineData("max-pause = 1ms", "max-pause 1 ms")]
    [InlineData("max-pause-session-share = 0.00001", "shortest session timeout")]
    public async Task A_trim_that_would_pause_too_long_does_not_run_and_says_so_once(string bound, string logged)
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.memory-trim {{ enabled = on, quiet-period = 2s, check-interval = 200ms, min-excess = 8MiB, min-excess-ratio = 0, {bound} }}",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await LoadAsync(server, client);
        var mntr = await MntrUntilAsync(server, m => m.Number("zk_memory_trims_refused") > 0, "no trim refused");
        await Task.Delay(TimeSpan.FromSeconds(4));   // two quiet periods more: not refused (nor logged) again
        mntr = await MntrAsync(server);
        output.WriteLine(Describe(mntr));
        Assert.Equal(0, mntr.Number("zk_memory_trims"));
        Assert.Equal(1, mntr.Number("zk_memory_trims_refused"));
        var line = Assert.Single(server.OutputTail.Split('\n'), l => l.Contains("memory trim not run"));
        output.WriteLine(line);
        Assert.Contains(logged, line);
        Assert.Matches(@"estimated at \d+ ms \(\d+ MiB of live heap at 1[.,]00 ms/MiB\)", line);
    }

    private static double Excess(Dictionary<string, string> m) => (m.Number("zk_gc_committed_bytes") ?? 0) - (m.Number("zk_gc_heap_size_bytes") ?? 0);

    private static Task<Dictionary<string, string>> MntrAsync(ServerProcess server) =>
        FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(30));

    private static string Describe(Dictionary<string, string> mntr) =>
        $"GC committed {ProcStats.FormatBytes((long)(mntr.Number("zk_gc_committed_bytes") ?? -1))}, heap at its last collection " +
        $"{ProcStats.FormatBytes((long)(mntr.Number("zk_gc_heap_size_bytes") ?? -1))}, trims {mntr.Number("zk_memory_trims")} (refused {mntr.Number("zk_memory_trims_refused")}), " +
        $"trimmed {ProcStats.FormatBytes((long)(mntr.Number("zk_memory_trimmed_bytes") ?? -1))}";
}
