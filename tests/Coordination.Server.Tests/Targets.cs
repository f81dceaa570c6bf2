using Coordination.Protocol;
using Coordination.Server.Tests;
using Coordination.Testing;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

// These tests start real server processes. Two test collections run at a time (xunit.runner.json): every class is its
// own collection, except those that load the cores or measure latency, CPU, memory or a time window, which are one
// collection (LoadAndTimingCollection): on a 2-core machine they must not overlap, so each runs beside a class that
// mostly waits. That collection starts first: it is the longest (291 of the assembly's 508 s in session 19's CI run,
// when the whole assembly ran one test at a time; about 245 s since ScaleBenchTests settles for 2 s instead of 15).
// Each test uses its own ports and data directories.
[assembly: TestCollectionOrderer("Coordination.Testing.LongestFirstOrderer", "Coordination.Server.Tests")]
[assembly: LongestCollections(LoadAndTimingCollection.Name, nameof(ChangeFeedJournalTests))]

namespace Coordination.Server.Tests;

/// <summary>The classes that load the cores, or whose assertions measure latency, CPU, memory or a time window: one at
/// a time, each beside a class that mostly waits.</summary>
[CollectionDefinition(Name)]
public sealed class LoadAndTimingCollection
{
    public const string Name = "load and timing";
}

/// <summary>
/// The servers a test runs against: "ours" (Coordination.Server, built output) and "apache" (Apache ZooKeeper 3.8,
/// the reference). A test that passes on "apache" shows that the test itself is right.
/// </summary>
public static class Targets
{
    public static TheoryData<string> All => new() { "ours", "apache" };

    public static async Task<ServerProcess> StartAsync(string target, ITestOutputHelper output, ServerProcessOptions? options = null)
    {
        SkipUnlessAvailable(target);
        var server = await ServerProcess.StartAsync(target, options);
        output.WriteLine($"started {server} (rss {ProcStats.FormatBytes(server.RssBytes)})");
        return server;
    }

    /// <summary>
    /// The "apache" target needs Debian's zookeeper package and a JDK. Without them the test is skipped (so the README's
    /// test command works with only the .NET SDK), unless COORDINATION_REQUIRE_COMPAT=1 (set by .ci/run) makes it fail.
    /// </summary>
    public static void SkipUnlessAvailable(string target)
    {
        if (target != "apache" || Environment.GetEnvironmentVariable("ZOOKEEPER_CLASSPATH") is { Length: > 0 }) return;
        const string jar = "/usr/share/java/zookeeper.jar";
        if (File.Exists(jar)) return;
        var reason = $"Apache ZooKeeper is not installed ({jar} missing; apt-get install zookeeper)";
        if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_COMPAT") == "1") Assert.Fail(reason);
        Skip.If(true, reason);
    }

    /// <summary>How Apache ZooKeeper meets one of our extension op codes: Unimplemented, then the connection closes.</summary>
    public static async Task AssertRefusedAsUnknownOp(WireClient c, ReplyHeader reply)
    {
        Assert.Equal(ErrorCode.Unimplemented, reply.Err);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (c.IsConnected && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
        Assert.False(c.IsConnected, "ZooKeeper kept the connection open after an unknown op code");
    }

    /// <summary>Runs <paramref name="body"/>; on failure prints the tail of the server's output before rethrowing.</summary>
    public static async Task WithServerOutputOnFailure(ServerProcess server, ITestOutputHelper output, Func<Task> body)
    {
        try { await body(); }
        catch
        {
            output.WriteLine($"--- {server.Kind} server output tail (exited: {server.HasExited}, code {server.ExitCode}) ---");
            output.WriteLine(server.OutputTail);
            throw;
        }
    }
}
