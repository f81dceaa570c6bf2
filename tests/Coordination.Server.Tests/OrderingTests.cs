using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Invariants 3 and 4 under load: one writer streams pipelined creates, setData and deletes on a handful of znodes
/// while several reader sessions keep reading them with watches and re-arm on every event. Each reader's arrival log
/// (responses and events in wire order) is then checked against the writer's log of changes (zxid per change):
/// <list type="bullet">
/// <item>responses come back in request order (xids strictly increasing);</item>
/// <item>a watch armed by a response showing state S fires before any later response that shows a state after S;</item>
/// <item>an event arrives only while a watch is armed (one-shot: at most one event per arming, and never before the
/// response of the read that armed it);</item>
/// <item>the event type matches the first change after the armed state, and events arrive in zxid order (the zxid of
/// each event is inferred from the writer's log because Apache 3.8 sends -1 in the notification header; when a server
/// does send a zxid there it must be that change's zxid).</item>
/// </list>
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class OrderingTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Responses_are_fifo_and_watch_events_precede_the_responses_that_show_the_change(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, () => OrderingScenario.RunAsync(o => WireClient.ConnectAsync(server.ConnectString, o), output));
    }
}
