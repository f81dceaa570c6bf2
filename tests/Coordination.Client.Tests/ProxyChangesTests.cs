using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Client.Actors;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>
/// The actor proxy's change feed (<see cref="SubscribeChanges"/>), driven with Akka.TestKit probes against our
/// server over real TCP: changes arrive as messages in zxid order and only against the subscriber's demand; a
/// connection cut and healed loses and repeats nothing; Compacted arrives as a message; a stopped subscription
/// sends nothing more. (Apache ZooKeeper has no change feed: its refusal is ChangeFeedWireTests' subject.)
/// </summary>
public sealed class ProxyChangesTests(ServersFixture servers, ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit("akka.loglevel = INFO", output), IClassFixture<ServersFixture>
{
    private readonly string _chroot = "/t" + Guid.NewGuid().ToString("N");
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(500);

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);
    private static string S(byte[]? b) => Encoding.UTF8.GetString(b ?? []);

    private static CoordinationClientSettings Settings(string connectString) =>
        CoordinationClientSettings.Create(ConfigurationFactory.ParseString($$"""
            connect-string = "{{connectString}}"
            session-timeout = 10s
            retry { base-sleep = 50ms, max-sleep = 500ms, max-retries = 50 }
            """));

    private List<FeedChange> Receive(Akka.TestKit.TestProbe probe, long subscription, int count)
    {
        var changes = new List<FeedChange>();
        for (var i = 0; i < count; i++)
        {
            var change = probe.ExpectMsg<FeedChange>(Wait);
            Assert.Equal(subscription, change.SubscriptionId);
            changes.Add(change);
        }
        return changes;
    }

    [Fact]
    public Task Changes_arrive_in_order_against_demand_and_resume_once_after_a_reconnect() => servers.RunAsync("ours", _chroot, Output, async server =>
    {
        await using var tcp = new TcpProxy(server.Port);
        var proxy = Sys.ActorOf(CoordinationProxy.Props(Settings(tcp.ConnectString + _chroot)));
        await using var writer = await Targets.ConnectAsync(server, Output, chroot: _chroot);
        var zxids = new List<long> { (await writer.CreateWithStatAsync("/f", B("c"))).Stat.Czxid };
        for (var i = 0; i < 5; i++) zxids.Add((await writer.SetDataAsync("/f", B($"v{i}"))).Mzxid);
        await writer.CreateAsync("/g", B("not under /f"));

        // Demand 2: two changes, then nothing until the subscriber asks for more.
        var subscriber = CreateTestProbe();
        var subscribed = await proxy.Ask<ChangesSubscribed>(new SubscribeChanges("/f", 0, Demand: 2, Subscriber: subscriber.Ref), Wait);
        var id = subscribed.SubscriptionId;
        var got = Receive(subscriber, id, 2);
        subscriber.ExpectNoMsg(Quiet);
        proxy.Tell(new RequestChanges(id, 100), subscriber.Ref);
        got.AddRange(Receive(subscriber, id, 4));
        Assert.Equal(zxids, got.Select(c => c.Change.Zxid));
        Assert.Equal(["c", "v0", "v1", "v2", "v3", "v4"], got.Select(c => S(c.Change.Data)));
        Assert.Equal(EventType.NodeCreated, got[0].Change.Type);
        Assert.All(got, c => Assert.Equal("/f", c.Change.Path));   // the client's path, under its chroot

        // Cut: writes commit meanwhile; after the reconnect each arrives once, in order.
        tcp.Cut();
        var missed = new List<long>();
        for (var i = 0; i < 3; i++) missed.Add((await writer.SetDataAsync("/f", B($"w{i}"))).Mzxid);
        tcp.Heal();
        Assert.Equal(missed, Receive(subscriber, id, 3).Select(c => c.Change.Zxid));
        subscriber.ExpectNoMsg(Quiet);

        // Stopped: nothing more for it.
        Assert.Equal(id, (await proxy.Ask<ChangesStopped>(new StopChanges(id), Wait)).SubscriptionId);
        await writer.SetDataAsync("/f", B("after"));
        subscriber.ExpectNoMsg(Quiet);
    });

    [Fact]
    public async Task A_zxid_no_longer_retained_ends_the_subscription_with_a_Compacted_message()
    {
        await using var server = await ServerProcess.StartAsync("ours", new ServerProcessOptions { ExtraHocon = "coordination.change-feed { retain-txns = 5, history-from-journal = off }" });
        var proxy = Sys.ActorOf(CoordinationProxy.Props(Settings(server.ConnectString)));
        await using var writer = await Targets.ConnectAsync(server, Output);
        await writer.CreateAsync("/p", (byte[]?)null);
        var zxids = new List<long>();
        for (var i = 0; i < 20; i++) zxids.Add((await writer.SetDataAsync("/p", BitConverter.GetBytes(i))).Mzxid);

        var subscriber = CreateTestProbe();
        var id = (await proxy.Ask<ChangesSubscribed>(new SubscribeChanges("/p", 0, Subscriber: subscriber.Ref), Wait)).SubscriptionId;
        var compacted = subscriber.ExpectMsg<ChangesCompacted>(Wait);
        Assert.Equal((id, "/p", zxids[^6]), (compacted.SubscriptionId, compacted.Prefix, compacted.RetainedAfter));
        subscriber.ExpectNoMsg(Quiet);

        // From where history starts: the five retained changes.
        var again = (await proxy.Ask<ChangesSubscribed>(new SubscribeChanges("/p", compacted.RetainedAfter, Subscriber: subscriber.Ref), Wait)).SubscriptionId;
        Assert.Equal(zxids.TakeLast(5), Receive(subscriber, again, 5).Select(c => c.Change.Zxid));
    }
}
