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
        foreach (var member in ensemble.Members)
            Assert.Equal(["akka.remote.coordination-socket"], member.Server!.System.Settings.Config.GetStringList("akka.remote.enabled-transports"));
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

/// <summary>Akka.Remote's quarantine is final for an ActorSystem; the member must come back as a fresh incarnation.</summary>
public sealed class QuarantineTests
{
    [Fact]
    public async Task A_quarantined_member_restarts_its_ActorSystem_in_process_and_rejoins()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = ensemble.Leader!;
        var victim = ensemble.Members.First(m => m.Id != leader.Id);
        await using (var client = await WireClient.ConnectAsync(leader.ConnectString))
            await client.CreateAsync("/before", []).OkAsync();

        await ensemble.QuarantineAsync(leader.Id, victim.Id);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
        while (victim.Node!.Restarts == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the quarantined member never restarted");
            await Task.Delay(100);
        }
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(45));
        await using (var client = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString))
            await client.CreateAsync("/after", []).OkAsync();
        await using var reader = await WireClient.ConnectAsync(victim.ConnectString);
        await reader.SyncAsync("/").OkAsync();
        await reader.ExistsAsync("/before").OkAsync();
        await reader.ExistsAsync("/after").OkAsync();
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(20));
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }
}

/// <summary>A 5-voter ensemble tolerates two failures, not three.</summary>
public sealed class FiveVoterTests
{
    [Fact]
    public async Task Five_voters_keep_writing_with_two_down_and_stop_acknowledging_with_three_down()
    {
        await using var ensemble = await TestEnsemble.StartAsync(voters: 5);
        var leader = ensemble.Leader!;
        var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToList();
        await ensemble.KillAsync(followers[0].Id);
        await ensemble.KillAsync(followers[1].Id);
        await using (var client = await WireClient.ConnectAsync(leader.ConnectString))
            await client.CreateAsync("/two-down", []).OkAsync();

        await ensemble.KillAsync(followers[2].Id);
        // The leader loses its quorum: it stops serving, and a write sent to it is not acknowledged.
        var acknowledged = false;
        try
        {
            await using var client = await WireClient.ConnectAsync(leader.ConnectString);
            var (header, _) = await client.CreateAsync("/three-down", []).WaitAsync(TimeSpan.FromSeconds(10));
            acknowledged = header.Err == ErrorCode.Ok;
        }
        catch (Exception e) when (e is WireConnectionException or IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
        }
        Assert.False(acknowledged, "a write was acknowledged by 2 of 5 voters");

        await ensemble.RestartAsync(followers[0].Id);
        await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(30));
        await using var reader = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString);
        await reader.ExistsAsync("/two-down").OkAsync();
    }
}

/// <summary>The backup verb works on an ensemble member's data dir, beside the running member.</summary>
public sealed class EnsembleBackupTests
{
    [Fact]
    public async Task A_backup_of_a_running_follower_holds_every_acknowledged_write()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var follower = ensemble.Members.First(m => m.Id != ensemble.Leader!.Id);
        await using (var client = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString))
            for (var i = 0; i < 20; i++) await client.CreateAsync($"/backup-{i}", Encoding.UTF8.GetBytes($"v{i}")).OkAsync();
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(10));

        var file = Path.Combine(Path.GetTempPath(), $"ensemble-backup-{Guid.NewGuid():N}.snap");
        try
        {
            var zxid = Coordination.Server.CoordinationServer.Backup(Akka.Configuration.ConfigurationFactory.ParseString(ensemble.ConfigOf(follower)), file);
            Assert.Equal((await ensemble.HashAsync(follower.Id)).Zxid, zxid);
            using var fs = File.OpenRead(file);
            var tree = Coordination.Core.DataTree.ReadSnapshot(fs);
            for (var i = 0; i < 20; i++) Assert.Equal($"v{i}", Encoding.UTF8.GetString(tree.Find($"/backup-{i}")!.Data!));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
