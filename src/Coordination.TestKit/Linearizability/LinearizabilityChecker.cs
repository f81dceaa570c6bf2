namespace Coordination.TestKit.Linearizability;

public sealed record CheckResult(bool Linearizable, string Path, int Operations, string? Explanation);

/// <summary>
/// Checks a concurrent history against <see cref="ZnodeModel"/>, in the manner of Wing &amp; Gong with Lowe's
/// memoisation (as Porcupine does): linearizability is compositional, so each znode's sub-history is checked on its
/// own; a depth-first search tries to order the operations consistently with real time (an operation may only be
/// placed while every operation that returned before it was invoked is already placed) and with the model, caching
/// (placed set, state) pairs it has already refuted. Operations with an unknown outcome may be placed at any point
/// after their invocation, or never.
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>
    /// Checks each znode's sub-history, on a thread of its own with a 512 MiB stack: the depth-first search recurses
    /// once per placed operation, and a quiet machine records histories (10,000+ ops on one znode in a few seconds)
    /// that go deeper than a thread-pool stack allows (the test host then dies of a stack overflow).
    /// </summary>
    public static IReadOnlyList<CheckResult> Check(IEnumerable<Operation> history, TimeSpan? budget = null)
    {
        var groups = history.GroupBy(o => o.Path).Select(g => (g.Key, g.ToList())).ToList();
        var results = new List<CheckResult>();
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                foreach (var (path, ops) in groups) results.Add(CheckOne(path, ops, budget ?? TimeSpan.FromSeconds(60)));
            }
            catch (Exception e) { failure = e; }
        }, 512 * 1024 * 1024);
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return results;
    }

    private static CheckResult CheckOne(string path, List<Operation> ops, TimeSpan budget)
    {
        // Unknown outcomes never returned: they stay concurrent with everything after their invocation.
        var sorted = ops.Select(o => o.Outcome == Outcome.Unknown ? o with { Return = long.MaxValue } : o)
            .OrderBy(o => o.Invoke).ToArray();
        var n = sorted.Length;
        if (n > 50_000) throw new ArgumentException($"{path}: {n} operations is more than this checker is meant for");
        var placed = new bool[n];
        var required = sorted.Count(o => o.Outcome != Outcome.Unknown);
        var refuted = new HashSet<(string, ZnodeState)>();
        var deadline = DateTime.UtcNow + budget;
        var order = new List<int>();
        // The deepest point the search reached, for the explanation: how many ops it placed, the state there, and the
        // op that had to come next (the unplaced one that returned first) but could not.
        var (deepest, deepestState, blocking) = (-1, ZnodeState.Absent, -1);

        bool Search(ZnodeState state, int placedRequired)
        {
            if (placedRequired == required) return true;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{path}: linearizability search exceeded {budget}");
            var key = (Key(placed), state);
            if (refuted.Contains(key)) return false;

            // Candidates: unplaced ops invoked before the earliest return among unplaced ops (minimal in real time).
            var earliestReturn = long.MaxValue;
            var first = -1;
            for (var i = 0; i < n; i++) if (!placed[i] && sorted[i].Return < earliestReturn) (earliestReturn, first) = (sorted[i].Return, i);
            if (order.Count > deepest) (deepest, deepestState, blocking) = (order.Count, state, first);
            for (var i = 0; i < n && sorted[i].Invoke <= earliestReturn; i++)
            {
                if (placed[i]) continue;
                if (!ZnodeModel.Step(state, sorted[i], out var next)) continue;
                placed[i] = true;
                order.Add(i);
                if (Search(next, placedRequired + (sorted[i].Outcome != Outcome.Unknown ? 1 : 0))) return true;
                placed[i] = false;
                order.RemoveAt(order.Count - 1);
            }
            refuted.Add(key);
            return false;
        }

        var ok = Search(ZnodeState.Absent, 0);
        return new CheckResult(ok, path, n, ok ? null : Explain(path, sorted, deepest, deepestState, blocking));
    }

    private static string Key(bool[] placed)
    {
        var chars = new char[(placed.Length + 15) / 16];
        for (var i = 0; i < placed.Length; i++) if (placed[i]) chars[i / 16] |= (char)(1 << (i % 16));
        return new string(chars);
    }

    private static string Explain(string path, Operation[] ops, int deepest, ZnodeState state, int blocking)
    {
        var window = ops.Select((o, i) => (o, i)).Skip(Math.Max(0, blocking - 40)).Take(60);
        return $"{path}: no linearization of {ops.Length} operations; the longest linearizable prefix has {deepest} ops and ends in " +
               $"{(state.Exists ? $"'{state.Value}' v{state.Version}" : "no node")}, after which #{blocking} (the first to return of the rest) " +
               $"cannot be placed; operations around it, by invocation:\n" +
               string.Join("\n", window.Select(x => (x.i == blocking ? "> " : "  ") + $"#{x.i} " + Describe(x.o)));
    }

    /// <summary>One operation as a line: client, [invoke, return], kind, inputs, outcome and what a read saw.</summary>
    private static string Describe(Operation o) =>
        $"c{o.Client}{(o.Server is null ? "" : "@" + o.Server)} [{o.Invoke}, {(o.Return == long.MaxValue ? "∞" : o.Return.ToString())}] {o.Kind} " +
        $"{(o.Value is null ? "" : $"'{o.Value}' ")}{(o.ExpectedVersion >= 0 ? $"v{o.ExpectedVersion} " : "")}→ {o.Outcome}" +
        $"{(o.Error is null ? "" : " " + o.Error)}{(o.Kind == OpKind.Read && o.Outcome == Outcome.Ok ? $" '{o.ReadValue}' v{o.ReadVersion}" : "")}";
}
