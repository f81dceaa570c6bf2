using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

public sealed class CrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Every_acknowledged_write_survives_repeated_SIGKILL()
    {
        // Small snapshot interval so that kills also land while fuzzy snapshots are written and purged.
        await using var server = await Servers.StartAsync(output, """
            coordination.persistence { snapshot-every-txns = 400, snapshot-chunk-nodes = 20, snapshots-retained = 2 }
            """);
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        var workload = new CrashWorkload(server, output, seed);
        await workload.RunAsync(kills: 6, TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(2500));
        Assert.True(workload.AckedWrites > 50, $"only {workload.AckedWrites} writes were acknowledged");
        output.WriteLine($"data dir: {string.Join(", ", Directory.GetFiles(server.DataDir).Select(Path.GetFileName))}");
    }
}
