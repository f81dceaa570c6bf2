using System.Diagnostics;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Concurrent clients (real TCP, new session on whichever member answers) run create, set (with and without an
/// expected version), delete (idem) and sync-then-getData on a few znodes of a 3-member in-process ensemble while a
/// fault schedule kills and restarts the leader and followers, isolates the leader or a follower and cuts single
/// links. The recorded history must be linearizable (an op that failed with connection loss or a timeout is recorded
/// as Unknown: it may have taken effect at any point after its invocation, or never), and afterwards every member
/// must hold the same tree (same zxid and digest).
///
/// Duration: 60 s by default; COORDINATION_LINEARIZABILITY_SECONDS=N for a long run, e.g.
/// <c>COORDINATION_LINEARIZABILITY_SECONDS=1800 dotnet test tests/Coordination.Ensemble.Tests -c Release --filter FullyQualifiedName~LinearizabilityUnderFaults</c>.
/// The checker is exponential in the worst case, so the history per znode is capped: the run is cut into rounds of
/// <see cref="RoundSeconds"/> each working on fresh znodes (the fault schedule runs straight across rounds), and
/// no znode may collect more than <see cref="MaxOpsPerKey"/> operations.
/// </summary>
public sealed class LinearizabilityUnderFaultsTests(ITestOutputHelper output)
{
    private const int RoundSeconds = 20;
    private const int MaxOpsPerKey = 50_000;
    private const int Clients = 6;

    private void Log(string line)
    {
        var text = $"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}";
        try { output.WriteLine(text); } catch (InvalidOperationException) { }
        var file = Environment.GetEnvironmentVariable("COORDINATION_LINEARIZABILITY_LOG");
        if (!string.IsNullOrEmpty(file)) lock (this) File.AppendAllText(file, text + "\n");
    }

    [Fact]
    public Task History_under_kills_restarts_and_partitions_is_linearizable() =>
        TestSeed.RunAsync(Environment.TickCount & 0xffff, "tests/Coordination.Ensemble.Tests",
            $"{nameof(LinearizabilityUnderFaultsTests)}.{nameof(History_under_kills_restarts_and_partitions_is_linearizable)}", Log, RunAsync);

    private async Task RunAsync(int seed)
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_LINEARIZABILITY_SECONDS"), out var s) && s > 0 ? s : 60;
        var duration = TimeSpan.FromSeconds(seconds);
        Log($"duration {seconds} s, seed {seed}, {Clients} clients, rounds of {RoundSeconds} s");
        var total = Stopwatch.StartNew();

        await using var ensemble = await TestEnsemble.StartAsync(3);
        var connectRandom = new Random(seed);
        async Task<WireClient> Connect()
        {
            var running = ensemble.Members.Where(m => m.IsRunning).ToList();
            if (running.Count == 0) throw new IOException("no member is running");
            TestEnsemble.Member member;
            lock (connectRandom) member = running[connectRandom.Next(running.Count)];
            return await WireClient.ConnectAsync(member.ConnectString, new WireClientOptions
            {
                ConnectTimeout = TimeSpan.FromSeconds(3), SessionTimeoutMs = 10_000,
            });
        }

        using var stop = new CancellationTokenSource();
        var faults = new List<string>();
        var faultTask = Task.Run(() => FaultScheduleAsync(ensemble, new Random(seed + 1), faults, stop.Token));

        var histories = new List<IReadOnlyList<Operation>>();
        var end = Stopwatch.StartNew();
        for (var round = 0; end.Elapsed < duration; round++)
        {
            var left = duration - end.Elapsed;
            var length = left < TimeSpan.FromSeconds(RoundSeconds * 1.5) ? left : TimeSpan.FromSeconds(RoundSeconds);
            var paths = new[] { $"/lin{round}-a", $"/lin{round}-b", $"/lin{round}-c" };
            var recorder = new HistoryRecorder(Connect, paths, seed + round);
            await recorder.RunAsync(Clients, length);
            var history = recorder.History;
            histories.Add(history);
            Log($"round {round}: {history.Count} ops, {history.Count(o => o.Outcome == Outcome.Unknown)} unknown, " +
                $"{history.Count(o => o.Kind == OpKind.Read && o.Outcome == Outcome.Ok)} ok reads; faults so far {faults.Count}");
        }
        stop.Cancel();
        await faultTask;

        // Heal everything and bring every member back: the ensemble must converge on one tree.
        await ensemble.HealAllAsync();
        foreach (var m in ensemble.Members.Where(m => !m.IsRunning).ToList()) await ensemble.RestartAsync(m.Id);
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        await using (var c = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString))
            await c.CreateAsync("/lin-final", null).OkAsync(); // a write in the final epoch, so that all members apply it
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        Log("final: " + string.Join(", ", hashes.Select(h => $"{h.Key}: zxid 0x{h.Value.Zxid:x} digest 0x{h.Value.Digest:x}")));

        var all = histories.SelectMany(h => h).ToList();
        var known = all.Count(o => o.Outcome != Outcome.Unknown);
        Log($"{all.Count} ops ({known} with a known outcome, {all.Count - known} unknown), {faults.Count} faults: {string.Join("; ", faults.Take(40))}{(faults.Count > 40 ? "; ..." : "")}");
        Assert.True(known >= seconds * 5, $"only {known} operations completed in {seconds} s");
        Assert.True(faults.Count >= Math.Max(3, seconds / 20), $"only {faults.Count} faults were injected");
        foreach (var key in all.GroupBy(o => o.Path))
            Assert.True(key.Count() <= MaxOpsPerKey, $"{key.Key}: {key.Count()} ops exceeds the checker cap");

        // The depth-first search recurses once per operation: give it a deep stack.
        var checkWatch = Stopwatch.StartNew();
        IReadOnlyList<CheckResult>? results = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { results = LinearizabilityChecker.Check(all, TimeSpan.FromMinutes(2)); }
            catch (Exception e) { failure = e; }
        }, 512 * 1024 * 1024);
        thread.Start();
        thread.Join();
        if (failure is not null) throw new Exception("the checker failed", failure);
        var bad = results!.Where(r => !r.Linearizable).ToList();
        Log($"checker: {results!.Count} znodes, {results.Sum(r => r.Operations)} ops, {bad.Count} not linearizable, {checkWatch.Elapsed.TotalSeconds:F1} s; " +
            $"total {total.Elapsed.TotalSeconds:F0} s");
        foreach (var r in bad) Assert.True(r.Linearizable, r.Explanation);
        // Checked after the history, so that a run reports both verdicts.
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }

    private async Task FaultScheduleAsync(TestEnsemble ensemble, Random random, List<string> faults, CancellationToken ct)
    {
        async Task Pause(int minMs, int maxMs) => await Task.Delay(random.Next(minMs, maxMs), ct);
        void Note(string what, bool recovery = false)
        {
            if (!recovery) lock (faults) faults.Add(what);
            Log((recovery ? "recovery: " : "fault: ") + what);
        }
        async Task KillAndRestart(string role, long id)
        {
            Note($"kill {role} {id}");
            await ensemble.KillAsync(id);
            await Pause(1000, 4000);
            await ensemble.RestartAsync(id);
            Note($"restarted {id}", recovery: true);
        }
        async Task CutAndHeal(string what, Func<Task> cut)
        {
            Note(what);
            await cut();
            await Pause(2000, 5000);
            await ensemble.HealAllAsync();
            Note("healed", recovery: true);
        }
        try
        {
            await Pause(2000, 3000);
            for (var step = 0; !ct.IsCancellationRequested; step++)
            {
                TestEnsemble.Member leader;
                try { leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30)); }
                catch (TimeoutException e) { Log("no leader: " + e.Message); continue; }
                var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToList();
                var follower = followers[random.Next(followers.Count)];
                switch (step % 5)
                {
                    case 0: await KillAndRestart("leader", leader.Id); break;
                    case 1: await CutAndHeal($"isolate leader {leader.Id}", () => ensemble.PartitionAsync(leader.Id)); break;
                    case 2: await KillAndRestart("follower", follower.Id); break;
                    case 3: await CutAndHeal($"isolate follower {follower.Id}", () => ensemble.PartitionAsync(follower.Id)); break;
                    default: await CutAndHeal($"cut link {leader.Id}-{follower.Id}", () => ensemble.SetLinkAsync(leader.Id, follower.Id, heal: false)); break;
                }
                // Let the ensemble settle before the next fault (bounded: a stuck ensemble fails the run below).
                try { await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(30)); }
                catch (TimeoutException e) { Log("did not settle: " + e.Message); }
                await Pause(1000, 3000);
            }
        }
        catch (OperationCanceledException) { }
    }
}
