using Coordination.Client;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Read-only mode (coordination.read-only-mode, ZooKeeper's readonlymode.enabled) with the .NET client and the raw
/// wire: a member whose two peers are down serves a client that asked for read-only, refuses the others, refuses
/// writes and syncs with NotReadOnly, and the client moves by itself to a read-write member once the quorum is back
/// (it probes with isro, as ZooKeeper's client does). Real clients (kazoo, the Java client) and Apache ZooKeeper are
/// in Coordination.Compat.Tests' ReadOnlyModeTests.
/// </summary>
public sealed class ReadOnlyModeTests
{
    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(what);
            await Task.Delay(50);
        }
    }

    private static async Task AssertNotReadOnly(Func<Task> write)
    {
        var e = await Assert.ThrowsAnyAsync<KeeperException>(write);
        Assert.Equal(ErrorCode.NotReadOnly, e.Code);
    }

    [Fact]
    public async Task Member_cut_off_from_its_quorum_serves_read_only_clients_until_the_heal()
    {
        await using var ensemble = await TestEnsemble.StartAsync(3, 0, new TestEnsembleOptions { ExtraHocon = "coordination.read-only-mode = on" });
        await using (var writer = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = ensemble.ConnectString }))
            await writer.CreateAsync("/ro-net", "v1"u8.ToArray());
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));
        var isolated = ensemble.Members[^1];
        var others = ensemble.Members.Where(m => m != isolated).ToList();
        // Cut off by the throttler, which stays on for the others' addresses when they come back; with them down, no
        // member serves read-write, so a client that accepts read-only can only be served read-only.
        await ensemble.PartitionAsync(isolated.Id);
        foreach (var m in others) await ensemble.KillAsync(m.Id);
        await WaitUntilAsync(() => isolated.Mode == "read-only", TimeSpan.FromSeconds(30), $"server {isolated.Id} did not become read-only: {isolated.Mode}");
        Assert.Equal("ro", await FourLetterWord.SendAsync(isolated.ConnectString, "isro"));

        // As ZooKeeper's read-only server: a client that did not ask for read-only is not served (its connection closes).
        await Assert.ThrowsAnyAsync<IOException>(() => WireClient.ConnectAsync(isolated.ConnectString));
        await using (var raw = await WireClient.ConnectAsync(isolated.ConnectString, new WireClientOptions { ReadOnly = true }))
        {
            Assert.True(raw.ServerReadOnly);
            Assert.Equal(ErrorCode.NotReadOnly, (await raw.CreateAsync("/ro-net/raw", [])).Header.Err);
            Assert.Equal(ErrorCode.NotReadOnly, (await raw.SyncAsync("/ro-net")).Header.Err);
            Assert.Equal(ErrorCode.NotReadOnly, (await raw.ReadLinearizablyAsync(OpCode.GetData, new PathWatchRequest("/ro-net", false))).Header.Err);
            Assert.Equal(ErrorCode.Ok, (await raw.GetDataAsync("/ro-net")).Header.Err);
        }

        var states = new List<ConnectionState>();
        await using var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = ensemble.ConnectString,
            CanBeReadOnly = true,
            SessionTimeout = TimeSpan.FromSeconds(8),
        });
        client.ConnectionStateChanged += s => { lock (states) states.Add(s); };
        Assert.Equal(ConnectionState.ConnectedReadOnly, client.State);
        Assert.Equal("v1"u8.ToArray(), (await client.GetDataAsync("/ro-net")).Data);
        await AssertNotReadOnly(() => client.CreateAsync("/ro-net/child", []));
        await AssertNotReadOnly(() => client.SetDataAsync("/ro-net", "v2"u8.ToArray()));
        await AssertNotReadOnly(() => client.DeleteAsync("/ro-net"));
        await AssertNotReadOnly(() => client.SyncAsync("/ro-net"));
        var readOnlySession = client.SessionId;

        // The other two come back and serve read-write; the isolated member stays read-only (still cut off), so the
        // client moves only because it found them by probing with isro.
        await Task.WhenAll(others.Select(m => ensemble.RestartAsync(m.Id)));
        await WaitUntilAsync(() => client.State == ConnectionState.Connected, TimeSpan.FromSeconds(60),
            $"the client did not move to a read-write member: {client.State}, states {string.Join(", ", states)}");
        Assert.Equal("read-only", isolated.Mode);
        Assert.NotEqual(readOnlySession, client.SessionId);   // a read-only session lives on its server only
        await client.SetDataAsync("/ro-net", "v2"u8.ToArray());
        Assert.Equal("v2"u8.ToArray(), (await client.GetDataAsync("/ro-net")).Data);

        await ensemble.HealAllAsync();
        await WaitUntilAsync(() => isolated.Mode is "follower" or "leader", TimeSpan.FromSeconds(60), $"server {isolated.Id} did not rejoin: {isolated.Mode}");
        Assert.Equal("rw", await FourLetterWord.SendAsync(isolated.ConnectString, "isro"));
    }
}
