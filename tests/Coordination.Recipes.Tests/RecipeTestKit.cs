using Coordination.Client;
using Coordination.Client.Tests;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>
/// Base of the server-backed recipe tests: each test works under its own root node on a server shared by the class
/// (one of each target, started on first use).
/// </summary>
public abstract class ServerTests(ServersFixture servers, ITestOutputHelper output) : IClassFixture<ServersFixture>
{
    protected readonly string Root = "/t" + Guid.NewGuid().ToString("N");
    protected ITestOutputHelper Output => output;
    protected ServersFixture Servers => servers;

    protected Task Shared(string target, Func<ServerProcess, Task> body) => servers.RunAsync(target, chroot: null, output, body);

    protected static byte[] B(string s) => System.Text.Encoding.UTF8.GetBytes(s);
    protected static string S(byte[]? b) => b is null ? "<none>" : System.Text.Encoding.UTF8.GetString(b);
}

/// <summary>
/// Counts holders inside a critical section and records every overlap: the safety check of the lock, election,
/// semaphore and lease tests. <see cref="Enter"/> returns false when the section already held its limit.
/// </summary>
public sealed class OverlapDetector(int limit = 1)
{
    private readonly object _lock = new();
    private readonly List<string> _inside = [];
    public int Entries { get; private set; }
    public int MaxInside { get; private set; }
    public List<string> Overlaps { get; } = [];

    public bool Enter(string who)
    {
        lock (_lock)
        {
            _inside.Add(who);
            Entries++;
            MaxInside = Math.Max(MaxInside, _inside.Count);
            if (_inside.Count <= limit) return true;
            Overlaps.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {who} entered while [{string.Join(", ", _inside)}] inside");
            return false;
        }
    }

    public void Exit(string who) { lock (_lock) _inside.Remove(who); }
}

/// <summary>Clients for recipe tests: direct, behind a cuttable proxy (for crashes and partitions), and session killers.</summary>
public static class Clients
{
    /// <summary>A client whose connection goes through its own <see cref="TcpProxy"/>, so the test can cut it.</summary>
    public static async Task<(CoordinationClient Client, TcpProxy Proxy)> BehindProxyAsync(ServerProcess server, ITestOutputHelper output, TimeSpan? sessionTimeout = null)
    {
        var proxy = new TcpProxy(server.Port);
        var client = await CoordinationClient.ConnectAsync(Targets.Options(proxy.ConnectString, output, sessionTimeout)).Within(20);
        return (client, proxy);
    }

    /// <summary>
    /// Ends <paramref name="victim"/>'s session on the server: a raw connection attaches to it and closes it in one
    /// write, so the victim (which reconnects as soon as the attach drops its connection) cannot take the session back
    /// between the two; both servers answer requests pipelined behind the ConnectRequest
    /// (Compat's PipelinedHandshakeTests). Done when the close is answered Ok, or when an attach is told the session
    /// has already expired; anything else is reported and tried again.
    /// </summary>
    public static async Task ExpireSessionAsync(ServerProcess server, CoordinationClient victim, ITestOutputHelper output)
    {
        const int attempts = 5;
        const int closeXid = 1;
        var (sessionId, password) = (victim.SessionId, victim.SessionPassword);
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            await using var killer = await RawConnection.ConnectAsync(server.Host, server.Port);
            await killer.SendAsync(WireFrames.Connect(sessionId, password, 30_000)
                .Concat(WireFrames.Request(closeXid, Coordination.Protocol.OpCode.CloseSession, null)).ToArray());
            var seen = await killer.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true, probeXid: closeXid);
            if (seen.ConnectResponse is { Timeout: 0 }) return;
            if (seen.Replies.Any(r => r.Xid == closeXid && r.Err == Coordination.Protocol.ErrorCode.Ok)) return;
            output.WriteLine($"closing session 0x{sessionId:x}, attempt {attempt}: {seen}");
        }
        throw new TimeoutException($"session 0x{sessionId:x} still alive after {attempts} attempts to close it");
    }

    /// <summary>A "crash": the connection drops abruptly and the process is gone; the session lives on until it times out.</summary>
    public static async Task CrashAsync(CoordinationClient client, TcpProxy proxy)
    {
        proxy.Cut();
        await client.DisposeAsync(); // not connected: no closeSession is sent
        await proxy.DisposeAsync();
    }

    /// <summary>Waits until <paramref name="condition"/> holds, polling; fails after <paramref name="seconds"/>, with
    /// what <paramref name="describe"/> says of the state then.</summary>
    public static async Task Eventually(Func<bool> condition, string what, double seconds = 15, Func<Task<string>>? describe = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"not reached within {seconds} s: {what}" + (describe is null ? "" : $" ({await describe()})"));
            await Task.Delay(20);
        }
    }

    public static async Task Eventually(Func<Task<bool>> condition, string what, double seconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not reached within {seconds} s: {what}");
            await Task.Delay(50);
        }
    }

    public static Task Cancelled(CancellationToken token, double seconds = 15) =>
        Task.Run(() => token.WaitHandle.WaitOne(TimeSpan.FromSeconds(seconds))).ContinueWith(t =>
        {
            if (!t.Result) throw new TimeoutException($"token not cancelled within {seconds} s");
        });
}
