using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Coordination.Server.Admin;

namespace Coordination.Server.Network;

/// <summary>
/// Accepts client connections on the client port, and on the secure (TLS) client port when one is configured, and gives
/// each one a connection actor. Both ports share the connection limits, the registry and the watchdog.
/// </summary>
public sealed class ClientListener : IAsyncDisposable
{
    private readonly Socket? _socket;
    private readonly Socket? _secureSocket;
    private readonly ClientTls? _tls;
    private readonly ServerSettings _settings;
    private readonly ActorSystem _system;
    private readonly IActorRef _sessionManager;
    private readonly FourLetterWordHandler _admin;
    private readonly ConnectionRegistry _registry;
    private readonly ClientPortLimits _limits;
    private readonly int _maxConnections;
    private readonly CancellationTokenSource _cts = new();
    private Task? _acceptLoop;
    private Task? _secureAcceptLoop;
    private Task? _watchdog;

    public ClientListener(ServerSettings settings, ActorSystem system, IActorRef sessionManager, FourLetterWordHandler admin, ConnectionRegistry registry)
    {
        _settings = settings;
        _system = system;
        _sessionManager = sessionManager;
        _admin = admin;
        _registry = registry;
        var metrics = Metrics.ServerMetrics.For(system);
        _limits = new ClientPortLimits(settings, metrics.ClientPort, metrics.Stats);
        _limits.Metrics.TrackOutstanding(() => _limits.Outstanding, () => _limits.OutstandingBytes);
        (_maxConnections, var capReason) = FileDescriptorBudget.Resolve(settings.MaxConnections, settings.FileDescriptorReserve);
        system.Log.Info("Client connections: at most {0} in total ({1}), {2} per address", _maxConnections == 0 ? "unlimited" : _maxConnections.ToString(), capReason, settings.MaxClientConnections);
        if (settings.ClientPort >= 0) _socket = Bind(settings.ClientPort);
        if (settings.SecureClientPort >= 0 || settings.ClientTls.PortUnification)
            _tls = new ClientTls(settings.ClientTls, message => system.Log.Warning(message));
        if (settings.SecureClientPort >= 0) _secureSocket = Bind(settings.SecureClientPort);
    }

    private Socket Bind(int port)
    {
        var address = IPAddress.Parse(_settings.ClientAddress);
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            ListenSockets.AllowRebindAfterClose(socket);
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(1024);
            return socket;
        }
        catch { socket.Dispose(); _socket?.Dispose(); throw; }
    }

    /// <summary>The bound port (differs from the setting when it was 0), or -1 when the plain port is off.</summary>
    public int Port => _socket is null ? -1 : ((IPEndPoint)_socket.LocalEndPoint!).Port;

    /// <summary>The bound secure (TLS) port, or -1 when there is none.</summary>
    public int SecurePort => _secureSocket is null ? -1 : ((IPEndPoint)_secureSocket.LocalEndPoint!).Port;

    public void Start()
    {
        if (_socket is not null) _acceptLoop = AcceptLoopAsync(_socket, _settings.ClientTls.PortUnification ? _tls : null, unified: true);
        if (_secureSocket is not null) _secureAcceptLoop = AcceptLoopAsync(_secureSocket, _tls, unified: false);
        _watchdog = WatchdogAsync();
        if (Environment.GetEnvironmentVariable("COORDINATION_ALLOC_DIAG") is { Length: > 0 } period && period != "0")
            _diagnostic = AllocationDiagnosticAsync(TimeSpan.FromSeconds(double.TryParse(period, out var s) && s > 0 ? s : 5));
    }

    private Task? _diagnostic;

    /// <summary>
    /// Diagnostic (COORDINATION_ALLOC_DIAG=seconds): prints process-wide allocated bytes and GC counts per received
    /// request to stderr every period, to measure allocations per request under a bench load. Off by default.
    /// </summary>
    private async Task AllocationDiagnosticAsync(TimeSpan period)
    {
        long lastBytes = GC.GetTotalAllocatedBytes(false), lastPackets = _limits.Stats.PacketsReceived;
        int last0 = GC.CollectionCount(0), last1 = GC.CollectionCount(1), last2 = GC.CollectionCount(2);
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(_cts.Token).ConfigureAwait(false))
            {
                long bytes = GC.GetTotalAllocatedBytes(false), packets = _limits.Stats.PacketsReceived;
                int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
                var requests = packets - lastPackets;
                if (requests > 0)
                    Console.Error.WriteLine(
                        $"alloc-diag: {requests} requests, {(bytes - lastBytes) / (double)requests:F0} B/request, " +
                        $"gc0={g0 - last0} gc1={g1 - last1} gc2={g2 - last2} server-gc={System.Runtime.GCSettings.IsServerGC} " +
                        $"latency-mode={System.Runtime.GCSettings.LatencyMode} heap={GC.GetTotalMemory(false) >> 20} MiB");
                (lastBytes, lastPackets, last0, last1, last2) = (bytes, packets, g0, g1, g2);
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task AcceptLoopAsync(Socket listener, ClientTls? tls, bool unified)
    {
        long lastFailureWarning = 0, lastRejectWarning = 0;
        while (!_cts.IsCancellationRequested)
        {
            Socket client;
            try { client = await listener.AcceptAsync(_cts.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException e)
            {
                // Out of file descriptors (EMFILE) despite max-connections (another part of the process took them): the
                // pending connection stays in the backlog and every accept fails at once, so pause instead of spinning.
                _limits.Metrics.AcceptFailureOnce();
                if (Due(ref lastFailureWarning))
                    _system.Log.Warning("Accepting a client connection failed: {0}; pausing accepts briefly", e.SocketErrorCode);
                try { await Task.Delay(100, _cts.Token).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
                continue;
            }

            string? address = null;
            try
            {
                address = ClientConnection.AddressOf((IPEndPoint)client.RemoteEndPoint!);
                // ZooKeeper's maxCnxns and maxClientCnxns: counted here, at accept, so that a burst of connects cannot
                // all pass; the connection is closed before any byte is read from it.
                var admission = _registry.TryAdmit(address, _settings.MaxClientConnections, _maxConnections);
                if (admission != Admission.Admitted)
                {
                    address = null;
                    var total = admission == Admission.TooManyInTotal;
                    _limits.Metrics.ConnectionRejectedOnce(total);
                    if (Due(ref lastRejectWarning))
                    {
                        if (total) _system.Log.Warning("Too many connections: max is {0} in total (max-connections); closing {1}", _maxConnections, client.RemoteEndPoint);
                        else _system.Log.Warning("Too many connections from {0}: max is {1}", client.RemoteEndPoint, _settings.MaxClientConnections);
                    }
                    client.Dispose();
                    continue;
                }
                var connection = new ClientConnection(client, _limits, tls, unified);
                _system.ActorOf(ConnectionActor.Props(connection, _sessionManager, _admin, _registry), $"connection-{connection.Id}");
            }
            catch (Exception)
            {
                client.Dispose();
                if (address is not null) _registry.Release(address);
            }
        }
    }

    /// <summary>
    /// A client connection from this process with no socket (<see cref="InProcessConnection"/>): admitted and served
    /// as one accepted on the port, from the loopback address. Returns the client's stream.
    /// </summary>
    public Stream ConnectInProcess() => ConnectInProcess(memberHost: false);

    /// <summary>As <see cref="ConnectInProcess()"/>; <paramref name="memberHost"/>: the member's own host's link, whose
    /// session is the super user (<see cref="ClientConnection.MemberHost"/>).</summary>
    internal Stream ConnectInProcess(bool memberHost)
    {
        if (_cts.IsCancellationRequested) throw new IOException("the server is stopping");
        var (connection, client) = InProcessConnection.Create(_limits, memberHost);
        var admission = _registry.TryAdmit(connection.RemoteAddress, _settings.MaxClientConnections, _maxConnections);
        if (admission != Admission.Admitted)
        {
            _limits.Metrics.ConnectionRejectedOnce(admission == Admission.TooManyInTotal);
            client.Dispose();
            throw new IOException($"too many connections ({admission})");
        }
        try { _system.ActorOf(ConnectionActor.Props(connection, _sessionManager, _admin, _registry), $"connection-{connection.Id}"); }
        catch
        {
            client.Dispose();
            _registry.Release(connection.RemoteAddress);
            throw;
        }
        return client;
    }

    /// <summary>True at most once per 10 s for one <paramref name="last"/>: warnings about a flood are rate-limited.</summary>
    private static bool Due(ref long last)
    {
        if (Environment.TickCount64 - last < 10_000) return false;
        last = Environment.TickCount64;
        return true;
    }

    /// <summary>
    /// Closes connections that overran a timeout: no completed handshake within handshake-timeout, or a socket write
    /// pending for longer than flush-timeout. One timer for all connections keeps the hot path free of per-write timers.
    /// </summary>
    private async Task WatchdogAsync()
    {
        var shortest = _settings.HandshakeTimeout < _settings.FlushTimeout ? _settings.HandshakeTimeout : _settings.FlushTimeout;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(shortest.TotalMilliseconds / 4, 50, 1000));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(_cts.Token).ConfigureAwait(false))
            {
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                foreach (var connection in _registry.All)
                {
                    if (connection.Overdue(now, out var handshake) is not { } reason) continue;
                    if (handshake) _limits.Metrics.SessionlessExpiredOnce();
                    else _limits.Metrics.FlushTimeoutDropOnce();
                    connection.Drop(reason);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _cts.Cancel();
        _socket?.Dispose();
        _secureSocket?.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        if (_secureAcceptLoop is not null) await _secureAcceptLoop.ConfigureAwait(false);
        if (_watchdog is not null) await _watchdog.ConfigureAwait(false);
        if (_diagnostic is not null) await _diagnostic.ConfigureAwait(false);
    }
}
