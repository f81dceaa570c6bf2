using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>The log writer's queue: FIFO per producer, a consumer that sleeps until an item comes, and a close that
/// still drains what was queued.</summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class HandOverQueueTests
{
    [Fact]
    public async Task Items_from_many_producers_arrive_once_each_and_in_each_producers_order()
    {
        var queue = new HandOverQueue<string>();
        const int producers = 4, perProducer = 20_000;
        var consumer = Task.Run(() =>
        {
            var seen = new int[producers];
            for (var n = 0; n < producers * perProducer; n++)
            {
                var item = queue.Take()!;
                var (p, i) = (int.Parse(item[..1]), int.Parse(item[2..]));
                Assert.Equal(seen[p], i);
                seen[p]++;
            }
            return seen;
        });
        await Task.WhenAll(Enumerable.Range(0, producers).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < perProducer; i++) Assert.True(queue.TryAdd($"{p}:{i}"));
        })));
        var counts = await consumer.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(counts, c => Assert.Equal(perProducer, c));
        Assert.False(queue.TryTake(out _));
    }

    [Fact]
    public async Task A_sleeping_consumer_wakes_for_the_next_item()
    {
        var queue = new HandOverQueue<string>();
        var take = Task.Run(queue.Take);
        await Task.Delay(200);
        Assert.False(take.IsCompleted);
        queue.TryAdd("late");
        Assert.Equal("late", await take.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Close_refuses_new_items_but_the_consumer_drains_the_queued_ones_first()
    {
        var queue = new HandOverQueue<string>();
        queue.TryAdd("a");
        queue.TryAdd("b");
        queue.Close();
        Assert.False(queue.TryAdd("c"));
        Assert.Equal("a", queue.Take());
        Assert.Equal("b", queue.Take());
        Assert.Null(queue.Take());

        var idle = new HandOverQueue<string>();
        var waiting = Task.Run(idle.Take);
        await Task.Delay(100);
        idle.Close();
        Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
