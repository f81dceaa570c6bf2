using System.Collections.Concurrent;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Crashes and partitions: a leader crash under load, follower catch-up by DIFF and SNAP, TRUNC of an old
/// leader's uncommitted tail, and a leader blackholed away.</summary>
public sealed class FailoverTests
{
    /// <summary>Concurrent writers with unique names; each records what was acknowledged and reconnects on failure.</summary>
    private sealed class Load(TestEnsemble ensemble, string parent, int writers)
    {
        public readonly ConcurrentBag<string> Acked = new();
        public int Failures;
        private readonly CancellationTokenSource _stop = new();
        private Task[] _tasks = [];

        public void Start() => _tasks = Enumerable.Range(0, writers).Select(i => Task.Run(() => WriterAsync(i))).ToArray();

        private async Task WriterAsync(int writer)
        {
            var n = 0;
            WireClient? client = null;
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    if (client is null || !client.IsConnected)
                    {
                        if (client is not null) await client.DisposeAsync();
                        client = null;
                        var running = ensemble.Members.Where(m => m.IsRunning).ToList();
                        var target = running[(writer + n) % running.Count];
                        client = await WireClient.ConnectAsync("127.0.0.1", target.ClientPort, new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(3) });
                    }
                    var name = $"w{writer}-{n++:D6}";
                    var (header, _) = await client.CreateAsync($"{parent}/{name}", null).WaitAsync(TimeSpan.FromSeconds(10));
                    if (header.Err == ErrorCode.Ok) Acked.Add(name);
                    else Interlocked.Increment(ref Failures);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref Failures);
                    if (client is not null) await client.DisposeAsync();
                    client = null;
                    n++;
                    await Task.Delay(50);
                }
            }
            if (client is not null) await client.DisposeAsync();
        }

        public async Task StopAsync()
        {
            _stop.Cancel();
            await Task.WhenAll(_tasks).WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task A_leader_crash_under_load_loses_no_acknowledged_write()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!)) await c.CreateAsync("/load", null).OkAsync();
        var load = new Load(ensemble, "/load", writers: 4);
        load.Start();
        try
        {
            await Ens.EventuallyAsync(() => Task.FromResult(load.Acked.Count >= 200), TimeSpan.FromSeconds(20), "200 writes before the crash");
            var old = ensemble.Leader!;
            await ensemble.KillAsync(old.Id);
            var before = load.Acked.Count;
            var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(20), notId: old.Id);
            Assert.NotEqual(old.Id, leader.Id);
            await Ens.EventuallyAsync(() => Task.FromResult(load.Acked.Count >= before + 200), TimeSpan.FromSeconds(20),
                "200 more writes acknowledged under the new leader");
        }
        finally
        {
            await load.StopAsync();
        }
        var acked = load.Acked.ToList();
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/load", acked);

        foreach (var m in ensemble.Members.Where(m => !m.IsRunning).ToList()) await ensemble.RestartAsync(m.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/load", acked);
    }

    [Fact]
    public async Task A_follower_that_missed_a_few_writes_catches_up_by_diff()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var follower = Ens.Follower(ensemble);
        await Ens.SeedAsync(ensemble, "/diff");
        await ensemble.KillAsync(follower.Id);

        List<string> missed;
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!))
            missed = await Ens.CreateManyAsync(c, "/diff", "b", 15);
        await ensemble.RestartAsync(follower.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/diff", missed);
        Assert.Equal(0, follower.Server!.Ensemble!.SnapshotsInstalled);
    }

    [Fact]
    public async Task A_follower_behind_the_leaders_purge_point_catches_up_by_snap()
    {
        await using var ensemble = await TestEnsemble.StartAsync(options: new TestEnsembleOptions { SnapshotEveryTxns = 200 });
        var follower = Ens.Follower(ensemble);
        await Ens.SeedAsync(ensemble, "/snap");
        var behind = (await Ens.PeerStatusAsync(follower)).LastZxid;
        await ensemble.KillAsync(follower.Id);

        // More than three snapshots' worth: the leader's retained log starts well after the follower's last zxid.
        var leader = ensemble.Leader!;
        List<string> missed;
        await using (var c = await Ens.ConnectAsync(leader))
        {
            // Null data is not empty data: the snapshot the follower installs must keep the difference.
            await c.CreateAsync("/snap/null-data", null).OkAsync();
            await c.CreateAsync("/snap/empty-data", []).OkAsync();
            missed = await Ens.CreateManyAsync(c, "/snap", "b", 900);
            await c.SetDataAsync("/snap", Ens.Bytes("after")).OkAsync();
        }
        await Ens.EventuallyAsync(() => Task.FromResult(SnapshotFilesIn(leader.DataDir).Any(z => z > behind)),
            TimeSpan.FromSeconds(20), "the leader takes snapshots past the follower's last zxid");

        await ensemble.RestartAsync(follower.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        var hashes = await Ens.AssertConvergedAsync(ensemble);
        Assert.True(follower.Server!.Ensemble!.SnapshotsInstalled >= 1, "the follower was not synchronised by SNAP");
        // The snapshot it installed is one of the leader's (same file name, i.e. same zxid).
        var installed = SnapshotFilesIn(follower.DataDir).Where(z => z > behind).ToHashSet();
        Assert.True(installed.Overlaps(SnapshotFilesIn(leader.DataDir)), "no snapshot of the leader's appears in the follower's data dir");
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/snap", missed);
        Assert.Equal(hashes[leader.Id], hashes[follower.Id]);
        await using (var c = await Ens.ConnectAsync(follower))
        {
            Assert.Null(((GetDataResponse)(await c.GetDataAsync("/snap/null-data").OkAsync())!).Data);
            Assert.Equal(0, ((GetDataResponse)(await c.GetDataAsync("/snap/empty-data").OkAsync())!).Data?.Length ?? -1);
        }

        // And it follows on from there: new writes reach it.
        await using (var c = await Ens.ConnectAsync(follower))
            await c.CreateAsync("/snap/after-sync", null).OkAsync();
        await Ens.AssertConvergedAsync(ensemble);
    }

    /// <summary>The zxids of the snapshot files under a data dir (named with the hex zxid).</summary>
    private static List<long> SnapshotFilesIn(string dataDir)
    {
        var zxids = new List<long>();
        foreach (var file in Directory.EnumerateFiles(dataDir, "snapshot.*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(file);
            var parts = name.Split('.');
            if (parts.Length == 2 && long.TryParse(parts[1], System.Globalization.NumberStyles.HexNumber, null, out var z)) zxids.Add(z);
        }
        return zxids;
    }

    [Fact]
    public async Task An_old_leaders_uncommitted_tail_is_truncated_when_it_rejoins()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await Ens.SeedAsync(ensemble, "/t");
        var old = ensemble.Leader!;
        // Connect first: the session's creation is a committed txn, not part of the tail.
        await using var cut = await Ens.ConnectAsync(old);
        var before = (await Ens.PeerStatusAsync(old)).LastZxid;

        // Cut the leader off, then write to it at once: it logs the writes, but no quorum will ever ack them.
        await ensemble.PartitionAsync(old.Id);
        var doomed = Enumerable.Range(0, 5).Select(i => cut.CreateAsync($"/t/doomed{i}", null)).ToList();
        await Ens.EventuallyAsync(async () => !old.IsRunning || (await Ens.PeerStatusAsync(old)).LastZxid > before
            || (await Ens.PeerStatusAsync(old)).Role != Coordination.Core.Zab.PeerState.Leading,
            TimeSpan.FromSeconds(10), "the cut-off leader logs the writes");
        var logged = (await Ens.PeerStatusAsync(old)).LastZxid > before;

        // The majority elects a new leader and takes other writes.
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(20), notId: old.Id);
        List<string> acked;
        await using (var c = await Ens.ConnectAsync(leader))
            acked = await Ens.CreateManyAsync(c, "/t", "b", 10);
        // The old leader stepped down and dropped its clients: they see connection loss, never success.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await cut.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        var closedAfter = sw.ElapsedMilliseconds;
        foreach (var d in doomed) await Ens.AssertNotAcknowledgedAsync(d, TimeSpan.FromSeconds(1), "a write to the cut-off leader");
        Assert.True(doomed.All(d => d.IsCompleted), $"writes to the cut-off leader still pending {closedAfter} ms after its connection closed");
        Assert.True(logged, "the cut-off leader never logged the writes, so this test proves nothing about TRUNC");

        await ensemble.HealAllAsync();
        await Ens.EventuallyAsync(() => Task.FromResult(old.Mode == "follower" && ensemble.Leader?.Id == leader.Id),
            TimeSpan.FromSeconds(30), "the old leader rejoins as a follower");
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/t", acked);
        foreach (var m in ensemble.Members)
        {
            var children = await Ens.ChildrenAsync(m, "/t");
            Assert.DoesNotContain(children, n => n.StartsWith("doomed"));
        }
        // Its log was cut back too: after a restart from disk it still agrees.
        await ensemble.RestartAsync(old.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        await Ens.AssertConvergedAsync(ensemble);
        Assert.DoesNotContain(await Ens.ChildrenAsync(old, "/t"), n => n.StartsWith("doomed"));
    }

    [Fact]
    public async Task A_blackholed_leader_acknowledges_nothing_and_rejoins_as_a_follower()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!)) await c.CreateAsync("/b", null).OkAsync();
        await Ens.AssertConvergedAsync(ensemble);
        var old = ensemble.Leader!;
        var others = ensemble.Members.Where(m => m.Id != old.Id).ToList();

        await using var cut = await Ens.ConnectAsync(old);
        foreach (var o in others) await ensemble.SetLinkAsync(old.Id, o.Id, heal: false);

        // Keep writing to the old leader for as long as it will take requests: none may succeed.
        var attempts = new List<Task<(ReplyHeader Header, ZkResponse? Response)>>();
        var i = 0;
        var writer = cut;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(4))
        {
            if (!writer.IsConnected)
            {
                try { writer = await WireClient.ConnectAsync("127.0.0.1", old.ClientPort, new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1) }); }
                catch (WireConnectionException) { await Task.Delay(100); continue; }
            }
            attempts.Add(writer.CreateAsync($"/b/lost{i++}", null));
            await Task.Delay(100);
        }
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(20), notId: old.Id);
        Assert.Contains(leader, others);
        Assert.NotEqual("leader", old.Mode);
        await using (var c = await Ens.ConnectAsync(leader)) await c.CreateAsync("/b/new", null).OkAsync();
        foreach (var a in attempts) await Ens.AssertNotAcknowledgedAsync(a, TimeSpan.FromSeconds(1), "a write to the blackholed leader");
        if (writer != cut) await writer.DisposeAsync();

        await ensemble.HealAllAsync();
        await Ens.EventuallyAsync(() => Task.FromResult(old.Mode == "follower"), TimeSpan.FromSeconds(30), "the old leader rejoins as a follower");
        await Ens.AssertConvergedAsync(ensemble);
        Assert.Equal(leader.Id, ensemble.Leader!.Id);
        foreach (var m in ensemble.Members)
        {
            var children = await Ens.ChildrenAsync(m, "/b");
            Assert.Equal(new[] { "new" }, children.ToArray());
        }
    }
}
