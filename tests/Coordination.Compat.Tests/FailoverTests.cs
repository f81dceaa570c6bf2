using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Real clients fail over across a 3-server ensemble: kazoo (tests/compat/kazoo_failover.py) and Apache ZooKeeper's
/// Java client (tests/compat/java/ZkFailover.java) connect with a 3-host connect string, create an ephemeral node
/// and a data watch, SIGKILL the member they are connected to, and must reconnect to another member with the same
/// session, find the ephemeral still there and see the watch fire. Against our ensemble (3 processes) and, as the
/// reference, a 3-node Apache ZooKeeper 3.8 ensemble (QuorumPeerMain); skipped when Apache, a JDK or kazoo is
/// missing unless COORDINATION_REQUIRE_COMPAT=1.
/// </summary>
[Collection("compat-failover")]
public sealed class FailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(120);

    private static readonly Lazy<Task<string>> JavaClasses = new(async () =>
    {
        var dir = CompatEnvironment.CreateTempDir("compat-zkfailover");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => CompatEnvironment.TryDeleteDir(dir);
        var source = Path.Combine(CompatEnvironment.CompatDir, "java", "ZkFailover.java");
        var r = await ProcessRunner.RunAsync(CompatEnvironment.Javac,
            new[] { "-nowarn", "-encoding", "UTF-8", "-cp", CompatEnvironment.ZooKeeperJar, "-d", dir, source }, TimeSpan.FromSeconds(180));
        if (!r.Succeeded) throw new InvalidOperationException($"javac {source} failed:\n{r.Output}");
        return dir;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    [SkippableTheory]
    [InlineData("ours", "kazoo")]
    [InlineData("ours", "java")]
    [InlineData("apache", "kazoo")]
    [InlineData("apache", "java")]
    public async Task Client_keeps_its_session_ephemeral_and_watch_when_its_server_is_sigkilled(string target, string client)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: client == "kazoo");
        var kind = ServerProcess.ParseKind(target);
        await using var ensemble = await EnsembleProcesses.StartAsync(kind, 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            // Apache's default 2 s x 5 ticks would make its failover slower than the client's 10 s session.
            ApacheInitLimit = 10, ApacheSyncLimit = 5,
        });
        output.WriteLine($"{target} ensemble: {await ensemble.DescribeAsync()}");
        var pids = string.Join(',', ensemble.Members.Select(m => $"{m.ClientPort}={m.Process!.Pid}"));

        ProcessResult result;
        if (client == "kazoo")
        {
            var script = Path.Combine(CompatEnvironment.CompatDir, "kazoo_failover.py");
            result = await ProcessRunner.RunAsync(CompatEnvironment.Python,
                new[] { script, "--hosts", ensemble.ConnectString, "--pids", pids, "--timeout", "100" }, ClientTimeout,
                new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" });
        }
        else
        {
            var classes = await JavaClasses.Value;
            result = await ProcessRunner.RunAsync(CompatEnvironment.Java,
                new[] { "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m", "-cp", CompatEnvironment.ClientClasspath(classes),
                    "ZkFailover", ensemble.ConnectString, pids }, ClientTimeout);
        }
        output.WriteLine($"{client} against {target}: exit {result.ExitCode}, {result.Elapsed.TotalSeconds:F1} s\n{result.Output}");

        // Exactly one member was SIGKILLed by the client; the other two still serve.
        var dead = ensemble.Members.Where(m => m.Process!.HasExited).ToList();
        foreach (var m in dead) ensemble.Kill(m.Id); // mark it down
        var state = await ensemble.DescribeAsync();
        output.WriteLine($"after: {state}");
        Assert.True(result.Succeeded,
            $"{client} failover against {target} failed ({(result.TimedOut ? "timed out" : $"exit {result.ExitCode}")}):\n{result.Output}\nensemble: {state}\n" +
            string.Join("\n", ensemble.Members.Select(m => $"--- server {m.Id} log tail ---\n{Tail(m.Process!.OutputTail, 30)}")));
        Assert.Single(dead);
        Assert.Contains("KILLED", result.Output);
        Assert.Contains("PASS", result.Output);
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
