using Coordination.TestKit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Dynamic reconfiguration (issue 19) through kazoo (tests/compat/kazoo_reconfig.py), the same steps against a
/// 3-voter ensemble of ours and of Apache ZooKeeper 3.8 with reconfig enabled and super:super as super user:
/// /zookeeper/config in ZooKeeper's format, NoAuth without the super user, BadVersion for a stale from-config,
/// BadArguments for a bad server line and for no voters left, removing a follower answers the new
/// configuration (version = its zxid, data version -1) and fires the config watch, writes go on after it; then
/// zkCli's config, config -c (the client connect string from the members' client addresses) and reconfig -remove.
/// </summary>
public sealed class ReconfigCompatTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(120);

    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task Kazoo_reconfig_removes_a_follower_as_on_ZooKeeper(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerProcess.ParseKind(target), 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            ExtraHocon = $"coordination {{ reconfig-enabled = on, super-digest = \"{CompatEnvironment.SuperDigest}\" }}",
            ExtraZooCfg = ["reconfigEnabled=true"],
            JavaOptions = ["-Xmx256m", $"-Dzookeeper.DigestAuthenticationProvider.superDigest={CompatEnvironment.SuperDigest}"],
            Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
        });
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var removed = ensemble.Members.First(m => m.Id != leader.Id);
        var hosts = string.Join(',', ensemble.Members.Where(m => m != removed).Select(m => m.ConnectString));
        var result = await ProcessRunner.RunAsync(CompatEnvironment.Python,
            [Path.Combine(CompatEnvironment.CompatDir, "kazoo_reconfig.py"), "--hosts", hosts, "--remove", removed.Id.ToString()], ClientTimeout,
            new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" });
        output.WriteLine($"kazoo against {target}: exit {result.ExitCode}\n{result.Output}");
        var steps = result.Output.Split('\n').Where(l => l.StartsWith("STEP ")).Select(l => l[5..].Split(' ', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1].Trim() : "");
        var all = string.Join(",", ensemble.Members.Select(m => $"server.{m.Id}"));
        var kept = string.Join(",", ensemble.Members.Where(m => m != removed).Select(m => $"server.{m.Id}"));
        Assert.True(result.Succeeded, $"kazoo against {target} failed:\n{result.Output}");
        Assert.Equal(all, steps["initial-servers"]);
        Assert.Equal("yes", steps["initial-version-line"]);
        Assert.Equal("ok", steps["initial-line-format"]);
        Assert.Equal("NoAuthError(-102)", steps["no-auth"]);
        Assert.Equal("BadVersionError(-103)", steps["bad-version"]);
        Assert.Equal("BadArgumentsError(-8)", steps["bad-arguments"]);
        Assert.Equal(kept, steps["removed-servers"]);
        Assert.Equal("yes", steps["removed-version-newer"]);
        Assert.Equal("yes", steps["removed-version-is-mzxid"]);
        Assert.Equal("-1", steps["removed-stat-version"]);
        Assert.Equal("yes", steps["watch-fired"]);
        Assert.Equal("yes", steps["reread-equal"]);
        Assert.Equal("BadArgumentsError(-8)", steps["no-voters"]);
        Assert.Equal("x", steps["write-after"]);
        Assert.Equal("yes", steps["config-acl-opened"]);

        // zkCli (ZooKeeperAdmin) with /zookeeper/config open to anyone: config, config -c, reconfig -remove.
        var left = ensemble.Members.Where(m => m != removed).ToList();
        var config = await ZkCliAsync(target, hosts, "config");
        foreach (var m in left) Assert.Contains($"server.{m.Id}={m.Host}:{m.PeerPort}:", config);
        Assert.Matches(@"(?m)^version=[0-9a-f]+$", config);
        var clientConfig = await ZkCliAsync(target, hosts, "config", "-c");
        Assert.Matches(@"(?m)^[0-9a-f]+ " + string.Join(",", left.Select(m => System.Text.RegularExpressions.Regex.Escape(m.ConnectString))) + "$", clientConfig);
        var leaderNow = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = left.First(m => m.Id != leaderNow.Id);
        var reconfigured = await ZkCliAsync(target, leaderNow.ConnectString, "reconfig", "-remove", follower.Id.ToString());
        Assert.Contains("Committed new configuration:", reconfigured);
        Assert.Contains($"server.{leaderNow.Id}=", reconfigured);
        Assert.DoesNotContain($"server.{follower.Id}=", reconfigured);
    }

    private async Task<string> ZkCliAsync(string target, string hosts, params string[] command)
    {
        var result = await ProcessRunner.RunAsync(CompatEnvironment.ZkCli, ["-server", hosts, .. command], ClientTimeout);
        output.WriteLine($"[{target}] zkCli {string.Join(' ', command)}: exit {result.ExitCode}\n{result.Output.TrimEnd()}");
        Assert.False(result.TimedOut, $"zkCli {string.Join(' ', command)} timed out against {target}");
        return result.Output;
    }
}
