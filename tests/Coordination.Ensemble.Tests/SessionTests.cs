using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Sessions across the ensemble: moving between servers, SessionMoved, leader-decided expiry, survival of a
/// leader change, and sync-then-read on a follower.</summary>
public sealed class SessionTests
{
    private static async Task<WireClient> ReattachAnywhereAsync(TestEnsemble ensemble, WireClient old, TimeSpan timeout, long notId = -1)
    {
        var sw = Stopwatch.StartNew();
        var n = 0;
        while (true)
        {
            var candidates = ensemble.Members.Where(m => m.IsRunning && m.Id != notId).ToList();
            var target = candidates[n++ % candidates.Count];
            try
            {
                return await old.ReattachAsync(new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) }, "127.0.0.1", target.ClientPort);
            }
            catch (WireConnectionException e) when (e is not SessionExpiredException && sw.Elapsed < timeout)
            {
                await Task.Delay(100);
            }
        }
    }

    [Fact]
    public async Task A_session_moves_between_servers_with_its_ephemerals_and_watches_and_its_old_server_gets_SessionMoved()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = ensemble.Leader!;
        var a = Ens.Follower(ensemble);
        var b = Ens.Follower(ensemble, a.Id);

        await using var c1 = await Ens.ConnectAsync(a, new WireClientOptions { SessionTimeoutMs = 8000 });
        await c1.CreateAsync("/g", Ens.Bytes("0")).OkAsync();
        await c1.CreateAsync("/g/eph", null, CreateMode.Ephemeral).OkAsync();
        await c1.GetDataAsync("/g", watch: true).OkAsync();
        var sessionId = c1.SessionId;

        // The same session re-attaches through server B (c1's connection to A stays open: the race ZooKeeper's
        // SessionMoved exists for).
        await using var c2 = await c1.ReattachAsync(host: "127.0.0.1", port: b.ClientPort);
        Assert.Equal(sessionId, c2.SessionId);
        var (swHeader, _) = await c2.SendSpecialAsync(Xids.SetWatches, OpCode.SetWatches,
            new SetWatchesRequest(c1.LastZxid, ["/g"], [], [], [], [], false));
        Assert.Equal(ErrorCode.Ok, swHeader.Err);
        await c2.SyncAsync("/").OkAsync();
        Assert.Equal(ErrorCode.Ok, (await c2.ExistsAsync("/g/eph")).Header.Err);
        // A write through B: the leader now knows B owns the session.
        await c2.CreateAsync("/g/via-b", null).OkAsync();

        // The old connection's write reaches the leader from A: SessionMoved, never applied.
        Assert.True(c1.IsConnected, "server A dropped the old connection; the SessionMoved race cannot be built");
        var (movedHeader, _) = await c1.CreateAsync("/g/via-a", null).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ErrorCode.SessionMoved, movedHeader.Err);
        await c1.DisposeAsync();

        // The watch re-registered on B by setWatches fires on a change made elsewhere.
        await using (var other = await Ens.ConnectAsync(leader))
            await other.SetDataAsync("/g", Ens.Bytes("1")).OkAsync();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var ev = await c2.Events.ReadAsync(cts.Token);
            Assert.Equal(EventType.NodeDataChanged, ev.Event.Type);
            Assert.Equal("/g", ev.Event.Path);
        }

        // Its server dies: the client moves on with the same session and its ephemeral.
        await ensemble.KillAsync(b.Id);
        await c2.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        await using var c3 = await ReattachAnywhereAsync(ensemble, c2, TimeSpan.FromSeconds(6), notId: b.Id);
        Assert.Equal(sessionId, c3.SessionId);
        await c3.CreateAsync("/g/after-move", null).OkAsync();
        foreach (var m in ensemble.Members.Where(m => m.IsRunning))
        {
            Assert.True(await Ens.ExistsAsync(m, "/g/eph"), $"the ephemeral is gone on {m}");
            Assert.False(await Ens.ExistsAsync(m, "/g/via-a"), $"the SessionMoved write was applied on {m}");
        }
        await Ens.AssertConvergedAsync(ensemble);
    }

    [Fact]
    public async Task A_session_on_a_follower_whose_client_disappears_expires_on_every_member()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var follower = Ens.Follower(ensemble);
        await using (var c = await Ens.ConnectAsync(ensemble.Leader!)) await c.CreateAsync("/x", null).OkAsync();
        var gone = await Ens.ConnectAsync(follower, new WireClientOptions { SessionTimeoutMs = 2000 });
        var timeout = gone.NegotiatedTimeoutMs;
        await gone.CreateAsync("/x/eph", null, CreateMode.Ephemeral).OkAsync();
        var sw = Stopwatch.StartNew();
        await gone.DisposeAsync();   // no closeSession: the client just vanishes

        foreach (var m in ensemble.Members)
            await Ens.EventuallyAsync(async () => !await Ens.ExistsAsync(m, "/x/eph"), TimeSpan.FromMilliseconds(timeout) + TimeSpan.FromSeconds(10),
                $"the ephemeral disappears on {m}");
        Assert.True(sw.ElapsedMilliseconds >= timeout / 2, $"the session expired after {sw.ElapsedMilliseconds} ms, before its {timeout} ms timeout");
        await Ens.AssertConvergedAsync(ensemble);
    }

    [Fact]
    public async Task A_session_pinging_a_follower_does_not_expire()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var follower = Ens.Follower(ensemble);
        await using var alive = await Ens.ConnectAsync(follower, new WireClientOptions { SessionTimeoutMs = 2000 });
        var timeout = alive.NegotiatedTimeoutMs;
        await alive.CreateAsync("/alive", null, CreateMode.Ephemeral).OkAsync();
        await using var watcher = await Ens.ConnectAsync(ensemble.Leader!);

        // Only pings reach the follower; the leader decides expiry from the touches the follower passes on.
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < 3 * timeout)
        {
            Assert.Equal(ErrorCode.Ok, (await watcher.ExistsAsync("/alive")).Header.Err);
            Assert.True(alive.IsConnected, "the pinging client was disconnected");
            await Task.Delay(200);
        }
        Assert.True(alive.PongCount > 0);
        await alive.SetDataAsync("/alive", Ens.Bytes("still")).OkAsync();
    }

    [Fact]
    public async Task Sessions_survive_a_leader_change_and_the_new_leader_still_expires_abandoned_ones()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var old = ensemble.Leader!;
        var follower = Ens.Follower(ensemble);
        await using (var c = await Ens.ConnectAsync(old)) await c.CreateAsync("/lc", null).OkAsync();
        var kept = await Ens.ConnectAsync(follower, new WireClientOptions { SessionTimeoutMs = 6000 });
        var timeout = kept.NegotiatedTimeoutMs;
        await kept.CreateAsync("/lc/kept", null, CreateMode.Ephemeral).OkAsync();
        var abandoned = await Ens.ConnectAsync(follower, new WireClientOptions { SessionTimeoutMs = 6000 });
        await abandoned.CreateAsync("/lc/abandoned", null, CreateMode.Ephemeral).OkAsync();
        await abandoned.DisposeAsync();

        await ensemble.KillAsync(old.Id);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(20), notId: old.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        // The followers dropped their clients when the leader went: the kept client re-attaches within its timeout.
        if (!kept.IsConnected || !(await kept.SyncAsync("/").WaitAsync(TimeSpan.FromSeconds(5))).Header.Err.Equals(ErrorCode.Ok))
        {
            var again = await ReattachAnywhereAsync(ensemble, kept, TimeSpan.FromMilliseconds(timeout / 2));
            await kept.DisposeAsync();
            kept = again;
        }
        try
        {
            var established = Stopwatch.StartNew();
            // The abandoned session expires under the new leader (which re-armed every deadline)...
            await Ens.EventuallyAsync(async () => !await Ens.ExistsAsync(leader, "/lc/abandoned"),
                TimeSpan.FromMilliseconds(timeout) + TimeSpan.FromSeconds(10), "the abandoned session expires under the new leader");
            // ...and the kept one lives on past a whole timeout after the new leader took over.
            while (established.ElapsedMilliseconds < timeout + 2000)
            {
                Assert.True(await Ens.ExistsAsync(leader, "/lc/kept"), "the live session's ephemeral vanished after the leader change");
                await Task.Delay(300);
            }
            await kept.SetDataAsync("/lc/kept", Ens.Bytes("alive")).OkAsync();
            await ensemble.RestartAsync(old.Id);
            await ensemble.WaitAllServingAsync(Ens.Settle);
            await Ens.AssertConvergedAsync(ensemble);
            Assert.True(await Ens.ExistsAsync(old, "/lc/kept"));
            Assert.False(await Ens.ExistsAsync(old, "/lc/abandoned"));
        }
        finally
        {
            await kept.DisposeAsync();
        }
    }

    [Fact]
    public async Task Sync_then_read_on_a_follower_sees_a_write_just_acknowledged_through_another_member()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var writerMember = Ens.Follower(ensemble);
        var readerMember = Ens.Follower(ensemble, writerMember.Id);
        await using var writer = await Ens.ConnectAsync(writerMember);
        await using var leaderWriter = await Ens.ConnectAsync(ensemble.Leader!);
        await using var reader = await Ens.ConnectAsync(readerMember);
        await writer.CreateAsync("/k", Ens.Bytes("-1")).OkAsync();
        for (var i = 0; i < 40; i++)
        {
            var via = i % 2 == 0 ? writer : leaderWriter;
            await via.SetDataAsync("/k", Ens.Bytes(i.ToString())).OkAsync();
            var sync = reader.SyncAsync("/k");
            var read = reader.GetDataAsync("/k");
            await sync.OkAsync();
            var data = (GetDataResponse)(await read.OkAsync())!;
            Assert.Equal(i.ToString(), System.Text.Encoding.UTF8.GetString(data.Data!));
        }
    }
}
