using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// DESIGN invariant 5 across a leader change: a sync followed by a read sees every write committed before the sync,
/// also on a leader cut off from its quorum that has not noticed yet (ZOOKEEPER-1675's hole), through real members.
/// </summary>
public sealed class SyncAcrossLeaderChangeTests
{
    private const long OldLeader = 3;

    /// <summary>Makes <paramref name="id"/> the leader: the others' leaders are killed and restarted until it leads
    /// (with equal logs the election picks the highest id).</summary>
    private static async Task<TestEnsemble.Member> LeadAsync(TestEnsemble ensemble, long id)
    {
        for (var attempt = 0; ; attempt++)
        {
            await ensemble.WaitAllServingAsync(Ens.Settle);
            var leader = ensemble.Leader!;
            if (leader.Id == id) return leader;
            Assert.True(attempt < 3, $"server {id} never became leader");
            await ensemble.KillAsync(leader.Id);
            await ensemble.WaitForLeaderAsync(Ens.Settle, notId: leader.Id);
            await ensemble.RestartAsync(leader.Id);
        }
    }

    private static async Task<string> SyncAndReadAsync(WireClient client, string path)
    {
        await client.SyncAsync(path).OkAsync();
        var response = (GetDataResponse)(await client.GetDataAsync(path).OkAsync())!;
        return Encoding.UTF8.GetString(response.Data!);
    }

    [Fact]
    public async Task A_sync_on_an_old_leader_cut_off_from_its_quorum_is_refused_not_answered_with_state_older_than_the_new_leaders_write()
    {
        // The old leader notices its lost quorum only after 10 s (its own sync limit: a stall it discounts or a slow
        // link stretches the window the same way); the others give up on it after 1 s and elect a new leader meanwhile.
        await using var ensemble = await TestEnsemble.StartAsync(options: new TestEnsembleOptions
        {
            MemberHocon = id => id == OldLeader ? "coordination.ensemble.sync-limit = 100" : "",
        });
        var old = await LeadAsync(ensemble, OldLeader);
        await using (var c = await Ens.ConnectAsync(old)) await c.CreateAsync("/k", Ens.Bytes("old")).OkAsync();
        await using var client = await Ens.ConnectAsync(old);
        Assert.Equal("old", await SyncAndReadAsync(client, "/k"));   // the normal case: answered after one ping round

        await ensemble.PartitionAsync(old.Id);
        var next = await ensemble.WaitForLeaderAsync(Ens.Settle, notId: old.Id);
        await using (var c = await Ens.ConnectAsync(next)) await c.SetDataAsync("/k", Ens.Bytes("new")).OkAsync();
        Assert.True(old.Mode == "leader", "the old leader already stepped down before the new leader's write: this run shows nothing");

        var sync = client.SyncAsync("/k");
        var read = client.GetDataAsync("/k");
        await Task.WhenAny(Task.WhenAll(sync, read), Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(sync.IsCompleted && read.IsCompleted, "the sync on the old leader was neither answered nor refused within 30 s (invariant 9)");
        if (read.IsCompletedSuccessfully && read.Result.Header.Err == ErrorCode.Ok)
            Assert.True(Encoding.UTF8.GetString(((GetDataResponse)read.Result.Response!).Data!) == "new",
                "a read after a sync on the old leader missed a write the new leader acknowledged before the sync: a stale read");
        // It cannot prove it still leads: the sync is refused and its connection closed when it steps down.
        Assert.False(sync.IsCompletedSuccessfully && sync.Result.Header.Err == ErrorCode.Ok, "the cut-off leader answered the sync");
        Assert.False(client.IsConnected);

        // Healed, the old leader follows, and a sync there (and on the other follower) sees the write.
        await ensemble.HealAllAsync();
        await Ens.EventuallyAsync(() => Task.FromResult(old.Mode == "follower"), Ens.Settle, "the old leader rejoins as a follower");
        foreach (var member in ensemble.Members.Where(m => m.Id != next.Id))
        {
            await using var c = await Ens.ConnectAsync(member);
            Assert.Equal("new", await SyncAndReadAsync(c, "/k"));
        }
    }
}
