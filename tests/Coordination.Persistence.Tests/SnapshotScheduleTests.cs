using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// When snapshots are taken (reference.conf, snapshot-log-ratio): by ZooKeeper's counts while the tree is small, and
/// once it is bigger than snapshot-every-bytes only after txns adding up to that share of its size, so that a big
/// tree is not rewritten every snapshot-every-txns writes. It runs beside other classes: a snapshot that comes due while
/// the last one is being written starts when that one ends (before session 22 it waited for the next write, and beside
/// CorruptionTests' servers this saw 1 or 2 snapshots instead of 3; Server.PipelineTests' ReplicaSnapshotScheduleTests).
/// </summary>
public sealed class SnapshotScheduleTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1.0)]
    [InlineData(0.0)]
    public async Task A_tree_bigger_than_the_byte_count_is_snapshotted_after_its_own_size_of_txns(double ratio)
    {
        await using var server = await Servers.StartAsync(output,
            $"coordination.persistence {{ snapshot-every-txns = 100, snapshot-every-bytes = 64KiB, snapshots-retained = 1000, snapshot-log-ratio = {ratio:0.0} }}");
        await using var c = await WireClient.ConnectAsync(server.ConnectString);
        // A tree of about 330 KB (300 znodes of 1 KB), five times the byte count.
        var kilobyte = new byte[1024];
        for (var i = 0; i < 30; i++)
            await c.MultiAsync([.. Enumerable.Range(0, 10).Select(j =>
                new MultiOp(OpCode.Create, new CreateRequest($"/n{i * 10 + j}", kilobyte, Acl.OpenAclUnsafe, 0)))]).OkAsync();
        var before = await SettledCountAsync(server.DataDir);
        // Growing, it is still snapshotted: by the counts every 64 KiB, by the ratio each time it doubles (~64, ~140, ~280 KB).
        Assert.True(before >= 3, $"a tree growing to ~330 KB took {before} snapshots (ratio {ratio})");

        // 400 small writes: four times snapshot-every-txns, a tenth of the tree's size.
        for (var i = 0; i < 400; i++) await c.SetDataAsync("/n0", [(byte)i]).OkAsync();
        var afterSmall = await SnapshotCountAfterAsync(server.DataDir, before, TimeSpan.FromSeconds(3));
        if (ratio == 0) Assert.True(afterSmall >= before + 3, $"ZooKeeper's counts: 400 txns at 100 a snapshot, yet {afterSmall - before} snapshots");
        else Assert.True(afterSmall == before, $"400 txns of ~70 bytes against a ~330 KB tree took {afterSmall - before} snapshots");

        // As many bytes of writes as the tree holds: now one is due by the ratio too.
        for (var i = 0; i < 400; i++) await c.SetDataAsync($"/n{i % 300}", kilobyte).OkAsync();
        var afterBig = await SnapshotCountAfterAsync(server.DataDir, afterSmall, TimeSpan.FromSeconds(10));
        Assert.True(afterBig > afterSmall, $"400 KB of writes against a ~330 KB tree took no snapshot (ratio {ratio})");
    }

    /// <summary>The number of snapshot files once none is being written (a write started it before it answered).</summary>
    private static async Task<int> SettledCountAsync(string dataDir)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        do await Task.Delay(500);
        while (Directory.EnumerateFiles(dataDir, "snapshot.*.tmp", SearchOption.AllDirectories).Any() && DateTime.UtcNow < deadline);
        return SnapshotCount(dataDir);
    }

    /// <summary>The number of snapshot files once it exceeds <paramref name="floor"/>, or after <paramref name="wait"/>.</summary>
    private static async Task<int> SnapshotCountAfterAsync(string dataDir, int floor, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        while (SnapshotCount(dataDir) <= floor && DateTime.UtcNow < deadline) await Task.Delay(100);
        await Task.Delay(300);   // a second one may be on its way
        return SnapshotCount(dataDir);
    }

    private static int SnapshotCount(string dataDir) =>
        Directory.EnumerateFiles(dataDir, "snapshot.*", SearchOption.AllDirectories).Count(f => !f.EndsWith(".tmp", StringComparison.Ordinal));
}
