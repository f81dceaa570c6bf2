using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

// These tests start real server processes and load them; on a 2-core machine they must not overlap.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Coordination.Server.Tests;

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
