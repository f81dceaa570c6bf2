using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The runtime settings the server process runs with (Coordination.Server.csproj), as mntr reports them.</summary>
public sealed class GcSettingsTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task Arrays_under_1_MiB_start_in_gen0_not_on_the_large_object_heap()
    {
        // A multi's request, txn and journal batch are 100-300 KB: on the large-object heap (from 85,000 B by default)
        // only gen2 collections free them, and its free space stayed in the RSS (issue 23).
        await using var server = await Targets.StartAsync("ours", output);
        var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port, TimeSpan.FromSeconds(30));
        Assert.Equal(1 << 20, mntr.Number("zk_gc_loh_threshold_bytes") ?? -1);
    }
}
