using Coordination.Client;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

// Tests start real server processes; on a 2-core machine they must not overlap.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Coordination.Client.Tests;

/// <summary>
/// The servers the client tests run against: "ours" (Coordination.Server) and "apache" (Apache ZooKeeper 3.8, the
/// reference). "apache" is skipped when /usr/share/java/zookeeper.jar is missing, unless COORDINATION_REQUIRE_COMPAT=1.
/// </summary>
public static class Targets
{
    public static TheoryData<string> All => new() { "ours", "apache" };

    public static void SkipIfUnavailable(string target)
    {
        if (ServerProcess.ParseKind(target) != ServerKind.Apache || ServerProcess.ApacheAvailable()) return;
        if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_COMPAT") == "1")
            Assert.Fail("Apache ZooKeeper (/usr/share/java/zookeeper.jar) is required (COORDINATION_REQUIRE_COMPAT=1) but missing");
        Skip.If(true, "Apache ZooKeeper 3.8 is not installed (apt-get install zookeeper); set COORDINATION_REQUIRE_COMPAT=1 to fail instead");
    }

    public static async Task<ServerProcess> StartAsync(string target, ITestOutputHelper output, int tickMs = 500)
    {
        SkipIfUnavailable(target);
        var server = await ServerProcess.StartAsync(target, new ServerProcessOptions { TickTimeMs = tickMs });
        output.WriteLine($"started {server}");
        return server;
    }

    public static CoordinationClientOptions Options(string connectString, ITestOutputHelper output, TimeSpan? sessionTimeout = null) => new()
    {
        ConnectString = connectString,
        SessionTimeout = sessionTimeout ?? TimeSpan.FromSeconds(10),
        RetryPolicy = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromMilliseconds(500)),
        Log = line => { try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} client: {line}"); } catch { } },
    };

    public static async Task<CoordinationClient> ConnectAsync(ServerProcess server, ITestOutputHelper output, TimeSpan? sessionTimeout = null, string chroot = "")
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        return await CoordinationClient.ConnectAsync(Options(server.ConnectString + chroot, output, sessionTimeout), cts.Token);
    }

    /// <summary>Runs the body; on failure prints the server's output tail.</summary>
    public static async Task WithServer(string target, ITestOutputHelper output, Func<ServerProcess, Task> body, int tickMs = 500)
    {
        await using var server = await StartAsync(target, output, tickMs);
        try { await body(server); }
        catch
        {
            output.WriteLine($"--- {server.Kind} server output tail ---\n{server.OutputTail}");
            throw;
        }
    }

    public static async Task<T> Within<T>(this Task<T> task, double seconds = 10) => await task.WaitAsync(TimeSpan.FromSeconds(seconds));
    public static async Task Within(this Task task, double seconds = 10) => await task.WaitAsync(TimeSpan.FromSeconds(seconds));
}

/// <summary>Records connection states in order and lets a test wait for one.</summary>
public sealed class StateRecorder
{
    private readonly List<ConnectionState> _states = [];
    private readonly object _lock = new();

    public StateRecorder(CoordinationClient client) => client.ConnectionStateChanged += s => { lock (_lock) { _states.Add(s); Monitor.PulseAll(_lock); } };

    public IReadOnlyList<ConnectionState> States { get { lock (_lock) return _states.ToList(); } }

    public Task WaitFor(ConnectionState state, double seconds = 20) => Task.Run(() =>
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        lock (_lock)
            while (!_states.Contains(state))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new TimeoutException($"state {state} not reached; saw [{string.Join(", ", _states)}]");
                Monitor.Wait(_lock, left);
            }
    });
}

/// <summary>Collects watch events; a test awaits the next one.</summary>
public sealed class EventSink
{
    private readonly System.Threading.Channels.Channel<WatchedEvent> _events = System.Threading.Channels.Channel.CreateUnbounded<WatchedEvent>();
    public Action<WatchedEvent> Watcher { get; }
    public EventSink() => Watcher = e => _events.Writer.TryWrite(e);

    public async Task<WatchedEvent> Next(double seconds = 10)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try { return await _events.Reader.ReadAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException("no watch event within " + seconds + " s"); }
    }

    public async Task NoneWithin(double seconds)
    {
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        if (_events.Reader.TryRead(out var e)) throw new Xunit.Sdk.XunitException($"unexpected event {e}");
    }
}
