using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

[CollectionDefinition(Name)]
public sealed class ApacheCollection : ICollectionFixture<ApacheZooKeeperFixture>
{
    public const string Name = "compat-apache";
}

[CollectionDefinition(Name)]
public sealed class OursCollection : ICollectionFixture<CoordinationServerFixture>
{
    public const string Name = "compat-ours";
}

[CollectionDefinition(Name)]
public sealed class OursEnsembleCollection : ICollectionFixture<CoordinationEnsembleFixture>
{
    public const string Name = "compat-ours-ensemble";
}

/// <summary>
/// One test per (check, target): each runs one kazoo or Java-client check, in the target's kazoo process or JVM
/// (<see cref="CheckServer"/>), against the target's shared server and asserts it passes. The targets are the two derived classes, so a run can
/// be narrowed with --filter "FullyQualifiedName~ApacheTarget" or "FullyQualifiedName~OursTarget".
/// The two targets are separate collections and so run in parallel; checks within one target run one
/// after another against the same server (each check works below its own random path).
/// </summary>
public abstract class CompatTestsBase
{
    /// <summary>Hard limit per check subprocess; the checks' own watchdogs fire at 55 s.</summary>
    private static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(75);

    private readonly ServerFixture _server;
    private readonly ITestOutputHelper _output;

    protected CompatTestsBase(ServerFixture server, ITestOutputHelper output)
    {
        _server = server;
        _output = output;
    }

    [SkippableTheory]
    [MemberData(nameof(CheckCatalog.KazooChecks), MemberType = typeof(CheckCatalog))]
    public async Task Kazoo(string check)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        var hosts = await _server.GetHostsAsync();
        // The target's one kazoo process runs the check (CheckServer); the verdict and output are this check's alone.
        var result = await _server.KazooChecks.RunAsync(
            hosts,
            check,
            CheckTimeout,
            new Dictionary<string, string>
            {
                ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1", ["COMPAT_EXPECT_MODE"] = _server.ExpectedMode,
            });
        Report("kazoo", check, result);
    }

    [SkippableTheory]
    [MemberData(nameof(CheckCatalog.JavaChecks), MemberType = typeof(CheckCatalog))]
    public async Task Java(string check)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var hosts = await _server.GetHostsAsync();
        // The target's one JVM runs the check (CheckServer); the verdict and output are this check's alone.
        var result = await _server.JavaChecks.RunAsync(
            hosts,
            check,
            CheckTimeout,
            new Dictionary<string, string>
            {
                ["ZKCHECKS_TIMEOUT_S"] = "55",
                ["ZKCLI"] = CompatEnvironment.ZkCli,
            });
        Report("java", check, result);
    }

    private void Report(string suite, string check, ProcessResult result)
    {
        _output.WriteLine($"[{_server.Target}] {suite}/{check}: exit {result.ExitCode}, {result.Elapsed.TotalSeconds:0.00} s");
        _output.WriteLine(result.Output);
        if (result.Succeeded)
        {
            return;
        }
        var why = result.TimedOut
            ? $"timed out after {CheckTimeout.TotalSeconds:0} s"
            : $"exit code {result.ExitCode}";
        var serverState = "";
        try
        {
            _ = _server.GetHostsAsync().GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            serverState = "\n--- server problem ---\n" + e.Message;
        }
        Assert.Fail(
            $"{suite} check '{check}' against {_server.Target} (127.0.0.1:{_server.Port}) failed: {why}\n" +
            $"--- check output ---\n{result.Output.TrimEnd()}{serverState}\n" +
            $"--- server log tail ({_server.LogPath}) ---\n{_server.LogTail(25)}");
    }
}

/// <summary>The checks against Apache ZooKeeper 3.8: the reference; these must always pass.</summary>
[Collection(ApacheCollection.Name)]
public sealed class ApacheTarget : CompatTestsBase
{
    public ApacheTarget(ApacheZooKeeperFixture server, ITestOutputHelper output)
        : base(server, output)
    {
    }
}

/// <summary>The same checks against Coordination.Server.</summary>
[Collection(OursCollection.Name)]
public sealed class OursTarget : CompatTestsBase
{
    public OursTarget(CoordinationServerFixture server, ITestOutputHelper output)
        : base(server, output)
    {
    }
}

/// <summary>The same checks against a follower of a 3-server ensemble of ours: the forwarding and commit path.</summary>
[Collection(OursEnsembleCollection.Name)]
public sealed class OursEnsembleTarget : CompatTestsBase
{
    public OursEnsembleTarget(CoordinationEnsembleFixture server, ITestOutputHelper output)
        : base(server, output)
    {
    }
}
