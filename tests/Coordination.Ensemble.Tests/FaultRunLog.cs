using System.Diagnostics;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// The log and the verdict of a linearizability-under-faults run (in-process or process ensemble): timestamped lines to
/// the test output and, when the environment variable <paramref name="fileVariable"/> names a file, to that file too.
/// </summary>
internal sealed class FaultRunLog(ITestOutputHelper output, string fileVariable)
{
    private readonly List<string> _faults = new();
    private readonly object _gate = new();

    /// <summary>The faults injected so far.</summary>
    public IReadOnlyList<string> Faults { get { lock (_gate) return _faults.ToList(); } }

    public void Line(string line)
    {
        var text = $"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}";
        try { output.WriteLine(text); } catch (InvalidOperationException) { }
        var file = Environment.GetEnvironmentVariable(fileVariable);
        if (!string.IsNullOrEmpty(file)) lock (_gate) File.AppendAllText(file, text + "\n");
    }

    /// <summary>True once a fault of every kind (the prefix of its description) was injected.</summary>
    public bool AllKindsSeen(IEnumerable<string> kinds)
    {
        var faults = Faults;
        return kinds.All(k => faults.Any(f => f.StartsWith(k, StringComparison.Ordinal)));
    }

    /// <summary>The kinds of fault <see cref="FaultScheduleAsync"/> injects, in turn.</summary>
    public static readonly string[] ScheduleKinds = ["kill leader", "isolate leader", "kill follower", "isolate follower", "cut link"];

    public void Fault(string what)
    {
        lock (_gate) _faults.Add(what);
        Line("fault: " + what);
    }

    public void Recovery(string what) => Line("recovery: " + what);

    public void Round(int round, IReadOnlyList<Operation> history) =>
        Line($"round {round}: {history.Count} ops, {history.Count(o => o.Outcome == Outcome.Unknown)} unknown, " +
             $"{history.Count(o => o.Kind == OpKind.Read && o.Outcome == Outcome.Ok)} ok reads; faults so far {Faults.Count}");

    /// <summary>
    /// Logs the run's figures, asserts that at least 5 operations per second completed with a known outcome, and that
    /// the checker finds every znode's history linearizable.
    /// </summary>
    public void AssertLinearizable(IReadOnlyList<Operation> all, int seconds, Stopwatch total)
    {
        var known = all.Count(o => o.Outcome != Outcome.Unknown);
        var faults = Faults;
        Line($"{all.Count} ops ({known} with a known outcome, {all.Count - known} unknown), {faults.Count} faults: {string.Join("; ", faults.Take(40))}{(faults.Count > 40 ? "; ..." : "")}");
        Assert.True(known >= seconds * 5, $"only {known} operations completed in {seconds} s");

        var checkWatch = Stopwatch.StartNew();
        var results = LinearizabilityChecker.Check(all, TimeSpan.FromMinutes(2));
        var bad = results.Where(r => !r.Linearizable).ToList();
        Line($"checker: {results.Count} znodes, {results.Sum(r => r.Operations)} ops, {bad.Count} not linearizable, {checkWatch.Elapsed.TotalSeconds:F1} s; " +
             $"total {total.Elapsed.TotalSeconds:F0} s");
        foreach (var r in bad) Line(r.Explanation!);
        foreach (var r in bad) Assert.True(r.Linearizable, r.Explanation);
    }

    /// <summary>The final (zxid, digest) of every member, for the log.</summary>
    public void Final(IReadOnlyDictionary<long, (long Zxid, long Digest)> hashes) =>
        Line("final: " + string.Join(", ", hashes.Select(h => $"{h.Key}: zxid 0x{h.Value.Zxid:x} digest 0x{h.Value.Digest:x}")));

    /// <summary>Until <paramref name="ct"/>: kills and restarts the leader or a follower, isolates either, or cuts one
    /// link, in turn, logging each fault here and letting the ensemble settle between them (then
    /// <paramref name="afterEachFault"/> runs, if given).</summary>
    public async Task FaultScheduleAsync(TestEnsemble ensemble, Random random, CancellationToken ct, Func<Task>? afterEachFault = null)
    {
        async Task Pause(int minMs, int maxMs) => await Task.Delay(random.Next(minMs, maxMs), ct);
        async Task KillAndRestart(string role, long id)
        {
            Fault($"kill {role} {id}");
            await ensemble.KillAsync(id);
            await Pause(1000, 4000);
            await ensemble.RestartAsync(id);
            Recovery($"restarted {id}");
        }
        async Task CutAndHeal(string what, Func<Task> cut)
        {
            Fault(what);
            await cut();
            await Pause(2000, 5000);
            await ensemble.HealAllAsync();
            Recovery("healed");
        }
        try
        {
            await Pause(2000, 3000);
            for (var step = 0; !ct.IsCancellationRequested; step++)
            {
                TestEnsemble.Member leader;
                try { leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30)); }
                catch (TimeoutException e) { Line("no leader: " + e.Message); continue; }
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
                catch (TimeoutException e) { Line("did not settle: " + e.Message); }
                if (afterEachFault is not null) await afterEachFault();
                await Pause(1000, 3000);
            }
        }
        catch (OperationCanceledException) { }
    }
}
