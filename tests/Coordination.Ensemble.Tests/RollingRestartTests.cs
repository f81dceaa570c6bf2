using System.Collections.Concurrent;
using Coordination.Client;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// The rolling-restart procedure of the README, under client load: restart each member of a 3-server ensemble in
/// turn, waiting for the ensemble to serve again before the next. Clients must see only reconnects: no session
/// lost, no error other than ConnectionLoss, and their ephemerals survive.
/// </summary>
public sealed class RollingRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Restarting_each_member_in_turn_under_load_loses_no_session()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var clients = new List<CoordinationClient>();
        var expired = 0;
        var unexpected = new ConcurrentQueue<Exception>();
        var acked = new long[4];
        var connectionLosses = 0;
        try
        {
            for (var i = 0; i < acked.Length; i++)
            {
                var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
                {
                    ConnectString = ensemble.ConnectString,
                    SessionTimeout = TimeSpan.FromSeconds(10),
                });
                client.ConnectionStateChanged += s => { if (s == ConnectionState.Expired) Interlocked.Increment(ref expired); };
                await client.CreateAsync($"/member-{i}", [], CreateMode.Ephemeral);
                await client.CreateAsync($"/load-{i}", []);
                clients.Add(client);
            }
            var sessions = clients.Select(c => c.SessionId).ToList();

            using var stop = new CancellationTokenSource();
            var load = clients.Select((client, i) => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        await client.SetDataAsync($"/load-{i}", BitConverter.GetBytes(acked[i] + 1));
                        Interlocked.Increment(ref acked[i]);
                    }
                    catch (KeeperException e) when (e.Code == ErrorCode.ConnectionLoss)
                    {
                        Interlocked.Increment(ref connectionLosses);
                        await Task.Delay(50);
                    }
                    catch (Exception e)
                    {
                        unexpected.Enqueue(e);
                        return;
                    }
                }
            })).ToList();

            foreach (var member in ensemble.Members.ToList())
            {
                var before = acked.Sum();
                await ensemble.KillAsync(member.Id);
                await ensemble.RestartAsync(member.Id);
                await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
                // The load must make progress with every member restarted.
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (acked.Sum() < before + 50 && unexpected.IsEmpty)
                {
                    Assert.True(DateTime.UtcNow < deadline, $"no progress after restarting server {member.Id}");
                    await Task.Delay(100);
                }
                output.WriteLine($"restarted server {member.Id}: {acked.Sum()} writes acknowledged so far, {connectionLosses} connection losses");
            }
            stop.Cancel();
            await Task.WhenAll(load);

            Assert.Empty(unexpected);
            Assert.Equal(0, expired);
            Assert.Equal(sessions, clients.Select(c => c.SessionId).ToList());
            for (var i = 0; i < clients.Count; i++)
            {
                Assert.NotNull(await clients[i].ExistsAsync($"/member-{i}"));
                // The last acknowledged value is what the node holds: nothing acknowledged was lost.
                var data = await clients[i].GetDataAsync($"/load-{i}");
                Assert.True(BitConverter.ToInt64(data.Data) >= acked[i], $"client {i}: node holds {BitConverter.ToInt64(data.Data)}, {acked[i]} acknowledged");
            }
        }
        finally
        {
            foreach (var client in clients) await client.DisposeAsync();
        }
    }
}
