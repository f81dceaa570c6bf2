using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Audit;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Network;

/// <summary>A decoded auth or SASL packet (or a request refused by auth.enforce) from a bound connection, for its session
/// actor: the read loop reads nothing more until the session actor has answered it (<see cref="ClientConnection.SessionAnswered"/>).</summary>
public sealed record Incoming(ClientConnection Connection, int Xid, OpCode Op, ZkRequest Body, long ReceivedTicks);

/// <summary>
/// Where a bound connection's read loop sends what it reads, set by the session actor when it answers the handshake:
/// ordinary requests go straight to <see cref="Replica"/> as <see cref="ClientRequest"/>s naming <see cref="Session"/>
/// (which orders the outputs), auth and SASL packets to <see cref="Session"/>. <see cref="Touch"/> goes to
/// <see cref="Tracker"/> at most once per <see cref="TouchInterval"/>.
/// </summary>
internal sealed record RequestRoute(long SessionId, IActorRef Session, IActorRef Replica, IActorRef Tracker, SessionTouched Touch,
    TimeSpan TouchInterval, IAuditSink Audit, IReadOnlySet<string> EnforceAuthSchemes);

/// <summary>
/// Socket I/O of one client connection: a read loop that frames and decodes requests, and a write loop that drains
/// an outbox and flushes once per drained batch. Bounds (README "Resource bounds"): at most
/// <c>max-inflight-per-connection</c> requests in flight; reading pauses while <see cref="ReadPauseBytes"/> are
/// queued, while the connection's requests in flight hold <c>max-inflight-bytes-per-connection</c>, or while the
/// server holds <c>global-outstanding-limit</c> requests or <c>global-outstanding-bytes</c>; a
/// connection with more than that many bytes queued is dropped (a client that never reads, or whose watch events pile
/// up), and so is one whose handshake or socket write overruns its timeout (see <see cref="Overdue"/>).
/// </summary>
public sealed class ClientConnection
{
    private static long _nextId;

    /// <summary>Null on an in-process connection (<see cref="InProcess"/>), which has pipes and no socket.</summary>
    private readonly Socket? _socket;
    private readonly NetworkStream? _stream;
    private readonly bool _inProcess;
    /// <summary>Set on the secure port: the TLS handshake runs first, then the pipes read and write through it.</summary>
    private readonly ClientTls? _tls;
    /// <summary>Port unification: the connection is TLS only if its first byte starts a TLS handshake record.</summary>
    private readonly bool _unified;
    private SslStream? _ssl;
    /// <summary>Completes (true) when the pipes exist: at once on the plain port, after the TLS handshake on the secure one.</summary>
    private readonly TaskCompletionSource<bool>? _secured;
    private PipeReader _reader = null!;
    private PipeWriter _writer = null!;
    /// <summary>
    /// An outbox entry: a ready frame, or a reply (header and body) that the write loop encodes straight into its
    /// reusable buffer, so a reply costs no per-response byte arrays.
    /// </summary>
    private readonly record struct Outgoing(byte[]? Frame, ReplyHeader Header, ZkResponse? Body, bool IsResponse, int Bytes);

    private readonly Channel<Outgoing> _outbox =
        Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    /// <summary>The write loop's encode buffer: replies are encoded here and copied into the pipe in one write per batch.</summary>
    // Empty until the first response (it grows as needed): an idle connection holds no encode buffer.
    private ArrayBufferWriter<byte> _encodeBuffer = new();
    private readonly SemaphoreSlim _inflight;
    private readonly int _maxFrame;
    private readonly ClientPortLimits _limits;
    private readonly long _maxQueuedBytes;
    /// <summary>
    /// Reading pauses while this much is queued (1 MiB, or half of max-queued-bytes-per-connection if less): plain
    /// backpressure for a client that reads, which drains it at once; a client that does not read then gets no more
    /// of its own requests served, only its watch events can take it on to the limit, and the flush timeout ends it.
    /// </summary>
    public const long ReadPauseBytes = 1 << 20;
    private readonly long _readPauseBytes;
    /// <summary>Estimated bytes of the replies and events queued and not yet flushed to the socket.</summary>
    private long _queuedBytes;
    /// <summary>Requests read and whose answers are not yet written; each is also counted in
    /// <see cref="ClientPortLimits.Outstanding"/>. Counted per read batch and per flush, not per request: the counter is
    /// shared by the read loop, the write loop and the server-wide count, and touching it per request cost throughput.</summary>
    private long _unanswered;
    /// <summary>Bytes (as framed) of this connection's requests to the replica read and not yet answered, counted in
    /// <see cref="ClientPortLimits.OutstandingBytes"/> too: added per read batch, taken off per flush.</summary>
    private long _unansweredBytes;
    /// <summary>Bytes of the requests whose replies the session actor has queued since the last flush (under the lock
    /// of <see cref="_received"/>, which it takes per reply anyway).</summary>
    private long _answeredBytes;
    /// <summary>Bytes of the current read batch's requests to the replica.</summary>
    private long _admittedBytes;
    private readonly long _maxInflightBytes;
    /// <summary>Requests of the current read batch, counted as outstanding together before they are delivered.</summary>
    private readonly List<Admitted> _admitted = new();

    /// <summary>Who answers a request read: the replica, this connection (a ping), or the session actor (auth, SASL, or a
    /// request auth.enforce refuses).</summary>
    private enum Destination : byte { Replica, Ping, Session }

    private readonly record struct Admitted(int Xid, OpCode Op, ZkRequest Body, long ReceivedTicks, byte[]? BodyBytes, Destination To, int Bytes);

    /// <summary>Set at the handshake's answer (<see cref="Bind"/>); null before.</summary>
    private volatile RequestRoute? _route;
    /// <summary>The session's identities, as its session actor last set them (at the handshake and after each auth or
    /// SASL step, which the read loop waits for: a request read after an auth packet is checked with its ids).</summary>
    private volatile AuthContext _auth = NoIds;
    private static readonly AuthContext NoIds = new([]);
    private long _lastTouchTicks;
    /// <summary>Receive times, ops and sizes of the requests sent to the replica, in request order, taken by the session
    /// actor as it emits their replies (latency statistics, and the bytes in flight).</summary>
    private readonly Queue<(long Ticks, OpCode Op, int Bytes)> _received = new();
    /// <summary>The xid whose reply is the last this connection gets (an unknown op code), or <see cref="NoXid"/>.</summary>
    private long _closeAfterXid = NoXid;
    private const long NoXid = long.MinValue;
    /// <summary>Completed by the session actor once it has answered the auth or SASL packet the read loop waits on.</summary>
    private TaskCompletionSource? _sessionAnswer;
    /// <summary>Set by <see cref="CloseAfterFlush"/> and <see cref="Abort"/>: the read loop stops at its next wait.</summary>
    private volatile bool _closing;
    private volatile bool _detached;
    /// <summary>Frames read in the current batch, added to the packet counters with the batch (the server-wide one is
    /// shared by every connection).</summary>
    private int _uncountedPackets;
    /// <summary>When the pending socket write started (Stopwatch ticks), 0 when none is pending.</summary>
    private long _flushStartedTicks;
    private readonly long _acceptedTicks = System.Diagnostics.Stopwatch.GetTimestamp();
    /// <summary>Set when the queue drains or the last request is answered, for a read loop that paused.</summary>
    private readonly AsyncSignal _progress = new();
    /// <summary>Largest batch (estimated bytes) written to the pipe before a flush, so a long queue is not copied at once.</summary>
    private const int MaxBatchBytes = 256 * 1024;
    private readonly CancellationTokenSource _cts = new();
    private TaskCompletionSource<IActorRef?> _binding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _closed;

    public long Id { get; } = Interlocked.Increment(ref _nextId);
    public IPEndPoint Remote { get; }
    public DateTime EstablishedUtc { get; } = DateTime.UtcNow;
    public long SessionId { get; set; }
    /// <summary>The session actor this connection was offered to (set during the handshake).</summary>
    public IActorRef? Owner { get; set; }
    public int SessionTimeoutMs { get; set; }
    public long PacketsReceived;
    public long PacketsSent;
    public long LastZxid;
    /// <summary>For cons: the last op's ZooKeeper abbreviation, xid, response time and latency.</summary>
    public string LastOp = "NA";
    public int LastCxid;
    public long LastResponseMs;
    public long LastLatencyMs;
    public string RemoteAddress { get; }
    public int Outstanding => _maxInflight - _inflight.CurrentCount;
    private readonly int _maxInflight;
    /// <summary>Why the server dropped this connection (a bound), for the log; null otherwise.</summary>
    public string? DropReason { get; private set; }
    public long QueuedBytes => Volatile.Read(ref _queuedBytes);
    /// <summary>As much is queued as makes reading pause: change-feed subscriptions wait for the client to read it.</summary>
    public bool Backlogged => QueuedBytes >= _readPauseBytes;
    public bool IsBound => _route is not null;

    /// <summary>
    /// Set by the session actor when it replaces this connection or gives up its requests, before it tells the replica
    /// the connection is lost: the replica drops the requests of a detached connection that reach it (the read loop tells
    /// the replica directly, so a request read just before the replacement can arrive after that message).
    /// </summary>
    internal bool Detached
    {
        get => _detached;
        set => _detached = value;
    }

    /// <summary>The session's identities, for the requests read from now on (set by the session actor).</summary>
    internal AuthContext Auth
    {
        get => _auth;
        set => _auth = value;
    }

    /// <summary>Remembers that the reply to <paramref name="xid"/> (an unknown op code) is the last one.</summary>
    private void CloseAfterReplyTo(int xid) => Volatile.Write(ref _closeAfterXid, xid);

    /// <summary>True when the reply to <paramref name="xid"/> is this connection's last (after an unknown op code).</summary>
    internal bool IsLastReply(int xid) => Volatile.Read(ref _closeAfterXid) == xid;

    /// <summary>The receive time and op of the oldest request sent to the replica and not yet answered.</summary>
    internal bool TryTakeReceived(out long ticks, out OpCode op)
    {
        lock (_received)
        {
            if (_received.TryDequeue(out var received))
            {
                (ticks, op) = (received.Ticks, received.Op);
                _answeredBytes += received.Bytes;
                return true;
            }
        }
        (ticks, op) = (0, default);
        return false;
    }

    /// <summary>The session actor answered the auth or SASL packet the read loop waits on (or ignored it).</summary>
    internal void SessionAnswered() => _sessionAnswer?.TrySetResult();
    /// <summary>An in-process connection of the member's own host (see the in-process constructor): its session is the
    /// super user, as a reconfig needs. Only code inside the server's assemblies can open one.</summary>
    internal bool MemberHost { get; }
    /// <summary>The subject of the client's verified certificate (ZooKeeper's x509 id), or null.</summary>
    public string? CertificateSubject { get; private set; }
    private volatile bool _keepWriteBodies;

    /// <summary>
    /// A follower's replica forwarded a write of this connection: from now on the read loop keeps each write's body
    /// bytes (<see cref="ClientRequest.BodyBytes"/>) for the forward. Never unset: a server that stops following drops its
    /// clients' connections on the way (ReplicaActor.OnRoleChanged), and a standalone server or a leader never sets it,
    /// so their writes cost no copy.
    /// </summary>
    public void KeepWriteBodies() => _keepWriteBodies = true;

    public ClientConnection(Socket socket, ClientPortLimits limits, ClientTls? tls = null, bool unified = false)
        : this((IPEndPoint)socket.RemoteEndPoint!, limits)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _tls = tls;
        _unified = unified;
        if (tls is null) CreatePipes(_stream);
        else _secured = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>
    /// An in-process connection (an embedded member's client in the same process): the server's ends of two pipes,
    /// read and written by the same loops as a socket's, so the session semantics are the client port's own. It counts
    /// as a loopback client (ip ACLs, per-address limits).
    /// </summary>
    public ClientConnection(PipeReader reader, PipeWriter writer, ClientPortLimits limits) : this(reader, writer, limits, memberHost: false)
    {
    }

    /// <param name="memberHost">The member's own host (the cluster membership that proposes reconfigs): its session is
    /// the super user (<see cref="MemberHost"/>). Never set for a connection the application opens.</param>
    internal ClientConnection(PipeReader reader, PipeWriter writer, ClientPortLimits limits, bool memberHost)
        : this(new IPEndPoint(IPAddress.Loopback, 0), limits)
    {
        _inProcess = true;
        MemberHost = memberHost;
        _reader = reader;
        _writer = writer;
    }

    /// <summary>What every connection takes from its peer's address and the port's limits.</summary>
    private ClientConnection(IPEndPoint remote, ClientPortLimits limits)
    {
        Remote = remote;
        RemoteAddress = AddressOf(remote);
        _limits = limits;
        var settings = limits.Settings;
        _maxQueuedBytes = settings.MaxQueuedBytesPerConnection;
        _readPauseBytes = Math.Min(ReadPauseBytes, _maxQueuedBytes / 2);
        _maxFrame = settings.MaxFrameSize;
        _maxInflight = settings.MaxInflightPerConnection;
        _maxInflightBytes = settings.MaxInflightBytesPerConnection;
        _inflight = new SemaphoreSlim(_maxInflight, _maxInflight);
    }

    private void CreatePipes(Stream stream)
    {
        // Zero-byte reads: the reader waits for data before it rents its 64 KiB buffer, so an idle connection holds
        // none (without them every connection held one while waiting: about 64 KiB of RSS per idle session).
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096, useZeroByteReads: true));
        _writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
    }

    /// <summary>
    /// The TLS handshake of a secure connection; null when it succeeded, else why not. It is bounded by
    /// handshake-timeout like the ZooKeeper handshake after it: the watchdog drops a connection not bound by then.
    /// </summary>
    private async Task<string?> SecureAsync()
    {
        try
        {
            if (_unified)
            {
                var first = new byte[1];
                if (await _socket!.ReceiveAsync(first, SocketFlags.Peek, _cts.Token).ConfigureAwait(false) == 0 || first[0] != TlsHandshakeRecord)
                {
                    CreatePipes(_stream!);   // plain text (or closed at once): the read loop takes it from here
                    _secured!.TrySetResult(true);
                    return null;
                }
            }
            var ssl = new SslStream(_stream!, leaveInnerStreamOpen: true);
            _ssl = ssl;
            await ssl.AuthenticateAsServerAsync(_tls!.Options, _cts.Token).ConfigureAwait(false);
            if (ssl.RemoteCertificate is { } remote)
            {
                using var certificate = X509CertificateLoader.LoadCertificate(remote.GetRawCertData());
                CertificateSubject = X509Identity.SubjectId(certificate);
            }
            CreatePipes(ssl);
            _secured!.TrySetResult(true);
            return null;
        }
        catch (Exception e)
        {
            _secured!.TrySetResult(false);
            return IsClosed ? DropReason ?? "closed during the TLS handshake" : "TLS handshake failed: " + e.GetBaseException().Message;
        }
    }

    /// <summary>The content type of a TLS handshake record, the first byte a TLS client sends (a ClientHello).</summary>
    private const byte TlsHandshakeRecord = 0x16;

    public static string AddressOf(IPEndPoint remote) =>
        remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4().ToString() : remote.Address.ToString();

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Queues a frame. Responses release an in-flight slot once written; events do not hold one.</summary>
    public void Send(byte[] frame, bool isResponse) => Enqueue(new Outgoing(frame, default, null, isResponse, frame.Length + 32));

    /// <summary>
    /// Queues a reply to be encoded by the write loop (length, header, and the body when the header says Ok), exactly
    /// as <see cref="Frames.Encode(in ReplyHeader, ZkResponse?)"/> would. The body must not change afterwards.
    /// </summary>
    public void Send(in ReplyHeader header, ZkResponse? body, bool isResponse) =>
        Enqueue(new Outgoing(null, header, body, isResponse, header.Err == ErrorCode.Ok ? 48 + EstimateBytes(body) : 48));

    private void Enqueue(in Outgoing item)
    {
        if (Interlocked.Add(ref _queuedBytes, item.Bytes) > _maxQueuedBytes && !IsClosed)
        {
            // The client does not read what it asked for or watched: drop the connection (the session lives on).
            _limits.Metrics.QueueLimitDropOnce();
            Drop($"more than {_maxQueuedBytes} bytes queued to a client that does not read");
            return;
        }
        if (!_outbox.Writer.TryWrite(item) && item.IsResponse) ReleaseSlot();
    }

    /// <summary>
    /// The heap a queued reply holds, roughly: what its encoding will take, counting a list of children by entries
    /// (the names are the tree's own strings). An estimate, never below the small fixed parts.
    /// </summary>
    private static int EstimateBytes(ZkResponse? body) => body switch
    {
        GetDataResponse d => 96 + (d.Data?.Length ?? 0),
        GetChildrenResponse c => 96 + 16 * c.Children.Count,
        MultiResponse m => EstimateBytes(m),
        null => 0,
        _ => 64,
    };

    private static int EstimateBytes(MultiResponse multi)
    {
        long bytes = 32;
        foreach (var result in multi.Results) bytes += 16 + EstimateBytes(result.Body);
        return (int)Math.Min(bytes, int.MaxValue);
    }

    /// <summary>
    /// <paramref name="count"/> answers written, to requests of <paramref name="bytes"/> in all: they no longer count
    /// as outstanding here or server-wide (never more than this connection counts: replies to an earlier connection's
    /// requests may reach this one after a reconnect, and <see cref="Abort"/> may have released everything).
    /// </summary>
    private void Answered(int count, long bytes)
    {
        var taken = count > 0 ? TakeUpTo(ref _unanswered, count) : 0;
        var takenBytes = bytes > 0 ? TakeUpTo(ref _unansweredBytes, bytes) : 0;
        if (taken > 0 || takenBytes > 0) _limits.Leave(taken, takenBytes);
    }

    private static long TakeUpTo(ref long counter, long amount)
    {
        long current;
        while ((current = Volatile.Read(ref counter)) > 0)
        {
            var taken = Math.Min(amount, current);
            if (Interlocked.CompareExchange(ref counter, current - taken, current) == current) return taken;
        }
        return 0;
    }

    /// <summary>The bytes of the requests answered since the last call (the write loop's, once per flush).</summary>
    private long TakeAnsweredBytes()
    {
        lock (_received)
        {
            var bytes = _answeredBytes;
            _answeredBytes = 0;
            return bytes;
        }
    }

    /// <summary>
    /// Counts the read batch's requests as outstanding, then delivers them (counted first, so that an answer written
    /// at once finds its request counted). False when the connection closed meanwhile.
    /// </summary>
    private bool Admit()
    {
        if (_uncountedPackets > 0)
        {
            Interlocked.Add(ref PacketsReceived, _uncountedPackets);
            _limits.Stats.AddPacketsReceived(_uncountedPackets);
            _uncountedPackets = 0;
        }
        if (_admitted.Count == 0) return !IsClosed;
        Interlocked.Add(ref _unanswered, _admitted.Count);
        if (_admittedBytes > 0) Interlocked.Add(ref _unansweredBytes, _admittedBytes);
        _limits.Enter(_admitted.Count, _admittedBytes);
        _admittedBytes = 0;
        if (IsClosed) { ReleaseUnanswered(); _admitted.Clear(); return false; }
        Deliver(_route!);
        _admitted.Clear();
        return true;
    }

    /// <summary>
    /// Sends the read batch on, in request order: a request to the replica (its outputs come back through the session
    /// actor, which orders them), a ping answered here with the last zxid this connection sent, an auth or SASL packet
    /// to the session actor. Touches the session as its session actor did, at most once per half tick.
    /// </summary>
    private void Deliver(RequestRoute route)
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (System.Diagnostics.Stopwatch.GetElapsedTime(_lastTouchTicks, now) >= route.TouchInterval)
        {
            _lastTouchTicks = now;
            route.Tracker.Tell(route.Touch);
        }
        var last = _admitted[^1];
        LastOp = ServerStats.Abbreviation(last.Op);
        LastCxid = last.Xid;
        foreach (var request in _admitted)
        {
            switch (request.To)
            {
                case Destination.Ping:
                    Send(new ReplyHeader(Xids.Ping, Volatile.Read(ref LastZxid), ErrorCode.Ok), null, isResponse: true);
                    break;
                case Destination.Session:
                    route.Session.Tell(new Incoming(this, request.Xid, request.Op, request.Body, request.ReceivedTicks));
                    break;
                default:
                    // ZooKeeper answers an unknown op code with Unimplemented and then closes the connection.
                    if (request.Body is UnknownOpRequest) CloseAfterReplyTo(request.Xid);
                    lock (_received) _received.Enqueue((request.ReceivedTicks, request.Op, request.Bytes));
                    if (route.Audit.Enabled && Requests.IsWrite(request.Op)) route.Audit.Requested(route.SessionId, request.Xid, request.Op, request.Body.Path);
                    route.Replica.Tell(new ClientRequest(route.SessionId, request.Xid, request.Op, request.Body, _auth, route.Session, this)
                    {
                        BodyBytes = request.BodyBytes,
                    });
                    break;
            }
        }
    }

    /// <summary>
    /// Where a request goes. Auth and SASL packets (a decoded one: an undecodable SASL packet is answered by the replica)
    /// go to the session actor whatever auth.enforce says; with auth.enforce on, so does anything else from a session
    /// without one of its schemes (the session actor refuses it and closes the connection).
    /// </summary>
    private Destination DestinationOf(OpCode op, ZkRequest body, RequestRoute route)
    {
        if (op == OpCode.Auth) return Destination.Session;
        if (op == OpCode.Sasl) return body is SaslRequest ? Destination.Session : Destination.Replica;
        if (!Authenticated(_auth, route.EnforceAuthSchemes)) return Destination.Session;
        return op == OpCode.Ping ? Destination.Ping : Destination.Replica;
    }

    /// <summary>True unless auth.enforce names <paramref name="schemes"/> and none of the session's ids has one of them.</summary>
    internal static bool Authenticated(AuthContext auth, IReadOnlySet<string> schemes)
    {
        if (schemes.Count == 0) return true;
        foreach (var id in auth.Ids)
            if (schemes.Contains(id.Scheme)) return true;
        return false;
    }

    /// <summary>Releases what this connection still counts in the server-wide outstanding requests (it closed).</summary>
    private void ReleaseUnanswered()
    {
        var left = Interlocked.Exchange(ref _unanswered, 0);
        var leftBytes = Interlocked.Exchange(ref _unansweredBytes, 0);
        if (left > 0 || leftBytes > 0) _limits.Leave(left, leftBytes);
    }

    /// <summary>Closes at once because a bound was exceeded.</summary>
    public void Drop(string reason)
    {
        DropReason ??= reason;
        // Reset instead of a FIN behind unsent data: a client that does not read would keep the kernel's buffers
        // (and an orphaned socket) until its window opens; a reset frees them and tells the client at once.
        try { if (_socket is not null) _socket.LingerState = new LingerOption(true, 0); } catch { /* already closed */ }
        Abort();
    }

    /// <summary>
    /// The bound this connection overran at <paramref name="nowTicks"/>, if any: no completed handshake within
    /// <c>handshake-timeout</c> of accept, or a socket write pending longer than <c>flush-timeout</c>.
    /// </summary>
    public string? Overdue(long nowTicks, out bool handshake)
    {
        handshake = false;
        if (IsClosed) return null;
        var settings = _limits.Settings;
        if (!IsBound && System.Diagnostics.Stopwatch.GetElapsedTime(_acceptedTicks, nowTicks) > settings.HandshakeTimeout)
        {
            handshake = true;
            return $"no completed handshake within {settings.HandshakeTimeout.TotalSeconds:0.###} s";
        }
        var flushStarted = Volatile.Read(ref _flushStartedTicks);
        if (flushStarted != 0 && System.Diagnostics.Stopwatch.GetElapsedTime(flushStarted, nowTicks) > settings.FlushTimeout)
            return $"a socket write pending for more than {settings.FlushTimeout.TotalSeconds:0.###} s";
        return null;
    }

    /// <summary>Lets the read loop continue past the handshake, delivering requests by <paramref name="route"/> with
    /// the session's <paramref name="auth"/>.</summary>
    internal void Bind(RequestRoute route, AuthContext auth)
    {
        _auth = auth;
        _lastTouchTicks = System.Diagnostics.Stopwatch.GetTimestamp();   // the session actor touched at the handshake
        _route = route;
        _binding.TrySetResult(route.Session);
    }

    /// <summary>Sends what is queued, then closes the socket.</summary>
    public void CloseAfterFlush()
    {
        _closing = true;
        _binding.TrySetResult(null);
        _outbox.Writer.TryComplete();
    }

    /// <summary>Closes at once, dropping anything unsent.</summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _closing = true;
        _binding.TrySetResult(null);
        _sessionAnswer?.TrySetResult();
        _outbox.Writer.TryComplete();
        _cts.Cancel();
        try { _socket?.Shutdown(SocketShutdown.Both); } catch { /* already gone */ }
        _socket?.Dispose();
        _secured?.TrySetResult(false);
        try { _ssl?.Dispose(); } catch { /* its pending reads and writes end with the socket */ }
        ReleaseUnanswered();
        _progress.Set();
    }

    private void ReleaseSlots(int count)
    {
        if (count <= 0) return;
        try { _inflight.Release(count); }
        catch (SemaphoreFullException) { for (var i = 0; i < count; i++) ReleaseSlot(); }
    }

    private void ReleaseSlot()
    {
        try { _inflight.Release(); } catch (SemaphoreFullException) { /* pings and auth replies that were not counted */ }
    }

    public async Task WriteLoopAsync()
    {
        try
        {
            if (_secured is not null && !await _secured.Task.ConfigureAwait(false)) return;
            var reader = _outbox.Reader;
            while (await reader.WaitToReadAsync(_cts.Token).ConfigureAwait(false))
            {
                var released = 0;
                var sent = 0;
                long drained = 0;
                var encode = _encodeBuffer;
                while (drained < MaxBatchBytes && reader.TryRead(out var item))
                {
                    drained += item.Bytes;
                    if (item.Frame is { } frame)
                    {
                        if (encode.WrittenCount > 0) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                        _writer.Write(frame);
                    }
                    else
                    {
                        Frames.Write(encode, item.Header, item.Body);
                        if (encode.WrittenCount >= 32 * 1024) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                    }
                    sent++;
                    if (item.IsResponse) released++;
                }
                if (encode.WrittenCount > 0) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                if (encode.Capacity > Frames.KeepBufferBytes) _encodeBuffer = new ArrayBufferWriter<byte>();
                Interlocked.Add(ref PacketsSent, sent);
                _limits.Stats.AddPacketsSent(sent);
                Volatile.Write(ref _flushStartedTicks, System.Diagnostics.Stopwatch.GetTimestamp());
                var flush = await _writer.FlushAsync(_cts.Token).ConfigureAwait(false);
                Volatile.Write(ref _flushStartedTicks, 0);
                ReleaseSlots(released);
                Answered(released, TakeAnsweredBytes());
                Interlocked.Add(ref _queuedBytes, -drained);
                _progress.Set();
                if (flush.IsCompleted) break;
            }
        }
        catch (Exception) when (IsClosed || _cts.IsCancellationRequested) { }
        catch (IOException) { }
        catch (SocketException) { }
        finally
        {
            Abort();
            // In process, no socket closes: the write loop's end (it alone writes) ends the client's reads.
            if (_inProcess) await _writer.CompleteAsync().ConfigureAwait(false);
        }
    }

    public enum ReadOutcome { ClientClosed, FourLetterWord, Refused, ProtocolError }

    /// <summary>
    /// Reads the handshake (or a four-letter word), then requests until the connection ends.
    /// <paramref name="onHandshake"/> receives the ConnectRequest; the loop then waits for <see cref="Bind"/>.
    /// </summary>
    public async Task<(ReadOutcome Outcome, string? Detail)> ReadLoopAsync(Action<ConnectRequest> onHandshake)
    {
        var handshakeDone = false;
        var firstRead = true;
        var first = new byte[4];
        if (_tls is not null && await SecureAsync().ConfigureAwait(false) is { } failure)
            return (ReadOutcome.ProtocolError, failure);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_cts.Token).ConfigureAwait(false);
                var buffer = result.Buffer;

                if (firstRead && buffer.Length >= 4)
                {
                    firstRead = false;
                    buffer.Slice(0, 4).CopyTo(first);
                    if (FourLetterWords.Detect(first) is { } word)
                    {
                        _reader.AdvanceTo(buffer.GetPosition(4));
                        return (ReadOutcome.FourLetterWord, word);
                    }
                }

                var waitForBinding = false;
                while (true)
                {
                    var status = Framing.TryReadFrame(ref buffer, _maxFrame, out var frame, out var length);
                    if (status == FrameStatus.NeedMoreData) break;
                    if (status != FrameStatus.Frame)
                    {
                        Admit();
                        return (ReadOutcome.ProtocolError, $"frame length {length} outside [0, {_maxFrame}]");
                    }

                    _uncountedPackets++;
                    if (!handshakeDone)
                    {
                        ConnectRequest connect;
                        try { connect = ParseConnect(frame); }
                        catch (JuteException e) { return (ReadOutcome.ProtocolError, "bad connect request: " + e.Message); }
                        handshakeDone = true;
                        onHandshake(connect);
                        waitForBinding = true;
                        break;
                    }

                    if (!TryParseRequest(frame, out var xid, out var op, out var body, out var error))
                    {
                        Admit();
                        return (ReadOutcome.ProtocolError, error);
                    }
                    // Before any wait, the batch so far is delivered: the slots and the queue it waits on free up
                    // only as those requests are answered.
                    if (!_inflight.Wait(0))
                    {
                        if (!Admit()) return (ReadOutcome.ClientClosed, null);
                        await _inflight.WaitAsync(_cts.Token).ConfigureAwait(false);
                    }
                    if (Volatile.Read(ref _queuedBytes) >= _readPauseBytes || _limits.IsThrottled(_admitted.Count, _admittedBytes) ||
                        InflightBytesFull(_admittedBytes))
                    {
                        if (!Admit()) return (ReadOutcome.ClientClosed, null);
                        await ThrottleAsync().ConfigureAwait(false);
                    }
                    var to = DestinationOf(op, body, _route!);
                    // Only the replica's requests count in bytes: a ping is answered here, and the read loop waits for
                    // the session actor's answer to each of its packets.
                    var bytes = to == Destination.Replica ? (int)frame.Length : 0;
                    _admittedBytes += bytes;
                    _admitted.Add(new Admitted(xid, op, body, System.Diagnostics.Stopwatch.GetTimestamp(),
                        _keepWriteBodies ? WriteBodyBytes(frame, op, body) : null, to, bytes));
                    if (to == Destination.Session)
                    {
                        // As ZooKeeper, which handles auth inline in its read path: nothing more is read until the session
                        // actor has answered, so a request pipelined behind an auth packet is checked with the ids it adds.
                        var answer = _sessionAnswer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        if (!Admit()) return (ReadOutcome.ClientClosed, null);
                        await answer.Task.WaitAsync(_cts.Token).ConfigureAwait(false);
                        if (IsClosed) return (ReadOutcome.ClientClosed, null);
                        // Refused or failed: the session actor queued its answer and asked for a close after flush.
                        if (_closing) return (ReadOutcome.Refused, null);
                        continue;
                    }
                    if (_admitted.Count >= _limits.AdmitBatch && !Admit()) return (ReadOutcome.ClientClosed, null);
                }
                if (!Admit()) return (ReadOutcome.ClientClosed, null);

                if (waitForBinding)
                {
                    // Requests a client pipelined behind its ConnectRequest are already buffered: leave them unexamined
                    // so that the next read returns them at once instead of waiting for more bytes (ZooKeeper answers them).
                    _reader.AdvanceTo(buffer.Start);
                    if (await _binding.Task.ConfigureAwait(false) is null) return (ReadOutcome.Refused, null);
                    continue;
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled) return (ReadOutcome.ClientClosed, null);
            }
        }
        catch (OperationCanceledException) { return (ReadOutcome.ClientClosed, null); }
        catch (IOException) { return (ReadOutcome.ClientClosed, null); }
        catch (SocketException) { return (ReadOutcome.ClientClosed, null); }
        catch (ObjectDisposedException) { return (ReadOutcome.ClientClosed, null); }
        finally
        {
            // In process, the read loop's end (it alone reads) fails the client's further writes.
            if (_inProcess) await _reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// True when this connection's requests in flight (with <paramref name="pending"/> bytes not yet counted) hold
    /// max-inflight-bytes-per-connection. Only a connection with a request in flight can be full: one request, whatever
    /// its size, always passes.
    /// </summary>
    private bool InflightBytesFull(long pending) => _maxInflightBytes > 0 && Volatile.Read(ref _unansweredBytes) + pending >= _maxInflightBytes;

    /// <summary>
    /// Waits, without reading further requests, while <see cref="ReadPauseBytes"/> are queued to this connection,
    /// while its requests in flight hold max-inflight-bytes-per-connection, or while the server holds
    /// global-outstanding-limit requests or global-outstanding-bytes and this connection has one of them (as
    /// ZooKeeper's throttle: every connection may always have one request in progress, so none starves).
    /// </summary>
    private async Task ThrottleAsync()
    {
        var counted = false;
        while (!IsClosed)
        {
            var progress = _progress.WaitAsync();
            var belowLimit = _limits.BelowLimitAsync();
            var queueFull = Volatile.Read(ref _queuedBytes) >= _readPauseBytes || InflightBytesFull(0);
            var throttled = _limits.Throttled && Volatile.Read(ref _unanswered) > 0;
            if (!queueFull && !throttled) return;
            if (throttled && !counted) { _limits.Metrics.ThrottleWaitOnce(); counted = true; }
            // The delay only guards against a missed wake-up; the signals end the wait.
            await Task.WhenAny(progress, belowLimit, Task.Delay(100, _cts.Token)).ConfigureAwait(false);
            _cts.Token.ThrowIfCancellationRequested();
        }
        _cts.Token.ThrowIfCancellationRequested();
    }

    internal static ConnectRequest ParseConnect(ReadOnlySequence<byte> frame)
    {
        var bytes = frame.IsSingleSegment ? frame.FirstSpan : frame.ToArray();
        var r = new JuteReader(bytes);
        return ConnectRequest.Read(ref r);
    }

    /// <summary>
    /// Decodes header and body. A frame too short for a header is a protocol error (the connection closes, as in
    /// ZooKeeper); a bad body becomes <see cref="MalformedRequest"/>, answered with MarshallingError.
    /// </summary>
    internal static bool TryParseRequest(ReadOnlySequence<byte> frame, out int xid, out OpCode op, out ZkRequest body, out string? error)
    {
        var bytes = frame.IsSingleSegment ? frame.FirstSpan : frame.ToArray();
        xid = 0; op = 0; body = EmptyRequest.Instance; error = null;
        if (bytes.Length < 8) { error = $"request frame of {bytes.Length} bytes has no header"; return false; }
        var r = new JuteReader(bytes);
        var header = RequestHeader.Read(ref r);
        xid = header.Xid;
        op = header.Type;
        try { body = Requests.Read(op, ref r); }
        catch (UnknownOpException e) when (op is OpCode.Multi or OpCode.MultiRead) { body = new MalformedRequest(e.Message); }
        catch (UnknownOpException) { body = UnknownOpRequest.Instance; }
        catch (JuteException e) { body = new MalformedRequest(e.Message); }
        return true;
    }

    /// <summary>
    /// A copy of the body of <paramref name="frame"/> (after its 8-byte header) when it is a write that decoded
    /// (<see cref="TryParseRequest"/>'s <paramref name="op"/> and <paramref name="body"/>): the frame lies in the read
    /// buffer, which the next read reuses, and the forward leaves later from another thread. Null for anything else.
    /// </summary>
    internal static byte[]? WriteBodyBytes(ReadOnlySequence<byte> frame, OpCode op, ZkRequest body) =>
        Requests.IsWrite(op) && body is not (MalformedRequest or UnknownOpRequest) && frame.Length >= RequestHeaderBytes
            ? frame.Slice(RequestHeaderBytes).ToArray()
            : null;

    /// <summary>A request frame's header: xid and op code.</summary>
    private const int RequestHeaderBytes = 8;
}

