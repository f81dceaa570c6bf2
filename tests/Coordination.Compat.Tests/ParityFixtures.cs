using System.Diagnostics;

namespace Coordination.Compat.Tests;

/// <summary>A server of the issue 19 parity checks: quotas enforced and the AdminServer on loopback.</summary>
public interface IParityServer
{
    ServerFixture Server { get; }
    int AdminPort { get; }
}

/// <summary>zkCli, unchanged, against a parity server.</summary>
public static class ParityZkCli
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Runs one zkCli command against <paramref name="target"/> and returns its output (logged).</summary>
    public static async Task<string> RunAsync(IParityServer target, Xunit.Abstractions.ITestOutputHelper output, params string[] command)
    {
        var result = await ProcessRunner.RunAsync(CompatEnvironment.ZkCli, ["-server", await target.Server.GetHostsAsync(), .. command], ClientTimeout);
        output.WriteLine($"[{target.Server.Target}] zkCli {string.Join(' ', command)}: exit {result.ExitCode}\n{result.Output.TrimEnd()}");
        Assert.False(result.TimedOut, $"zkCli {string.Join(' ', command)} timed out against {target.Server.Target}");
        return result.Output;
    }
}

/// <summary>Apache ZooKeeper 3.8 with zookeeper.enforceQuota=true and its AdminServer (Jetty) enabled.</summary>
public sealed class ApacheParityFixture : ApacheZooKeeperFixture, IParityServer
{
    public override string Target => "apache-parity";
    public ServerFixture Server => this;
    public int AdminPort { get; private set; }

    protected override IEnumerable<string> ExtraConfig(string workDir)
    {
        AdminPort = CompatEnvironment.FreePort();
        // Later lines win over the fixture's admin.enableServer=false (zoo.cfg is read as Java properties).
        return ["admin.enableServer=true", "admin.serverAddress=127.0.0.1", $"admin.serverPort={AdminPort}"];
    }

    protected override IEnumerable<string> ExtraJvmOptions =>
        ["-Dzookeeper.enforceQuota=true", "-Dzookeeper.admin.enableServer=true"];
}

/// <summary>Our server configured the same way: enforce-quota on, admin HTTP on loopback, the super user allowed
/// the commands that need authorization.</summary>
public sealed class OursParityFixture : ServerFixture, IParityServer
{
    public override string Target => "ours-parity";
    public ServerFixture Server => this;
    public int AdminPort { get; private set; }

    protected override ProcessStartInfo CreateStartInfo(string workDir, int port)
    {
        AdminPort = CompatEnvironment.FreePort();
        return CoordinationServerFixture.StartInfo(workDir, port, $$"""
            coordination {
              enforce-quota = on
              admin { enabled = on, address = "127.0.0.1", port = {{AdminPort}} }
              metrics { enabled = on, address = "127.0.0.1", port = {{AdminPort}} }
            }
            """);
    }
}

[CollectionDefinition(Name)]
public sealed class ApacheParityCollection : ICollectionFixture<ApacheParityFixture>
{
    public const string Name = "compat-apache-parity";
}

[CollectionDefinition(Name)]
public sealed class OursParityCollection : ICollectionFixture<OursParityFixture>
{
    public const string Name = "compat-ours-parity";
}
