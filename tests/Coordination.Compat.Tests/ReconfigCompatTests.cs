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
        AssertJoinerAdded(steps, first, four);
        Assert.Equal("follower", await ensemble.ModeAsync(four.Id));

        // zkCli reconfig -add of a fifth running joiner, through the leader; then it serves and zkCli config shows all five.
        var five = await ensemble.AddMemberAsync();
        var added = await ZkCliAsync(target, leader.ConnectString, "reconfig", "-add", ensemble.ServerLine(five));
        Assert.Contains("Committed new configuration:", added);
        foreach (var m in ensemble.Members) Assert.Contains(ensemble.ServerLine(m), added);
        await WaitFollowingAsync(ensemble, five, "after its reconfig -add");
        var config = await ZkCliAsync(target, five.ConnectString, "config");
        foreach (var m in ensemble.Members) Assert.Contains(ensemble.ServerLine(m), config);
        Assert.Matches(@"(?m)^version=[0-9a-f]+$", config);
    }

    /// <summary>
    /// Apache's own admin API and zkCli's reconfig error paths, the same against both servers: ZooKeeperAdmin
    /// (tests/compat/java/ZkReconfig.java) is refused without auth and with a stale from-config, adds a running joiner
    /// (the joiner then serves) and removes it again with the version its addition answered; then zkCli's
    /// <c>reconfig -v</c> with a stale version prints ZooKeeper's message and changes nothing, and zkCli adds a server
    /// that is not running (a quorum of the new configuration is already synced, so both servers commit it) and
    /// removes it again; last, a joiner started with an older configuration than the ensemble's is added and serves.
    /// </summary>
    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task ZooKeeperAdmin_and_zkCli_add_and_remove_members_as_on_ZooKeeper(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        await using var ensemble = await StartAsync(target);
        await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var first = ensemble.Members.ToList();
        var hosts = string.Join(',', first.Select(m => m.ConnectString));
        var four = await ensemble.AddMemberAsync();
        var steps = await RunStepsAsync(target, "ZkReconfig", CompatEnvironment.Java,
            await JavaChecksBuild.MainArgsAsync("ZkReconfig", hosts, ensemble.ServerLine(four), four.ConnectString, four.Id.ToString()), env: null);
        Assert.Equal("NOAUTH", steps["no-auth"]);
        Assert.Equal("BADVERSION", steps["add-bad-version"]);
        AssertJoinerAdded(steps, first, four);
        Assert.Equal("BADVERSION", steps["remove-stale-version"]);
        Assert.Equal(string.Join(",", first.Select(m => $"server.{m.Id}")), steps["removed-servers"]);
        Assert.Equal("yes", steps["removed-version-newer"]);
        Assert.Equal("yes", steps["removed-version-is-mzxid"]);
        Assert.Equal("ok", steps["write-after-remove"]);

        // zkCli with a stale -v: ZooKeeper's message, and the configuration is unchanged.
        var before = await ZkCliAsync(target, hosts, "config");
        var version = System.Text.RegularExpressions.Regex.Match(before, @"(?m)^version=([0-9a-f]+)$").Groups[1].Value;
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = first.First(m => m.Id != leader.Id);
        var stale = await ZkCliRunAsync(target, leader.ConnectString, "reconfig", "-v", "1" + version, "-remove", follower.Id.ToString());
        Assert.Matches(StaleVersionMessage, stale.Output);
        Assert.Equal(1, stale.ExitCode);
        Assert.DoesNotContain("Committed new configuration", stale.Output);
        Assert.Equal(ConfigLines(before), ConfigLines(await ZkCliAsync(target, hosts, "config")));

        // zkCli adds a server nobody started (three of the four voters are synced): committed; then removes it.
        var ghostId = ensemble.Members.Max(m => m.Id) + 5;
        var ghost = GhostLine(target, ghostId);
        var added = await ZkCliAsync(target, leader.ConnectString, "reconfig", "-add", ghost);
        Assert.Contains("Committed new configuration:", added);
        Assert.Contains(ghost, added);
        var removed = await ZkCliAsync(target, leader.ConnectString, "reconfig", "-remove", ghostId.ToString());
        Assert.Contains("Committed new configuration:", removed);
        Assert.DoesNotContain($"server.{ghostId}=", removed);
        foreach (var m in first) Assert.Contains(ensemble.ServerLine(m), removed);
        var after = await ZkCliAsync(target, hosts, "config");
        Assert.DoesNotContain($"server.{ghostId}=", after);
        Assert.NotEqual(version, System.Text.RegularExpressions.Regex.Match(after, @"(?m)^version=([0-9a-f]+)$").Groups[1].Value);

        // A joiner started with an older configuration (its start-up list at version 0, which still names the removed
        // server 4): added by zkCli, it learns the current configuration from the members, follows and serves.
        var five = await ensemble.AddMemberAsync(withCurrentConfig: false);
        var joined = await ZkCliAsync(target, leader.ConnectString, "reconfig", "-add", ensemble.ServerLine(five));
        Assert.Contains("Committed new configuration:", joined);
        Assert.DoesNotContain($"server.{four.Id}=", joined);
        await WaitFollowingAsync(ensemble, five, "after its reconfig -add, started with an older configuration");
        Assert.Equal(ConfigLines(joined), ConfigLines(await ZkCliAsync(target, five.ConnectString, "config")));
        await ZkCliAsync(target, five.ConnectString, "create", "/older-joiner", "written-on-the-joiner");
        Assert.Contains("written-on-the-joiner", await ZkCliAsync(target, leader.ConnectString, "get", "/older-joiner"));
    }

    /// <summary>The steps both client programs (kazoo_reconfig_add.py, ZkReconfig.java) print for adding a running joiner:
    /// the answer is the new configuration (version = its mzxid, data version -1), the config watch fired, the joiner serves.</summary>
    private static void AssertJoinerAdded(Dictionary<string, string> steps, IEnumerable<EnsembleProcesses.Member> first, EnsembleProcesses.Member joiner)
    {
        Assert.Equal(string.Join(",", first.Append(joiner).Select(m => $"server.{m.Id}").Order(StringComparer.Ordinal)), steps["added-servers"]);
        Assert.Equal("yes", steps["added-line"]);
        Assert.Equal("yes", steps["added-version-newer"]);
        Assert.Equal("yes", steps["added-version-is-mzxid"]);
        Assert.Equal("-1", steps["added-stat-version"]);
        Assert.Equal("yes", steps["watch-fired"]);
        Assert.Equal("before-joiner-read", steps["joiner-reads"]);
        Assert.Equal("yes", steps["joiner-config"]);
        Assert.Equal("j", steps["others-read-joiner-write"]);
    }

    private static async Task WaitFollowingAsync(EnsembleProcesses ensemble, EnsembleProcesses.Member member, string when)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await ensemble.ModeAsync(member.Id) is not "follower")
        {
            Assert.True(DateTime.UtcNow < deadline, $"server {member.Id} does not follow {when}: {await ensemble.DescribeAsync()}");
            await Task.Delay(500);
        }
    }

    /// <summary>What zkCli 3.8 prints when the server refuses a reconfig's -v with BadVersion (its message for that
    /// code, with the empty path ZooKeeperAdmin gives a reconfig's error), as it does against Apache 3.8.</summary>
    private const string StaleVersionMessage = @"(?m)^version No is not valid :\s*$";

    /// <summary>The server.N and version lines of zkCli's config output.</summary>
    private static List<string> ConfigLines(string output) =>
        output.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("server.", StringComparison.Ordinal) || l.StartsWith("version=", StringComparison.Ordinal)).ToList();

    /// <summary>A server line (as <see cref="EnsembleProcesses.ServerLine"/> writes it for the target) for ports no one listens on.</summary>
    private static string GhostLine(string target, long id)
    {
        var ports = Enumerable.Range(0, 3).Select(_ => new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)).ToList();
        ports.ForEach(l => l.Start());
        var p = ports.Select(l => ((System.Net.IPEndPoint)l.LocalEndpoint).Port).ToList();
        ports.ForEach(l => l.Stop());
        return $"server.{id}=127.0.0.1:{p[0]}:{(target == "ours" ? 0 : p[1])}:participant;127.0.0.1:{p[2]}";
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
    private Task<Dictionary<string, string>> KazooAsync(string target, string script, params string[] args) =>
        RunStepsAsync(target, script, CompatEnvironment.Python, [Path.Combine(CompatEnvironment.CompatDir, script), .. args],
            new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" });

    /// <summary>Runs a client program (a kazoo script, a Java check); its "STEP name result" lines by name (it must exit 0).</summary>
    private async Task<Dictionary<string, string>> RunStepsAsync(string target, string what, string file, IEnumerable<string> args, Dictionary<string, string>? env)
    {
        var result = await ProcessRunner.RunAsync(file, args.ToArray(), ClientTimeout, env);
        output.WriteLine($"{what} against {target}: exit {result.ExitCode}\n{result.Output}");
        Assert.True(result.Succeeded, $"{what} against {target} failed:\n{result.Output}");
        return result.Output.Split('\n').Where(l => l.StartsWith("STEP ")).Select(l => l[5..].Split(' ', 2))
            .ToDictionary(p => p[0], p => p.Length > 1 ? p[1].Trim() : "");
    }

    private async Task<string> ZkCliAsync(string target, string hosts, params string[] command) =>
        (await ZkCliRunAsync(target, hosts, command)).Output;

    private async Task<ProcessResult> ZkCliRunAsync(string target, string hosts, params string[] command)
    {
        var result = await ProcessRunner.RunAsync(CompatEnvironment.ZkCli, ["-server", hosts, .. command], ClientTimeout);
        output.WriteLine($"[{target}] zkCli {string.Join(' ', command)}: exit {result.ExitCode}\n{result.Output.TrimEnd()}");
        Assert.False(result.TimedOut, $"zkCli {string.Join(' ', command)} timed out against {target}");
        return result;
    }
}
