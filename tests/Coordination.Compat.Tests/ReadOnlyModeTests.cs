using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Read-only mode (ZooKeeper's readonlymode.enabled) with real clients: in a 3-member ensemble two members are
/// SIGKILLed, so the third is cut off from its quorum. A read-only kazoo client (tests/compat/kazoo_readonly.py) or
/// Java client (tests/compat/java/ZkReadOnly.java, canBeReadOnly) must connect to it read-only, read, and get
/// NotReadOnly for its writes and syncs while the member answers isro with "ro"; after the two members restart the
/// client must move by itself to a read-write member and write. Against our ensemble (3 processes) and, as the
/// reference, a 3-node Apache ZooKeeper 3.8 ensemble started with -Dreadonlymode.enabled=true (and localSessionsEnabled=true,
/// without which its read-only server accepts no session). Ours runs the Java client with local sessions on as well
/// (Apache's settings), so the two modes are checked together: the read-only session, and the client's new session on
/// a read-write member after the heal, which starts local there and writes.
/// </summary>
[Collection("compat-failover")]
public sealed class ReadOnlyModeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(180);

    [SkippableTheory]
    [InlineData("ours", "kazoo", false)]
    [InlineData("ours", "java", true)]
    [InlineData("apache", "kazoo", true)]
    [InlineData("apache", "java", true)]
    public async Task Member_cut_off_from_its_quorum_serves_reads_refuses_writes_and_the_client_moves_back_after_the_heal(string target, string client, bool localSessions)
    {
        // Apache needs local sessions for read-only clients (below), so it always has them, whatever localSessions says;
        // ours runs once without (it does not need them) and once with Apache's settings: both modes together.
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: client == "kazoo");
        var kind = ServerProcess.ParseKind(target);
        await using var ensemble = await EnsembleProcesses.StartAsync(kind, 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            ApacheInitLimit = 10, ApacheSyncLimit = 5,
            ExtraHocon = localSessions ? "coordination { read-only-mode = on, local-sessions-enabled = on }" : "coordination.read-only-mode = on",
            JavaOptions = ["-Xmx512m", "-Dreadonlymode.enabled=true"],
            // ZooKeeper 3.8 serves read-only clients only with local sessions on (its read-only server refuses a
            // global createSession; ZooKeeper's pull request 1922 documents it). Ours needs no such setting.
            ExtraZooCfg = ["localSessionsEnabled=true"],
        });
        output.WriteLine($"{target} ensemble: {await ensemble.DescribeAsync()}");
        const string path = "/ro-check";
        await using (var writer = await WireClient.ConnectAnyAsync(ensemble.ConnectString))
            await writer.CreateAsync(path, "before-partition"u8.ToArray()).OkAsync();
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));

        var isolated = ensemble.Members[^1];
        var others = ensemble.Members.Take(ensemble.Members.Count - 1).ToList();
        Assert.Equal("rw", await Isro(isolated));
        foreach (var m in others) ensemble.Kill(m.Id);
        await WaitForIsro(isolated, "ro", TimeSpan.FromSeconds(30));
        output.WriteLine($"server {isolated.Id} is read-only: {await ensemble.DescribeAsync()}");

        var dir = CompatEnvironment.CreateTempDir("compat-readonly");
        try
        {
            var roFile = Path.Combine(dir, "read-only-checked");
            var healFile = Path.Combine(dir, "healed");
            // The isolated member last: kazoo probes the first host of its list with isro to find a read-write one.
            var hosts = string.Join(',', others.Append(isolated).Select(m => m.ConnectString));
            var run = RunClient(client, hosts, path, "before-partition", roFile, healFile);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (!File.Exists(roFile) && !run.IsCompleted && DateTime.UtcNow < deadline) await Task.Delay(100);
            var roChecked = File.Exists(roFile);
            var isroWhileCutOff = await Isro(isolated);
            if (roChecked)
            {
                await Task.WhenAll(others.Select(m => ensemble.RestartAsync(m.Id)));
                await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
                await File.WriteAllTextAsync(healFile, "");
            }
            var result = await run;
            output.WriteLine($"{client} against {target}: exit {result.ExitCode}, {result.Elapsed.TotalSeconds:F1} s\n{result.Output}");
            var state = await ensemble.DescribeAsync();
            Assert.True(roChecked && result.Succeeded,
                $"{client} read-only check against {target} failed ({(result.TimedOut ? "timed out" : $"exit {result.ExitCode}")}):\n{result.Output}\nensemble: {state}\n" +
                string.Join("\n", ensemble.Members.Where(m => m.Process is not null).Select(m => $"--- server {m.Id} log tail ---\n{Tail(m.Process!.OutputTail, 30)}")));
            Assert.Equal("ro", isroWhileCutOff);
            Assert.Contains("READ-ONLY OK", result.Output);
            Assert.Contains("PASS", result.Output);
            Assert.Equal("rw", await Isro(isolated));
        }
        finally
        {
            CompatEnvironment.TryDeleteDir(dir);
        }
    }

    private async Task<ProcessResult> RunClient(string client, string hosts, string path, string data, string roFile, string healFile)
    {
        if (client == "kazoo")
        {
            var script = Path.Combine(CompatEnvironment.CompatDir, "kazoo_readonly.py");
            return await ProcessRunner.RunAsync(CompatEnvironment.Python,
                new[] { script, "--hosts", hosts, "--path", path, "--data", data, "--ro-file", roFile, "--heal-file", healFile, "--timeout", "120" }, ClientTimeout,
                new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" });
        }
        return await ProcessRunner.RunAsync(CompatEnvironment.Java, await JavaChecksBuild.MainArgsAsync("ZkReadOnly", hosts, path, data, roFile, healFile), ClientTimeout);
    }

    private static async Task<string> Isro(EnsembleProcesses.Member member)
    {
        try { return (await CompatEnvironment.FourLetterWordAsync(member.ClientPort, "isro", TimeSpan.FromSeconds(5))).Trim(); }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException) { return $"(no answer: {e.GetType().Name})"; }
    }

    private static async Task WaitForIsro(EnsembleProcesses.Member member, string expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last;
        while ((last = await Isro(member)) != expected)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"server {member.Id} answered isro '{last}', not '{expected}', for {timeout}");
            await Task.Delay(200);
        }
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
