using Akka.Actor;
using Akka.Configuration;
using Coordination.Client;
using Coordination.Protocol;
using Coordination.Server;
using Coordination.Server.Tests;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// Issue 21, scope 3: a member embedded in an application's ActorSystem (standalone here) serves clients of the same
/// process without a socket, with the client port's session semantics: the ordering scenario of the server tests
/// (FIFO responses, watch events before the responses that show the change, zxid order) run through the in-process
/// path, and the Task API's ephemerals and watches, with expiry when the owner's connection is gone for good.
/// </summary>
public sealed class InProcessClientTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "inprocess-" + Guid.NewGuid().ToString("N")[..8]);
    private ActorSystem _system = null!;
    private CoordinationServer _server = null!;

    public Task InitializeAsync()
    {
        _system = ActorSystem.Create("app", "akka.loglevel = WARNING");
        _server = CoordinationServer.StartEmbedded(_system, ConfigurationFactory.ParseString($$"""
            coordination {
              data-dir = "{{_dataDir.Replace("\\", "\\\\")}}"
              tick-time = 200ms
            }
            """));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _system.Terminate();
        try { Directory.Delete(_dataDir, recursive: true); } catch { }
    }

    [Fact]
    public void The_embedded_member_has_no_client_port_by_default()
    {
        Assert.Equal(-1, _server.ClientPort);
        Assert.Equal(-1, _server.SecureClientPort);
    }

    [Fact]
    public Task In_process_responses_are_fifo_and_watch_events_precede_the_responses_that_show_the_change() =>
        OrderingScenario.RunAsync(o => WireClient.ConnectAsync(_server.ConnectInProcess(), o), output);

    [Fact]
    public async Task Ephemerals_and_watches_of_in_process_sessions_and_expiry_when_the_owner_is_gone()
    {
        Stream? ownerLink = null;
        var ownerAlive = true;
        var owner = await CoordinationClient.ConnectAsync(Options(_ =>
        {
            if (!ownerAlive) throw new IOException("the owner is gone");
            return ValueTask.FromResult(ownerLink = _server.ConnectInProcess());
        }));
        await using var watcher = await CoordinationClient.ConnectAsync(Options(_ => ValueTask.FromResult(_server.ConnectInProcess())));

        await owner.CreateAsync("/lock", "held", CreateMode.Ephemeral);
        var deleted = new TaskCompletionSource<WatchedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        Assert.NotNull(await watcher.ExistsAsync("/lock", e => deleted.TrySetResult(e)));

        // The owner's process "dies": its link closes and it never connects again; the server expires its session
        // after the timeout, which deletes the ephemeral and fires the other session's watch.
        ownerAlive = false;
        ownerLink!.Dispose();
        var fired = await deleted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(EventType.NodeDeleted, fired.Type);
        Assert.Null(await watcher.ExistsAsync("/lock"));
        await owner.DisposeAsync();
    }

    private CoordinationClientOptions Options(Func<CancellationToken, ValueTask<Stream>> connector) => new()
    {
        ConnectString = "in-process:1",
        SessionTimeout = TimeSpan.FromSeconds(2),
        RetryPolicy = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromMilliseconds(200)),
        Connector = connector,
        Log = line => { try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} client: {line}"); } catch { } },
    };
}
