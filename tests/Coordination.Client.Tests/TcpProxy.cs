using System.Net;
using System.Net.Sockets;

namespace Coordination.Client.Tests;

/// <summary>
/// A loopback TCP forwarder in front of a server, for fault injection: <see cref="Cut"/> drops every connection and
/// refuses new ones (accepts and closes them) until <see cref="Heal"/>; <see cref="Freeze"/> silently drops every
/// byte in both directions but keeps the connections open, as a dead link does; <see cref="MuteRequests"/> kills the
/// open connections one way only.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    /// <summary>The accepted (client-side) socket of each open connection.</summary>
    private readonly List<Socket> _clientSides = [];
    private volatile bool _cut;
    private volatile bool _frozen;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Socket, bool> _muted = new();
    private TaskCompletionSource _nextConnection = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _acceptLoop;

    public TcpProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        _acceptLoop = AcceptLoop();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public string ConnectString => $"127.0.0.1:{Port}";

    public void Cut()
    {
        _cut = true;
        Drop();
    }

    /// <summary>Closes every connection; new ones are still accepted (and forwarded, or swallowed while frozen).</summary>
    public void Drop()
    {
        lock (_sockets)
        {
            foreach (var s in _sockets) { try { s.Dispose(); } catch { } }
            _sockets.Clear();
            _clientSides.Clear();
        }
    }

    /// <summary>From now on bytes are read and dropped, and no connection is closed: each end learns of the broken link
    /// only by its own timeout. <see cref="Cut"/> or <see cref="Heal"/> ends it, except for the connections accepted
    /// while frozen: they stay silent black holes (a server that accepted and never answers).</summary>
    public void Freeze() => _frozen = true;

    public void Heal() => _cut = _frozen = false;

    /// <summary>On the connections open now, client-to-server bytes are dropped from here on while server-to-client
    /// ones still pass (a link dead one way): the server hears nothing more from the client, which still gets events.
    /// Connections accepted later are not affected.</summary>
    public void MuteRequests()
    {
        lock (_sockets) foreach (var s in _clientSides) _muted.TryAdd(s, true);
    }

    /// <summary>Completes when the proxy next accepts a connection that it forwards (frozen or not).</summary>
    public Task NextConnection() => Volatile.Read(ref _nextConnection).Task;

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _listener.AcceptSocketAsync(_stop.Token); }
            catch { return; }
            if (_cut) { client.Dispose(); continue; }
            var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try { await upstream.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token); }
            catch { client.Dispose(); upstream.Dispose(); continue; }
            lock (_sockets) { _sockets.Add(client); _sockets.Add(upstream); _clientSides.Add(client); }
            Interlocked.Exchange(ref _nextConnection, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            var blackHole = _frozen;
            _ = Pump(client, upstream, blackHole);
            _ = Pump(upstream, client, blackHole);
        }
    }

    private async Task Pump(Socket from, Socket to, bool blackHole)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                if (!_frozen && !blackHole && !_muted.ContainsKey(from)) await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }
        }
        catch { }
        try { from.Dispose(); } catch { }
        try { to.Dispose(); } catch { }
        _muted.TryRemove(from, out _);
        lock (_sockets) _clientSides.Remove(from);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        Cut();
        try { await _acceptLoop; } catch { }
    }
}
