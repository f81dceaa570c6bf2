using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// invariant 5 across a leader change: a sync followed by a read sees every write committed before the sync,
/// also on a leader cut off from its quorum that has not noticed yet (ZOOKEEPER-1675's hole), through real members.
/// </summary>
public sealed class SyncAcrossLeaderChangeTests
{
    private const long OldLeader = 3;

    private static async Task<string> SyncAndReadAsync(WireClient client, string path)
    {
        await client.SyncAsync(path).OkAsync();
        var response = (GetDataResponse)(await client.GetDataAsync(path).OkAsync())!;
        return Encoding.UTF8.GetString(response.Data!);
    }

    /// <summary>
    /// The old leader (server 3 of 3, or 5 of 5 cut off with follower 4 still attached to it) notices its lost quorum
    /// only after 10 s, its own sync limit (a stall it discounts or a slow link stretches the window the same way);
    /// the others give up on it after 1 s and elect a new leader, which acknowledges a write. A client of the old side
    /// then syncs and reads: the old leader cannot prove it still leads, so the sync is refused and its connection
    /// closed, never answered with the state before that write. A linearizable read (op 1001) there waits behind
    /// the same sync, so it must be refused the same way, never parked and never stale.
    /// </summary>
    [Theory]
    [InlineData(3, false, false)]
    [InlineData(5, true, false)]
    [InlineData(5, true, true)]
    public async Task A_sync_on_the_side_of_an_old_leader_cut_off_from_its_quorum_is_refused_not_answered_with_state_older_than_the_new_leaders_write(
        int voters, bool clientOnFollower, bool linearizableRead)
    {
        long oldLeader = voters;
        var oldSide = clientOnFollower ? new[] { oldLeader, oldLeader - 1 } : [oldLeader];
        await using var ensemble = await TestEnsemble.StartAsync(voters, options: new TestEnsembleOptions
        {
            MemberHocon = id => oldSide.Contains(id) ? "coordination.ensemble.sync-limit = 100" : "",
        });
        var old = await Ens.LeadAsync(ensemble, oldLeader);
        var served = ensemble[oldSide[^1]];
        await using (var c = await Ens.ConnectAsync(old)) await c.CreateAsync("/k", Ens.Bytes("old")).OkAsync();
        await using var client = await Ens.ConnectAsync(served);
        Assert.Equal("old", await SyncAndReadAsync(client, "/k"));   // the normal case: answered after one ping round

        foreach (var a in oldSide)
        foreach (var b in ensemble.Members.Where(m => !oldSide.Contains(m.Id)))
            await ensemble.SetLinkAsync(a, b.Id, heal: false);
        var next = await ensemble.WaitForLeaderAsync(Ens.Settle, notId: old.Id);
        await using (var c = await Ens.ConnectAsync(next)) await c.SetDataAsync("/k", Ens.Bytes("new")).OkAsync();
        Assert.True(old.Mode == "leader" && served.Server!.Ensemble!.Serving,
            "the old side stopped serving before the new leader's write: this run shows nothing");

        var sync = linearizableRead ? client.ReadLinearizablyAsync(OpCode.GetData, new PathWatchRequest("/k", false)) : client.SyncAsync("/k");
        var read = linearizableRead ? sync : client.GetDataAsync("/k");
        await Task.WhenAny(Task.WhenAll(sync, read), Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(sync.IsCompleted && read.IsCompleted, "the sync on the old side was neither answered nor refused within 30 s (invariant 9)");
        if (read.IsCompletedSuccessfully && read.Result.Header.Err == ErrorCode.Ok)
            Assert.True(Encoding.UTF8.GetString(((GetDataResponse)read.Result.Response!).Data!) == "new",
                "a read after a sync on the old side missed a write the new leader acknowledged before the sync: a stale read");
        Assert.False(sync.IsCompletedSuccessfully && sync.Result.Header.Err == ErrorCode.Ok, "the cut-off leader answered the sync");
        Assert.False(client.IsConnected);

        // Healed, the old side follows, and a sync there (and on every other follower) sees the write.
        await ensemble.HealAllAsync();
        await Ens.EventuallyAsync(() => Task.FromResult(oldSide.All(id => ensemble[id].Mode == "follower")), Ens.Settle, "the old side rejoins as followers");
        foreach (var member in ensemble.Members.Where(m => m.Id != next.Id))
        {
            await using var c = await Ens.ConnectAsync(member);
            Assert.Equal("new", await SyncAndReadAsync(c, "/k"));
        }
    }
}
