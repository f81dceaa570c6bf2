using System.Globalization;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// ZooKeeper keeps null data (buffer length -1) apart from empty data, in its txn log and its snapshots, so a node
/// created or set with null reads back as null after a restart. So must ours: from the log alone and from a snapshot.
/// </summary>
public sealed class NullDataTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Null_data_is_still_null_after_a_restart_from_the_log_and_from_a_snapshot()
    {
        await using var server = await Servers.StartAsync(output, "coordination.persistence { snapshot-every-txns = 50 }");
        long lastNullZxid;
        await using (var c = await WireClient.ConnectAsync(server.ConnectString))
        {
            await c.CreateAsync("/null", null).OkAsync();
            await c.CreateAsync("/empty", []).OkAsync();
            await c.CreateAsync("/set-null", [1]).OkAsync();
            await c.SetDataAsync("/set-null", null).OkAsync();
            await c.MultiAsync([new MultiOp(OpCode.Create, new CreateRequest("/multi-null", null, Acl.OpenAclUnsafe, 0))]).OkAsync();
            lastNullZxid = ((StatResponse)(await c.ExistsAsync("/multi-null").OkAsync())!).Stat.Czxid;
        }
        Assert.DoesNotContain(SnapshotZxids(server.DataDir), z => z >= lastNullZxid); // what follows replays the log

        await server.RestartAsync();
        await AssertNullAndEmptyAsync(server, "after a restart from the txn log");

        await using (var c = await WireClient.ConnectAsync(server.ConnectString))
            for (var i = 0; i < 120; i++) await c.CreateAsync($"/filler-{i}", [(byte)i]).OkAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!SnapshotZxids(server.DataDir).Any(z => z > lastNullZxid))
        {
            Assert.True(DateTime.UtcNow < deadline, "no snapshot was taken after the null-data writes");
            await Task.Delay(100);
        }

        await server.RestartAsync();
        await AssertNullAndEmptyAsync(server, "after a restart from a snapshot");
    }

    private static async Task AssertNullAndEmptyAsync(ServerProcess server, string when)
    {
        await using var c = await WireClient.ConnectAsync(server.ConnectString);
        foreach (var path in new[] { "/null", "/set-null", "/multi-null" })
        {
            var r = (GetDataResponse)(await c.GetDataAsync(path).OkAsync())!;
            Assert.True(r.Data is null, $"{path} {when}: expected null data, read {r.Data?.Length} bytes");
            Assert.Equal(0, r.Stat.DataLength);
        }
        var empty = (GetDataResponse)(await c.GetDataAsync("/empty").OkAsync())!;
        Assert.True(empty.Data is { Length: 0 }, $"/empty {when}: expected empty data, read {(empty.Data is null ? "null" : $"{empty.Data.Length} bytes")}");
    }

    /// <summary>The zxids of the snapshot files under a data dir (snapshot.&lt;hex zxid&gt;).</summary>
    private static IEnumerable<long> SnapshotZxids(string dataDir) =>
        Directory.EnumerateFiles(dataDir, "snapshot.*", SearchOption.AllDirectories)
            .Select(f => Path.GetFileName(f).Split('.'))
            .Where(p => p.Length == 2 && long.TryParse(p[1], NumberStyles.HexNumber, null, out _))
            .Select(p => long.Parse(p[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
}
