using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Cli.Tests;

/// <summary>
/// <c>coord config</c> and <c>coord reconfig</c> against a 3-member ensemble of ours with reconfig enabled and
/// super:super as super user (output as zkCli's config and reconfig), and ReconfigDisabled from the shared
/// standalone server (reconfig off, the default).
/// </summary>
[Collection("cli")]
public sealed class CliReconfigTests(ServerFixture fx, ITestOutputHelper output)
{
    private static readonly string SuperDigest =
        "super:" + Convert.ToBase64String(SHA1.HashData(Encoding.UTF8.GetBytes("super:super")));

    static void Ok(CoordResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    [Fact(Timeout = 180_000)]
    public async Task Config_and_reconfig_print_as_zkCli_and_map_refusals_to_exit_codes()
    {
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            ExtraHocon = $"coordination {{ reconfig-enabled = on, super-digest = \"{SuperDigest}\" }}",
            Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
        });
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        string[] Server(params string[] args) => ["--server", leader.ConnectString, "--timeout", "20", .. args];
        Task<CoordResult> Run(params string[] args) => Coord.RunAsync(Server(args), timeoutSeconds: 60);

        // config: the znode's text, server.N lines then version=HEX.
        var config = await Run("config");
        Ok(config);
        foreach (var m in ensemble.Members) Assert.Contains($"server.{m.Id}={m.Host}:{m.PeerPort}:0:participant;{m.ConnectString}", config.Stdout);
        var version = Regex.Match(config.Stdout, "(?m)^version=([0-9a-f]+)$").Groups[1].Value;
        Assert.NotEmpty(version);
        // -c: zkCli's "VERSION host:port,..." line; --json: parsed.
        var clientConfig = await Run("config", "-c");
        Ok(clientConfig);
        Assert.Equal($"{version} {string.Join(',', ensemble.Members.OrderBy(m => m.Id).Select(m => m.ConnectString))}", clientConfig.Stdout.Trim());
        var json = await Run("--json", "config");
        Ok(json);
        Assert.Equal(3, json.Json.GetProperty("servers").GetArrayLength());
        Assert.Equal(version, json.Json.GetProperty("version").GetString());

        var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToList();
        var (follower, other) = (followers[0], followers[1]);
        // Refusals: NoAuth without the super user (exit 7), BadVersion for a stale --from-version (exit 6).
        var noAuth = await Run("reconfig", "--remove", follower.Id.ToString());
        Assert.Equal(7, noAuth.ExitCode);
        Assert.Contains("NoAuth", noAuth.Stderr);
        var stale = await Run("--auth", "digest:super:super", "reconfig", "-remove", follower.Id.ToString(), "-v", "1");
        Assert.Equal(6, stale.ExitCode);
        Assert.Contains("BadVersion", stale.Stderr);

        // --add of a known id with another role: a voter becomes an observer; --members puts every voter back.
        string Line(EnsembleProcesses.Member m, string role) => $"server.{m.Id}={m.Host}:{m.PeerPort}:0:{role};{m.ConnectString}";
        var observer = await Run("--auth", "digest:super:super", "reconfig", "--add", Line(other, "observer"));
        Ok(observer);
        Assert.Contains(Line(other, "observer"), observer.Stdout);
        var members = string.Join(',', ensemble.Members.Select(m => Line(m, "participant")));
        var voters = await Run("--auth", "digest:super:super", "reconfig", "--members", members);
        Ok(voters);
        foreach (var m in ensemble.Members) Assert.Contains(Line(m, "participant"), voters.Stdout);
        version = Regex.Match(voters.Stdout, "(?m)^version=([0-9a-f]+)$").Groups[1].Value;

        // config -w waits for the reconfig's event; reconfig --remove with the right version prints the new configuration.
        using var watcher = Process.Start(Coord.StartInfo(Server("config", "--watch")))!;
        Assert.StartsWith("server.", await watcher.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        var removed = await Run("--auth", "digest:super:super", "reconfig", "--remove", follower.Id.ToString(), "--from-version", version, "-s");
        Ok(removed);
        Assert.StartsWith("Committed new configuration:\nserver.", removed.Stdout);
        Assert.DoesNotContain($"server.{follower.Id}=", removed.Stdout);
        Assert.Contains("dataVersion = -1", removed.Stdout);
        var newVersion = Regex.Match(removed.Stdout, "(?m)^version=([0-9a-f]+)$").Groups[1].Value;
        Assert.True(Convert.ToInt64(newVersion, 16) > Convert.ToInt64(version, 16));
        var rest = await watcher.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await watcher.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, watcher.ExitCode);
        Assert.Contains("type:NodeDataChanged path:/zookeeper/config", rest);
    }

    [Fact(Timeout = 30_000)]
    public async Task Reconfig_usage_errors_and_ReconfigDisabled()
    {
        Task<CoordResult> Run(params string[] args) => Coord.RunAsync(["--server", fx.ConnectString, "--timeout", "10", .. args]);
        Assert.Equal(2, (await Run("reconfig")).ExitCode);
        Assert.Equal(2, (await Run("reconfig", "--members", "server.1=h:1:2", "--add", "server.2=h:3:4")).ExitCode);
        Assert.Equal(2, (await Run("reconfig", "--remove", "two")).ExitCode);
        Assert.Equal(2, (await Run("reconfig", "--remove", "2", "--from-version", "xyz")).ExitCode);
        Assert.Equal(2, (await Run("config", "extra")).ExitCode);
        // The shared server runs with reconfig off (the default): a clear server error, exit 1.
        var disabled = await Run("reconfig", "--remove", "2");
        Assert.Equal(1, disabled.ExitCode);
        Assert.Contains("ReconfigDisabled", disabled.Stderr);
    }
}
