using System.Text;
using Coordination.Protocol;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>Reconnects, failover, watch re-registration and session expiry, against our server and Apache ZooKeeper.</summary>
public sealed class SessionTests(ServersFixture servers, ITestOutputHelper output) : IClassFixture<ServersFixture>
{
    // Tests that do not restart or kill the server share one per class, each in its own chroot.
    private readonly string _chroot = "/t" + Guid.NewGuid().ToString("N");

    private Task Shared(string target, Func<Coordination.TestKit.ServerProcess, Task> body) => servers.RunAsync(target, _chroot, output, body);

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Server_restart_within_session_timeout_keeps_session_watches_and_ephemerals(string target) =>
        Targets.WithServer(target, output, async server =>
        {
            // The restart must end within the session timeout. Under load (~30-50 on 2 cores, session 23) a restarted
            // Apache JVM took 10-20 s, once 33 s, from the kill to serving: 40 s, the most a 2 s tick allows (20 ticks).
            var sessionTimeout = TimeSpan.FromSeconds(40);
            await using var client = await Targets.ConnectAsync(server, output, sessionTimeout);
            Assert.Equal(sessionTimeout, client.SessionTimeout);
            var states = new StateRecorder(client);
            var sessionId = client.SessionId;
            await client.CreateAsync("/app", B("0")).Within();
            await client.CreateAsync("/app/eph", B(""), CreateMode.Ephemeral).Within();
            var data = new EventSink();
            var children = new EventSink();
            var exists = new EventSink();
            var persistent = new EventSink();
            var recursive = new EventSink();
            await client.GetDataAsync("/app", data.Watcher).Within();
            await client.GetChildrenAsync("/app", children.Watcher).Within();
            Assert.Null(await client.ExistsAsync("/app/new", exists.Watcher).Within());
            await client.AddWatchAsync("/app/eph", persistent.Watcher).Within();
            // Apache 3.8 keeps one watch mode per path and session: the recursive watch goes on "/".
            await client.AddWatchAsync("/", recursive.Watcher, AddWatchMode.PersistentRecursive).Within();

            await server.RestartAsync().Within(60);
            output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} server restarted and serving");
            await states.WaitFor(ConnectionState.Suspended);
            await states.WaitFor(ConnectionState.Reconnected, sessionTimeout.TotalSeconds);
            Assert.Equal(sessionId, client.SessionId);
            Assert.Equal([ConnectionState.Suspended, ConnectionState.Reconnected], states.States.SkipWhile(s => s == ConnectionState.Connected));

            await using var writer = await Targets.ConnectAsync(server, output);
            Assert.Equal(sessionId, (await writer.ExistsAsync("/app/eph").Within())!.Value.EphemeralOwner); // ephemeral survived
            await writer.SetDataAsync("/app", B("1")).Within();
            Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/app"), await data.Next());
            Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/app"), await recursive.Next());
            await writer.CreateAsync("/app/new", B("")).Within();
            Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, "/app/new"), await exists.Next());
            Assert.Equal(new WatchedEvent(EventType.NodeChildrenChanged, KeeperState.SyncConnected, "/app"), await children.Next());
            Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, "/app/new"), await recursive.Next());
            await writer.SetDataAsync("/app/eph", B("x")).Within();
            Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/app/eph"), await persistent.Next());
            Assert.Equal("/app/eph", (await recursive.Next()).Path);
            Assert.Equal(["/app/eph"], await client.GetEphemeralsAsync("/app").Within());
        }, tickMs: 2000);

    /// <summary>A client with a 10-s session that reaches the server through a <see cref="TcpProxy"/>, for faults on its link.</summary>
    private sealed record ProxiedClient(TcpProxy Proxy, CoordinationClient Client, StateRecorder States) : IAsyncDisposable
    {
        public static readonly TimeSpan SessionTimeout = TimeSpan.FromSeconds(10);

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Proxy.DisposeAsync();
        }
    }

    private async Task<ProxiedClient> ConnectThroughProxyAsync(Coordination.TestKit.ServerProcess server)
    {
        var proxy = new TcpProxy(server.Port);
        var client = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString + _chroot, output, ProxiedClient.SessionTimeout)).Within(20);
        return new ProxiedClient(proxy, client, new StateRecorder(client));
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task A_server_that_accepts_and_never_answers_the_handshake_is_given_up_in_time_to_resume_the_session(string target) =>
        Shared(target, async server =>
        {
            await using var proxied = await ConnectThroughProxyAsync(server);
            var (proxy, client, states) = proxied;
            var sessionTimeout = ProxiedClient.SessionTimeout;
            var sessionId = client.SessionId;
            await client.CreateAsync("/eph", B(""), CreateMode.Ephemeral).Within();

            // The next connect reaches a black hole: TCP accepted, the ConnectRequest swallowed, never an answer (a
            // restarting JVM that has bound its port and not started serving, a half-open link). With one host, the
            // attempt must end well before the session timeout, for the retry to resume the session.
            proxy.Freeze();
            var silent = proxy.NextConnection();
            proxy.Drop();
            await silent.Within(5);
            var silentSince = System.Diagnostics.Stopwatch.StartNew();
            proxy.Heal();

            await states.WaitFor(ConnectionState.Reconnected, sessionTimeout.TotalSeconds);
            output.WriteLine($"reconnected {silentSince.ElapsedMilliseconds} ms after the silent connection was accepted");
            Assert.Equal([ConnectionState.Suspended, ConnectionState.Reconnected], states.States.SkipWhile(s => s == ConnectionState.Connected));
            Assert.Equal(sessionId, client.SessionId);
            Assert.Equal(sessionId, (await client.ExistsAsync("/eph").Within())!.Value.EphemeralOwner);
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task A_client_that_still_receives_events_but_is_no_longer_heard_moves_in_time_to_resume_its_session(string target) =>
        Shared(target, async server =>
        {
            await using var proxied = await ConnectThroughProxyAsync(server);
            var (proxy, client, states) = proxied;
            var sessionTimeout = ProxiedClient.SessionTimeout;
            var sessionId = client.SessionId;
            await client.CreateAsync("/w", B("")).Within();
            var events = new EventSink();
            await client.AddWatchAsync("/w", events.Watcher, AddWatchMode.PersistentRecursive).Within();
            await using var writer = await Targets.ConnectAsync(server, output, chroot: _chroot);
            using var stop = new CancellationTokenSource();
            var writing = Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    await writer.SetDataAsync("/w", B(i.ToString())).Within();
                    await Task.Delay(100);
                }
            });
            try
            {
                await events.Next();
                // The server hears no more pings from here on, and expires the session one timeout after the last one it
                // got; events keep arriving. The client must count only answers to what it sent as signs of life, and
                // give the connection up while the session can still be resumed on another one.
                proxy.MuteRequests();
                var mutedSince = System.Diagnostics.Stopwatch.StartNew();
                await states.WaitFor(ConnectionState.Reconnected, 2 * sessionTimeout.TotalSeconds);
                output.WriteLine($"reconnected {mutedSince.ElapsedMilliseconds} ms after the client's requests stopped reaching the server");
                Assert.Equal([ConnectionState.Suspended, ConnectionState.Reconnected], states.States.SkipWhile(s => s == ConnectionState.Connected));
                Assert.Equal(sessionId, client.SessionId);
            }
            finally
            {
                stop.Cancel();
                await writing;
            }
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Fails_over_to_another_host_of_the_connect_string(string target) =>
        Shared(target, async server =>
        {
            await using var first = new TcpProxy(server.Port);
            await using var second = new TcpProxy(server.Port);
            await using var client = await CoordinationClient.ConnectAsync(
                Targets.Options($"{first.ConnectString},{second.ConnectString}{_chroot}", output)).Within(20);
            var states = new StateRecorder(client);
            var sessionId = client.SessionId;
            await client.CreateAsync("/n", B("0")).Within();
            var data = new EventSink();
            await client.GetDataAsync("/n", data.Watcher).Within();

            // Whichever proxy the client uses goes away; the other one takes over.
            first.Cut();
            second.Cut();
            second.Heal();
            var inFlight = client.SetDataAsync("/n", B("during"));
            await states.WaitFor(ConnectionState.Reconnected);
            first.Heal();
            Assert.Equal(sessionId, client.SessionId);
            try { await inFlight.Within(); } catch (ConnectionLossException) { } // either applied, or failed with ConnectionLoss

            await using var writer = await Targets.ConnectAsync(server, output, chroot: _chroot);
            await writer.SetDataAsync("/n", B("1")).Within();
            Assert.Equal(EventType.NodeDataChanged, (await data.Next()).Type);
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Changes_missed_while_disconnected_fire_after_watch_reregistration(string target) =>
        Shared(target, async server =>
        {
            await using var proxy = new TcpProxy(server.Port);
            await using var client = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString + _chroot, output)).Within(20);
            var states = new StateRecorder(client);
            await client.CreateAsync("/n", B("0")).Within();
            await client.CreateAsync("/gone", B("")).Within();
            var data = new EventSink();
            var deleted = new EventSink();
            var created = new EventSink();
            await client.GetDataAsync("/n", data.Watcher).Within();
            await client.GetDataAsync("/gone", deleted.Watcher).Within();
            Assert.Null(await client.ExistsAsync("/later", created.Watcher).Within());

            proxy.Cut();
            await states.WaitFor(ConnectionState.Suspended);
            await using (var writer = await Targets.ConnectAsync(server, output, chroot: _chroot))
            {
                await writer.SetDataAsync("/n", B("1")).Within();
                await writer.DeleteAsync("/gone").Within();
                await writer.CreateAsync("/later", B("")).Within();
            }
            proxy.Heal();
            await states.WaitFor(ConnectionState.Reconnected);
            // setWatches2 with relativeZxid = the last zxid the client saw: the server fires what the client missed.
            Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/n"), await data.Next());
            Assert.Equal(new WatchedEvent(EventType.NodeDeleted, KeeperState.SyncConnected, "/gone"), await deleted.Next());
            Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, "/later"), await created.Next());
            Assert.Equal(0, client.WatchCount);
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Requests_in_flight_fail_with_connection_loss(string target) =>
        Shared(target, async server =>
        {
            await using var proxy = new TcpProxy(server.Port);
            await using var client = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString + _chroot, output)).Within(20);
            var states = new StateRecorder(client);
            await client.CreateAsync("/n", B("")).Within();
            // 100 requests race the link going dead; the 100 sent after it went silent are surely in flight at the cut.
            var raced = Enumerable.Range(0, 100).Select(_ => client.SetDataAsync("/n", B("x"))).ToList();
            proxy.Freeze();
            var inFlight = Enumerable.Range(0, 100).Select(_ => client.SetDataAsync("/n", B("x"))).ToList();
            await Task.Delay(200);
            Assert.All(inFlight, t => Assert.False(t.IsCompleted, "a request sent over the dead link completed"));
            proxy.Cut();
            int succeeded = 0, lost = 0;
            foreach (var t in raced.Concat(inFlight))
            {
                try { await t.Within(); succeeded++; }
                catch (ConnectionLossException) { lost++; }
            }
            Assert.Equal(200, succeeded + lost);
            foreach (var t in inFlight) Assert.IsType<ConnectionLossException>(t.Exception?.InnerException);
            await states.WaitFor(ConnectionState.Suspended);
            proxy.Heal();
            await states.WaitFor(ConnectionState.Reconnected);
            // Only the raced requests can have reached the server; every acknowledged one did.
            Assert.InRange((await client.ExistsAsync("/n").Within())!.Value.Version, succeeded, 100);
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Session_closed_on_the_server_is_reported_as_expired(string target) =>
        Shared(target, async server =>
        {
            await using var proxy = new TcpProxy(server.Port);
            await using var client = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString + _chroot, output)).Within(20);
            var states = new StateRecorder(client);
            var watch = new EventSink();
            await client.CreateAsync("/eph", B(""), CreateMode.Ephemeral).Within();
            await client.GetDataAsync("/eph", watch.Watcher).Within();

            proxy.Cut();
            await states.WaitFor(ConnectionState.Suspended);
            var queued = client.GetDataAsync("/eph"); // waits for a connection

            // Another client attaches to the session and closes it: the server ends the session.
            var killer = new CoordinationClient(Targets.Options(server.ConnectString, output) with
            {
                SessionId = client.SessionId, SessionPassword = client.SessionPassword,
            });
            await killer.StartAsync().Within(20);
            await killer.DisposeAsync();

            proxy.Heal();
            await states.WaitFor(ConnectionState.Expired);
            Assert.Equal(ConnectionState.Expired, client.State);
            await Assert.ThrowsAsync<SessionExpiredException>(() => queued).Within();
            await Assert.ThrowsAsync<SessionExpiredException>(() => client.GetDataAsync("/eph")).Within();
            Assert.Equal(0, client.WatchCount);

            await using var other = await Targets.ConnectAsync(server, output, chroot: _chroot);
            Assert.Null(await other.ExistsAsync("/eph").Within()); // the ephemeral went with the session

            // An explicit restart gives a new session.
            var oldSession = client.SessionId;
            await client.RestartAsync().Within(20);
            Assert.Equal(ConnectionState.Connected, client.State);
            Assert.NotEqual(oldSession, client.SessionId);
            await client.CreateAsync("/eph", B(""), CreateMode.Ephemeral).Within();
        });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task No_server_within_the_session_timeout_means_expired(string target) =>
        Targets.WithServer(target, output, async server =>
        {
            await using var client = await Targets.ConnectAsync(server, output, TimeSpan.FromSeconds(2));
            var states = new StateRecorder(client);
            Assert.True(client.SessionTimeout <= TimeSpan.FromSeconds(2), $"negotiated {client.SessionTimeout}");
            server.Kill();
            await states.WaitFor(ConnectionState.Suspended);
            var queued = client.ExistsAsync("/");
            await states.WaitFor(ConnectionState.Expired, 10);
            await Assert.ThrowsAsync<SessionExpiredException>(() => queued).Within();
            Assert.Equal([ConnectionState.Suspended, ConnectionState.Expired], states.States.SkipWhile(s => s == ConnectionState.Connected));
        });
}
