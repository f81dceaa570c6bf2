using System.Text;
using Coordination.Client.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>FIFO and priority queues.</summary>
public sealed class QueueTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Queue_is_fifo_and_competing_consumers_get_each_item_once(string target) => Shared(target, async server =>
    {
        const int items = 60, consumers = 3;
        var clients = await Task.WhenAll(Enumerable.Range(0, consumers + 1).Select(_ => Targets.ConnectAsync(server, Output)));
        try
        {
            var producer = new DistributedQueue(clients[0], Root + "/q");
            Assert.Null(await producer.TryTakeAsync().Within());
            Assert.Null(await producer.TakeAsync(TimeSpan.FromMilliseconds(200)).Within());
            for (var i = 0; i < 3; i++) await producer.PutAsync(B($"first{i}"));
            Assert.Equal(["first0", "first1", "first2"], new[] { S(await producer.TakeAsync()), S(await producer.TakeAsync()), S(await producer.TakeAsync()) });

            var taken = new System.Collections.Concurrent.ConcurrentBag<string>();
            var consuming = clients.Skip(1).Select(async c =>
            {
                var queue = new DistributedQueue(c, Root + "/q");
                while (await queue.TakeAsync(TimeSpan.FromSeconds(2)) is { } item) taken.Add(S(item));
            }).ToList();
            for (var i = 0; i < items; i++) await producer.PutAsync(B($"item{i}"));
            await Task.WhenAll(consuming).Within(40);
            Assert.Equal(items, taken.Count);
            Assert.Equal(items, taken.Distinct().Count()); // nothing delivered twice
        }
        finally { foreach (var c in clients) await c.DisposeAsync(); }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Take_waits_for_a_put_and_priority_queue_orders_by_priority_then_fifo(string target) => Shared(target, async server =>
    {
        await using var a = await Targets.ConnectAsync(server, Output);
        await using var b = await Targets.ConnectAsync(server, Output);
        var waiting = new DistributedQueue(b, Root + "/wq").TakeAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        await new DistributedQueue(a, Root + "/wq").PutAsync(B("x"));
        Assert.Equal("x", S(await waiting.Within()));

        var queue = new DistributedPriorityQueue(a, Root + "/pq");
        await queue.PutAsync(B("low-1"), 10);
        await queue.PutAsync(B("high"), -5);
        await queue.PutAsync(B("mid"), 0);
        await queue.PutAsync(B("low-2"), 10);
        var order = new List<string>();
        var consumer = new DistributedPriorityQueue(b, Root + "/pq");
        while (await consumer.TryTakeAsync() is { } item) order.Add(S(item));
        Assert.Equal(["high", "mid", "low-1", "low-2"], order);
    });
}
