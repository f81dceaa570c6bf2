using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Threading.Channels;
using Coordination.Protocol;

namespace Coordination.TestKit;

/// <summary>Options of a <see cref="WireClient"/> connection.</summary>
public sealed record WireClientOptions
{
    /// <summary>Requested session timeout; the server negotiates it (see <see cref="WireClient.NegotiatedTimeoutMs"/>).</summary>
    public int SessionTimeoutMs { get; init; } = 30_000;
    /// <summary>Non-zero to re-attach to an existing session (with <see cref="Password"/>).</summary>
    public long SessionId { get; init; }
    public byte[]? Password { get; init; }
    public long LastZxidSeen { get; init; }
    public bool ReadOnly { get; init; }
    /// <summary>Keep an ordered log of every response and event arrival (<see cref="WireClient.Arrivals"/>).</summary>
    public bool RecordArrivals { get; init; }
    /// <summary>Parse response bodies. The bench turns this off: callers then get only the reply header.</summary>
    public bool ParseResponses { get; init; } = true;
    /// <summary>Publish watch events to <see cref="WireClient.Events"/> (unbounded channel; read it or turn it off).</summary>
    public bool EventChannel { get; init; } = true;
    /// <summary>Called on the receive loop for each watch event, before any later response is completed.</summary>
    public Action<WatchNotification>? OnEvent { get; init; }
    /// <summary>Send a ping when nothing was sent for a third of the negotiated timeout.</summary>
    public bool AutoPing { get; init; } = true;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Speak TLS (to a secure client port) with these options; null = plain TCP.</summary>
    public SslClientAuthenticationOptions? Tls { get; init; }
    /// <summary>Largest response frame accepted (responses such as getChildren of a big node can exceed 1 MiB).</summary>
    public int MaxFrameLength { get; init; } = 64 << 20;
    /// <summary>Creates the TCP socket, e.g. one in another network namespace (<see cref="NetworkLab.CreateSocket"/>); a plain stream socket when null.</summary>
    public Func<Socket>? SocketFactory { get; init; }
}

/// <summary>A watch notification (xid -1) with the zxid from its reply header and its arrival sequence number.</summary>
public readonly record struct WatchNotification(long Zxid, WatcherEvent Event, long Sequence, long Timestamp);

/// <summary>A frame of a change-feed subscription (<see cref="Xids.Change"/>): a <see cref="ChangeEvent"/> (Err Ok) or the
/// end of the subscription (<see cref="ErrorCode.Compacted"/>, with a <see cref="ChangeFeedPosition"/>).</summary>
public readonly record struct ChangeFrame(long Zxid, ErrorCode Err, ZkResponse Body);

public enum ArrivalKind { Response, Event }

/// <summary>
/// One frame received by a client, in arrival order. <see cref="Sequence"/> numbers responses and events together,
/// so a test can check that an event arrived before a response (invariant 4).
/// </summary>
public sealed record Arrival(
    long Sequence, ArrivalKind Kind, ReplyHeader Header, OpCode Op, ZkRequest? Request, ZkResponse? Response,
    WatcherEvent? Event, long SentTimestamp, long Timestamp);

/// <summary>Completion callback of <see cref="WireClient.Send"/>. <paramref name="error"/> is set on connection loss.</summary>
public delegate void ReplyCallback(ReplyHeader header, ZkResponse? response, Exception? error, object? state, long token);

/// <summary>The connection failed, was closed, or the server broke the protocol (e.g. a response out of xid order).</summary>
public class WireConnectionException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The server refused to re-attach the session (ConnectResponse with timeout 0).</summary>
public sealed class SessionExpiredException(string message) : WireConnectionException(message);

/// <summary>
/// A minimal, pipelined ZooKeeper client over a raw socket. Any number of requests may be outstanding; responses
/// are matched to requests in FIFO order and a response whose xid is not the oldest outstanding one fails the
/// connection (invariant 3). Watch events go to <see cref="WireClientOptions.OnEvent"/> and <see cref="Events"/>;
/// with <see cref="WireClientOptions.RecordArrivals"/> every response and event is logged in arrival order.
/// </summary>
public sealed class WireClient : IAsyncDisposable
{
    private struct Pending
    {
        public int Xid;
        public OpCode Op;
        public ZkRequest? Request;
        public ReplyCallback Callback;
        public object? State;
        public long Token;
        public long SentTimestamp;
    }

    /// <summary>Null on an in-process connection (a stream from <c>CoordinationServer.ConnectInProcess</c>).</summary>
    private readonly Socket? _socket;
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly WireClientOptions _options;
    private readonly object _sendLock = new();
    private ArrayBufferWriter<byte> _out = new(4 * 1024);
    private ArrayBufferWriter<byte> _spare = new(4 * 1024);
    private readonly SemaphoreSlim _writeSignal = new(0, int.MaxValue);
    private bool _signaled;
    private readonly Queue<Pending> _pending = new();
    private readonly Dictionary<int, Queue<Pending>> _special = new();
    private int _xid;
    private long _lastSendTimestamp;
    private Exception? _failure;
    private volatile bool _closed;
    private volatile bool _closeRequested;
    private readonly TaskCompletionSource<Exception?> _closedTcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<WatchNotification>? _events;
    private readonly Channel<ChangeFrame> _changes = Channel.CreateUnbounded<ChangeFrame>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly List<Arrival>? _arrivals;
    private long _sequence;
    private long _lastZxid;
    private long _responses;
    private long _eventCount;
    private long _pongs;
    private Task? _receiveTask, _writeTask, _pingTask;
    private readonly CancellationTokenSource _cts = new();

    public string Host { get; }
    public int Port { get; }
    public long SessionId { get; private set; }
    public byte[] Password { get; private set; } = new byte[16];
    public int NegotiatedTimeoutMs { get; private set; }
    public bool ServerReadOnly { get; private set; }
    /// <summary>Largest zxid seen in reply headers and events.</summary>
    public long LastZxid => Interlocked.Read(ref _lastZxid);
    public long ResponseCount => Interlocked.Read(ref _responses);
    public long EventCount => Interlocked.Read(ref _eventCount);
    public long PongCount => Interlocked.Read(ref _pongs);
    public bool IsConnected => !_closed;
    /// <summary>
    /// Completes when the connection ends: with the failure, or null when this client closed it (CloseAsync or
    /// DisposeAsync).
    /// </summary>
    public Task<Exception?> Closed => _closedTcs.Task;
    public ChannelReader<WatchNotification> Events =>
        _events?.Reader ?? throw new InvalidOperationException("EventChannel is off for this client");
    public int Outstanding { get { lock (_sendLock) return _pending.Count; } }
    /// <summary>The frames of this connection's change-feed subscriptions (<see cref="WireClientExtensions.WatchChangesAsync"/>), in arrival order.</summary>
    public ChannelReader<ChangeFrame> Changes => _changes.Reader;

    private WireClient(Socket? socket, Stream stream, string host, int port, WireClientOptions options)
    {
        _socket = socket;
        _stream = stream;
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024, leaveOpen: true));
        _options = options;
        Host = host;
        Port = port;
        if (options.EventChannel) _events = Channel.CreateUnbounded<WatchNotification>(new UnboundedChannelOptions { SingleWriter = true });
        if (options.RecordArrivals) _arrivals = new List<Arrival>(1024);
    }

    /// <summary>A snapshot of the arrival log (requires <see cref="WireClientOptions.RecordArrivals"/>).</summary>
    public IReadOnlyList<Arrival> Arrivals
    {
        get
        {
            if (_arrivals is null) throw new InvalidOperationException("RecordArrivals is off for this client");
            lock (_arrivals) return _arrivals.ToArray();
        }
    }

    public static Task<WireClient> ConnectAsync(string connectString, WireClientOptions? options = null, CancellationToken ct = default)
    {
        var (host, port) = ParseHostPort(connectString.Split(',')[0]);
        return ConnectAsync(host, port, options, ct);
    }

    /// <summary>
    /// Connects to one host of a multi-host connect string as ZooKeeper's client does: starting at a random host and
    /// trying the next one when a host cannot be reached or refuses the handshake. Throws the last failure when none answers.
    /// </summary>
    public static async Task<WireClient> ConnectAnyAsync(string connectString, WireClientOptions? options = null, CancellationToken ct = default)
    {
        var hosts = connectString.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var start = Random.Shared.Next(hosts.Length);
        WireConnectionException? last = null;
        for (var i = 0; i < hosts.Length; i++)
        {
            var (host, port) = ParseHostPort(hosts[(start + i) % hosts.Length]);
            try { return await ConnectAsync(host, port, options, ct).ConfigureAwait(false); }
            catch (WireConnectionException e) when (e is not SessionExpiredException) { last = e; }
        }
        throw last ?? new WireConnectionException("empty connect string");
    }

    public static (string Host, int Port) ParseHostPort(string hostPort)
    {
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0) throw new FormatException($"expected host:port, got '{hostPort}'");
        return (hostPort[..colon].Trim('[', ']'), int.Parse(hostPort[(colon + 1)..]));
    }

    /// <summary>Opens a TCP connection and performs the session handshake (new session, or re-attach when SessionId != 0).</summary>
    public static async Task<WireClient> ConnectAsync(string host, int port, WireClientOptions? options = null, CancellationToken ct = default)
    {
        options ??= new WireClientOptions();
        var socket = options.SocketFactory?.Invoke() ?? new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.NoDelay = true;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.ConnectTimeout);
        WireClient? client = null;
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
            Stream stream = new NetworkStream(socket, ownsSocket: false);
            if (options.Tls is { } tls)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                try { await ssl.AuthenticateAsClientAsync(tls, timeout.Token).ConfigureAwait(false); }
                catch { await ssl.DisposeAsync().ConfigureAwait(false); throw; }
            }
            client = new WireClient(socket, stream, host, port, options);
            await client.HandshakeAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (client is not null) await client.DisposeAsync().ConfigureAwait(false);
            else socket.Dispose();
            if (e is OperationCanceledException && !ct.IsCancellationRequested)
                throw new WireConnectionException($"connect to {host}:{port} timed out after {options.ConnectTimeout}", e);
            if (e is SessionExpiredException or OperationCanceledException) throw;
            throw new WireConnectionException($"connect to {host}:{port} failed: {e.Message}", e);
        }
        client.Start();
        return client;
    }

    /// <summary>
    /// Performs the session handshake on an in-process connection (<c>CoordinationServer.ConnectInProcess</c>): no
    /// socket, the same frames. <see cref="ReattachAsync"/> does not apply (it dials TCP).
    /// </summary>
    public static async Task<WireClient> ConnectAsync(Stream inProcess, WireClientOptions? options = null, CancellationToken ct = default)
    {
        options ??= new WireClientOptions();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.ConnectTimeout);
        var client = new WireClient(null, inProcess, "in-process", 0, options);
        try { await client.HandshakeAsync(timeout.Token).ConfigureAwait(false); }
        catch (Exception e)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            if (e is SessionExpiredException || ct.IsCancellationRequested) throw;
            throw new WireConnectionException($"in-process connect failed: {e.Message}", e);
        }
        client.Start();
        return client;
    }

    private async Task HandshakeAsync(CancellationToken ct)
    {
        var request = new ConnectRequest(0, _options.LastZxidSeen, _options.SessionTimeoutMs, _options.SessionId,
            _options.Password ?? new byte[16], _options.ReadOnly);
        var buffer = new ArrayBufferWriter<byte>(64);
        Framing.WriteFrame(buffer, request, static (ref JuteWriter w, ConnectRequest r) => r.Write(ref w));
        await _stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);

        while (true)
        {
            var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
            var data = result.Buffer;
            var status = Framing.TryReadFrame(ref data, _options.MaxFrameLength, out var frame, out var length);
            if (status == FrameStatus.Frame)
            {
                var bytes = frame.ToArray();
                _reader.AdvanceTo(data.Start);
                var r = new JuteReader(bytes);
                var response = ConnectResponse.Read(ref r);
                if (response.Timeout <= 0 || response.SessionId == 0)
                    throw new SessionExpiredException($"session 0x{_options.SessionId:x} expired or refused (timeout {response.Timeout})");
                SessionId = response.SessionId;
                Password = response.Password;
                NegotiatedTimeoutMs = response.Timeout;
                ServerReadOnly = response.ReadOnly;
                _lastZxid = _options.LastZxidSeen;
                return;
            }
            if (status != FrameStatus.NeedMoreData) throw new WireConnectionException($"bad connect response length {length}");
            if (result.IsCompleted) throw new WireConnectionException("server closed the connection during the handshake");
            _reader.AdvanceTo(data.Start, data.End);
        }
    }

    private void Start()
    {
        _lastSendTimestamp = Stopwatch.GetTimestamp();
        _receiveTask = Task.Run(ReceiveLoopAsync);
        _writeTask = Task.Run(WriteLoopAsync);
        if (_options.AutoPing && NegotiatedTimeoutMs > 0) _pingTask = Task.Run(PingLoopAsync);
    }

    // ---------------------------------------------------------------- sending

    /// <summary>Sends a request; the task completes with the reply header and body (null when err != 0 or bodies are off).</summary>
    public Task<(ReplyHeader Header, ZkResponse? Response)> SendAsync(OpCode op, ZkRequest request)
    {
        var tcs = new TaskCompletionSource<(ReplyHeader, ZkResponse?)>(TaskCreationOptions.RunContinuationsAsynchronously);
        Send(op, request, CompleteTcs, tcs);
        return tcs.Task;
    }

    private static readonly ReplyCallback CompleteTcs = static (header, response, error, state, _) =>
    {
        var tcs = (TaskCompletionSource<(ReplyHeader, ZkResponse?)>)state!;
        if (error is not null) tcs.TrySetException(error);
        else tcs.TrySetResult((header, response));
    };

    /// <summary>
    /// Sends a request and calls <paramref name="callback"/> on the receive loop when its response arrives, or with an
    /// error on connection loss. The callback may send further requests; it must not block.
    /// </summary>
    public void Send(OpCode op, ZkRequest request, ReplyCallback callback, object? state = null, long token = 0)
    {
        Exception? failure;
        lock (_sendLock)
        {
            failure = _failure;
            if (failure is null)
            {
                var xid = ++_xid;
                if (xid < 0) xid = _xid = 1; // never collide with reserved negative xids
                var now = Stopwatch.GetTimestamp();
                _pending.Enqueue(new Pending
                {
                    Xid = xid, Op = op, Request = request, Callback = callback, State = state, Token = token, SentTimestamp = now,
                });
                Framing.WriteFrame(_out, (xid, op, request), static (ref JuteWriter w, (int Xid, OpCode Op, ZkRequest Req) s) =>
                {
                    new RequestHeader(s.Xid, s.Op).Write(ref w);
                    s.Req.Write(ref w);
                });
                _lastSendTimestamp = now;
                SignalWriterLocked();
            }
        }
        if (failure is not null) callback(default, null, failure, state, token);
    }

    /// <summary>
    /// Sends a request with a reserved xid (-4 auth, -8 setWatches). The server answers it with the same xid, possibly
    /// ahead of earlier ordinary requests, so it is matched separately.
    /// </summary>
    public Task<(ReplyHeader Header, ZkResponse? Response)> SendSpecialAsync(int xid, OpCode op, ZkRequest request)
    {
        if (xid >= 0 || xid == Xids.Notification) throw new ArgumentOutOfRangeException(nameof(xid));
        var tcs = new TaskCompletionSource<(ReplyHeader, ZkResponse?)>(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? failure;
        lock (_sendLock)
        {
            failure = _failure;
            if (failure is null)
            {
                if (!_special.TryGetValue(xid, out var queue)) _special[xid] = queue = new Queue<Pending>();
                var now = Stopwatch.GetTimestamp();
                queue.Enqueue(new Pending { Xid = xid, Op = op, Request = request, Callback = CompleteTcs, State = tcs, SentTimestamp = now });
                Framing.WriteFrame(_out, (xid, op, request), static (ref JuteWriter w, (int Xid, OpCode Op, ZkRequest Req) s) =>
                {
                    new RequestHeader(s.Xid, s.Op).Write(ref w);
                    s.Req.Write(ref w);
                });
                _lastSendTimestamp = now;
                SignalWriterLocked();
            }
        }
        if (failure is not null) tcs.TrySetException(failure);
        return tcs.Task;
    }

    /// <summary>addAuth: sent with xid -4 as the ZooKeeper client does.</summary>
    public Task<(ReplyHeader Header, ZkResponse? Response)> AddAuthAsync(string scheme, byte[] auth) =>
        SendSpecialAsync(Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, scheme, auth));

    /// <summary>Sends a ping (xid -2) now; its answer only counts in <see cref="PongCount"/>.</summary>
    public void Ping()
    {
        lock (_sendLock)
        {
            if (_failure is not null) return;
            WritePingLocked();
        }
    }

    private void WritePingLocked()
    {
        Framing.WriteFrame(_out, 0, static (ref JuteWriter w, int _) => new RequestHeader(Xids.Ping, OpCode.Ping).Write(ref w));
        _lastSendTimestamp = Stopwatch.GetTimestamp();
        SignalWriterLocked();
    }

    /// <summary>Writes arbitrary bytes to the socket after everything queued so far (for fuzzing an established session).</summary>
    public void SendRaw(ReadOnlySpan<byte> bytes)
    {
        lock (_sendLock)
        {
            if (_failure is not null) return;
            bytes.CopyTo(_out.GetSpan(bytes.Length));
            _out.Advance(bytes.Length);
            SignalWriterLocked();
        }
    }

    private void SignalWriterLocked()
    {
        if (_signaled) return;
        _signaled = true;
        _writeSignal.Release();
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            while (true)
            {
                await _writeSignal.WaitAsync(_cts.Token).ConfigureAwait(false);
                ArrayBufferWriter<byte> batch;
                lock (_sendLock)
                {
                    _signaled = false;
                    if (_out.WrittenCount == 0) continue;
                    batch = _out;
                    _out = _spare;
                    _spare = batch;
                }
                await _stream.WriteAsync(batch.WrittenMemory, _cts.Token).ConfigureAwait(false);
                // Drop a buffer that grew very large in a burst instead of holding it for the connection's life.
                if (batch.Capacity > 4 << 20) _spare = new ArrayBufferWriter<byte>(4 * 1024);
                else batch.ResetWrittenCount();
            }
        }
        catch (Exception e)
        {
            Fail(e is OperationCanceledException ? null : new WireConnectionException($"send failed: {e.Message}", e));
        }
    }

    private async Task PingLoopAsync()
    {
        var interval = TimeSpan.FromMilliseconds(Math.Max(NegotiatedTimeoutMs / 3, 100));
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_cts.Token).ConfigureAwait(false))
            {
                lock (_sendLock)
                {
                    if (_failure is not null) return;
                    if (Stopwatch.GetElapsedTime(_lastSendTimestamp) >= interval * 0.8) WritePingLocked();
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    // ---------------------------------------------------------------- receiving

    private async Task ReceiveLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_cts.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (true)
                {
                    var status = Framing.TryReadFrame(ref buffer, _options.MaxFrameLength, out var frame, out var length);
                    if (status == FrameStatus.NeedMoreData) break;
                    if (status != FrameStatus.Frame) throw new WireConnectionException($"server sent a frame of bad length {length}");
                    HandleFrame(frame);
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    failure = _closeRequested ? null : new WireConnectionException("connection closed by the server");
                    break;
                }
            }
        }
        catch (OperationCanceledException) { failure = null; }
        catch (WireConnectionException e) { failure = e; }
        catch (Exception) when (_closeRequested) { failure = null; }
        catch (Exception e) { failure = new WireConnectionException($"receive failed: {e.Message}", e); }
        Fail(failure);
    }

    private void HandleFrame(in ReadOnlySequence<byte> frame)
    {
        if (frame.IsSingleSegment)
        {
            HandleFrame(frame.FirstSpan);
            return;
        }
        var length = (int)frame.Length;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            frame.CopyTo(rented);
            HandleFrame(rented.AsSpan(0, length));
        }
        finally { ArrayPool<byte>.Shared.Return(rented); }
    }

    private void HandleFrame(ReadOnlySpan<byte> frame)
    {
        var r = new JuteReader(frame);
        var header = ReplyHeader.Read(ref r);
        var now = Stopwatch.GetTimestamp();
        if (header.Zxid > 0) UpdateLastZxid(header.Zxid);

        if (header.Xid == Xids.Notification)
        {
            var ev = WatcherEvent.Read(ref r);
            var seq = _sequence++;
            Interlocked.Increment(ref _eventCount);
            if (_arrivals is not null)
                lock (_arrivals) _arrivals.Add(new Arrival(seq, ArrivalKind.Event, header, OpCode.Notification, null, null, ev, 0, now));
            var notification = new WatchNotification(header.Zxid, ev, seq, now);
            _options.OnEvent?.Invoke(notification);
            _events?.Writer.TryWrite(notification);
            return;
        }
        if (header.Xid == Xids.Change)
        {
            _changes.Writer.TryWrite(new ChangeFrame(header.Zxid, header.Err,
                header.Err == ErrorCode.Ok ? ChangeEvent.Read(ref r) : ChangeFeedPosition.Read(ref r)));
            return;
        }
        if (header.Xid == Xids.Ping)
        {
            Interlocked.Increment(ref _pongs);
            return;
        }

        Pending pending;
        lock (_sendLock)
        {
            if (header.Xid < 0)
            {
                if (!_special.TryGetValue(header.Xid, out var queue) || !queue.TryDequeue(out pending))
                    throw new WireConnectionException($"unexpected response with reserved xid {header.Xid} (err {header.Err})");
            }
            else
            {
                if (!_pending.TryPeek(out pending))
                    throw new WireConnectionException($"response xid {header.Xid} (err {header.Err}) with no request outstanding");
                if (pending.Xid != header.Xid)
                    throw new WireConnectionException($"xid out of order: expected {pending.Xid}, got {header.Xid} (err {header.Err})");
                _pending.Dequeue();
            }
        }

        ZkResponse? body = null;
        if (_options.ParseResponses && !r.AtEnd)
        {
            if (header.Err == ErrorCode.Ok)
            {
                try { body = Responses.Read(pending.Request is LinearizableReadRequest linearizable ? linearizable.Op : pending.Op, ref r); }
                catch (Exception e)
                {
                    var error = new WireConnectionException($"malformed {pending.Op} response for xid {header.Xid}: {e.Message}", e);
                    pending.Callback(header, null, error, pending.State, pending.Token);
                    throw error;
                }
            }
            else if (pending.Op == OpCode.WatchChanges && header.Err == ErrorCode.Compacted)
            {
                body = ChangeFeedPosition.Read(ref r);
            }
            else if (pending.Op is OpCode.Multi or OpCode.MultiRead)
            {
                try { body = MultiResponse.Read(ref r); } catch (Exception) { body = null; }
            }
        }
        var sequence = _sequence++;
        Interlocked.Increment(ref _responses);
        if (_arrivals is not null)
            lock (_arrivals) _arrivals.Add(new Arrival(sequence, ArrivalKind.Response, header, pending.Op, pending.Request, body, null, pending.SentTimestamp, now));
        pending.Callback(header, body, null, pending.State, pending.Token);
    }

    private void UpdateLastZxid(long zxid)
    {
        long current;
        while (zxid > (current = Interlocked.Read(ref _lastZxid)))
            if (Interlocked.CompareExchange(ref _lastZxid, zxid, current) == current) break;
    }

    // ---------------------------------------------------------------- closing

    private void Fail(Exception? reason)
    {
        List<Pending> toFail;
        Exception failure;
        lock (_sendLock)
        {
            if (_failure is not null) return;
            failure = _failure = reason ?? new WireConnectionException(_closeRequested ? "connection closed by the client" : "connection closed");
            _closed = true;
            toFail = new List<Pending>(_pending);
            _pending.Clear();
            foreach (var q in _special.Values) { toFail.AddRange(q); q.Clear(); }
        }
        try { _cts.Cancel(); } catch (ObjectDisposedException) { }
        try { _socket?.Shutdown(SocketShutdown.Both); } catch { }
        _socket?.Dispose();
        _events?.Writer.TryComplete();
        _changes.Writer.TryComplete();
        foreach (var p in toFail)
        {
            try { p.Callback(default, null, failure, p.State, p.Token); } catch { }
        }
        _closedTcs.TrySetResult(reason);
    }

    /// <summary>Closes the session (closeSession request, then the socket). Safe to call on a dead connection.</summary>
    public async Task CloseAsync(TimeSpan? timeout = null)
    {
        if (!_closed)
        {
            _closeRequested = true;
            try
            {
                await SendAsync(OpCode.CloseSession, EmptyRequest.Instance).WaitAsync(timeout ?? TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (Exception) { }
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Drops the connection without closing the session (the session lives on until it expires, and can be
    /// re-attached with <see cref="ReattachAsync"/>). <see cref="Closed"/> then completes with null.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _closeRequested = true;
        Fail(null);
        foreach (var t in new[] { _receiveTask, _writeTask, _pingTask })
        {
            if (t is null) continue;
            try { await t.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch { }
        }
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        _cts.Dispose();
    }

    /// <summary>
    /// Opens a new connection to the same session (session id, password and last zxid of this client), as a client
    /// does after a disconnect. Pass <paramref name="host"/>/<paramref name="port"/> to move to another server.
    /// </summary>
    public Task<WireClient> ReattachAsync(WireClientOptions? options = null, string? host = null, int? port = null, CancellationToken ct = default)
    {
        var o = (options ?? _options) with { SessionId = SessionId, Password = Password, LastZxidSeen = LastZxid, SessionTimeoutMs = NegotiatedTimeoutMs };
        return ConnectAsync(host ?? Host, port ?? Port, o, ct);
    }

    public override string ToString() => $"WireClient(0x{SessionId:x16} @ {Host}:{Port})";
}

/// <summary>Convenience wrappers for the common operations; they return the raw (header, body) pair.</summary>
public static class WireClientExtensions
{
    public static Task<(ReplyHeader Header, ZkResponse? Response)> CreateAsync(this WireClient c, string path, byte[]? data,
        CreateMode mode = CreateMode.Persistent, IReadOnlyList<Acl>? acl = null) =>
        c.SendAsync(OpCode.Create, new CreateRequest(path, data, acl ?? Acl.OpenAclUnsafe, (int)mode));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> GetDataAsync(this WireClient c, string path, bool watch = false) =>
        c.SendAsync(OpCode.GetData, new PathWatchRequest(path, watch));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> ExistsAsync(this WireClient c, string path, bool watch = false) =>
        c.SendAsync(OpCode.Exists, new PathWatchRequest(path, watch));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> GetChildren2Async(this WireClient c, string path, bool watch = false) =>
        c.SendAsync(OpCode.GetChildren2, new PathWatchRequest(path, watch));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> SetDataAsync(this WireClient c, string path, byte[]? data, int version = -1) =>
        c.SendAsync(OpCode.SetData, new SetDataRequest(path, data, version));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> DeleteAsync(this WireClient c, string path, int version = -1) =>
        c.SendAsync(OpCode.Delete, new PathVersionRequest(path, version));

    /// <summary>A read made linearizable on whichever member serves it (<see cref="OpCode.LinearizableRead"/>); the reply is the read's own.</summary>
    public static Task<(ReplyHeader Header, ZkResponse? Response)> ReadLinearizablyAsync(this WireClient c, OpCode op, ZkRequest read) =>
        c.SendAsync(OpCode.LinearizableRead, new LinearizableReadRequest(op, read));

    /// <summary>Subscribes to the committed changes under <paramref name="prefix"/> after <paramref name="afterZxid"/>
    /// (<see cref="OpCode.WatchChanges"/>); they arrive on <see cref="WireClient.Changes"/>, named by the reply's xid.</summary>
    public static Task<(ReplyHeader Header, ZkResponse? Response)> WatchChangesAsync(this WireClient c, string prefix, long afterZxid) =>
        c.SendAsync(OpCode.WatchChanges, new WatchChangesRequest(prefix, afterZxid));

    /// <summary>The next <paramref name="count"/> change-feed frames, failing after <paramref name="timeout"/>.</summary>
    public static async Task<List<ChangeFrame>> TakeChangesAsync(this WireClient c, int count, TimeSpan timeout)
    {
        var frames = new List<ChangeFrame>();
        using var cts = new CancellationTokenSource(timeout);
        while (frames.Count < count) frames.Add(await c.Changes.ReadAsync(cts.Token).ConfigureAwait(false));
        return frames;
    }

    public static Task<(ReplyHeader Header, ZkResponse? Response)> StopChangesAsync(this WireClient c, int subscription) =>
        c.SendAsync(OpCode.StopChanges, new StopChangesRequest(subscription));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> SyncAsync(this WireClient c, string path = "/") =>
        c.SendAsync(OpCode.Sync, new PathRequest(path));

    public static Task<(ReplyHeader Header, ZkResponse? Response)> MultiAsync(this WireClient c, IReadOnlyList<MultiOp> ops) =>
        c.SendAsync(OpCode.Multi, new MultiRequest(ops));

    /// <summary>Throws unless the reply is OK (or one of <paramref name="allowed"/>).</summary>
    public static async Task<ZkResponse?> OkAsync(this Task<(ReplyHeader Header, ZkResponse? Response)> reply, params ErrorCode[] allowed)
    {
        var (header, response) = await reply.ConfigureAwait(false);
        if (header.Err != ErrorCode.Ok && Array.IndexOf(allowed, header.Err) < 0)
            throw new InvalidOperationException($"unexpected error {header.Err} ({(int)header.Err}) for xid {header.Xid}");
        return response;
    }
}
