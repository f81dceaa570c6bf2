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
/// Duration: at least 20 s by default and until every kind of fault was injected once (one cycle of the schedule,
/// about 30-40 s); COORDINATION_LINEARIZABILITY_SECONDS=N for a long run, e.g.
/// <c>COORDINATION_LINEARIZABILITY_SECONDS=1800 dotnet test tests/Coordination.Ensemble.Tests -c Release --filter FullyQualifiedName~LinearizabilityUnderFaults</c>.
/// The checker is exponential in the worst case, so the history per znode is capped: the run is cut into rounds of
/// <see cref="RoundSeconds"/> each working on fresh znodes (the fault schedule runs straight across rounds), and
/// no znode may collect more than <see cref="MaxOpsPerKey"/> operations.
/// </summary>
[Collection(LoadAndNetnsCollection.Name)]
public sealed class LinearizabilityUnderFaultsTests(ITestOutputHelper output)
{
    private readonly FaultRunLog _log = new(output, "COORDINATION_LINEARIZABILITY_LOG");
    private const int RoundSeconds = 10;
    private const int MaxOpsPerKey = 50_000;
    private const int Clients = 6;

    [Fact]
    public Task History_under_kills_restarts_and_partitions_is_linearizable() =>
        TestSeed.RunAsync(Environment.TickCount & 0xffff, "tests/Coordination.Ensemble.Tests",
            $"{nameof(LinearizabilityUnderFaultsTests)}.{nameof(History_under_kills_restarts_and_partitions_is_linearizable)}", _log.Line, RunAsync);

    private async Task RunAsync(int seed)
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_LINEARIZABILITY_SECONDS"), out var s) && s > 0 ? s : 20;
        var duration = TimeSpan.FromSeconds(seconds);
        _log.Line($"duration {seconds} s, seed {seed}, {Clients} clients, rounds of {RoundSeconds} s");
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
        var faultTask = Task.Run(() => _log.FaultScheduleAsync(ensemble, new Random(seed + 1), stop.Token));

        var recording = Stopwatch.StartNew();
        // Every fault kind at least once, even when a slow machine takes longer than the duration for one cycle (bounded).
        bool AllKindsSeen() => _log.AllKindsSeen(FaultRunLog.ScheduleKinds);
        var all = await HistoryRecorder.RecordRoundsAsync(Connect, Clients, TimeSpan.FromSeconds(RoundSeconds), seed, "lin",
            () => !faultTask.IsCompleted && (recording.Elapsed < duration || !AllKindsSeen()) && recording.Elapsed < duration + TimeSpan.FromMinutes(3),
            _log.Round, maxOpsPerPath: MaxOpsPerKey - Clients);
        stop.Cancel();
        await faultTask;

        // Heal everything and bring every member back: the ensemble must converge on one tree.
        await ensemble.HealAllAsync();
        foreach (var m in ensemble.Members.Where(m => !m.IsRunning).ToList()) await ensemble.RestartAsync(m.Id);
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        await using (var c = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString))
            await c.CreateAsync("/lin-final", null).OkAsync(); // a write in the final epoch, so that all members apply it
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        _log.Final(hashes);

        Assert.True(AllKindsSeen(), $"not every fault kind was injected: {string.Join("; ", _log.Faults)}");
        Assert.True(_log.Faults.Count >= Math.Max(3, seconds / 20), $"only {_log.Faults.Count} faults were injected");
        foreach (var key in all.GroupBy(o => o.Path))
            Assert.True(key.Count() <= MaxOpsPerKey, $"{key.Key}: {key.Count()} ops exceeds the checker cap");
        _log.AssertLinearizable(all, seconds, total);
        // Checked after the history, so that a run reports both verdicts.
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }
}
