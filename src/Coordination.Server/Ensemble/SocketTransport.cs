using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport;
using Coordination.Protocol;
using Google.Protobuf;

namespace Coordination.Server.Ensemble;

/// <summary>The <c>akka.remote.coordination-socket</c> section (written by <see cref="EnsembleSettings.RemotingConfig"/>).</summary>
public sealed record SocketTransportSettings(
    string Hostname,
    int Port,
    int MaximumFrameBytes,
    int SendBufferBytes,
    int ReceiveBufferBytes,
    TimeSpan ConnectionTimeout,
    TimeSpan SilenceTimeout,
    SocketTransportAuth? Auth)
{
    public static SocketTransportSettings Create(Config config) => new(
        config.GetString("hostname", "127.0.0.1"),
        config.GetInt("port", 0),
        checked((int)(config.GetByteSize("maximum-frame-size") ?? 4L << 20)),
        checked((int)(config.GetByteSize("send-buffer-size") ?? 8L << 20)),
        checked((int)(config.GetByteSize("receive-buffer-size") ?? 8L << 20)),
        config.GetTimeSpan("connection-timeout", TimeSpan.FromSeconds(15)),
        config.GetTimeSpan("silence-timeout", TimeSpan.Zero),
        SocketTransportAuth.Create(config.GetConfig("auth"), MemberTlsSettings.Create(config.GetConfig("ssl")), config.GetConfig("sasl")));
}

/// <summary>
/// The <c>auth</c>, <c>ssl</c> and <c>sasl</c> parts of the transport's section: the shared secret (optional with
/// member TLS or required SASL), this member's id, every member's endpoint (host:port), the member TLS and SASL
/// settings. Null when <c>insecure = on</c> and neither a secret, TLS nor SASL is set: links are then not authenticated.
/// </summary>
public sealed record SocketTransportAuth(byte[]? Secret, long MyId, MemberRegistry Registry,
    TimeSpan HandshakeTimeout, int MaxHandshakesPerAddress, MemberTlsSettings Tls, MemberSaslSettings Sasl)
{
    /// <summary>The members now (they change with reconfigurations, see <see cref="MemberRegistry"/>).</summary>
    public IReadOnlyDictionary<long, (string Host, int Port)> Members => Registry.Members;

    /// <summary>Handshakes in progress on the accepting side at most; connections beyond are closed at once.</summary>
    public const int MaxPendingHandshakes = 64;

    public static SocketTransportAuth? Create(Config? auth, MemberTlsSettings tls, Config? sasl)
    {
        var secret = auth?.GetString("secret-base64", "") ?? "";
        var saslOn = sasl?.GetBoolean("enabled", false) == true;
        if (secret.Length == 0 && !tls.Enabled && !saslOn)
        {
            if (auth?.GetBoolean("insecure", false) == true) return null;
            throw new ConfigurationException("akka.remote.coordination-socket.auth: no secret, no TLS, no SASL, and insecure is not on " +
                "(coordination.ensemble.auth, .ssl and .sasl in the server's config)");
        }
        if (auth is null) throw new ConfigurationException("akka.remote.coordination-socket.auth: member TLS and SASL need member-id and members");
        var members = new Dictionary<long, (string, int)>();
        foreach (var (id, value) in auth!.GetConfig("members").Root.GetObject().Items)
        {
            if (!long.TryParse(id, out var memberId) || !EnsembleSettings.TrySplit(value.GetString(), out var host, out var port))
                throw new ConfigurationException($"akka.remote.coordination-socket.auth.members: '{id} = {value}' is not id = host:port");
            members[memberId] = (host, port);
        }
        var saslSettings = MemberSaslSettings.Create(sasl, members.Keys);
        if (secret.Length == 0 && !tls.Enabled && !(saslSettings.ServerRequire && saslSettings.LearnerRequire))
            throw new ConfigurationException(MemberSaslSettings.NotAlone);
        return new SocketTransportAuth(secret.Length == 0 ? null : Convert.FromBase64String(secret), auth.GetLong("member-id"), new MemberRegistry(members),
            tls.Enabled ? tls.HandshakeTimeout : auth.GetTimeSpan("handshake-timeout", TimeSpan.FromSeconds(5)),
            auth.GetInt("max-handshakes-per-address", 8), tls, saslSettings);
    }

    /// <summary>The configured host of member <paramref name="id"/>; null for an id that is no member's.</summary>
    public string? HostOf(long id) => Members.TryGetValue(id, out var endpoint) ? endpoint.Host : null;

    /// <summary>The member whose endpoint is this host and port, if any.</summary>
    public long? MemberAt(string host, int port)
    {
        foreach (var (id, endpoint) in Members)
            if (endpoint.Port == port && string.Equals(endpoint.Host, host, StringComparison.OrdinalIgnoreCase)) return id;
        return null;
    }

    public MemberLink LinkTo(long id) => Members.TryGetValue(id, out var endpoint)
        ? new(id, endpoint.Host, endpoint.Port)
        : throw new MemberAuthException($"server {id} stopped being a member during its handshake");
}

/// <summary>
/// An Akka.Remote transport over plain TCP sockets, for the links between ensemble members. Akka's own layers
/// (handshake, heartbeats, the throttler and failure-injector adapters, quarantine) sit on top unchanged; only
/// the bytes move differently. A frame is written by the thread that calls <see cref="AssociationHandle.Write"/>
/// (the endpoint writer) and delivered from the socket's receive completion. DotNetty hands every message to an
/// event-loop thread on each side, and those two hand-offs per message were most of a 3-node write's latency
/// at low load (README, Benchmarks). Frames are a 4-byte big-endian length and the payload, as DotNetty's.
/// <para>With a secret configured (the default for a member, <see cref="MemberAuthSettings"/>), a connection is
/// handed to Akka only after <see cref="MemberHandshake"/> has authenticated the member at the other end, and from
/// then on every Akka PDU on it must name that member's address (<see cref="MemberLink"/>). A failure closes that
/// socket, logs a warning with the remote endpoint and counts in <c>member_auth_failures</c>.</para>
/// <para>With member TLS (<see cref="MemberTls"/>) the link is an SslStream, mutual on both sides, the handshake (HMAC
/// with a secret, the member's id claim without) runs inside it, and the claimed member's host must match the peer's
/// certificate. Without TLS, frames go straight to and from the socket, as before.</para>
/// <para>At most <see cref="SocketTransportAuth.MaxPendingHandshakes"/> handshakes are in flight, and at most
/// <c>max-handshakes-per-address</c> from one remote IP, so one source holding stalled connections cannot starve
/// the members' own.</para>
/// </summary>
public sealed class SocketTransport : Transport
{
    public const string Scheme = "tcp";

    private readonly SocketTransportSettings _settings;
    private readonly ILoggingAdapter _log;
    private readonly TaskCompletionSource<IAssociationEventListener> _associationListener =
        new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<SocketAssociation, bool> _open = new(ReferenceEqualityComparer.Instance);
    private readonly MemberTls? _tls;
    private readonly Dictionary<IPAddress, int> _handshakesFrom = new();
    private Socket? _listener;
    private Timer? _silenceWatch;
    private volatile bool _shutDown;
    private int _pendingHandshakes;
    private long _lastRefusalLogged = Environment.TickCount64 - 1000;
    private long _refusalsNotLogged;

    public SocketTransport(ActorSystem system, Config config)
    {
        System = system;
        Config = config;
        _settings = SocketTransportSettings.Create(config);
        _log = Akka.Event.Logging.GetLogger(system, typeof(SocketTransport));
        // An embedded member's transport runs beside the host's own (its protocol must differ, e.g. akka.coord).
        SchemeIdentifier = config.GetString("scheme-identifier", Scheme);
        MaximumPayloadBytes = _settings.MaximumFrameBytes;
        if (_settings.Auth?.Tls is { Enabled: true } tls)
            _tls = new MemberTls(tls, message => _log.Warning(message));
        _settings.Auth?.Registry.AttachTo(system);
        if (_settings.Auth is null)
            _log.Warning("MEMBER AUTHENTICATION IS OFF (coordination.ensemble.auth.insecure = on): anyone who reaches port {0} " +
                "can act as a member of this ensemble", _settings.Port);
    }

    private Metrics.EnsembleMetrics Metrics => Coordination.Server.Metrics.ServerMetrics.For(System).Ensemble;

    /// <summary>A link that failed authentication: closed, logged with its remote endpoint, counted. A flood of them
    /// must not flood the log: at most one warning per 100 ms, which says how many went unlogged before it.</summary>
    internal void Refused(EndPoint? remote, string why)
    {
        Metrics.MemberAuthFailed();
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref _lastRefusalLogged);
        if (now - last < 100 || Interlocked.CompareExchange(ref _lastRefusalLogged, now, last) != last)
        {
            Interlocked.Increment(ref _refusalsNotLogged);
            return;
        }
        var unlogged = Interlocked.Exchange(ref _refusalsNotLogged, 0);
        _log.Warning("Refused a member link with {0}: {1}{2}", remote?.ToString() ?? "?", why,
            unlogged > 0 ? $" ({unlogged} more refused since the last warning, not logged)" : "");
    }

    public SocketTransportSettings Settings => _settings;

    public override bool IsResponsibleFor(Address remote) => true;

    public override async Task<(Address, TaskCompletionSource<IAssociationEventListener>)> Listen()
    {
        var ip = await ResolveAsync(_settings.Hostname).ConfigureAwait(false);
        var listener = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // A restarted member must get its port back while the old connections sit in TIME_WAIT.
            Network.ListenSockets.AllowRebindAfterClose(listener);
            listener.Bind(new IPEndPoint(ip, _settings.Port));
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        if (_settings.SilenceTimeout > TimeSpan.Zero)
        {
            var period = TimeSpan.FromTicks(Math.Min(TimeSpan.TicksPerSecond, _settings.SilenceTimeout.Ticks / 4));
            _silenceWatch = new Timer(_ => CloseSilentLinks(), null, period, period);
        }
        var local = new Address(SchemeIdentifier, System.Name, _settings.Hostname, ((IPEndPoint)listener.LocalEndPoint!).Port);
        _ = AcceptAsync(listener, local);
        return (local, _associationListener);
    }

    private async Task AcceptAsync(Socket listener, Address local)
    {
        // Akka registers its listener once the whole chain is up; nothing is accepted before.
        var events = await _associationListener.Task.ConfigureAwait(false);
        while (!_shutDown)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception) when (_shutDown)
            {
                return;
            }
            catch (SocketException e)
            {
                _log.Warning("Accepting a remoting connection failed: {0}", e.SocketErrorCode);
                await Task.Delay(100).ConfigureAwait(false);   // e.g. out of file descriptors: do not spin
                continue;
            }
            Configure(socket);
            if (_settings.Auth is not { } auth) Admit(socket, local, events, null, null);
            else if (StartHandshake(socket, auth) is { } from) _ = AuthenticateAsync(socket, from, auth, local, events);
        }
    }

    private void Admit(Socket socket, Address local, IAssociationEventListener events, MemberLink? link, SslStream? tls)
    {
        var remote = (IPEndPoint)socket.RemoteEndPoint!;
        // The peer's real address comes with Akka's handshake; until then it is known by its socket.
        var handle = Register(new SocketAssociation(this, local, new Address(SchemeIdentifier, System.Name, remote.Address.ToString(), remote.Port), socket, link, tls));
        events.Notify(new InboundAssociation(handle));
    }

    /// <summary>Counts a new handshake against its remote IP's share; null (the socket closed, refused) past it.</summary>
    private IPAddress? StartHandshake(Socket socket, SocketTransportAuth auth)
    {
        var remote = socket.RemoteEndPoint as IPEndPoint;
        var from = remote?.Address ?? IPAddress.None;
        lock (_handshakesFrom)
        {
            var inFlight = _handshakesFrom.GetValueOrDefault(from);
            if (inFlight < auth.MaxHandshakesPerAddress)
            {
                _handshakesFrom[from] = inFlight + 1;
                return from;
            }
        }
        Refused(remote, $"{auth.MaxHandshakesPerAddress} handshakes from {from} already in progress (max-handshakes-per-address)");
        socket.Dispose();
        return null;
    }

    private void EndHandshake(IPAddress from)
    {
        lock (_handshakesFrom)
        {
            var left = _handshakesFrom[from] - 1;
            if (left == 0) _handshakesFrom.Remove(from);
            else _handshakesFrom[from] = left;
        }
    }

    /// <summary>Accepting side: the handshake runs off the accept loop, bounded in time and in number.</summary>
    private async Task AuthenticateAsync(Socket socket, IPAddress from, SocketTransportAuth auth, Address local, IAssociationEventListener events)
    {
        var remote = socket.RemoteEndPoint;
        SslStream? tls = null;
        try
        {
            if (Interlocked.Increment(ref _pendingHandshakes) > SocketTransportAuth.MaxPendingHandshakes)
                throw new MemberAuthException($"more than {SocketTransportAuth.MaxPendingHandshakes} handshakes in progress");
            using var timeout = new CancellationTokenSource(auth.HandshakeTimeout);
            long member;
            try
            {
                if (_tls is not null) tls = await _tls.AcceptAsync(socket, timeout.Token).ConfigureAwait(false);
                await using var plain = tls is null ? new NetworkStream(socket, ownsSocket: false) : null;
                member = await MemberHandshake.AcceptAsync((Stream?)tls ?? plain!, auth.Secret, auth.Sasl, auth.MyId, auth.HostOf, timeout.Token).ConfigureAwait(false);
                if (tls is not null) _tls!.CheckPeer(tls, member, auth.HostOf(member) ?? throw new MemberAuthException($"server {member} is no member"));
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                throw new MemberAuthException($"no handshake within {auth.HandshakeTimeout}");
            }
            if (_shutDown) throw new ObjectDisposedException(nameof(SocketTransport));
            Admit(socket, local, events, auth.LinkTo(member), tls);
        }
        catch (Exception e)
        {
            if (e is MemberAuthException) Refused(remote, e.Message);
            else if (!_shutDown) Refused(remote, $"{(tls is null && _tls is not null ? "TLS " : "")}handshake failed: {e.Message}");
            tls?.Dispose();
            socket.Dispose();
        }
        finally
        {
            Interlocked.Decrement(ref _pendingHandshakes);
            EndHandshake(from);
        }
    }

    public override async Task<AssociationHandle> Associate(Address remoteAddress)
    {
        if (_shutDown) throw new InvalidAssociationException("the transport is shut down");
        if (remoteAddress.Host is not { } host || remoteAddress.Port is not { } port)
            throw new InvalidAssociationException($"{remoteAddress} has no host and port");
        var auth = _settings.Auth;
        var member = auth?.MemberAt(host, port);
        if (auth is not null && member is null)
            throw new InvalidAssociationException($"{remoteAddress} is not the endpoint of a configured member");
        var ip = await ResolveAsync(host).ConfigureAwait(false);
        if (ip.Equals(IPAddress.Any)) ip = IPAddress.Loopback;
        else if (ip.Equals(IPAddress.IPv6Any)) ip = IPAddress.IPv6Loopback;
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        Configure(socket);
        using (var timeout = new CancellationTokenSource(_settings.ConnectionTimeout))
        {
            try
            {
                await socket.ConnectAsync(new IPEndPoint(ip, port), timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                socket.Dispose();
                throw new InvalidAssociationException($"Failed to associate with {remoteAddress}: {e.Message}", e);
            }
        }
        SslStream? tls = null;
        if (auth is not null)
        {
            using var timeout = new CancellationTokenSource(auth.HandshakeTimeout);
            try
            {
                if (_tls is not null) tls = await _tls.DialAsync(socket, host, timeout.Token).ConfigureAwait(false);
                await using var plain = tls is null ? new NetworkStream(socket, ownsSocket: false) : null;
                await MemberHandshake.DialAsync((Stream?)tls ?? plain!, auth.Secret,
                    auth.Sasl.LearnerRequire ? () => auth.Sasl.NewClient(host) : null, auth.MyId, member!.Value, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                var why = e is OperationCanceledException ? $"no handshake within {auth.HandshakeTimeout}" : e.Message;
                if (e is MemberAuthException or OperationCanceledException or AuthenticationException) Refused(socket.RemoteEndPoint, why);
                tls?.Dispose();
                socket.Dispose();
                throw new InvalidAssociationException($"Failed to associate with {remoteAddress}: {why}", e);
            }
        }
        var local = new Address(SchemeIdentifier, System.Name, _settings.Hostname, ((IPEndPoint)socket.LocalEndPoint!).Port);
        return Register(new SocketAssociation(this, local, remoteAddress, socket, member is { } id ? auth!.LinkTo(id) : null, tls));
    }

    private SocketAssociation Register(SocketAssociation handle)
    {
        _open[handle] = true;
        handle.ReadWhenListened();
        if (_shutDown) handle.Close();
        return handle;
    }

    internal void Forget(SocketAssociation handle) => _open.TryRemove(handle, out _);

    /// <summary>
    /// Closes every link on which nothing arrived for <see cref="SocketTransportSettings.SilenceTimeout"/>, so that Akka
    /// dials a fresh one. Akka's transport heartbeats keep a healthy idle link talking, so silence means a half-open
    /// connection (a firewall or NAT that forgot the flow, a peer whose host vanished), which TCP itself notices only
    /// after minutes and Akka's transport failure detector after two: until then Zab between the two members is dead.
    /// ZooKeeper's learners get the same from their socket read timeout (syncLimit × tickTime).
    /// </summary>
    private void CloseSilentLinks()
    {
        var limitMs = (long)_settings.SilenceTimeout.TotalMilliseconds;
        var now = Environment.TickCount64;
        foreach (var handle in _open.Keys)
        {
            if (now - handle.LastReceivedMs <= limitMs) continue;
            Metrics.SilentMemberLinkClosed();
            _log.Warning("Closing the member link with {0}: nothing arrived on it for {1} ms (a half-open connection); a new one will be dialed",
                handle.RemoteAddress, now - handle.LastReceivedMs);
            handle.Close(silenced: true);
        }
    }

    internal ILoggingAdapter Log => _log;

    public override Task<bool> Shutdown()
    {
        _shutDown = true;
        _silenceWatch?.Dispose();
        _listener?.Dispose();
        foreach (var handle in _open.Keys) handle.Close();
        return Task.FromResult(true);
    }

    private void Configure(Socket socket)
    {
        socket.NoDelay = true;
        socket.SendBufferSize = _settings.SendBufferBytes;
        socket.ReceiveBufferSize = _settings.ReceiveBufferBytes;
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
    }

    private static async Task<IPAddress> ResolveAsync(string host)
    {
        if (IPAddress.TryParse(host, out var ip)) return ip;
        var addresses = await Dns.GetHostAddressesAsync(host).ConfigureAwait(false);
        return addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.First();
    }
}

/// <summary>One TCP connection between two members. Writes are framed and sent on the caller's thread; a send
/// that cannot finish at once queues later frames, which go out together when it completes.</summary>
internal sealed class SocketAssociation : AssociationHandle
{
    private const int HeaderBytes = 4;

    private readonly SocketTransport _transport;
    private readonly Socket _socket;
    /// <summary>Member TLS over <see cref="_socket"/>; null without: frames then go straight to the socket.</summary>
    private readonly SslStream? _tls;
    /// <summary>The member this link was authenticated as; null when authentication is off.</summary>
    private readonly MemberLink? _link;
    private readonly int _maxFrame;
    // Beyond this many queued bytes Write answers false and the endpoint writer backs off (a stalled peer).
    private readonly long _maxQueuedBytes;
    private readonly object _sendLock = new();
    private List<(byte[] Frame, int Length)>? _queued;
    private long _queuedBytes;
    private bool _sending;
    private int _closed;
    private long _lastReceivedMs = Environment.TickCount64;
    private volatile bool _silenced;

    /// <summary>When bytes last arrived on this link (<see cref="Environment.TickCount64"/>), or when it opened.</summary>
    public long LastReceivedMs => Volatile.Read(ref _lastReceivedMs);

    public SocketAssociation(SocketTransport transport, Address local, Address remote, Socket socket, MemberLink? link, SslStream? tls) : base(local, remote)
    {
        _transport = transport;
        _socket = socket;
        _tls = tls;
        _link = link;
        _maxFrame = transport.Settings.MaximumFrameBytes;
        _maxQueuedBytes = Math.Max(transport.Settings.SendBufferBytes, 4L * _maxFrame);
    }

    public void ReadWhenListened() =>
        ReadHandlerSource.Task.ContinueWith(t => _ = ReadAsync(t.Result),
            CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <remarks>Small frames are rented from the shared array pool and returned once sent: every remote message
    /// (seven per follower write) passes here, and a new array per frame was a copy of the whole message per send.</remarks>
    public override bool Write(ByteString payload)
    {
        if (Volatile.Read(ref _closed) != 0 || payload.Length > _maxFrame) return false;
        var length = HeaderBytes + payload.Length;
        var frame = RentFrame(length);
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.Span.CopyTo(frame.AsSpan(HeaderBytes));
        lock (_sendLock)
        {
            if (_sending)
            {
                if (_queuedBytes + length > _maxQueuedBytes)
                {
                    ReturnFrame(frame);
                    return false;
                }
                (_queued ??= new List<(byte[], int)>()).Add((frame, length));
                _queuedBytes += length;
                return true;
            }
            _sending = true;
        }
        _ = SendAsync(frame, length);
        return true;
    }

    private async Task SendAsync(byte[] frame, int length)
    {
        try
        {
            while (true)
            {
                // On Linux a send that fits the socket buffer completes synchronously, on this thread.
                if (_tls is null)
                    for (var sent = 0; sent < length;)
                        sent += await _socket.SendAsync(frame.AsMemory(sent, length - sent), SocketFlags.None).ConfigureAwait(false);
                else await _tls.WriteAsync(frame.AsMemory(0, length)).ConfigureAwait(false);
                // Sent: the socket (or TLS stream) holds no reference to it any more. (A frame whose send failed is left
                // to the collector, as are frames still queued when the link closes.)
                ReturnFrame(frame);
                lock (_sendLock)
                {
                    if (_queued is not { Count: > 0 } queued)
                    {
                        _sending = false;
                        return;
                    }
                    (frame, length) = queued.Count == 1 ? queued[0] : Concat(queued, (int)_queuedBytes);
                    queued.Clear();
                    _queuedBytes = 0;
                }
            }
        }
        catch (Exception e)
        {
            if (Volatile.Read(ref _closed) == 0) _transport.Log.Debug("Remoting send to {0} failed: {1}", RemoteAddress, e.Message);
            lock (_sendLock) _sending = false;
            Close();
        }
    }

    /// <summary>The queued frames as one rented frame; theirs go back to the pool.</summary>
    private static (byte[] Frame, int Length) Concat(List<(byte[] Frame, int Length)> frames, int total)
    {
        var joined = RentFrame(total);
        var at = 0;
        foreach (var (f, length) in frames)
        {
            f.AsSpan(0, length).CopyTo(joined.AsSpan(at));
            at += length;
            ReturnFrame(f);
        }
        return (joined, total);
    }

    // Only small frames (every Zab and forwarded message of a write) are pooled; a snapshot part or a large sync
    // is allocated and left to the collector, so that the pool never holds megabytes for a rare message.
    private const int PooledFrameBytes = 64 * 1024;

    private static byte[] RentFrame(int length) => length <= PooledFrameBytes ? ArrayPool<byte>.Shared.Rent(length) : new byte[length];

    private static void ReturnFrame(byte[] frame)
    {
        if (frame.Length <= PooledFrameBytes) ArrayPool<byte>.Shared.Return(frame);
    }

    private async Task ReadAsync(IHandleEventListener listener)
    {
        var frames = new MemberFrameReader(_maxFrame);
        var link = _link;
        MemberFrameReader.Deliver deliver = payload =>
        {
            if (link is not null && !link.Admits(payload, out var claimed))
                throw new MemberAuthException($"member {link.MemberId} ({link.Endpoint}) sent a message that claims to come from {claimed}");
            listener.Notify(new InboundPayload(ByteString.CopyFrom(payload)));
        };
        var reason = DisassociateInfo.Unknown;
        try
        {
            while (true)
            {
                var read = _tls is null
                    ? await _socket.ReceiveAsync(frames.FreeSpace, SocketFlags.None).ConfigureAwait(false)
                    : await _tls.ReadAsync(frames.FreeSpace).ConfigureAwait(false);
                if (read == 0) break;
                Volatile.Write(ref _lastReceivedMs, Environment.TickCount64);
                frames.Received(read, deliver);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.OperationAborted)
        {
            reason = DisassociateInfo.Shutdown;
        }
        catch (ObjectDisposedException)
        {
            reason = DisassociateInfo.Shutdown;
        }
        catch (IOException e) when (_tls is not null && e.InnerException is SocketException or ObjectDisposedException)
        {
            reason = DisassociateInfo.Shutdown;   // the same resets, seen through the SslStream
        }
        catch (MemberAuthException e)
        {
            _transport.Refused(SafeRemoteEndPoint(), e.Message);
        }
        catch (Exception e)
        {
            _transport.Log.Warning("Remoting connection with {0} failed: {1}", RemoteAddress, e.Message);
        }
        Close();
        // Closed for silence: Unknown, like a connection the peer ended, so that Akka redials (Shutdown would tell it the peer is going away).
        listener.Notify(new Disassociated(_silenced ? DisassociateInfo.Unknown : reason));
    }

    private EndPoint? SafeRemoteEndPoint()
    {
        try
        {
            return _socket.RemoteEndPoint;
        }
        catch (Exception)
        {
            return null;
        }
    }

#pragma warning disable CS0672 // Akka calls this one; the overload with a reason logs and then calls it.
    public override void Disassociate() => Close();
#pragma warning restore CS0672

    public void Close(bool silenced = false)
    {
        if (silenced) _silenced = true;
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _transport.Forget(this);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
            // Already reset by the peer: disposing is all that is left.
        }
        _tls?.Dispose();
        _socket.Dispose();
    }
}

/// <summary>
/// The receive side of a member link's framing, apart from the socket so that it can be fuzzed: bytes land in
/// <see cref="FreeSpace"/>, <see cref="Received"/> hands out every complete frame's payload and keeps the rest.
/// Frames are the client port's (<see cref="Framing.TryReadFrame"/>); an empty frame carries nothing.
/// </summary>
internal sealed class MemberFrameReader(int maxFrame)
{
    private const int HeaderBytes = 4;

    public delegate void Deliver(ReadOnlySpan<byte> payload);

    private byte[] _buffer = new byte[64 * 1024];
    private int _filled;

    /// <summary>Where the next received bytes go; never empty.</summary>
    public Memory<byte> FreeSpace => _buffer.AsMemory(_filled);

    /// <summary>
    /// Takes <paramref name="count"/> bytes just written into <see cref="FreeSpace"/>. Throws
    /// <see cref="InvalidDataException"/> for a length prefix that is negative or over the maximum frame size.
    /// </summary>
    public void Received(int count, Deliver deliver)
    {
        _filled += count;
        var unread = new ReadOnlySequence<byte>(_buffer, 0, _filled);
        FrameStatus status;
        int length;
        while ((status = Framing.TryReadFrame(ref unread, maxFrame, out var frame, out length)) == FrameStatus.Frame)
            if (length > 0) deliver(frame.FirstSpan);
        if (status is FrameStatus.TooLarge or FrameStatus.Negative)
            throw new InvalidDataException($"a remoting frame of {length} bytes (maximum-frame-size is {maxFrame})");
        var consumed = _filled - (int)unread.Length;
        if (consumed > 0)
        {
            Buffer.BlockCopy(_buffer, consumed, _buffer, 0, _filled - consumed);
            _filled -= consumed;
        }
        // A frame longer than the buffer has filled it: grow (doubling, up to that frame) as its bytes arrive, never
        // ahead of them. Anyone can connect before Akka's handshake; a length prefix alone must not cost memory.
        if (_filled == _buffer.Length) Array.Resize(ref _buffer, (int)Math.Min(2L * _buffer.Length, HeaderBytes + (long)length));
    }
}
