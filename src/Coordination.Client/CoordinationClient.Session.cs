using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Threading.Channels;
using Coordination.Protocol;
using Microsoft.Extensions.Logging;

namespace Coordination.Client;

/// <summary>A request on its way: queued, then sent and waiting for its reply (in FIFO order).</summary>
internal sealed class Packet
{
    public int Xid;
    public readonly OpCode Op;
    public readonly ZkRequest Request;
    public readonly TaskCompletionSource<ZkResponse>? Completion;
    public readonly WatchRegistration? Watch;
    /// <summary>The client path, for error messages.</summary>
    public readonly string? ClientPath;
    /// <summary>For a WatchChanges request: where its changes go once the server accepts it.</summary>
    public CoordinationClient.FeedSink? Feed { get; init; }

    public Packet(OpCode op, ZkRequest request, TaskCompletionSource<ZkResponse>? completion, WatchRegistration? watch, string? clientPath, int xid = 0)
    {
        Op = op; Request = request; Completion = completion; Watch = watch; ClientPath = clientPath; Xid = xid;
    }

    public static readonly Packet Ping = new(OpCode.Ping, EmptyRequest.Instance, null, null, null, Xids.Ping);
}

/// <summary>The session engine: one I/O loop per connection, reconnects, session re-attach, watch re-registration.</summary>
public sealed partial class CoordinationClient
{
    private const int ProtocolVersion = 0;
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly object _lock = new();
    private readonly Channel<Packet> _outgoing = Channel.CreateUnbounded<Packet>(new UnboundedChannelOptions { SingleWriter = false, SingleReader = false });
    private readonly Queue<Packet> _pending = new();
    private readonly Queue<TaskCompletionSource<ZkResponse>?> _authWaiters = new();
    private volatile bool _closing;
    private readonly List<AuthInfo> _authInfo;
    private readonly WatchManager _watches = new();
    private readonly Channel<Action> _events = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _eventLoop;

    private ConnectionState _state = ConnectionState.Connecting;
    private bool _everConnected;     // in this session
    /// <summary>The session is a read-only server's: it lives on that server only, so the next connect asks for a new one
    /// (as ZooKeeper's client, which sends session id 0 until it has seen a read-write server).</summary>
    private bool _readOnlySession;
    private long _sessionId;
    private byte[] _password = new byte[16];
    private int _negotiatedTimeoutMs;
    private long _lastZxid;
    private int _nextXid = 1;
    private readonly HostList _hostList;
    /// <summary>The host of the live connection and its cancellation (null when disconnected): UpdateHosts ends it to move.</summary>
    private HostAndPort? _connectedHost;
    private CancellationTokenSource? _connection;
    private readonly Action<WatchedEvent> _configWatcher;
    private volatile bool _configRetryPending;
    private CancellationTokenSource? _lifetime;
    private Task? _mainLoop;
    private TaskCompletionSource<bool> _firstConnect = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>When the last reply to something this client sent (a request, a ping) arrived: the server had it, so the
    /// session was alive then. Watch events and change frames do not count: a member whose link to the client broke one
    /// way, or that is cut off from its leader, may still send them while nobody keeps the session alive.</summary>
    private long _lastSendTicks, _lastReplyTicks;

    /// <summary>To the options' ILogger (category Coordination.Client.CoordinationClient) and their Log callback, either or both.</summary>
    private void Log(string message, LogLevel level = LogLevel.Warning)
    {
        try { _options.Log?.Invoke(message); } catch { }
        try { _options.Logger?.Log(level, "{Message}", message); } catch { }
    }

    private void StartLoop()
    {
        _lifetime = new CancellationTokenSource();
        var token = _lifetime.Token;
        _mainLoop = Task.Run(() => MainLoopAsync(token));
    }

    private async Task MainLoopAsync(CancellationToken lifetime)
    {
        int HostCount() { lock (_lock) return _hostList.Count; }
        var retryClock = Stopwatch.StartNew();
        var disconnectedSince = Stopwatch.StartNew();
        var round = 0;
        var attemptsThisRound = 0;
        while (!lifetime.IsCancellationRequested)
        {
            if (attemptsThisRound >= HostCount())
            {
                attemptsThisRound = 0;
                TimeSpan sleep;
                if (!_everConnected && _sessionId == 0)
                {
                    if (!_options.RetryPolicy.AllowRetry(round, retryClock.Elapsed, out sleep))
                    {
                        var error = new ConnectionLossException(null, $"could not connect to {_connect} ({_options.RetryPolicy} gave up after {round + 1} rounds)");
                        Terminate(ConnectionState.Closed, error);
                        _firstConnect.TrySetException(error);
                        return;
                    }
                }
                else if (!_options.RetryPolicy.AllowRetry(round, retryClock.Elapsed, out sleep)) sleep = TimeSpan.FromMilliseconds(200);
                round++;
                if (SessionLostLocally(disconnectedSince, sleep)) return;
                try { await Task.Delay(sleep, lifetime).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
            }
            HostAndPort host;
            lock (_lock) host = _hostList.Next();
            var connectTimeout = AttemptTimeout(HostCount());
            attemptsThisRound++;
            var attempt = Stopwatch.StartNew();
            Log($"connecting to {host} (attempt bounded by {connectTimeout.TotalMilliseconds:F0} ms)", LogLevel.Debug);
            Socket? socket = null;
            Stream? stream = null;
            try
            {
                using (var cts = CancellationTokenSource.CreateLinkedTokenSource(lifetime))
                {
                    cts.CancelAfter(connectTimeout);
                    if (_options.Connector is { } connect) stream = await connect(cts.Token).ConfigureAwait(false);
                    else
                    {
                        socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                        await socket.ConnectAsync(host.Host, host.Port, cts.Token).ConfigureAwait(false);
                        stream = new NetworkStream(socket, ownsSocket: false);
                        Log($"TCP connected to {host} after {attempt.ElapsedMilliseconds} ms", LogLevel.Debug);
                    }
                    if (_options.Tls is { } tls && socket is not null)
                    {
                        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                        stream = ssl;
                        await ssl.AuthenticateAsClientAsync(tls.ForHost(host.Host), cts.Token).ConfigureAwait(false);
                    }
                    var outcome = await HandshakeAsync(stream, host, cts.Token).ConfigureAwait(false);
                    Log($"handshake with {host} answered after {attempt.ElapsedMilliseconds} ms", LogLevel.Debug);
                    if (outcome == HandshakeOutcome.Expired) return;
                }
                round = 0;
                attemptsThisRound = 0;
                retryClock.Restart();
                await RunConnectedAsync(socket, stream, host, lifetime).ConfigureAwait(false);
            }
            catch (Exception e) when (!lifetime.IsCancellationRequested)
            {
                Log($"connection to {host} failed after {attempt.ElapsedMilliseconds} ms: {e.GetType().Name}: {e.Message}");
            }
            catch (Exception)
            {
                // closing
            }
            finally
            {
                try { socket?.Dispose(); } catch { }
                try { stream?.Dispose(); } catch { }
            }
            if (lifetime.IsCancellationRequested) return;
            if (OnDisconnected()) disconnectedSince.Restart();
            if (SessionLostLocally(disconnectedSince, TimeSpan.Zero)) return;
        }
    }

    /// <summary>
    /// How long one attempt (TCP connect, TLS, handshake) may take before the next host is tried. As ZooKeeper's
    /// ClientCnxn: the session timeout over the number of hosts, with the negotiated timeout once there is one. Resuming
    /// a session it is also at most a third of that timeout (the part ZooKeeper's 2/3 read timeout leaves for
    /// reconnecting): we expire the session locally after one session timeout without a server, so a server that
    /// accepts and never answers (a JVM still starting, a half-open link) must not take all of it, with one host.
    /// </summary>
    private TimeSpan AttemptTimeout(int hosts)
    {
        var sessionMs = _negotiatedTimeoutMs > 0 ? _negotiatedTimeoutMs : _options.SessionTimeout.TotalMilliseconds;
        var attempt = _options.ConnectionTimeout ?? TimeSpan.FromMilliseconds(Math.Max(1000, sessionMs / hosts));
        if (!_everConnected || _negotiatedTimeoutMs <= 0) return attempt;
        var resumable = TimeSpan.FromMilliseconds(_negotiatedTimeoutMs / 3.0);
        return attempt < resumable ? attempt : resumable;
    }

    /// <summary>
    /// No server reached within the session timeout: the server has expired the session (or will before we could
    /// reach it), so report Expired instead of pretending it lives (Curator's rule; the Java client would only learn
    /// it at the next connect).
    /// </summary>
    private bool SessionLostLocally(Stopwatch disconnectedSince, TimeSpan aboutToSleep)
    {
        if (!_everConnected || _negotiatedTimeoutMs <= 0 || _readOnlySession) return false;
        if (disconnectedSince.Elapsed + aboutToSleep < TimeSpan.FromMilliseconds(_negotiatedTimeoutMs)) return false;
        Log($"session 0x{_sessionId:x} not re-attached within {_negotiatedTimeoutMs} ms: expired");
        Terminate(ConnectionState.Expired, new SessionExpiredException(null, "session expired: no server reached within the session timeout"));
        return true;
    }

    private enum HandshakeOutcome { Connected, Expired }

    private async Task<HandshakeOutcome> HandshakeAsync(Stream stream, HostAndPort host, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        var request = _readOnlySession
            ? new ConnectRequest(ProtocolVersion, Volatile.Read(ref _lastZxid), (int)_options.SessionTimeout.TotalMilliseconds, 0, new byte[16], _options.CanBeReadOnly)
            : new ConnectRequest(ProtocolVersion, Volatile.Read(ref _lastZxid), (int)_options.SessionTimeout.TotalMilliseconds, _sessionId, _password, _options.CanBeReadOnly);
        Framing.WriteFrame(buffer, request, static (ref JuteWriter w, ConnectRequest r) => r.Write(ref w));
        await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);

        var prefix = new byte[4];
        await stream.ReadExactlyAsync(prefix, ct).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadInt32BigEndian(prefix);
        if (length is < 0 or > 4096) throw new IOException($"bad connect response length {length}");
        var body = new byte[length];
        await stream.ReadExactlyAsync(body, ct).ConfigureAwait(false);
        var reader = new JuteReader(body);
        var response = ConnectResponse.Read(ref reader);
        if (response.Timeout <= 0)
        {
            Log($"session 0x{_sessionId:x} expired (told by {host})");
            Terminate(ConnectionState.Expired, new SessionExpiredException(null, $"session 0x{_sessionId:x} expired"));
            return HandshakeOutcome.Expired;
        }

        ConnectionState newState;
        lock (_lock)
        {
            if (_state.IsTerminal()) throw new OperationCanceledException();
            var sameSession = _sessionId != 0 && _sessionId == response.SessionId;
            _sessionId = response.SessionId;
            _password = response.Password;
            _negotiatedTimeoutMs = response.Timeout;
            _readOnlySession = response.ReadOnly;
            _hostList.OnConnected();
            _connectedHost = host;
            newState = response.ReadOnly ? ConnectionState.ConnectedReadOnly
                : _everConnected && sameSession ? ConnectionState.Reconnected : ConnectionState.Connected;
            _everConnected = true;
        }
        Log($"connected to {host}: session 0x{response.SessionId:x}, timeout {response.Timeout} ms, {newState}", LogLevel.Information);
        // Auth and watch re-registration go out before any queued request (the send loop starts after them).
        buffer.Clear();
        lock (_lock)
        {
            _authWaiters.Clear();
            foreach (var auth in _authInfo)
            {
                WriteRequest(buffer, Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, auth.Scheme, auth.Auth));
                _authWaiters.Enqueue(null);
            }
        }
        WriteSetWatches(buffer);
        if (buffer.WrittenCount > 0) await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        SetState(newState);
        _firstConnect.TrySetResult(true);
        if (_options.UpdateHostsFromConfig && !response.ReadOnly && (newState == ConnectionState.Connected || _configRetryPending))
        {
            _configRetryPending = false;
            FollowConfig();
        }
        return HandshakeOutcome.Connected;
    }

    private void WriteSetWatches(ArrayBufferWriter<byte> buffer)
    {
        var kinds = _watches.Snapshot();
        if (kinds.All(k => k.Count == 0)) return;
        var relativeZxid = Volatile.Read(ref _lastZxid);
        // Several frames of at most ~128 KB of paths each, as ZooKeeper's client does.
        var lists = new List<string>[5];
        var cursor = new int[5];
        while (true)
        {
            for (var i = 0; i < 5; i++) lists[i] = [];
            var bytes = 0;
            for (var k = 0; k < 5 && bytes < 128 * 1024; k++)
                for (; cursor[k] < kinds[k].Count && bytes < 128 * 1024; cursor[k]++)
                {
                    // The config node is outside the chroot (GetConfigAsync); a node of that name under the chroot is not told apart.
                    var clientPath = kinds[k][cursor[k]];
                    var path = clientPath == QuorumConfig.ZnodePath ? clientPath : _connect.ToServerPath(clientPath);
                    lists[k].Add(path);
                    bytes += path.Length + 4;
                }
            if (bytes == 0) break;
            var request = new SetWatchesRequest(relativeZxid, lists[(int)WatchKind.Data], lists[(int)WatchKind.Exist], lists[(int)WatchKind.Child],
                lists[(int)WatchKind.Persistent], lists[(int)WatchKind.PersistentRecursive], IsVersion2: true);
            WriteRequest(buffer, Xids.SetWatches, OpCode.SetWatches2, request);
        }
    }

    private static void WriteRequest(ArrayBufferWriter<byte> buffer, int xid, OpCode op, ZkRequest request) =>
        Framing.WriteFrame(buffer, (xid, op, request), static (ref JuteWriter w, (int Xid, OpCode Op, ZkRequest Request) s) =>
        {
            new RequestHeader(s.Xid, s.Op).Write(ref w);
            s.Request.Write(ref w);
        });

    private async Task RunConnectedAsync(Socket? socket, Stream stream, HostAndPort host, CancellationToken lifetime)
    {
        using var connection = CancellationTokenSource.CreateLinkedTokenSource(lifetime);
        lock (_lock)
        {
            _connection = connection;
            // UpdateHosts decided to move between the handshake and here, when there was no connection to end.
            if (_hostList.Rebalancing) connection.Cancel();
        }
        try { await RunConnectionAsync(socket, stream, host, connection).ConfigureAwait(false); }
        finally
        {
            lock (_lock) { _connection = null; _connectedHost = null; }
        }
    }

    private async Task RunConnectionAsync(Socket? socket, Stream stream, HostAndPort host, CancellationTokenSource connection)
    {
        var ct = connection.Token;
        var timeout = _negotiatedTimeoutMs;
        var readTimeoutTicks = Stopwatch.Frequency * timeout * 2 / 3 / 1000;
        var pingIntervalTicks = Stopwatch.Frequency * timeout / 3 / 1000;
        var now = Stopwatch.GetTimestamp();
        Volatile.Write(ref _lastReplyTicks, now);
        Volatile.Write(ref _lastSendTicks, now);
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(timeout / 10, 20, 1000));
        using var timer = new Timer(_ =>
        {
            var t = Stopwatch.GetTimestamp();
            // Measured from the last reply, not the last byte: a ping is sent at most a third of the timeout after
            // the one before, so giving up two thirds after its reply leaves a third to resume elsewhere. From the
            // last byte (events streaming in until the member froze) it could leave nothing.
            if (t - Volatile.Read(ref _lastReplyTicks) > readTimeoutTicks)
            {
                Log($"no reply for {timeout * 2 / 3} ms: connection lost");
                try { connection.Cancel(); } catch (ObjectDisposedException) { }
                try { socket?.Dispose(); } catch { }
            }
            else if (t - Volatile.Read(ref _lastSendTicks) > pingIntervalTicks)
            {
                Volatile.Write(ref _lastSendTicks, t);
                _outgoing.Writer.TryWrite(Packet.Ping);
            }
        }, null, tick, tick);

        var receive = Task.Run(() => ReceiveLoopAsync(stream, ct), CancellationToken.None);
        var send = Task.Run(() => SendLoopAsync(stream, ct), CancellationToken.None);
        var probe = _readOnlySession ? Task.Run(() => ProbeForReadWriteAsync(host, connection), CancellationToken.None) : Task.CompletedTask;
        // A probe that finds a read-write server cancels the connection, which ends both loops.
        var first = await Task.WhenAny(receive, send).ConfigureAwait(false);
        try { connection.Cancel(); } catch (ObjectDisposedException) { }
        try { socket?.Shutdown(SocketShutdown.Both); } catch { }
        try { socket?.Dispose(); } catch { }
        try { await Task.WhenAll(receive, send, probe).ConfigureAwait(false); } catch { }
        // In process (no socket) the stream ends the link, once the loops that use it have stopped.
        if (socket is null) try { stream.Dispose(); } catch { }
        if (first.IsFaulted && first.Exception!.InnerException is { } e && e is not OperationCanceledException)
            Log($"connection lost: {e.GetType().Name}: {e.Message}");
    }

    /// <summary>
    /// Connected to a read-only server: look for a read-write one as ZooKeeper's client does (pingRwServer), asking the
    /// other hosts "isro" at growing intervals (100 ms, doubling up to 60 s). When one answers "rw", this connection
    /// ends and the main loop connects there next, with a new session (a read-only session lives on its server only).
    /// </summary>
    private async Task ProbeForReadWriteAsync(HostAndPort current, CancellationTokenSource connection)
    {
        IReadOnlyList<HostAndPort> hosts;
        lock (_lock) hosts = _hostList.Hosts.ToList();
        var ct = connection.Token;
        var delay = TimeSpan.FromMilliseconds(100);
        try
        {
            while (true)
            {
                await Task.Delay(delay, ct).ConfigureAwait(false);
                for (var i = 0; i < hosts.Count; i++)
                {
                    if (hosts[i] == current || !await IsReadWriteAsync(hosts[i], ct).ConfigureAwait(false)) continue;
                    Log($"{hosts[i]} is a read-write server: leaving read-only {current}");
                    lock (_lock) _hostList.PreferNext(hosts[i]);
                    connection.Cancel();
                    return;
                }
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(60).Ticks));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // the connection ended
        }
    }

    /// <summary>True when <paramref name="host"/> answers the four-letter word isro with "rw".</summary>
    private async Task<bool> IsReadWriteAsync(HostAndPort host, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_options.ConnectionTimeout ?? TimeSpan.FromSeconds(5));
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(host.Host, host.Port, cts.Token).ConfigureAwait(false);
            using var network = new NetworkStream(socket, ownsSocket: false);
            using var ssl = _options.Tls is null ? null : new SslStream(network, leaveInnerStreamOpen: true);
            if (ssl is not null) await ssl.AuthenticateAsClientAsync(_options.Tls!.ForHost(host.Host), cts.Token).ConfigureAwait(false);
            Stream stream = ssl is null ? network : ssl;
            await stream.WriteAsync("isro"u8.ToArray(), cts.Token).ConfigureAwait(false);
            var answer = new byte[2];
            await stream.ReadExactlyAsync(answer, cts.Token).ConfigureAwait(false);
            return answer is [(byte)'r', (byte)'w'];
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is OperationCanceledException or IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            return false;
        }
    }

    private async Task SendLoopAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        var reader = _outgoing.Reader;
        while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            while (buffer.WrittenCount < 256 * 1024 && reader.TryRead(out var packet))
            {
                if (ReferenceEquals(packet, Packet.Ping))
                {
                    WriteRequest(buffer, Xids.Ping, OpCode.Ping, EmptyRequest.Instance);
                    continue;
                }
                if (packet.Completion is { Task.IsCompleted: true }) continue; // cancelled before it was sent
                lock (_lock)
                {
                    if (_state.IsTerminal())
                    {
                        // Terminate() drained the queues while this packet was in our hands: fail it like the others.
                        packet.Completion?.TrySetException(_state switch
                        {
                            ConnectionState.Expired => new SessionExpiredException(packet.ClientPath),
                            ConnectionState.AuthFailed => new AuthFailedException(packet.ClientPath),
                            _ => new ConnectionLossException(packet.ClientPath, "the client is closed"),
                        });
                        continue;
                    }
                    if (packet.Xid == 0)
                    {
                        packet.Xid = _nextXid;
                        _nextXid = _nextXid == int.MaxValue ? 1 : _nextXid + 1;
                    }
                    // Auth replies carry xid -4: the n-th one answers the n-th auth packet sent.
                    if (packet.Xid == Xids.AuthPacket) _authWaiters.Enqueue(packet.Completion);
                    else _pending.Enqueue(packet);
                }
                WriteRequest(buffer, packet.Xid, packet.Op, packet.Request);
            }
            if (buffer.WrittenCount == 0) continue;
            await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
            Volatile.Write(ref _lastSendTicks, Stopwatch.GetTimestamp());
            if (buffer.Capacity > 1024 * 1024) buffer = new ArrayBufferWriter<byte>(16 * 1024);
            else buffer.ResetWrittenCount();
        }
    }

    private async Task ReceiveLoopAsync(Stream stream, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        var start = 0;
        var end = 0;
        try
        {
            while (true)
            {
                // Parse every complete frame in the buffer.
                while (true)
                {
                    var status = Framing.TryReadFrame(buffer.AsSpan(start, end - start), _options.MaxFrameBytes, out var length);
                    if (status is FrameStatus.Negative or FrameStatus.TooLarge) throw new IOException($"bad reply frame length {length}");
                    if (status == FrameStatus.NeedMoreData)
                    {
                        if (end - start >= 4 && 4 + length > buffer.Length)
                        {
                            var bigger = ArrayPool<byte>.Shared.Rent(4 + length);
                            Buffer.BlockCopy(buffer, start, bigger, 0, end - start);
                            ArrayPool<byte>.Shared.Return(buffer);
                            buffer = bigger;
                            end -= start;
                            start = 0;
                        }
                        break;
                    }
                    HandleReply(buffer.AsSpan(start + 4, length));
                    start += 4 + length;
                }
                if (start == end) start = end = 0;
                else if (start > 0 && buffer.Length - end < 4096)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                    end -= start;
                    start = 0;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(end), ct).ConfigureAwait(false);
                if (read == 0) throw new IOException("server closed the connection");
                end += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void HandleReply(ReadOnlySpan<byte> frame)
    {
        var reader = new JuteReader(frame);
        var header = ReplyHeader.Read(ref reader);
        if (header.Xid is not (Xids.Notification or Xids.Change)) Volatile.Write(ref _lastReplyTicks, Stopwatch.GetTimestamp());
        switch (header.Xid)
        {
            case Xids.Ping:
                return;
            case Xids.Notification:
            {
                var ev = WatcherEvent.Read(ref reader);
                var path = _connect.ToClientPath(ev.Path);
                var watchers = _watches.Materialize(ev.Type, path);
                if (watchers.Count > 0)
                {
                    var watched = new WatchedEvent(ev.Type, ev.State, path);
                    Post(() => { foreach (var w in watchers) Invoke(w, watched); });
                }
                return;
            }
            case Xids.AuthPacket:
            {
                TaskCompletionSource<ZkResponse>? waiter = null;
                lock (_lock) _authWaiters.TryDequeue(out waiter);
                if (header.Err == ErrorCode.Ok) { waiter?.TrySetResult(EmptyResponse.Instance); return; }
                var error = new AuthFailedException(null, $"authentication failed ({header.Err})");
                waiter?.TrySetException(error);
                Log("authentication failed", LogLevel.Error);
                Terminate(ConnectionState.AuthFailed, error);
                return;
            }
            case Xids.SetWatches:
                if (header.Err != ErrorCode.Ok) Log($"setWatches failed: {header.Err}");
                return;
            case Xids.Change:
                OnChangeFrame(header, ref reader);
                return;
        }

        Packet packet;
        lock (_lock)
        {
            if (!_pending.TryDequeue(out packet!)) throw new IOException($"reply xid {header.Xid} with nothing pending");
        }
        if (packet.Xid != header.Xid)
        {
            FailPacket(packet, new ConnectionLossException(packet.ClientPath, $"xid out of order: expected {packet.Xid}, got {header.Xid}"));
            throw new IOException($"xid out of order: expected {packet.Xid}, got {header.Xid}");
        }
        if (header.Zxid > 0) Volatile.Write(ref _lastZxid, header.Zxid);

        if (packet.Watch is { } registration && registration.KindFor(header.Err) is { } kind)
            _watches.Add(kind, registration.ClientPath, registration.Watcher);

        if (packet.Op == OpCode.WatchChanges) OnFeedReply(packet, header, ref reader);
        var completion = packet.Completion;
        if (completion is null || completion.Task.IsCompleted) return;
        // A linearizable read is answered as the read it wraps.
        var op = packet.Request is LinearizableReadRequest linearizable ? linearizable.Op : packet.Op;
        if (header.Err != ErrorCode.Ok && !(op is OpCode.Multi or OpCode.MultiRead && !reader.AtEnd))
        {
            completion.TrySetException(KeeperException.Create(header.Err, packet.ClientPath));
            return;
        }
        ZkResponse response;
        try { response = Responses.Read(op, ref reader); }
        catch (Exception e)
        {
            completion.TrySetException(new KeeperException(ErrorCode.MarshallingError, packet.ClientPath, $"bad reply to {op}: {e.Message}", e));
            return;
        }
        completion.TrySetResult(response);
    }

    private static void FailPacket(Packet packet, Exception error) => packet.Completion?.TrySetException(error);

    /// <summary>Connection lost or attempt failed. Returns true when a live connection was lost.</summary>
    private bool OnDisconnected()
    {
        bool wasConnected;
        List<Packet> failed;
        lock (_lock)
        {
            if (_state.IsTerminal()) return false;
            wasConnected = _state.IsConnected() && !_closing;
            _connectedHost = null;
            // A live connection dropped: what was sent or queued fails with ConnectionLoss (as ZooKeeper's client).
            // After a failed attempt the queue is kept: requests made while disconnected wait for the next
            // connection, the session's expiry (SessionExpired) or their cancellation token.
            failed = wasConnected || _closing ? DrainLocked() : [];
            EndFeedsLocked();
            foreach (var w in _authWaiters) w?.TrySetException(new ConnectionLossException(null, "connection lost during authentication"));
            _authWaiters.Clear();
        }
        foreach (var p in failed) FailPacket(p, new ConnectionLossException(p.ClientPath));
        if (wasConnected) SetState(ConnectionState.Suspended);
        return wasConnected;
    }

    private List<Packet> DrainLocked()
    {
        var failed = new List<Packet>(_pending);
        _pending.Clear();
        while (_outgoing.Reader.TryRead(out var p))
            if (!ReferenceEquals(p, Packet.Ping)) failed.Add(p);
        return failed;
    }

    /// <summary>Enters a terminal state: every pending and queued request fails, watches are dropped, the loop stops.</summary>
    private void Terminate(ConnectionState state, Exception error)
    {
        List<Packet> failed;
        lock (_lock)
        {
            if (_state.IsTerminal()) return;
            _state = state;
            failed = DrainLocked();
            EndFeedsLocked();
            foreach (var w in _authWaiters) w?.TrySetException(error);
            _authWaiters.Clear();
        }
        foreach (var p in failed)
            FailPacket(p, error is KeeperException k ? KeeperException.Create(k.Code, p.ClientPath, k.Message) : error);
        _watches.Clear();
        try { _lifetime?.Cancel(); } catch (ObjectDisposedException) { }
        _firstConnect.TrySetException(error);
        PostState(state);
    }

    private void SetState(ConnectionState state)
    {
        lock (_lock)
        {
            if (_state.IsTerminal()) return;
            _state = state;
        }
        PostState(state);
    }

    private void PostState(ConnectionState state) => Post(() =>
    {
        var handlers = ConnectionStateChanged;
        if (handlers is null) return;
        foreach (var h in handlers.GetInvocationList())
            try { ((Action<ConnectionState>)h)(state); }
            catch (Exception e) { Log($"connection state handler threw {e}", LogLevel.Error); }
    });

    /// <summary>Requests sent and not yet answered, plus those queued (read by the telemetry's observable instrument).</summary>
    internal int PendingRequests { get { lock (_lock) return _pending.Count + _outgoing.Reader.Count; } }

    private void Post(Action action) => _events.Writer.TryWrite(action);

    private void Invoke(Action<WatchedEvent> watcher, WatchedEvent e)
    {
        try { watcher(e); }
        catch (Exception ex) { Log($"watcher threw {ex}", LogLevel.Error); }
    }

    private async Task EventLoopAsync()
    {
        await foreach (var action in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try { action(); }
            catch (Exception e) { Log($"event callback threw {e}", LogLevel.Error); }
        }
    }

    /// <summary>Queues a request; the task completes with its reply, or fails with a <see cref="KeeperException"/>.</summary>
    internal Task<ZkResponse> SubmitAsync(OpCode op, ZkRequest request, string? clientPath, WatchRegistration? watch, CancellationToken ct, int xid = 0)
    {
        var completion = new TaskCompletionSource<ZkResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var packet = new Packet(op, request, completion, watch, clientPath, xid);
        lock (_lock)
        {
            switch (_state)
            {
                case ConnectionState.Expired:
                    return Task.FromException<ZkResponse>(new SessionExpiredException(clientPath));
                case ConnectionState.AuthFailed:
                    return Task.FromException<ZkResponse>(new AuthFailedException(clientPath));
                case ConnectionState.Closed:
                    return Task.FromException<ZkResponse>(new ConnectionLossException(clientPath, "the client is closed"));
            }
            if (_mainLoop is null) return Task.FromException<ZkResponse>(new InvalidOperationException("the client is not started: call StartAsync first"));
            _outgoing.Writer.TryWrite(packet);
        }
        if (CoordinationTelemetry.Enabled) CoordinationTelemetry.Track(this, op, clientPath, completion.Task);
        if (ct.CanBeCanceled)
        {
            var registration = ct.Register(static s => ((TaskCompletionSource<ZkResponse>)s!).TrySetCanceled(), completion);
            completion.Task.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration, TaskScheduler.Default);
        }
        return completion.Task;
    }
}
