using Coordination.Client;
using Coordination.Client.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>Mutex and read-write lock, against our server and Apache ZooKeeper with the same code.</summary>
public sealed class LockTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Mutex_never_has_two_holders_while_clients_crash_abruptly(string target) => Shared(target, async server =>
    {
        const int clients = 4, acquisitions = 6;
        var detector = new OverlapDetector();
        var crashes = 0;
        var expiredWaiters = 0;
        var seeds = Enumerable.Range(0, clients).Select(i => 1000 + i).ToArray();

        async Task Worker(int index)
        {
            var rng = new Random(seeds[index]);
            // A short session: a crashed holder's node lingers until its session times out.
            var (client, proxy) = await Clients.BehindProxyAsync(server, Output, TimeSpan.FromSeconds(2));
            var mutex = new DistributedLock(client, Root + "/locks/repair");
            for (var i = 0; i < acquisitions; i++)
            {
                bool acquired;
                try
                {
                    acquired = await mutex.AcquireAsync(TimeSpan.FromSeconds(40));
                }
                catch (SessionExpiredException)
                {
                    // A waiter (not a holder) whose 2-s session expired while the server or this machine stalled
                    // (seen against ZooKeeper under the CI's load): it starts over with a new session, as an
                    // application would. Mutual exclusion is what this test checks, and only holders enter.
                    Interlocked.Increment(ref expiredWaiters);
                    await Clients.CrashAsync(client, proxy);
                    (client, proxy) = await Clients.BehindProxyAsync(server, Output, TimeSpan.FromSeconds(2));
                    mutex = new DistributedLock(client, Root + "/locks/repair");
                    i--;
                    continue;
                }
                Assert.True(acquired, "lock not acquired within 40 s");
                var who = $"c{index}#{i}";
                detector.Enter(who);
                await Task.Delay(rng.Next(1, 6));
                if (rng.NextDouble() < 0.12)
                {
                    // The holder's link goes dead inside the critical section. It keeps working until the lock tells
                    // it the lock is lost (it hears nothing for 2/3 of the session timeout); the server may grant the
                    // lock to the next one only when the whole timeout has passed. Then the holder crashes.
                    Interlocked.Increment(ref crashes);
                    var lost = mutex.LostToken;
                    proxy.Freeze();
                    await Clients.Cancelled(lost);
                    detector.Exit(who);
                    await Clients.CrashAsync(client, proxy);
                    (client, proxy) = await Clients.BehindProxyAsync(server, Output, TimeSpan.FromSeconds(2));
                    mutex = new DistributedLock(client, Root + "/locks/repair");
                    continue;
                }
                detector.Exit(who);
                await mutex.ReleaseAsync();
            }
            await client.DisposeAsync();
            await proxy.DisposeAsync();
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(Worker)).Within(55);
        Output.WriteLine($"{detector.Entries} entries, {crashes} crashes, {expiredWaiters} waiters expired, overlaps: {string.Join("; ", detector.Overlaps)}");
        Assert.Empty(detector.Overlaps);
        Assert.Equal(clients * acquisitions, detector.Entries);
        Assert.True(crashes > 0, "the run must include crashes");
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Try_acquire_with_zero_timeout_does_not_wait_and_leaves_no_node(string target) => Shared(target, async server =>
    {
        await using var a = await Targets.ConnectAsync(server, Output);
        await using var b = await Targets.ConnectAsync(server, Output);
        var first = new DistributedLock(a, Root + "/l");
        Assert.True(await first.AcquireAsync(TimeSpan.Zero).Within());
        Assert.False(await new DistributedLock(b, Root + "/l").AcquireAsync(TimeSpan.Zero).Within());
        Assert.Single((await a.GetChildrenAsync(Root + "/l")).Children);
        // Deleting the holder's node behind its back ends its ownership.
        var lost = first.LostToken;
        await b.DeleteAsync(first.NodePath!).Within();
        await Clients.Cancelled(lost);
        Assert.False(first.IsHeld);
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Read_write_lock_shares_reads_excludes_writes_and_allows_downgrade(string target) => Shared(target, async server =>
    {
        await using var a = await Targets.ConnectAsync(server, Output);
        await using var b = await Targets.ConnectAsync(server, Output);
        var path = Root + "/rw";
        var rwA = new ReadWriteLock(a, path);
        var rwB = new ReadWriteLock(b, path);
        Assert.True(await rwA.ReadLock.AcquireAsync(TimeSpan.FromSeconds(5)).Within());
        Assert.True(await rwB.ReadLock.AcquireAsync(TimeSpan.FromSeconds(5)).Within()); // readers share
        Assert.False(await rwB.WriteLock.AcquireAsync(TimeSpan.FromMilliseconds(300)).Within()); // no upgrade, no writer beside readers
        await rwB.ReadLock.ReleaseAsync();
        var writer = rwB.WriteLock.AcquireAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        Assert.False(writer.IsCompleted); // waits for reader A
        // A reader arriving behind a waiting writer queues behind it (no writer starvation).
        var lateReader = new ReadWriteLock(a, path).ReadLock.AcquireAsync(TimeSpan.FromMilliseconds(300));
        Assert.False(await lateReader.Within());
        await rwA.ReadLock.ReleaseAsync();
        Assert.True(await writer.Within());
        // Reentrant write, then downgrade: the writer takes the read lock and lets the write lock go.
        Assert.True(await rwB.WriteLock.AcquireAsync(TimeSpan.FromSeconds(5)).Within());
        Assert.True(await rwB.ReadLock.AcquireAsync(TimeSpan.FromSeconds(5)).Within());
        await rwB.WriteLock.ReleaseAsync();
        await rwB.WriteLock.ReleaseAsync();
        Assert.False(rwB.WriteLock.IsHeld);
        Assert.True(rwB.ReadLock.IsHeld);
        Assert.True(await rwA.ReadLock.AcquireAsync(TimeSpan.FromSeconds(5)).Within()); // readers share again
        await rwA.ReadLock.ReleaseAsync();
        await rwB.ReadLock.ReleaseAsync();
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Read_write_lock_keeps_writers_exclusive_under_contention(string target) => Shared(target, async server =>
    {
        const int clients = 4, rounds = 8;
        var writers = new OverlapDetector(limit: 1);
        var readersWhileWriting = 0;
        var readersInside = 0;
        var writerInside = 0;
        var all = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Targets.ConnectAsync(server, Output)));
        try
        {
            await Task.WhenAll(all.Select(async (client, index) =>
            {
                var rng = new Random(index);
                var rw = new ReadWriteLock(client, Root + "/rw2");
                for (var i = 0; i < rounds; i++)
                {
                    if (rng.Next(3) == 0)
                    {
                        Assert.True(await rw.WriteLock.AcquireAsync(TimeSpan.FromSeconds(30)));
                        writers.Enter($"w{index}");
                        Interlocked.Increment(ref writerInside);
                        if (Volatile.Read(ref readersInside) > 0) Interlocked.Increment(ref readersWhileWriting);
                        await Task.Delay(rng.Next(1, 5));
                        Interlocked.Decrement(ref writerInside);
                        writers.Exit($"w{index}");
                        await rw.WriteLock.ReleaseAsync();
                    }
                    else
                    {
                        Assert.True(await rw.ReadLock.AcquireAsync(TimeSpan.FromSeconds(30)));
                        Interlocked.Increment(ref readersInside);
                        if (Volatile.Read(ref writerInside) > 0) Interlocked.Increment(ref readersWhileWriting);
                        await Task.Delay(rng.Next(1, 5));
                        Interlocked.Decrement(ref readersInside);
                        await rw.ReadLock.ReleaseAsync();
                    }
                }
            })).Within(50);
        }
        finally { foreach (var c in all) await c.DisposeAsync(); }
        Assert.Empty(writers.Overlaps);
        Assert.Equal(0, readersWhileWriting);
        Assert.True(writers.Entries > 0);
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Write_lock_is_lost_before_anyone_else_gets_it_when_the_session_expires(string target) => Shared(target, async server =>
    {
        var (holderClient, proxy) = await Clients.BehindProxyAsync(server, Output);
        await using var other = await Targets.ConnectAsync(server, Output);
        try
        {
            var holder = new ReadWriteLock(holderClient, Root + "/rw3").WriteLock;
            var contender = new ReadWriteLock(other, Root + "/rw3").WriteLock;
            Assert.True(await holder.AcquireAsync(TimeSpan.FromSeconds(5)).Within());
            var order = new System.Collections.Concurrent.ConcurrentQueue<string>();
            var lost = holder.LostToken;
            lost.Register(() => order.Enqueue("holder lost"));
            var waiting = contender.AcquireAsync(TimeSpan.FromSeconds(30));
            _ = waiting.ContinueWith(_ => order.Enqueue("contender acquired"), TaskContinuationOptions.ExecuteSynchronously);
            await Task.Delay(300);
            Assert.False(waiting.IsCompleted, "the contender got the write lock while the holder held it");
            proxy.Cut();
            await Clients.Cancelled(lost); // Suspended already ends ownership, before the session is gone
            // The holder's session is still alive on the server, so its lock node stands: the contender still waits.
            await Task.Delay(500);
            Assert.False(waiting.IsCompleted, "the contender got the write lock before the holder's session expired");
            Assert.False(contender.IsHeld);
            await Clients.ExpireSessionAsync(server, holderClient, Output);
            Assert.True(await waiting.Within(20));
            Assert.Equal(["holder lost", "contender acquired"], order.ToArray());
            Assert.False(holder.IsHeld);
            Assert.True(contender.IsHeld);
            await contender.ReleaseAsync();
        }
        finally
        {
            await holderClient.DisposeAsync();
            await proxy.DisposeAsync();
        }
    });

    /// <summary>A resource guarded by fencing tokens: it remembers the highest token it accepted and refuses lower ones.</summary>
    private sealed class FencedStore
    {
        private long _highest;
        public List<string> Accepted { get; } = [];
        public bool TryWrite(long token, string value)
        {
            lock (Accepted)
            {
                if (token < _highest) return false;
                _highest = token;
                Accepted.Add(value);
                return true;
            }
        }
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task A_stale_holder_after_session_expiry_has_a_lower_fencing_token_and_its_write_is_rejected(string target) => Shared(target, async server =>
    {
        var (staleClient, proxy) = await Clients.BehindProxyAsync(server, Output);
        await using var other = await Targets.ConnectAsync(server, Output);
        try
        {
            var store = new FencedStore();
            var stale = await new DistributedLock(staleClient, Root + "/fenced").LockAsync(TimeSpan.FromSeconds(5)).Within();
            Assert.True(stale.FencingToken > 0);
            Assert.True(store.TryWrite(stale.FencingToken, "stale-1"));

            // The holder is cut off (a long GC pause, a partition) and its session expires: the lock moves on.
            proxy.Cut();
            await Clients.ExpireSessionAsync(server, staleClient, Output);
            var mutex = new DistributedLock(other, Root + "/fenced");
            await using (var fresh = await mutex.LockAsync(TimeSpan.FromSeconds(20)).Within(30))
            {
                Assert.True(fresh.FencingToken > stale.FencingToken, $"new token {fresh.FencingToken} not above the stale {stale.FencingToken}");
                Assert.Equal(fresh.FencingToken, mutex.FencingToken);
                Assert.True(store.TryWrite(fresh.FencingToken, "fresh-1"));
                // The stale holder wakes up and writes with its old token: refused.
                Assert.False(store.TryWrite(stale.FencingToken, "stale-2"));
                Assert.True(stale.LostToken.IsCancellationRequested);
            }
            // Disposing the handle released the lock; disposing the stale one is harmless.
            Assert.False(mutex.IsHeld);
            Assert.Equal(0, mutex.FencingToken);
            await stale.DisposeAsync();
            Assert.Equal(["stale-1", "fresh-1"], store.Accepted);
            Assert.Empty((await other.GetChildrenAsync(Root + "/fenced").Within()).Children);
        }
        finally
        {
            await staleClient.DisposeAsync();
            await proxy.DisposeAsync();
        }
    });
}
