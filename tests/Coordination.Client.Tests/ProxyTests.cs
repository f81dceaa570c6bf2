using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Client.Actors;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>The actor proxy, driven with Akka.TestKit probes, against our server and Apache ZooKeeper.</summary>
public sealed class ProxyTests(ServersFixture servers, ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit("akka.loglevel = INFO", output), IClassFixture<ServersFixture>
{
    // Each test works in its own chroot on a server shared by the class.
    private readonly string _chroot = "/t" + Guid.NewGuid().ToString("N");

    private Task Shared(string target, Func<Coordination.TestKit.ServerProcess, Task> body) => servers.RunAsync(target, _chroot, Output, body);

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private static CoordinationClientSettings Settings(string connectString, string extra = "") =>
        CoordinationClientSettings.Create(ConfigurationFactory.ParseString($$"""
            connect-string = "{{connectString}}"
            session-timeout = 10s
            retry { base-sleep = 50ms, max-sleep = 500ms, max-retries = 5 }
            proxy.restart-backoff = 200ms
            {{extra}}
            """));

    private void ExpectState(Akka.TestKit.TestProbe probe, ConnectionState state) =>
        probe.FishForMessage<ConnectionStateChanged>(m => m.State == state, Wait, $"state {state}");

    [Fact]
    public void Settings_come_from_the_reference_conf_and_overrides()
    {
        var defaults = CoordinationClientSettings.Create(ConfigurationFactory.ParseString("coordination.client.connect-string = \"h1:1,h2:2/app\"")
            .WithFallback(CoordinationClientSettings.DefaultConfig()).GetConfig("coordination.client"));
        Assert.Equal("h1:1,h2:2/app", defaults.ConnectString);
        Assert.Equal(TimeSpan.FromSeconds(30), defaults.SessionTimeout);
        Assert.IsType<ExponentialBackoffRetry>(defaults.RetryPolicy);
        Assert.Equal(10_000, defaults.MaxInFlight);
        Assert.True(defaults.RestartOnExpiry);
        Assert.Null(defaults.ConnectionTimeout);
        Assert.False(defaults.ToOptions().UpdateHostsFromConfig);

        var custom = Settings("127.0.0.1:1", """
            retry { policy = until-elapsed, max-elapsed = 5s, sleep-between = 100ms }
            auth = [ { scheme = digest, auth = "u:p" } ]
            proxy { max-in-flight = 7, restart-on-expiry = off }
            connection-timeout = 2s
            update-hosts-from-config = on
            """);
        var retry = Assert.IsType<RetryUntilElapsed>(custom.RetryPolicy);
        Assert.Equal(TimeSpan.FromSeconds(5), retry.MaxElapsed);
        Assert.Equal("digest", Assert.Single(custom.Auth).Scheme);
        Assert.Equal(7, custom.MaxInFlight);
        Assert.False(custom.RestartOnExpiry);
        Assert.Equal(TimeSpan.FromSeconds(2), custom.ConnectionTimeout);
        Assert.True(custom.ToOptions().UpdateHostsFromConfig);
        Assert.Throws<ConfigurationException>(() => Settings("127.0.0.1:1", "retry.policy = sometimes"));
    }

    [Fact]
    public void Retry_policies_are_bounded()
    {
        var exp = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(100), 3, TimeSpan.FromMilliseconds(300));
        for (var i = 0; i < 3; i++)
        {
            Assert.True(exp.AllowRetry(i, TimeSpan.Zero, out var sleep));
            var ceiling = Math.Min(100 * Math.Pow(2, i), 300);
            Assert.InRange(sleep.TotalMilliseconds, ceiling / 2, ceiling);
        }
        Assert.False(exp.AllowRetry(3, TimeSpan.Zero, out _));
        var elapsed = new RetryUntilElapsed(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(100));
        Assert.True(elapsed.AllowRetry(100, TimeSpan.FromMilliseconds(500), out _));
        Assert.False(elapsed.AllowRetry(0, TimeSpan.FromMilliseconds(980), out _));
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Requests_replies_watches_and_states_as_messages(string target) => Shared(target, async server =>
    {
        var proxy = Sys.ActorOf(CoordinationProxy.Props(Settings(server.ConnectString + _chroot)), "proxy");
        var states = CreateTestProbe();
        var probe = CreateTestProbe();
        var watches = CreateTestProbe();
        proxy.Tell(new SubscribeConnectionState(states.Ref));
        ExpectState(states, ConnectionState.Connected);

        proxy.Tell(new Create("/a", B("0")), probe.Ref);
        Assert.Equal("/a", probe.ExpectMsg<Created>(Wait).Path);
        proxy.Tell(new Create("/a/eph", B(""), CreateMode.Ephemeral), probe.Ref);
        probe.ExpectMsg<Created>(Wait);
        proxy.Tell(new GetData("/a", Watch: true) { WatchSubscriber = watches.Ref }, probe.Ref);
        Assert.Equal("0", Encoding.UTF8.GetString(probe.ExpectMsg<NodeData>(Wait).Data!));
        proxy.Tell(new SetData("/a", B("1")), probe.Ref);
        Assert.Equal(1, probe.ExpectMsg<NodeStat>(Wait).Stat!.Value.Version);
        Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/a"), watches.ExpectMsg<WatchEvent>(Wait).Event);

        // Failures: Status.Failure carrying the typed KeeperException (Ask throws it).
        proxy.Tell(new GetData("/missing"), probe.Ref);
        var failure = probe.ExpectMsg<Status.Failure>(Wait);
        Assert.IsType<NoNodeException>(failure.Cause);
        Assert.Equal(new GetData("/missing"), failure.State);
        await Assert.ThrowsAsync<NoNodeException>(() => proxy.Ask<NodeData>(new GetData("/missing"), Wait));
        var children = await proxy.Ask<NodeChildren>(new GetChildren("/a"), Wait);
        Assert.Equal(["eph"], children.Children);
        Assert.Equal(["/a/eph"], (await proxy.Ask<EphemeralNodes>(new GetEphemerals("/a"), Wait)).Paths);
        Assert.Equal(1, (await proxy.Ask<AllChildrenNumber>(new GetAllChildrenNumber("/a"), Wait)).Count);
        Assert.Equal("/a", (await proxy.Ask<Synced>(new Sync("/a"), Wait)).Path);
        var multi = await proxy.Ask<MultiCompleted>(new Multi([Op.Create("/a/m", B("")), Op.SetData("/a", B("2"), 1)]), Wait);
        Assert.Equal(2, multi.Results.Count);
        var reads = await proxy.Ask<MultiCompleted>(new MultiRead([Op.GetData("/a"), Op.GetChildren("/a")]), Wait);
        Assert.Equal("2", Encoding.UTF8.GetString(Assert.IsType<MultiOpResult.GetData>(reads.Results[0]).Data!));

        // A persistent watch fans out to its subscribers until removed.
        proxy.Tell(new AddWatch("/a/m", AddWatchMode.Persistent, watches.Ref), probe.Ref);
        probe.ExpectMsg<WatchAdded>(Wait);
        proxy.Tell(new SetData("/a/m", B("x")), probe.Ref);
        proxy.Tell(new SetData("/a/m", B("y")), probe.Ref);
        probe.ExpectMsg<NodeStat>(Wait);
        probe.ExpectMsg<NodeStat>(Wait);
        Assert.Equal(EventType.NodeDataChanged, watches.ExpectMsg<WatchEvent>(Wait).Event.Type);
        Assert.Equal(EventType.NodeDataChanged, watches.ExpectMsg<WatchEvent>(Wait).Event.Type);
        proxy.Tell(new RemoveWatch("/a/m", AddWatchMode.Persistent, watches.Ref), probe.Ref);
        probe.ExpectMsg<WatchRemoved>(Wait);
        proxy.Tell(new SetData("/a/m", B("z")), probe.Ref);
        probe.ExpectMsg<NodeStat>(Wait);
        watches.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // Stopping the proxy closes its session: the ephemeral goes away.
        Watch(proxy);
        Sys.Stop(proxy);
        ExpectTerminated(proxy, Wait);
        await using var client = await Targets.ConnectAsync(server, Output, chroot: _chroot);
        var deadline = DateTime.UtcNow + Wait;
        while (await client.ExistsAsync("/a/eph") is not null && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Null(await client.ExistsAsync("/a/eph"));
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Expiry_is_reported_and_a_new_session_follows(string target) => Shared(target, async server =>
    {
        await using var tcp = new TcpProxy(server.Port);
        var proxy = Sys.ActorOf(CoordinationProxy.Props(Settings(tcp.ConnectString + _chroot)));
        var states = CreateTestProbe();
        proxy.Tell(new SubscribeConnectionState(states.Ref));
        ExpectState(states, ConnectionState.Connected);
        var session = (await proxy.Ask<ConnectionStateChanged>(GetConnectionState.Instance, Wait)).SessionId;

        tcp.Cut();
        ExpectState(states, ConnectionState.Suspended);
        var killer = new CoordinationClient(Targets.Options(server.ConnectString, Output) with
        {
            SessionId = session, SessionPassword = await SessionPasswordOf(proxy, session),
        });
        await killer.StartAsync().Within(20);
        await killer.DisposeAsync();
        tcp.Heal();

        ExpectState(states, ConnectionState.Expired);
        var connected = states.FishForMessage<ConnectionStateChanged>(m => m.State == ConnectionState.Connected, Wait);
        Assert.NotEqual(session, connected.SessionId);
        var created = await proxy.Ask<Created>(new Create("/after", B("")), Wait);
        Assert.Equal("/after", created.Path);
    });

    // Closing the session from a second client that attaches with the proxy's id and password forces the expiry.
    private static Task<byte[]> SessionPasswordOf(IActorRef proxy, long session) =>
        proxy.Ask<SessionCredentials>(new GetSessionCredentials(), TimeSpan.FromSeconds(5)).ContinueWith(t =>
        {
            Assert.Equal(session, t.Result.SessionId);
            return t.Result.Password;
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Extension_reads_hocon_and_bounds_requests_in_flight(string target) => Shared(target, async server =>
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            coordination.client {
              connect-string = "{{server.ConnectString}}{{_chroot}}/chroot"
              session-timeout = 10s
              proxy { name = "coord", max-in-flight = 2 }
            }
            """);
        await using (var setup = await Targets.ConnectAsync(server, Output, chroot: _chroot))
            await setup.CreateAsync("/chroot", B("")).Within();
        using var system = ActorSystem.Create("ext-test", config);
        var extension = system.Coordination();
        Assert.Same(extension, system.Coordination());
        Assert.Equal("/system/coord", extension.Proxy.Path.ToStringWithoutAddress());
        Assert.Equal(2, extension.Settings.MaxInFlight);
        var created = await extension.Proxy.Ask<Created>(new Create("/x", B("")), Wait);
        Assert.Equal("/x", created.Path);

        var replies = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ =>
            extension.Proxy.Ask<object>(new Exists("/x"), Wait).ContinueWith(t => t.IsFaulted ? (object)t.Exception!.InnerException! : t.Result)));
        Assert.Contains(replies, r => r is CoordinationProxyOverloadedException);
        Assert.Contains(replies, r => r is NodeStat);
        await system.Terminate().Within(20);
    });
}
