using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Read-only mode (ZooKeeper's readonlymode.enabled) with real clients, in a 3-member ensemble where one member is cut
/// off from its quorum, in two ways. Killed peers: the two other members are SIGKILLed; the client lists them first and
/// the cut-off member last, and after they restart it must move by itself to one of them (a different member).
/// Partitioned: each member runs in its own network namespace (<see cref="NetworkLab"/>) and the leader is cut off from
/// the other two by iptables, while the client (in the lab's client namespace) still reaches it and knows only it; the
/// other two elect a leader and take a write the cut-off member does not see; after the heal the cut-off member
/// rejoins, must hold that write, and the client must turn read-write on it by itself.
/// In both, a read-only kazoo client (tests/compat/kazoo_readonly.py) or Java client (tests/compat/java/ZkReadOnly.java,
/// canBeReadOnly) must connect read-only, read, and get NotReadOnly for its writes and syncs while the member answers
/// isro with "ro", then write once read-write. Against our ensemble (3 processes) and, as the reference, a 3-node
/// Apache ZooKeeper 3.8 ensemble started with -Dreadonlymode.enabled=true (and localSessionsEnabled=true, without
/// which its read-only server accepts no session). Ours runs the Java client with local sessions on as well (Apache's
/// settings), so the two modes are checked together: the read-only session, and the client's new session on a
/// read-write member after the heal, which starts local there and writes. The partitioned cases need Linux, root,
/// iproute2 and iptables: skipped with the reason otherwise, a failure with COORDINATION_REQUIRE_NETNS=1 (CI).
/// </summary>
[Collection("compat-failover")]
public sealed class ReadOnlyModeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(180);
    private const string CheckedPath = "/ro-check";

    /// <summary>Server, client, and whether ours runs with local sessions too (Apache always does).</summary>
    public static TheoryData<string, string, bool> Cases => new()
    {
        { "ours", "kazoo", false },
        { "ours", "java", true },
        { "apache", "kazoo", true },
        { "apache", "java", true },
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public Task Member_cut_off_from_its_quorum_serves_reads_refuses_writes_and_the_client_moves_back_after_the_heal(string target, string client, bool localSessions) =>
        RunAsync(target, client, localSessions, partitioned: false);

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public Task Member_partitioned_from_its_peers_in_network_namespaces_serves_reads_refuses_writes_and_turns_read_write_after_the_heal(string target, string client, bool localSessions) =>
        RunAsync(target, client, localSessions, partitioned: true);

    private async Task RunAsync(string target, string client, bool localSessions, bool partitioned)
    {
        // Apache needs local sessions for read-only clients (below), so it always has them, whatever localSessions says;
        // ours runs once without (it does not need them) and once with Apache's settings: both modes together.
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: client == "kazoo");
        if (partitioned && NetworkLab.SkipReason() is { } noNetns) Skip.If(true, noNetns);
        var kind = ServerProcess.ParseKind(target);
        using var lab = partitioned ? NetworkLab.Create(3, output.WriteLine) : null;
        await using var ensemble = await EnsembleProcesses.StartAsync(kind, 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            ApacheInitLimit = 10, ApacheSyncLimit = 5,
            ExtraHocon = localSessions ? "coordination { read-only-mode = on, local-sessions-enabled = on }" : "coordination.read-only-mode = on",
            JavaOptions = ["-Xmx512m", "-Dreadonlymode.enabled=true"],
            // ZooKeeper 3.8 serves read-only clients only with local sessions on (its read-only server refuses a
            // global createSession; ZooKeeper's pull request 1922 documents it). Ours needs no such setting.
            ExtraZooCfg = ["localSessionsEnabled=true"],
            Network = lab,
        });
        output.WriteLine($"{target} ensemble: {await ensemble.DescribeAsync()}");
        var clientOptions = new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(5), SocketFactory = ensemble.SocketFactory };
        await using (var writer = await WireClient.ConnectAnyAsync(ensemble.ConnectString, clientOptions))
            await writer.CreateAsync(CheckedPath, "before-partition"u8.ToArray()).OkAsync();
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));

        var isolated = lab is null ? ensemble.Members[^1] : await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var others = ensemble.Members.Where(m => m != isolated).ToList();
        Assert.Equal("rw", await Isro(ensemble, isolated));
        if (lab is null) foreach (var m in others) ensemble.Kill(m.Id);
        else lab.Isolate(isolated.Id);
        await WaitForIsro(ensemble, isolated, "ro", TimeSpan.FromSeconds(30));
        output.WriteLine($"server {isolated.Id} is read-only: {await ensemble.DescribeAsync()}");
        const string majorityWrite = CheckedPath + "/written-by-the-majority";
        if (lab is not null)
        {
            // Only the cut-off member is cut off: the other two go on without it.
            var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60), notId: isolated.Id);
            await using var majority = await WireClient.ConnectAnyAsync(leader.ConnectString, clientOptions);
            await majority.CreateAsync(majorityWrite, null).OkAsync();
        }

        var dir = CompatEnvironment.CreateTempDir("compat-readonly");
        try
        {
            var roFile = Path.Combine(dir, "read-only-checked");
            var healFile = Path.Combine(dir, "healed");
            // Killed peers: the cut-off member last, as kazoo probes the first host of its list with isro to find a
            // read-write one. Partitioned: the cut-off member only (the others serve), which turns read-write itself.
            var hosts = lab is null ? string.Join(',', others.Append(isolated).Select(m => m.ConnectString)) : isolated.ConnectString;
            var run = RunClient(client, hosts, CheckedPath, "before-partition", roFile, healFile, lab?.ClientLaunchPrefix ?? []);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (!File.Exists(roFile) && !run.IsCompleted && DateTime.UtcNow < deadline) await Task.Delay(100);
            var roChecked = File.Exists(roFile);
            var isroWhileCutOff = await Isro(ensemble, isolated);
            if (roChecked)
            {
                if (lab is null) await Task.WhenAll(others.Select(m => ensemble.RestartAsync(m.Id)));
                else lab.HealAll();
                await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(90));
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
            Assert.Equal("rw", await Isro(ensemble, isolated));
            if (lab is not null)
            {
                // Rejoined: the cut-off member caught up with what the majority wrote without it.
                await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));
                await using var rejoined = await WireClient.ConnectAnyAsync(isolated.ConnectString, clientOptions);
                await rejoined.GetDataAsync(majorityWrite).OkAsync();
            }
        }
        finally
        {
            CompatEnvironment.TryDeleteDir(dir);
        }
    }

    /// <summary>Runs the kazoo or Java check, behind <paramref name="launchPrefix"/> (e.g. <c>ip netns exec NAME</c>) when not empty.</summary>
    private static async Task<ProcessResult> RunClient(string client, string hosts, string path, string data, string roFile, string healFile, IReadOnlyList<string> launchPrefix)
    {
        var (program, arguments, environment) = client == "kazoo"
            ? (CompatEnvironment.Python,
                new List<string> { Path.Combine(CompatEnvironment.CompatDir, "kazoo_readonly.py"), "--hosts", hosts, "--path", path, "--data", data, "--ro-file", roFile, "--heal-file", healFile, "--timeout", "120" },
                new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" })
            : (CompatEnvironment.Java, await JavaChecksBuild.MainArgsAsync("ZkReadOnly", hosts, path, data, roFile, healFile), (Dictionary<string, string>?)null);
        if (launchPrefix.Count == 0) return await ProcessRunner.RunAsync(program, arguments, ClientTimeout, environment);
        return await ProcessRunner.RunAsync(launchPrefix[0], [.. launchPrefix.Skip(1), program, .. arguments], ClientTimeout, environment);
    }

    private static async Task<string> Isro(EnsembleProcesses ensemble, EnsembleProcesses.Member member)
    {
        try { return (await FourLetterWord.SendAsync(member.Host, member.ClientPort, "isro", TimeSpan.FromSeconds(5), socketFactory: ensemble.SocketFactory)).Trim(); }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException) { return $"(no answer: {e.GetType().Name})"; }
    }

    private static async Task WaitForIsro(EnsembleProcesses ensemble, EnsembleProcesses.Member member, string expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last;
        while ((last = await Isro(ensemble, member)) != expected)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"server {member.Id} answered isro '{last}', not '{expected}', for {timeout}");
            await Task.Delay(200);
        }
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
