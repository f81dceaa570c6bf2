using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Three in-process members over real Akka.Remote and real client TCP: writes through any member reach all.</summary>
public sealed class ReplicationTests
{
    [Fact]
    public async Task Writes_through_a_follower_are_visible_on_every_member_and_the_digests_agree()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = ensemble.Leader!;
        var follower = ensemble.Members.First(m => m.Id != leader.Id);
        await using var client = await WireClient.ConnectAsync(follower.ConnectString);
        await client.CreateAsync("/r", "x"u8.ToArray()).OkAsync();
        for (var i = 0; i < 50; i++) await client.CreateAsync($"/r/n{i}", Encoding.UTF8.GetBytes($"v{i}")).OkAsync();
        await client.SetDataAsync("/r", "y"u8.ToArray()).OkAsync();

        foreach (var member in ensemble.Members)
        {
            await using var reader = await WireClient.ConnectAsync(member.ConnectString);
            await reader.SyncAsync("/").OkAsync();
            var data = (GetDataResponse)(await reader.GetDataAsync("/r").OkAsync())!;
            Assert.Equal("y", Encoding.UTF8.GetString(data.Data!));
            var children = (GetChildrenResponse)(await reader.GetChildren2Async("/r").OkAsync())!;
            Assert.Equal(50, children.Children.Count);
        }
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(10));
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }
}
