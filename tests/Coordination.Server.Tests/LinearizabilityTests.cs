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
}
