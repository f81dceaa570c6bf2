using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Concurrent clients run create, conditional set, conditional delete and sync-then-read on a few znodes; the
/// recorded history must be linearizable. Run against Apache ZooKeeper too, which shows the harness is sound.
/// Fault schedules (kills, partitions) join this test once the server is durable and replicated (issues 3 and 4).
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class LinearizabilityTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Concurrent_history_on_a_standalone_server_is_linearizable(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        var paths = new[] { "/lin-a", "/lin-b", "/lin-c" };
        var recorder = new HistoryRecorder(() => WireClient.ConnectAsync(server.ConnectString), paths, seed: 42);
        await recorder.RunAsync(clients: 6, TimeSpan.FromSeconds(5));

        var history = recorder.History;
        var completed = history.Count(o => o.Outcome != Outcome.Unknown);
        output.WriteLine($"{history.Count} operations, {completed} with a known outcome, " +
                         $"{history.Count(o => o.Kind == OpKind.Read && o.Outcome == Outcome.Ok)} successful reads");
        Assert.True(completed > 500, "the history is too small to mean anything");
        foreach (var result in LinearizabilityChecker.Check(history))
        {
            output.WriteLine($"{result.Path}: {result.Operations} operations, linearizable={result.Linearizable}");
            Assert.True(result.Linearizable, result.Explanation);
        }
    }

    [Fact]
    public async Task The_recorder_ends_early_once_a_znode_reaches_its_operation_cap()
    {
        await using var server = await Targets.StartAsync("ours", output);
        const int cap = 300, clients = 6;
        var recorder = new HistoryRecorder(() => WireClient.ConnectAsync(server.ConnectString), ["/cap-a", "/cap-b"], seed: 7)
        {
            MaxOpsPerPath = cap,
        };
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await recorder.RunAsync(clients, TimeSpan.FromSeconds(60));

        var perPath = recorder.History.GroupBy(o => o.Path).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine($"{watch.Elapsed.TotalSeconds:0.0} s, " + string.Join(", ", perPath.Select(p => $"{p.Key}: {p.Value}")));
        Assert.Contains(perPath.Values, n => n >= cap);
        // Each client finishes the operation it has in flight, and no more.
        Assert.All(perPath.Values, n => Assert.InRange(n, 0, cap + clients));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"the recording ran {watch.Elapsed} instead of stopping at the cap");
    }
}
