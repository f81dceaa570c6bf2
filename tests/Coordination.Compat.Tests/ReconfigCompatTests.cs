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
        await using var ensemble = await StartAsync(target);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var removed = ensemble.Members.First(m => m.Id != leader.Id);
        var hosts = string.Join(',', ensemble.Members.Where(m => m != removed).Select(m => m.ConnectString));
        var steps = await KazooAsync(target, "kazoo_reconfig.py", "--hosts", hosts, "--remove", removed.Id.ToString());
        var all = string.Join(",", ensemble.Members.Select(m => $"server.{m.Id}"));
        var kept = string.Join(",", ensemble.Members.Where(m => m != removed).Select(m => $"server.{m.Id}"));
        Assert.Equal(all, steps["initial-servers"]);
        Assert.Equal("yes", steps["initial-version-line"]);
        // A fresh ensemble's first configuration: version and /zookeeper/config's stat as Apache's first leader makes them.
        Assert.Equal("100000000", steps["initial-version"]);
        Assert.Equal(InitialStat, steps["initial-stat"]);
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

    /// <summary>What /zookeeper/config's stat is on a fresh 3-member Apache ZooKeeper 3.8 (and must be on ours).</summary>
    private const string InitialStat = "mzxid=100000000 version=-1";

    /// <summary>
    /// Growing the ensemble with real joiners: a fourth server (ours, or Apache's) started with the members plus itself is
    /// added by kazoo's reconfig (a stale from-config first: BadVersion), answers the new configuration, and then serves
    /// the same tree; a fifth is added by zkCli's reconfig -add and serves too, and zkCli config on it shows all five.
    /// </summary>
    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task Kazoo_and_zkCli_add_running_joiners_as_on_ZooKeeper(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        await using var ensemble = await StartAsync(target);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var first = ensemble.Members.ToList();
        var hosts = string.Join(',', first.Select(m => m.ConnectString));
        var four = await ensemble.AddMemberAsync();
        Assert.Null(await ensemble.ModeAsync(four.Id) is "follower" ? "serving before it was added" : null);
        var steps = await KazooAsync(target, "kazoo_reconfig_add.py", "--hosts", hosts, "--join", ensemble.ServerLine(four), "--joiner", four.ConnectString);
        Assert.Equal("BadVersionError(-103)", steps["add-bad-version"]);
        Assert.Equal(string.Join(",", first.Append(four).Select(m => $"server.{m.Id}")), steps["added-servers"]);
        Assert.Equal("yes", steps["added-line"]);
        Assert.Equal("yes", steps["added-version-newer"]);
        Assert.Equal("yes", steps["added-version-is-mzxid"]);
        Assert.Equal("-1", steps["added-stat-version"]);
        Assert.Equal("yes", steps["watch-fired"]);
        Assert.Equal("before-joiner-read", steps["joiner-reads"]);
        Assert.Equal("yes", steps["joiner-config"]);
        Assert.Equal("j", steps["others-read-joiner-write"]);
        Assert.Equal("follower", await ensemble.ModeAsync(four.Id));

        // zkCli reconfig -add of a fifth running joiner, through the leader; then it serves and zkCli config shows all five.
        var five = await ensemble.AddMemberAsync();
        var added = await ZkCliAsync(target, leader.ConnectString, "reconfig", "-add", ensemble.ServerLine(five));
        Assert.Contains("Committed new configuration:", added);
        foreach (var m in ensemble.Members) Assert.Contains(ensemble.ServerLine(m), added);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await ensemble.ModeAsync(five.Id) is not "follower")
        {
            Assert.True(DateTime.UtcNow < deadline, $"server {five.Id} does not follow after its reconfig -add: {await ensemble.DescribeAsync()}");
            await Task.Delay(500);
        }
        var config = await ZkCliAsync(target, five.ConnectString, "config");
        foreach (var m in ensemble.Members) Assert.Contains(ensemble.ServerLine(m), config);
        Assert.Matches(@"(?m)^version=[0-9a-f]+$", config);
    }

    private Task<EnsembleProcesses> StartAsync(string target) => EnsembleProcesses.StartAsync(ServerProcess.ParseKind(target), 3, new EnsembleProcessesOptions
    {
        TickTimeMs = CompatEnvironment.TickTimeMs,
        ExtraHocon = $"coordination {{ reconfig-enabled = on, super-digest = \"{CompatEnvironment.SuperDigest}\" }}",
        ExtraZooCfg = ["reconfigEnabled=true"],
        JavaOptions = ["-Xmx256m", $"-Dzookeeper.DigestAuthenticationProvider.superDigest={CompatEnvironment.SuperDigest}"],
        Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
    });

    /// <summary>Runs one of tests/compat's kazoo scripts; its "STEP name result" lines by name (it must exit 0).</summary>
    private async Task<Dictionary<string, string>> KazooAsync(string target, string script, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(CompatEnvironment.Python, [Path.Combine(CompatEnvironment.CompatDir, script), .. args], ClientTimeout,
            new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" });
        output.WriteLine($"{script} against {target}: exit {result.ExitCode}\n{result.Output}");
        Assert.True(result.Succeeded, $"{script} against {target} failed:\n{result.Output}");
        return result.Output.Split('\n').Where(l => l.StartsWith("STEP ")).Select(l => l[5..].Split(' ', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1].Trim() : "");
    }

    private async Task<string> ZkCliAsync(string target, string hosts, params string[] command)
    {
        var result = await ProcessRunner.RunAsync(CompatEnvironment.ZkCli, ["-server", hosts, .. command], ClientTimeout);
        output.WriteLine($"[{target}] zkCli {string.Join(' ', command)}: exit {result.ExitCode}\n{result.Output.TrimEnd()}");
        Assert.False(result.TimedOut, $"zkCli {string.Join(' ', command)} timed out against {target}");
        return result.Output;
    }
}
