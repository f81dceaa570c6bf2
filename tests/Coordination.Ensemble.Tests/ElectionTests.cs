using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Leader election from every starting state: fresh, different last zxids, tied zxids, a stale server with
/// a higher id, and a whole-ensemble restart from disk.</summary>
public sealed class ElectionTests
{
    [Fact]
    public async Task A_fresh_ensemble_elects_exactly_one_leader_that_everyone_follows()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = ensemble.Leader!;
        Assert.Single(ensemble.Members, m => m.Mode == "leader");
        Assert.Equal(2, ensemble.Members.Count(m => m.Mode == "follower"));
        foreach (var m in ensemble.Members)
        {
            Assert.Equal(leader.Id, m.Server!.Ensemble!.Leader);
            Assert.Equal(leader.Server!.Ensemble!.Epoch, m.Server.Ensemble.Epoch);
        }
        Assert.True(leader.Server!.Ensemble!.Epoch >= 1);
        await using var c = await Ens.ConnectAsync(Ens.Follower(ensemble));
        await c.CreateAsync("/fresh", Ens.Bytes("x")).OkAsync();
        await Ens.AssertConvergedAsync(ensemble);
    }

    [Fact]
    public async Task With_tied_zxids_the_highest_server_id_wins()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!))
            await Ens.CreateManyAsync(c, "", "tie", 10);
        var converged = await Ens.AssertConvergedAsync(ensemble);
        await Ens.KillAllAsync(ensemble);

        // Servers 1 and 2 come back with the same last zxid and epoch: 2 must lead, whatever the start order.
        await Ens.RestartAllAsync(ensemble, 1, 2);
        var leader = await Ens.WaitSettledAsync(ensemble);
        Assert.Equal(2, leader.Id);
        Assert.Equal("follower", ensemble[1].Mode);

        // Server 3 (higher id, same zxid) joins the established leader instead of taking over.
        await ensemble.RestartAsync(3);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        Assert.Equal(2, ensemble.Leader!.Id);
        var after = await Ens.AssertConvergedAsync(ensemble);
        Assert.Equal(converged.Values.First().Digest, after.Values.First().Digest);
    }

    [Fact]
    public async Task A_stale_server_with_a_higher_id_does_not_win_and_catches_up()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await Ens.SeedAsync(ensemble, "/s");
        await ensemble.KillAsync(3);

        // Writes that server 3 misses, acknowledged by 1 and 2.
        await Ens.WaitSettledAsync(ensemble);
        List<string> missed;
        await using (var c = await Ens.ConnectAsync(ensemble[1]))
            missed = await Ens.CreateManyAsync(c, "/s", "b", 20);
        var recent = (await Ens.PeerStatusAsync(ensemble[1])).LastZxid;
        await Ens.KillAllAsync(ensemble, 1, 2);

        // 1 (up to date) and 3 (stale, higher id) start together: only 1 may lead.
        await Ens.RestartAllAsync(ensemble, 1, 3);
        var leader = await Ens.WaitSettledAsync(ensemble);
        Assert.Equal(1, leader.Id);
        Assert.Equal("follower", ensemble[3].Mode);
        Assert.True((await Ens.PeerStatusAsync(ensemble[3])).LastZxid >= recent, "server 3 did not catch up with the log");
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/s", missed);

        await ensemble.RestartAsync(2);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        Assert.Equal(1, ensemble.Leader!.Id);
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/s", missed);
    }

    [Fact]
    public async Task Members_with_different_last_zxids_restarted_together_elect_a_most_recent_one()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await Ens.SeedAsync(ensemble, "/d");

        // Level a: server 3 stops here.
        await ensemble.KillAsync(3);
        var leader = await Ens.WaitSettledAsync(ensemble);
        var other = ensemble.Members.First(m => m.IsRunning && m.Id != leader.Id);
        var levelA = (await Ens.PeerStatusAsync(other)).LastZxid;

        // Level b: acknowledged by the two others.
        List<string> acked;
        await using (var c = await Ens.ConnectAsync(leader))
            acked = await Ens.CreateManyAsync(c, "/d", "b", 20);
        // Level b+: the leader logs a write it can never commit (its follower is cut off), then everything stops.
        // (Connect first: the session's creation is a txn of its own, and must be part of level b.)
        await using var tailClient = await Ens.ConnectAsync(leader);
        long levelB = 0;
        await Ens.EventuallyAsync(async () => (levelB = (await Ens.PeerStatusAsync(other)).LastZxid) == (await Ens.PeerStatusAsync(leader)).LastZxid,
            TimeSpan.FromSeconds(10), "leader and follower log the same history");
        Assert.True(levelB > levelA);
        await ensemble.PartitionAsync(other.Id);
        var tail = tailClient.CreateAsync("/d/tail", null);
        await Ens.EventuallyAsync(async () => (await Ens.PeerStatusAsync(leader)).LastZxid > levelB, TimeSpan.FromSeconds(10),
            "the cut-off leader logs the write");
        await Ens.KillAllAsync(ensemble, leader.Id, other.Id);
        await Ens.AssertNotAcknowledgedAsync(tail, TimeSpan.Zero, "a write logged only by the cut-off leader");

        // All three restart at once from three different last zxids.
        await Ens.RestartAllAsync(ensemble, 1, 2, 3);
        var elected = await Ens.WaitSettledAsync(ensemble);
        Assert.NotEqual(3, elected.Id);   // the stalest server can never lead: every quorum holds a more recent one
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/d", acked);
        // Whoever won, the uncommitted tail is either everywhere (the old leader won) or nowhere.
        var tailSeen = new List<bool>();
        foreach (var m in ensemble.Members) tailSeen.Add(await Ens.ExistsAsync(m, "/d/tail"));
        Assert.Single(tailSeen.Distinct());
        if (elected.Id == other.Id) Assert.False(tailSeen[0], "a member without the old leader's tail won, yet the tail survived");
        if (elected.Id == leader.Id) Assert.True(tailSeen[0], "the old leader won with its tail, yet the tail is gone");
    }

    [Fact]
    public async Task Restarting_the_whole_ensemble_from_disk_loses_no_acknowledged_write()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var acked = new List<string>();
        await using (var c = await Ens.ConnectAsync(Ens.Follower(ensemble)))
        {
            await c.CreateAsync("/w", null).OkAsync();
            acked.AddRange(await Ens.CreateManyAsync(c, "/w", "n", 200));
            await c.SetDataAsync("/w", Ens.Bytes("last")).OkAsync();
        }
        await Ens.KillAllAsync(ensemble);
        await Ens.RestartAllAsync(ensemble, 1, 2, 3);
        await Ens.WaitSettledAsync(ensemble);
        await Ens.AssertConvergedAsync(ensemble);
        await Ens.AssertAllPresentEverywhereAsync(ensemble, "/w", acked);
        foreach (var m in ensemble.Members)
        {
            await using var r = await Ens.ConnectAsync(m);
            await r.SyncAsync("/").OkAsync();
            var data = (GetDataResponse)(await r.GetDataAsync("/w").OkAsync())!;
            Assert.Equal("last", System.Text.Encoding.UTF8.GetString(data.Data!));
        }
    }
}
