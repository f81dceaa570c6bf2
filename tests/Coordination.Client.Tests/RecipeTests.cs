using System.Text;
using Coordination.Recipes;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>Lock, leader latch and counter recipes through the Task API, against our server and Apache ZooKeeper.</summary>
public sealed class RecipeTests(ServersFixture servers, ITestOutputHelper output) : IClassFixture<ServersFixture>
{
    // Each test works under its own root on a server shared by the class.
    private readonly string _root = "/t" + Guid.NewGuid().ToString("N");

    private Task Shared(string target, Func<Coordination.TestKit.ServerProcess, Task> body) => servers.RunAsync(target, chroot: null, output, body);

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Lock_is_never_held_twice_with_crashing_clients(string target) => Shared(target, async server =>
    {
        const int clients = 4, acquisitions = 8;
        var inside = 0;
        var overlaps = 0;
        var entries = 0;
        var crashes = 0;
        var random = new Random(42);
        var seeds = Enumerable.Range(0, clients).Select(_ => random.Next()).ToArray();

        async Task Worker(int index)
        {
            var rng = new Random(seeds[index]);
            var client = await Targets.ConnectAsync(server, output);
            var mutex = new DistributedLock(client, _root + "/locks/job");
            for (var i = 0; i < acquisitions; i++)
            {
                Assert.True(await mutex.AcquireAsync(TimeSpan.FromSeconds(30)), "lock not acquired within 30 s");
                Assert.True(mutex.IsHeld);
                // Reentrant on the same instance.
                Assert.True(await mutex.AcquireAsync(TimeSpan.FromSeconds(1)));
                if (Interlocked.Increment(ref inside) != 1) Interlocked.Increment(ref overlaps);
                Interlocked.Increment(ref entries);
                await Task.Delay(rng.Next(1, 8));
                var crash = rng.NextDouble() < 0.15;
                Interlocked.Decrement(ref inside);
                if (crash)
                {
                    // The holder dies without releasing: its session ends, its node goes, the next contender proceeds.
                    Interlocked.Increment(ref crashes);
                    await client.CloseAsync();
                    await client.DisposeAsync();
                    client = await Targets.ConnectAsync(server, output);
                    mutex = new DistributedLock(client, _root + "/locks/job");
                    continue;
                }
                await mutex.ReleaseAsync();
                Assert.True(mutex.IsHeld); // still held once
                await mutex.ReleaseAsync();
                Assert.False(mutex.IsHeld);
            }
            await client.DisposeAsync();
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(Worker)).Within(90);
        output.WriteLine($"{entries} entries, {crashes} crashes, {overlaps} overlaps");
        Assert.Equal(0, overlaps);
        Assert.Equal(clients * acquisitions, entries);
        await using var check = await Targets.ConnectAsync(server, output);
        Assert.Empty((await check.GetChildrenAsync(_root + "/locks/job")).Children);
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Lock_acquire_times_out_and_cleans_up(string target) => Shared(target, async server =>
    {
        await using var a = await Targets.ConnectAsync(server, output);
        await using var b = await Targets.ConnectAsync(server, output);
        var first = new DistributedLock(a, _root + "/l");
        var second = new DistributedLock(b, _root + "/l");
        Assert.True(await first.AcquireAsync(TimeSpan.FromSeconds(5)));
        Assert.False(await second.AcquireAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Single((await a.GetChildrenAsync(_root + "/l")).Children); // the waiter's node was removed
        var waiting = second.AcquireAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        await first.ReleaseAsync();
        Assert.True(await waiting.Within());
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.ReleaseAsync());
        await second.ReleaseAsync();
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Lock_ownership_ends_with_the_session(string target) => Shared(target, async server =>
    {
        await using var proxy = new TcpProxy(server.Port);
        await using var holderClient = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString, output)).Within(20);
        await using var other = await Targets.ConnectAsync(server, output);
        var holder = new DistributedLock(holderClient, _root + "/l");
        var contender = new DistributedLock(other, _root + "/l");
        Assert.True(await holder.AcquireAsync(TimeSpan.FromSeconds(5)).Within());
        var lost = holder.LostToken;
        var waiting = contender.AcquireAsync(TimeSpan.FromSeconds(20));

        proxy.Cut();
        var killer = new CoordinationClient(Targets.Options(server.ConnectString, output) with
        {
            SessionId = holderClient.SessionId, SessionPassword = holderClient.SessionPassword,
        });
        await killer.StartAsync().Within(20);
        await killer.DisposeAsync(); // the holder's session ends on the server: its lock node goes
        Assert.True(await waiting.Within(20));
        Assert.True(contender.IsHeld);

        proxy.Heal(); // the old holder gave the lock up when it was cut off (Suspended), and learns of the expiry now
        await Task.Run(() => lost.WaitHandle.WaitOne(TimeSpan.FromSeconds(15))).Within(20);
        Assert.True(lost.IsCancellationRequested);
        Assert.False(holder.IsHeld);
        await contender.ReleaseAsync();
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Leader_latch_elects_one_and_signals_loss_on_expiry(string target) => Shared(target, async server =>
    {
        var proxies = Enumerable.Range(0, 3).Select(_ => new TcpProxy(server.Port)).ToArray();
        var clients = new List<CoordinationClient>();
        var latches = new List<LeaderLatch>();
        var leaders = 0;
        var maxLeaders = 0;
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var client = await CoordinationClient.ConnectAsync(Targets.Options(proxies[i].ConnectString, output)).Within(20);
                clients.Add(client);
                var latch = new LeaderLatch(client, _root + "/election", $"p{i}");
                latch.LeadershipChanged += isLeader =>
                {
                    var now = isLeader ? Interlocked.Increment(ref leaders) : Interlocked.Decrement(ref leaders);
                    int seen;
                    while ((seen = Volatile.Read(ref maxLeaders)) < now && Interlocked.CompareExchange(ref maxLeaders, now, seen) != seen) { }
                };
                latches.Add(latch);
                await latch.StartAsync().Within();
            }
            await latches[0].WaitForLeadershipAsync().Within();
            Assert.True(latches[0].HasLeadership);
            Assert.False(latches[1].HasLeadership || latches[2].HasLeadership);

            // The leader's session is cut off and expired: it loses leadership first, then the next one leads.
            var token = latches[0].LeadershipToken;
            proxies[0].Cut();
            await Task.Run(() => token.WaitHandle.WaitOne(TimeSpan.FromSeconds(10))).Within(15);
            Assert.True(token.IsCancellationRequested);
            Assert.False(latches[0].HasLeadership);
            var killer = new CoordinationClient(Targets.Options(server.ConnectString, output) with
            {
                SessionId = clients[0].SessionId, SessionPassword = clients[0].SessionPassword,
            });
            await killer.StartAsync().Within(20);
            await killer.DisposeAsync(); // closes the old leader's session: its node goes
            await latches[1].WaitForLeadershipAsync().Within(15);
            Assert.False(latches[2].HasLeadership);

            // The old leader comes back as an Expired client, restarts, and re-joins at the back of the line.
            proxies[0].Heal();
            var states = new StateRecorder(clients[0]);
            await states.WaitFor(ConnectionState.Expired);
            await clients[0].RestartAsync().Within(20);
            await Task.Delay(300);
            Assert.False(latches[0].HasLeadership);
            Assert.Equal(3, (await clients[1].GetChildrenAsync(_root + "/election")).Children.Count);

            // Closing the leader hands over to the next in line.
            await latches[1].CloseAsync();
            await latches[2].WaitForLeadershipAsync().Within(15);
            Assert.False(latches[0].HasLeadership);
            Assert.Equal(1, maxLeaders);
        }
        finally
        {
            foreach (var l in latches) await l.DisposeAsync();
            foreach (var c in clients) await c.DisposeAsync();
            foreach (var p in proxies) await p.DisposeAsync();
        }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Counter_loses_no_concurrent_increments(string target) => Shared(target, async server =>
    {
        const int clients = 4, increments = 25;
        var all = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Targets.ConnectAsync(server, output)));
        try
        {
            await Task.WhenAll(all.Select(async c =>
            {
                var counter = new DistributedCounter(c, _root + "/counters/jobs");
                for (var i = 0; i < increments; i++) await counter.IncrementAsync();
            })).Within(60);
            var counter = new DistributedCounter(all[0], _root + "/counters/jobs");
            Assert.Equal(clients * increments, await counter.GetAsync());
            var version = (await all[0].ExistsAsync(_root + "/counters/jobs"))!.Value.Version;
            Assert.True(await counter.TrySetAsync(7, version));
            Assert.False(await counter.TrySetAsync(8, version));
            Assert.Equal(7, await counter.GetAsync());
            Assert.Equal(10, await counter.AddAsync(3));
        }
        finally
        {
            foreach (var c in all) await c.DisposeAsync();
        }
    });
}
