using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Coordination.Tests.Shared;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Issue 17, session secrets in an ensemble: every member derives a session's password from the deployment's secret,
/// which the first leader commits to the log. After the leader is killed, and on a member restarted from its data dir,
/// the real password re-attaches the session and a password computed from public information does not.
/// </summary>
public sealed class SessionSecretTests
{
    /// <summary>Attaches to <paramref name="member"/> with the given id and password, retrying while it is not serving.</summary>
    private static async Task<WireClient> AttachAsync(TestEnsemble.Member member, long sessionId, byte[] password)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await WireClient.ConnectAsync("127.0.0.1", member.ClientPort, new WireClientOptions
                {
                    SessionId = sessionId, Password = password, SessionTimeoutMs = 15_000, ConnectTimeout = TimeSpan.FromSeconds(2),
                });
            }
            catch (WireConnectionException e) when (e is not SessionExpiredException && sw.Elapsed < Ens.Settle)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task AssertHijackRefusedAsync(TestEnsemble.Member member, long sessionId)
    {
        foreach (var (scheme, password) in PublicSessionPasswords.For(sessionId))
        {
            var e = await Record.ExceptionAsync(async () => await (await AttachAsync(member, sessionId, password)).DisposeAsync());
            Assert.True(e is SessionExpiredException, $"{member}: a password from public information ({scheme}) was not refused: {e?.GetType().Name ?? "attached"}");
        }
    }

    [Fact]
    public async Task The_real_password_reattaches_after_leader_failover_and_member_restart_and_a_public_one_never_does()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = await Ens.WaitSettledAsync(ensemble);
        var home = Ens.Follower(ensemble);
        var other = Ens.Follower(ensemble, home.Id);

        var owner = await Ens.ConnectAsync(home, new WireClientOptions { SessionTimeoutMs = 15_000 });
        var sessionId = owner.SessionId;
        var password = owner.Password;
        await owner.CreateAsync("/held", null, CreateMode.Ephemeral).OkAsync();
        await AssertHijackRefusedAsync(other, sessionId);

        await ensemble.KillAsync(leader.Id);
        await ensemble.WaitForLeaderAsync(Ens.Settle, notId: leader.Id);
        await owner.DisposeAsync();

        // After failover: refused with public passwords on both survivors, re-attached with the real one elsewhere.
        await AssertHijackRefusedAsync(home, sessionId);
        await AssertHijackRefusedAsync(other, sessionId);
        await using (var moved = await AttachAsync(other, sessionId, password))
        {
            Assert.Equal(sessionId, moved.SessionId);
            Assert.Equal(password, moved.Password);
            await moved.SyncAsync("/").OkAsync();
            var stat = (StatResponse?)await moved.ExistsAsync("/held").OkAsync();
            Assert.Equal(sessionId, stat!.Stat.EphemeralOwner);
        }

        // The old leader restarts from its data dir (journal and snapshot) and knows the same secret.
        await ensemble.RestartAsync(leader.Id);
        await AssertHijackRefusedAsync(leader, sessionId);
        await using var back = await AttachAsync(leader, sessionId, password);
        Assert.Equal(sessionId, back.SessionId);
        await back.SyncAsync("/").OkAsync();
        Assert.Equal(ErrorCode.Ok, (await back.ExistsAsync("/held")).Header.Err);
        await back.CloseAsync();
    }

    [Fact]
    public async Task A_member_rebuilt_from_an_empty_data_dir_by_snap_checks_passwords_like_the_others()
    {
        await using var ensemble = await TestEnsemble.StartAsync(options: new TestEnsembleOptions { SnapshotEveryTxns = 200 });
        await Ens.WaitSettledAsync(ensemble);
        var wiped = Ens.Follower(ensemble);
        var other = Ens.Follower(ensemble, wiped.Id);
        await using var owner = await Ens.ConnectAsync(other, new WireClientOptions { SessionTimeoutMs = 30_000 });
        await owner.CreateAsync("/snap-secret", null).OkAsync();

        // Its data is gone, and the leader's log no longer reaches back to the secret: only a snapshot can bring it.
        await ensemble.KillAsync(wiped.Id);
        Directory.Delete(wiped.DataDir, recursive: true);
        await Ens.CreateManyAsync(owner, "/snap-secret", "n", 900);
        // Snapshots are written in the background, after the writes that start them: until one is written and the
        // leader's log trimmed to it, the log still reaches back to the secret and the member would be synced by DIFF.
        var created = ((StatResponse?)await owner.ExistsAsync("/snap-secret").OkAsync())!.Stat.Czxid;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (ensemble.Leader!.Server!.Ensemble!.LogStartZxid <= created && clock.Elapsed < Ens.Settle) await Task.Delay(50);
        Assert.True(ensemble.Leader!.Server!.Ensemble!.LogStartZxid > created,
            $"the leader's log still starts after 0x{ensemble.Leader!.Server!.Ensemble!.LogStartZxid:x}, not past 0x{created:x}, {clock.ElapsedMilliseconds} ms after the writes");
        await ensemble.RestartAsync(wiped.Id);
        await ensemble.WaitAllServingAsync(Ens.Settle);
        Assert.True(wiped.Server!.Ensemble!.SnapshotsInstalled >= 1, "the wiped member was not synchronised by SNAP");

        await AssertHijackRefusedAsync(wiped, owner.SessionId);
        await using var moved = await AttachAsync(wiped, owner.SessionId, owner.Password);
        Assert.Equal(owner.SessionId, moved.SessionId);
    }
}
