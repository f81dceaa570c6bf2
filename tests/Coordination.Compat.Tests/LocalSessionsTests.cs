using System.Text.RegularExpressions;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Local sessions (ZooKeeper's localSessionsEnabled and localSessionsUpgradingEnabled) in a 3-member ensemble of
/// ours and, as the reference, of Apache ZooKeeper 3.8 with the same settings. The same checks, with the same
/// expected answers, run against both: a local session writes persistent znodes, cannot move to another member
/// (re-attaching it there is session expiry, not SessionMoved), and creating an ephemeral upgrades it to a global
/// session that then moves with its ephemeral; with upgrading off that create fails with EphemeralOnLocalSession;
/// opening, closing and expiring local sessions commits no txn (every member's last zxid stays the same).
/// </summary>
[Collection("compat-failover")]
public sealed class LocalSessionsTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task An_ephemeral_upgrades_a_local_session_which_then_moves_while_a_local_one_cannot(string target)
    {
        await using var ensemble = await StartAsync(target, upgrading: true);
        var (first, second) = (ensemble.Members[0], ensemble.Members[1]);

        var local = await WireClient.ConnectAsync(first.Host, first.ClientPort);
        Assert.Equal(ErrorCode.Ok, (await local.CreateAsync("/ls-persistent", "x"u8.ToArray())).Header.Err);
        await local.DisposeAsync();
        Assert.Equal("expired", await ReattachOutcome(local, second));

        var upgraded = await WireClient.ConnectAsync(first.Host, first.ClientPort);
        Assert.Equal(ErrorCode.Ok, (await upgraded.CreateAsync("/ls-ephemeral", null, CreateMode.Ephemeral)).Header.Err);
        await upgraded.DisposeAsync();
        // The client has seen the ephemeral's zxid, and a member that has not applied it yet refuses the session by
        // closing the connection (ZooKeeper's "client must try another server", CI saw it on Apache): a sync through
        // that member first makes it catch up.
        await using (var catchUp = await WireClient.ConnectAsync(second.Host, second.ClientPort)) await catchUp.SyncAsync();
        await using var moved = await upgraded.ReattachAsync(host: second.Host, port: second.ClientPort);
        Assert.Equal(upgraded.SessionId, moved.SessionId);
        var (header, stat) = await moved.ExistsAsync("/ls-ephemeral");
        Assert.Equal(ErrorCode.Ok, header.Err);
        Assert.Equal(upgraded.SessionId, ((StatResponse)stat!).Stat.EphemeralOwner);

        await moved.CloseAsync();
        await using var observer = await WireClient.ConnectAsync(ensemble.Members[2].Host, ensemble.Members[2].ClientPort);
        await observer.SyncAsync();
        Assert.Equal(ErrorCode.NoNode, (await observer.ExistsAsync("/ls-ephemeral")).Header.Err);
        Assert.Equal(ErrorCode.Ok, (await observer.ExistsAsync("/ls-persistent")).Header.Err);
    }

    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task Without_upgrading_an_ephemeral_fails_and_local_sessions_commit_no_txn(string target)
    {
        await using var ensemble = await StartAsync(target, upgrading: false);
        var member = ensemble.Members[0];
        await using (var writer = await WireClient.ConnectAsync(member.Host, member.ClientPort))
        {
            Assert.Equal(ErrorCode.Ok, (await writer.CreateAsync("/ls-before", null)).Header.Err);
            Assert.Equal(ErrorCode.EphemeralOnLocalSession, (await writer.CreateAsync("/ls-ephemeral", null, CreateMode.Ephemeral)).Header.Err);
            Assert.Equal(ErrorCode.NoNode, (await writer.ExistsAsync("/ls-ephemeral")).Header.Err);
            await writer.SyncAsync();
            await writer.CloseAsync();
        }
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));
        var before = await LastZxids(ensemble);
        output.WriteLine($"{target}: last zxids before {string.Join(", ", before.Select(z => $"0x{z:x}"))}");

        // Sessions opened and closed on every member, and one left to expire.
        foreach (var m in ensemble.Members)
        {
            var session = await WireClient.ConnectAsync(m.Host, m.ClientPort);
            Assert.Equal(ErrorCode.Ok, (await session.ExistsAsync("/ls-before")).Header.Err);
            await session.CloseAsync();
        }
        var expiring = await WireClient.ConnectAsync(member.Host, member.ClientPort, new WireClientOptions { SessionTimeoutMs = 2000 });
        await expiring.DisposeAsync();
        // Twice its timeout and more (a re-attach before it expired would renew it).
        await Task.Delay(TimeSpan.FromMilliseconds(2 * expiring.NegotiatedTimeoutMs + 4 * CompatEnvironment.TickTimeMs));
        Assert.Equal("expired", await ReattachOutcome(expiring, member));

        var after = await LastZxids(ensemble);
        output.WriteLine($"{target}: last zxids after {string.Join(", ", after.Select(z => $"0x{z:x}"))}");
        Assert.Equal(before, after);
    }

    private async Task<EnsembleProcesses> StartAsync(string target, bool upgrading)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var ensemble = await EnsembleProcesses.StartAsync(ServerProcess.ParseKind(target), 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            ExtraHocon = $"coordination.local-sessions-enabled = on\ncoordination.local-sessions-upgrading-enabled = {(upgrading ? "on" : "off")}",
            ExtraZooCfg = ["localSessionsEnabled=true", $"localSessionsUpgradingEnabled={(upgrading ? "true" : "false")}"],
        });
        output.WriteLine($"{target} ensemble: {await ensemble.DescribeAsync()}");
        return ensemble;
    }

    /// <summary>"connected" or "expired" (the server answered the re-attach with a zero timeout).</summary>
    private static async Task<string> ReattachOutcome(WireClient session, EnsembleProcesses.Member member)
    {
        try
        {
            await using var again = await session.ReattachAsync(host: member.Host, port: member.ClientPort);
            return again.SessionId == session.SessionId ? "connected" : $"connected as 0x{again.SessionId:x}";
        }
        catch (SessionExpiredException)
        {
            return "expired";
        }
    }

    private static async Task<long[]> LastZxids(EnsembleProcesses ensemble)
    {
        var zxids = new List<long>();
        foreach (var m in ensemble.Members)
        {
            var srvr = await ensemble.SrvrAsync(m.Id) ?? throw new InvalidOperationException($"server {m.Id} did not answer srvr");
            var match = Regex.Match(srvr, @"Zxid: 0x([0-9a-f]+)");
            Assert.True(match.Success, $"no Zxid in srvr of server {m.Id}: {srvr}");
            zxids.Add(Convert.ToInt64(match.Groups[1].Value, 16));
        }
        return zxids.ToArray();
    }
}

/// <summary>Our 3-member ensemble with local sessions and upgrading on: every kazoo and Java check runs against a
/// follower unchanged (<see cref="OursLocalSessionsEnsembleTarget"/>).</summary>
public sealed class CoordinationLocalSessionsEnsembleFixture : CoordinationEnsembleFixture
{
    public override string Target => "ours-ensemble-local-sessions";

    protected override string ExtraSettings => "local-sessions-enabled = on\nlocal-sessions-upgrading-enabled = on";
}

[CollectionDefinition(Name)]
public sealed class OursLocalSessionsEnsembleCollection : ICollectionFixture<CoordinationLocalSessionsEnsembleFixture>
{
    public const string Name = "compat-ours-ensemble-local-sessions";
}

/// <summary>The kazoo and Java client checks against our ensemble with local sessions on.</summary>
[Collection(OursLocalSessionsEnsembleCollection.Name)]
public sealed class OursLocalSessionsEnsembleTarget(CoordinationLocalSessionsEnsembleFixture server, ITestOutputHelper output)
    : CompatTestsBase(server, output);
