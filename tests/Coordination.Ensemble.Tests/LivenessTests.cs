using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Invariant 9 on real server processes: every request is answered, or its connection is closed, within the session
/// timeout, whatever happens to the leader. Members die by SIGKILL; clients re-attach their sessions as ZooKeeper
/// clients do (kazoo goes back to the same follower once it serves again).
/// </summary>
public sealed class LivenessTests(ITestOutputHelper output)
{
    private void Log(string line)
    {
        try { output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}"); } catch (InvalidOperationException) { }
    }

    /// <summary>Re-attaches the session of <paramref name="old"/> to <paramref name="port"/>, retrying while that member
    /// does not serve yet (it closes connections during an election).</summary>
    private static async Task<WireClient> ReattachAsync(WireClient old, int port, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await old.ReattachAsync(new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) }, "127.0.0.1", port);
            }
            catch (WireConnectionException e) when (e is not SessionExpiredException && sw.Elapsed < timeout)
            {
                await Task.Delay(100);
            }
        }
    }

    [Fact]
    public async Task A_session_that_reattaches_to_its_follower_after_the_leader_is_killed_gets_its_sync_answered()
    {
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = ensemble.Members.First(m => m.Id != leader.Id);
        var client = await WireClient.ConnectAsync("127.0.0.1", follower.ClientPort, new WireClientOptions { SessionTimeoutMs = 10_000 });
        await client.CreateAsync("/before", null).OkAsync();
        await client.SyncAsync("/").OkAsync();

        ensemble.Kill(leader.Id);
        Log($"killed leader {leader.Id}; client on {follower.Id}");
        // The follower closes its client connections while it elects a new leader.
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(20));
        var newLeader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30), notId: leader.Id);
        Log($"new leader {newLeader.Id}");

        // No write happens in the new epoch: the session comes back to the same member and syncs first, as kazoo does.
        await using var again = await ReattachAsync(client, follower.ClientPort, TimeSpan.FromSeconds(8));
        await client.DisposeAsync();
        Assert.Equal(client.SessionId, again.SessionId);
        var sync = again.SyncAsync("/");
        var read = again.ExistsAsync("/before");
        var answered = await Task.WhenAny(sync, Task.Delay(TimeSpan.FromMilliseconds(again.NegotiatedTimeoutMs)));
        Assert.True(answered == sync, $"the re-attached session's sync on server {follower.Id} got no answer within its {again.NegotiatedTimeoutMs} ms timeout");
        await sync.OkAsync();
        await read.OkAsync();
    }
}
