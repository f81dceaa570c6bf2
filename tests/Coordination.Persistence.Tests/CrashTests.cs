using Coordination.Server.Persistence;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

[Collection(LoadAndTimingCollection.Name)]
public sealed class CrashTests(ITestOutputHelper output)
{
    /// <summary>Every journal: the file log (the default), a persistent actor on FileEventJournal, and
    /// Akka.Persistence.Sql on SQLite.</summary>
    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    [InlineData("sql")]
    public async Task Every_acknowledged_write_survives_repeated_SIGKILL(string journal)
    {
        // Small snapshot interval so that kills also land while fuzzy snapshots are written and purged.
        await using var server = await Servers.StartAsync(output, $$"""
            coordination.persistence { journal = {{journal}}, snapshot-every-txns = 400, snapshot-chunk-nodes = 20, snapshots-retained = 2 }
            """);
        await TestSeed.RunAsync(Environment.TickCount, "tests/Coordination.Persistence.Tests", $"{nameof(CrashTests)}.{nameof(Every_acknowledged_write_survives_repeated_SIGKILL)}",
            output.WriteLine, async seed =>
            {
                var workload = new CrashWorkload(server, output, seed);
                await workload.RunAsync(kills: 6, TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(2500));
                Assert.True(workload.AckedWrites > 50, $"only {workload.AckedWrites} writes were acknowledged");
            });
        var files = Directory.GetFiles(server.DataDir, "*", SearchOption.AllDirectories);
        output.WriteLine($"data dir: {string.Join(", ", files.Select(f => Path.GetRelativePath(server.DataDir, f)))}");
        // The journal asked for is the one that was written.
        Assert.Contains(files, f => journal switch
        {
            "file" => Path.GetFileName(Path.GetDirectoryName(f)) == "txnlog" && Path.GetFileName(f).StartsWith(FileTxnLog.Prefix),
            "persistent-file" => Path.GetFileName(Path.GetDirectoryName(f)) == "eventlog" && Path.GetFileName(f).StartsWith(FileTxnLog.Prefix),
            _ => Path.GetFileName(f) == "journal.db",
        });
    }
}
