using System.Diagnostics;
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
        var results = LinearizabilityChecker.CheckOnLargeStack(all, TimeSpan.FromMinutes(2));
        var bad = results.Where(r => !r.Linearizable).ToList();
        Line($"checker: {results.Count} znodes, {results.Sum(r => r.Operations)} ops, {bad.Count} not linearizable, {checkWatch.Elapsed.TotalSeconds:F1} s; " +
             $"total {total.Elapsed.TotalSeconds:F0} s");
        foreach (var r in bad) Line(r.Explanation!);
        foreach (var r in bad) Assert.True(r.Linearizable, r.Explanation);
    }

    /// <summary>The final (zxid, digest) of every member, for the log.</summary>
    public void Final(IReadOnlyDictionary<long, (long Zxid, long Digest)> hashes) =>
        Line("final: " + string.Join(", ", hashes.Select(h => $"{h.Key}: zxid 0x{h.Value.Zxid:x} digest 0x{h.Value.Digest:x}")));
}
