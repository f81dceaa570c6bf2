using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// Many ZooKeeper sessions held by one process without a thread, task loop or pipe per session beyond one pending
/// socket receive: each session is a socket, a small growable receive buffer and a few counters. The swarm drives
/// them in steps (connect, send K requests and wait for their K replies, close) with at most <c>concurrency</c>
/// sessions in a step at once, pings every session on one timer, and records when each session got its first
/// NodeDataChanged event. Replies are counted, not matched (no session has two steps in flight).
/// </summary>
internal sealed class SessionSwarm : IAsyncDisposable
{
    private readonly IPEndPoint _server;
    private readonly IReadOnlyList<IPAddress?> _sources;
    private readonly int _perSource;
    private readonly int _timeoutMs;
    private readonly RawSession[] _sessions;
    private readonly SemaphoreSlim _slots;
    private readonly int _concurrency;
    private readonly CancellationTokenSource _stop = new();
    private Task? _pinger;
    private long _errors, _lost, _notified;

    public SessionSwarm(IPEndPoint server, int count, int concurrency, int perSource, int timeoutMs)
    {
        _server = server;
        _perSource = perSource;
        _timeoutMs = timeoutMs;
        _concurrency = concurrency;
        _slots = new SemaphoreSlim(concurrency, concurrency);
        _sessions = new RawSession[count];
        for (var i = 0; i < count; i++) _sessions[i] = new RawSession(this);
        _sources = SourceAddresses(server.Address, count, perSource);
    }

    public IReadOnlyList<RawSession> Sessions => _sessions;
    /// <summary>Error replies and failed connects.</summary>
    public long Errors => Interlocked.Read(ref _errors);
    /// <summary>Connections that ended while the swarm did not close them.</summary>
    public long Lost => Interlocked.Read(ref _lost);
    public long Notified => Interlocked.Read(ref _notified);
    /// <summary>The source addresses the sessions bind to (null: the kernel's choice).</summary>
    public IReadOnlyList<IPAddress?> SourceAddressesUsed => _sources;

    /// <summary>
    /// Loopback servers: bind session i to 127.0.0.(2 + i / perSource), so that no (source, destination) pair needs
    /// more than perSource of the ~28,000 ephemeral ports. One address needs no bind.
    /// </summary>
    private static IReadOnlyList<IPAddress?> SourceAddresses(IPAddress server, int count, int perSource)
    {
        var needed = (count + perSource - 1) / perSource;
        if (needed <= 1 || !IPAddress.IsLoopback(server) || server.AddressFamily != AddressFamily.InterNetwork) return [null];
        if (needed > 250) throw new ArgumentException($"{count} sessions at {perSource} per source address need more than 250 loopback addresses");
        return Enumerable.Range(0, needed).Select(k => (IPAddress?)new IPAddress(new byte[] { 127, 0, 0, (byte)(2 + k) })).ToList();
    }

    /// <summary>Opens every session; returns the wall time of the step.</summary>
    public Task<TimeSpan> ConnectAllAsync(TimeSpan limit, CancellationToken ct)
    {
        var connect = WireFrames.Connect(timeoutMs: _timeoutMs);
        return StepAsync(limit, ct, (session, index) =>
        {
            session.BeginConnect(_server, _sources[Math.Min(index / _perSource, _sources.Count - 1)], connect);
        });
    }

    /// <summary>Each session sends the frames <paramref name="frames"/> gives it and waits for that many replies.</summary>
    public Task<TimeSpan> RequestAllAsync(Func<int, IReadOnlyList<byte[]>> frames, TimeSpan limit, CancellationToken ct) =>
        StepAsync(limit, ct, (session, index) =>
        {
            var batch = frames(index);
            if (batch.Count == 0)
            {
                StepDone();
                return;
            }
            session.Expect(batch.Count);
            session.Send(batch);
        });

    /// <summary>Sends closeSession on every open session and waits for its reply (or the server's close).</summary>
    public async Task<TimeSpan> CloseAllAsync(TimeSpan limit, CancellationToken ct)
    {
        await _stop.CancelAsync().ConfigureAwait(false); // no pings while closing
        var close = WireFrames.Request(1_000_000, OpCode.CloseSession, null);
        return await StepAsync(limit, ct, (session, _) =>
        {
            session.Closing = true;
            session.Expect(1);
            session.Send([close]);
        }).ConfigureAwait(false);
    }

    private async Task<TimeSpan> StepAsync(TimeSpan limit, CancellationToken ct, Action<RawSession, int> begin)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(limit);
        var clock = Stopwatch.StartNew();
        try
        {
            for (var i = 0; i < _sessions.Length; i++)
            {
                var session = _sessions[i];
                if (session.Failed) continue;
                await _slots.WaitAsync(timeout.Token).ConfigureAwait(false);
                try { begin(session, i); }
                catch (Exception) { session.Fail(); }
            }
            for (var i = 0; i < _concurrency; i++) await _slots.WaitAsync(timeout.Token).ConfigureAwait(false);
            var elapsed = clock.Elapsed;
            _slots.Release(_concurrency);
            return elapsed;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var pending = _sessions.Count(s => s.Pending > 0);
            throw new TimeoutException($"step not done after {limit.TotalSeconds:F0} s: {pending} sessions still wait for replies");
        }
    }

    /// <summary>Pings every open session each third of the session timeout (what ZooKeeper's clients do when idle).</summary>
    public void StartPinging()
    {
        var ping = WireFrames.Request(Xids.Ping, OpCode.Ping, null);
        var interval = TimeSpan.FromMilliseconds(Math.Max(500, _sessions.Where(s => s.NegotiatedTimeoutMs > 0).Select(s => s.NegotiatedTimeoutMs).DefaultIfEmpty(_timeoutMs).Min() / 3));
        _pinger = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(interval);
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
                    foreach (var s in _sessions)
                        if (!s.Failed && !s.Closing) s.Send([ping]);
            }
            catch (OperationCanceledException) { }
        });
    }

    /// <summary>Forgets every session's notification time (before a fan-out round).</summary>
    public void ResetNotifications()
    {
        foreach (var s in _sessions) s.NotifiedAt = 0;
        Interlocked.Exchange(ref _notified, 0);
    }

    internal void StepDone() => _slots.Release();
    internal void CountError() => Interlocked.Increment(ref _errors);
    internal void CountLost() => Interlocked.Increment(ref _lost);
    internal void CountNotified() => Interlocked.Increment(ref _notified);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_pinger is not null) await _pinger.ConfigureAwait(false);
        foreach (var s in _sessions) s.Dispose();
        _stop.Dispose();
    }
}

/// <summary>One session of a <see cref="SessionSwarm"/>.</summary>
internal sealed class RawSession(SessionSwarm swarm) : IDisposable
{
    private const int MaxFrame = 1 << 20;
    private Socket? _socket;
    private byte[] _buffer = new byte[256];
    private int _filled;
    private readonly Lock _sendLock = new();
    private int _pending;
    private int _failed;

    public long SessionId { get; private set; }
    public int NegotiatedTimeoutMs { get; private set; }
    /// <summary>Stopwatch timestamp of the first NodeDataChanged event since the last reset; 0 before.</summary>
    public long NotifiedAt;
    public bool Closing { get; set; }
    public bool Failed => Volatile.Read(ref _failed) != 0;
    public int Pending => Volatile.Read(ref _pending);

    public void BeginConnect(IPEndPoint server, IPAddress? source, byte[] connectFrame)
    {
        Expect(1); // first: a socket that cannot be made (EMFILE) fails the session and so frees its step slot
        Socket socket;
        try { socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }; }
        catch (SocketException)
        {
            Fail();
            return;
        }
        _socket = socket;
        _ = ConnectAndReceiveAsync(socket, server, source, connectFrame);
    }

    private async Task ConnectAndReceiveAsync(Socket socket, IPEndPoint server, IPAddress? source, byte[] connectFrame)
    {
        try
        {
            if (source is not null)
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(source, 0));
            }
            await socket.ConnectAsync(server).ConfigureAwait(false);
            Send([connectFrame]);
        }
        catch (Exception)
        {
            Fail();
            return;
        }
        await ReceiveLoopAsync(socket).ConfigureAwait(false);
    }

    public void Expect(int replies) => Volatile.Write(ref _pending, replies);

    public void Send(IReadOnlyList<byte[]> frames)
    {
        var socket = _socket;
        if (socket is null || Failed) return;
        try
        {
            lock (_sendLock)
                foreach (var frame in frames)
                    for (var sent = 0; sent < frame.Length;) sent += socket.Send(frame, sent, frame.Length - sent, SocketFlags.None);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { Fail(); }
    }

    private async Task ReceiveLoopAsync(Socket socket)
    {
        try
        {
            while (true)
            {
                if (_filled == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
                var n = await socket.ReceiveAsync(_buffer.AsMemory(_filled), SocketFlags.None).ConfigureAwait(false);
                if (n == 0) break;
                _filled += n;
                var offset = 0;
                while (_filled - offset >= 4)
                {
                    var length = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(offset));
                    if (length is < 0 or > MaxFrame) throw new InvalidDataException($"bad frame length {length}");
                    if (_filled - offset - 4 < length)
                    {
                        if (4 + length > _buffer.Length) Array.Resize(ref _buffer, 4 + length); // Resize keeps [0, _filled)
                        break;
                    }
                    OnFrame(_buffer.AsSpan(offset + 4, length));
                    offset += 4 + length;
                }
                if (offset > 0)
                {
                    _buffer.AsSpan(offset, _filled - offset).CopyTo(_buffer);
                    _filled -= offset;
                }
            }
        }
        catch (Exception) { }
        Fail();
    }

    private void OnFrame(ReadOnlySpan<byte> frame)
    {
        if (SessionId == 0)
        {
            var reader = new JuteReader(frame);
            var response = ConnectResponse.Read(ref reader);
            if (response.Timeout <= 0 || response.SessionId == 0) throw new InvalidDataException("session refused");
            NegotiatedTimeoutMs = response.Timeout;
            SessionId = response.SessionId;
            Replied();
            return;
        }
        var xid = BinaryPrimitives.ReadInt32BigEndian(frame);
        var err = BinaryPrimitives.ReadInt32BigEndian(frame[12..]);
        if (xid == Xids.Ping) return;
        if (xid == Xids.Notification)
        {
            // WatcherEvent after the 16-byte reply header: type, state, path.
            var type = (EventType)BinaryPrimitives.ReadInt32BigEndian(frame[16..]);
            if (type == EventType.NodeDataChanged && NotifiedAt == 0)
            {
                NotifiedAt = Stopwatch.GetTimestamp();
                swarm.CountNotified();
            }
            return;
        }
        if (err != 0) swarm.CountError();
        Replied();
    }

    private void Replied()
    {
        if (Interlocked.Decrement(ref _pending) == 0) swarm.StepDone();
    }

    /// <summary>The connection failed or ended: a step waiting on this session is released, and the loss counted.</summary>
    public void Fail()
    {
        if (Interlocked.Exchange(ref _failed, 1) != 0) return;
        if (SessionId == 0) swarm.CountError();
        else if (!Closing) swarm.CountLost();
        if (Interlocked.Exchange(ref _pending, 0) > 0) swarm.StepDone();
        _socket?.Dispose();
    }

    public void Dispose()
    {
        Volatile.Write(ref _failed, 1);
        _socket?.Dispose();
    }
}
