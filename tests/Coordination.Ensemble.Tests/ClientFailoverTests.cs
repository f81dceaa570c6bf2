using Coordination.Client;
using Coordination.Protocol;
using Coordination.Recipes;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>The .NET client and recipes against a real ensemble, written as a user of Coordination.TestKit would.</summary>
public sealed class ClientFailoverTests
{
    private static async Task<TestEnsemble.Member> ServerOfSessionAsync(TestEnsemble ensemble, long sessionId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            foreach (var member in ensemble.Members.Where(m => m.IsRunning))
                if ((await FourLetterWord.SendAsync(member.ConnectString, "cons")).Contains($"sid=0x{sessionId:x}", StringComparison.Ordinal))
                    return member;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no member lists session 0x{sessionId:x}");
            await Task.Delay(100);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Killing_the_clients_server_keeps_its_session_ephemeral_and_watch()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        await using var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = ensemble.ConnectString,
            SessionTimeout = TimeSpan.FromSeconds(8),
        });
        var sessionId = client.SessionId;
        var reconnected = false;
        client.ConnectionStateChanged += s => { if (s == ConnectionState.Reconnected) reconnected = true; };
        await client.CreateAsync("/failover-eph", [], CreateMode.Ephemeral);
        await client.CreateAsync("/failover-watched", []);
        var fired = new TaskCompletionSource<WatchedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.GetDataAsync("/failover-watched", e => fired.TrySetResult(e));

        var server = await ServerOfSessionAsync(ensemble, sessionId);
        await ensemble.KillAsync(server.Id);
        await WaitUntilAsync(() => reconnected, TimeSpan.FromSeconds(30), "the client did not reconnect");
        Assert.Equal(sessionId, client.SessionId);

        var other = ensemble.Members.First(m => m.IsRunning && m.Id != server.Id);
        await using var writer = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = other.ConnectString });
        Assert.NotNull(await writer.ExistsAsync("/failover-eph"));
        await writer.SetDataAsync("/failover-watched", "changed"u8.ToArray());
        var e = await fired.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(EventType.NodeDataChanged, e.Type);
        Assert.NotEqual(server.Id, (await ServerOfSessionAsync(ensemble, sessionId)).Id);
    }

    [Fact]
    public async Task Leadership_moves_when_the_leaders_server_is_partitioned_away()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        // Each participant talks to one server only, so that cutting a server off also cuts off its participant.
        var clients = new List<CoordinationClient>();
        var latches = new List<LeaderLatch>();
        try
        {
            foreach (var member in ensemble.Members)
            {
                var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
                {
                    ConnectString = member.ConnectString,
                    SessionTimeout = TimeSpan.FromSeconds(4),
                });
                clients.Add(client);
                var latch = new LeaderLatch(client, "/election", $"participant-{member.Id}");
                await latch.StartAsync();
                latches.Add(latch);
            }
            await WaitUntilAsync(() => latches.Count(l => l.HasLeadership) == 1, TimeSpan.FromSeconds(20), "no single leader");
            var first = latches.FindIndex(l => l.HasLeadership);
            var leaderServer = ensemble.Members[first];

            await ensemble.PartitionAsync(leaderServer.Id);

            // The cut-off participant must give up leadership, and one of the others must take it (once the old
            // participant's session has expired on the majority side and its latch node is gone).
            await WaitUntilAsync(() => !latches[first].HasLeadership, TimeSpan.FromSeconds(20), "the partitioned participant kept leadership");
            await WaitUntilAsync(() => latches.Where((_, i) => i != first).Count(l => l.HasLeadership) == 1, TimeSpan.FromSeconds(40),
                "leadership did not move to a participant on the majority side");
            Assert.False(latches[first].HasLeadership);
            await ensemble.HealAllAsync();
        }
        finally
        {
            foreach (var latch in latches) await latch.DisposeAsync();
            foreach (var client in clients) await client.DisposeAsync();
        }
    }
}
