using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Quotas in an ensemble: the leader decides a hard-limit refusal in Prep, so a write through a follower is refused
/// with QuotaExceeded like one on the leader, and every member applies the same txns and so holds the same quota stats.
/// </summary>
public sealed class QuotaEnsembleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_hard_limit_holds_for_writes_through_every_member_and_members_agree_on_the_stats()
    {
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            ExtraHocon = "coordination.enforce-quota = on",
            Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
        });
        var clients = new List<WireClient>();
        try
        {
            foreach (var member in ensemble.Members) clients.Add(await WireClient.ConnectAsync(member.ConnectString));
            var first = clients[0];
            // What zkCli's "setquota -N 4 /q" writes.
            Assert.Equal(ErrorCode.Ok, (await first.CreateAsync("/q", null)).Header.Err);
            Assert.Equal(ErrorCode.Ok, (await first.CreateAsync("/zookeeper/quota/q", null)).Header.Err);
            Assert.Equal(ErrorCode.Ok, (await first.CreateAsync("/zookeeper/quota/q/zookeeper_limits", Encoding.UTF8.GetBytes("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=4"))).Header.Err);
            Assert.Equal(ErrorCode.Ok, (await first.CreateAsync("/zookeeper/quota/q/zookeeper_stats", Encoding.UTF8.GetBytes("count=0,bytes=0"))).Header.Err);

            // Each member's client creates concurrently: exactly three fit under /q (the root counts), whoever wins.
            var results = await Task.WhenAll(Enumerable.Range(0, 9).Select(i => clients[i % 3].CreateAsync($"/q/n{i}", [1])));
            Assert.Equal(3, results.Count(r => r.Header.Err == ErrorCode.Ok));
            Assert.Equal(6, results.Count(r => r.Header.Err == ErrorCode.QuotaExceeded));
            foreach (var client in clients)
            {
                await client.SyncAsync();
                var stats = (GetDataResponse)(await client.GetDataAsync("/zookeeper/quota/q/zookeeper_stats")).Response!;
                Assert.Equal("count=4,bytes=3", Encoding.UTF8.GetString(stats.Data!));
                var children = (GetChildrenResponse)(await client.GetChildren2Async("/q")).Response!;
                Assert.Equal(3, children.Children.Count);
            }
        }
        finally
        {
            foreach (var client in clients) await client.DisposeAsync();
        }
    }
}
