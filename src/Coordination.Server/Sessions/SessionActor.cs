using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Audit;
using Coordination.Server.Metrics;
using Coordination.Server.Network;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Sessions;

/// <summary>A client connection offered to a session: a new session, or a re-attach with id and password.</summary>
public sealed record Attach(ClientConnection Connection, ConnectRequest Request, int NegotiatedTimeoutMs);

/// <summary>The connection this session was using has ended.</summary>
public sealed record ConnectionEnded(ClientConnection Connection);

/// <summary>
/// One client session on this server. It outlives its connections: a client that reconnects within its timeout
/// re-attaches here. Its connection's read loop sends requests straight to the replica (<see cref="RequestRoute"/>),
/// and auth and SASL packets here; this actor emits the replica's outputs strictly by their per-session sequence
/// number (responses and watch events alike), which keeps invariants 3 and 4 even though watch events reach it
/// through a dispatcher child.
/// </summary>
public sealed class SessionActor : ReceiveActor
{
    private readonly long _sessionId;
    private readonly ServerSettings _settings;
    private readonly IActorRef _replica;
    private readonly IActorRef _tracker;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly SortedDictionary<long, SessionOutput> _early = new();
    private long _nextSeq = 1;
    private int _timeoutMs;
    private AuthContext _auth = new([]);
    /// <summary>A SASL exchange in progress on the current connection.</summary>
    private ISaslServer? _sasl;

    /// <summary>The connection that requests come from and outputs go to, once its handshake is answered.</summary>
    private ClientConnection? _connection;
    /// <summary>A connection whose handshake waits for the replica's validation.</summary>
    private Attach? _attaching;
    private long _lastZxid;
    /// <summary>The connection whose requests the replies answer (it keeps their receive times, for latency statistics):
    /// the current one, or the last one after it ended; null after a replacement or a drop, whose answers are not timed.</summary>
    private ClientConnection? _requestsFrom;
    private readonly ServerMetrics _metrics = ServerMetrics.For(Context.System);
    private readonly IAuditSink _audit = AuditLog.For(Context.System);
    /// <summary>A read-only session (read-only mode): it lives on this member only, and ends with its connection.</summary>
    private readonly bool _readOnly;

    public SessionActor(long sessionId, ServerSettings settings, IActorRef replica, IActorRef tracker, bool readOnly = false)
    {
        _sessionId = sessionId;
        _readOnly = readOnly;
        _settings = settings;
        _replica = replica;
        _tracker = tracker;

        Receive<Attach>(OnAttach);
        Receive<Incoming>(OnIncoming);
        Receive<SessionOutput>(OnOutput);
        Receive<ConnectionEnded>(OnConnectionEnded);
        Receive<DropConnection>(_ => OnDropConnection());
    }

    public static Props Props(long sessionId, ServerSettings settings, IActorRef replica, IActorRef tracker, bool readOnly = false) =>
        Akka.Actor.Props.Create(() => new SessionActor(sessionId, settings, replica, tracker, readOnly));

    private void OnAttach(Attach attach)
    {
        // A newer connection replaces the current one (ZooKeeper closes the old connection of a moved session).
        if (_attaching is { } previous) previous.Connection.Abort();
        _requestsFrom = null;
        if (_connection is { } old)
        {
            _connection = null;
            old.Detached = true;   // before ConnectionLost: the replica drops the old connection's late requests
            old.Abort();
            _replica.Tell(new ConnectionLost(_sessionId));
        }
        _attaching = attach;
        _timeoutMs = attach.NegotiatedTimeoutMs;
        _auth = new AuthContext(ConnectionIds(attach.Connection));
        EndSasl();
        _audit.Identify(_sessionId, _auth, attach.Connection.RemoteAddress);   // before createSession commits
        attach.Connection.SessionId = _sessionId;
        attach.Connection.Owner = Self;
        attach.Connection.SessionTimeoutMs = _timeoutMs;
        if (_readOnly) _replica.Tell(new OpenReadOnlySession(_sessionId, _timeoutMs, Self, IsNew: attach.Request.SessionId == 0));
        else if (attach.Request.SessionId == 0) _replica.Tell(new CreateSession(_sessionId, _timeoutMs, Self));
        else _replica.Tell(new ValidateSession(_sessionId, _timeoutMs, Self));
    }

    /// <summary>
    /// The ids a connection brings before any auth packet: its address, and on the secure port the subject of its
    /// verified client certificate, with ("super", subject) first when that is the x509 super user (as ZooKeeper's
    /// X509AuthenticationProvider adds them at the TLS handshake).
    /// </summary>
    private List<Id> ConnectionIds(ClientConnection connection)
    {
        var ids = new List<Id> { new(Acls.IpScheme, connection.RemoteAddress) };
        if (connection.MemberHost) ids.Add(new Id(Acls.SuperScheme, "member-host"));
        if (connection.CertificateSubject is not { } subject) return ids;
        if (subject == _settings.X509SuperUser) ids.Add(new Id(Acls.SuperScheme, subject));
        ids.Add(new Id(Acls.X509Scheme, subject));
        return ids;
    }

    /// <summary>
    /// An auth or SASL packet, or a request from a session that auth.enforce refuses (the read loop decided, with the
    /// ids this actor gave it last). The read loop waits until this returns, so the next request is checked with the
    /// ids it grants.
    /// </summary>
    private void OnIncoming(Incoming incoming)
    {
        var connection = incoming.Connection;
        try
        {
            if (!ReferenceEquals(connection, _connection)) return;   // a request from a replaced connection
            switch (incoming.Body)
            {
                case AuthRequest auth:
                    Authenticate(incoming, auth);
                    break;
                case SaslRequest sasl:
                    Sasl(incoming, sasl);
                    break;
                case var _ when incoming.Op == OpCode.Auth:
                    // An undecodable auth packet closes the connection, as in ZooKeeper.
                    connection.Abort();
                    break;
                default:
                    RefuseUnauthenticated(incoming);
                    break;
            }
            connection.Auth = _auth;
        }
        finally
        {
            connection.SessionAnswered();
        }
    }

    /// <summary>
    /// As ZooKeeper 3.8's AuthenticationHelper.enforceAuthentication: any request but auth and SASL (a ping too) from a
    /// session that has not authenticated gets SessionClosedRequireAuth, and the connection (not the session) is closed.
    /// </summary>
    private void RefuseUnauthenticated(Incoming incoming)
    {
        _log.Warning("Session 0x{SessionId:x} sent {Op} without authenticating with any of {Schemes}: closing its connection",
            _sessionId, incoming.Op, string.Join(", ", _settings.EnforceAuthSchemes));
        incoming.Connection.Send(Frames.Encode(new ReplyHeader(incoming.Xid, 0, ErrorCode.SessionClosedRequireSaslAuth), null), isResponse: true);
        incoming.Connection.CloseAfterFlush();
    }

    private void Authenticate(Incoming incoming, AuthRequest auth)
    {
        var granted = auth.Scheme switch
        {
            // As ZooKeeper's IPAuthenticationProvider and X509AuthenticationProvider: "ip" re-adds the address, "x509"
            // the verified certificate of this connection (AuthFailed without one, or without TLS configured).
            Acls.IpScheme => [new Id(Acls.IpScheme, incoming.Connection.RemoteAddress)],
            Acls.X509Scheme => ConnectionIds(incoming.Connection).Where(id => id.Scheme != Acls.IpScheme).ToList(),
            _ => Acls.AuthenticateIds(auth.Scheme, auth.Auth, _settings.SuperDigest),
        };
        if (granted is null || granted.Count == 0)
        {
            // As ZooKeeper: AuthFailed, then the connection closes and the client reports AUTH_FAILED.
            _log.Info("Auth failed for session 0x{SessionId:x} scheme {Scheme}", _sessionId, auth.Scheme);
            incoming.Connection.Send(Frames.Encode(new ReplyHeader(Xids.AuthPacket, _lastZxid, ErrorCode.AuthFailed), null), isResponse: true);
            incoming.Connection.CloseAfterFlush();
            return;
        }
        var ids = _auth.Ids.ToList();
        foreach (var id in granted) if (!ids.Contains(id)) ids.Add(id);
        _auth = new AuthContext(ids);
        _audit.Identify(_sessionId, _auth, incoming.Connection.RemoteAddress);
        incoming.Connection.Send(Frames.Encode(new ReplyHeader(Xids.AuthPacket, _lastZxid, ErrorCode.Ok), null), isResponse: true);
    }

    /// <summary>
    /// One SASL step, answered at once as ZooKeeper's processSasl does (the Java client sends nothing else while it
    /// authenticates). Success adds Id("sasl", user); a failure answers AuthFailed and closes the connection.
    /// The client does not name its mechanism: ZooKeeper's server offers one (GSSAPI when its JAAS login has a
    /// Kerberos principal, else DIGEST-MD5). We take a non-empty first token as GSSAPI's first context token when
    /// Kerberos is on (DIGEST-MD5's first client token is empty), so both can be on at once.
    /// </summary>
    private void Sasl(Incoming incoming, SaslRequest request)
    {
        _sasl ??= _settings.Kerberos.Enabled && request.Token is { Length: > 0 }
            ? new GssapiServer(_settings.Kerberos)
            : new DigestMd5Server(_settings.SaslUsers);
        byte[]? token;
        try
        {
            token = _sasl.Evaluate(request.Token ?? []);
        }
        catch (SaslFailure e)
        {
            _log.Info("SASL authentication failed for session 0x{SessionId:x}: {Reason}", _sessionId, e.Message);
            EndSasl();
            // As ZooKeeper, the failure carries a (null) token after the header: the Java client reads one before it
            // notices the error, and only then reports AuthFailed instead of reconnecting. When SASL is required
            // (auth.enforce names sasl) the error is SessionClosedRequireAuth instead.
            var error = _settings.EnforceAuthSchemes.Contains(Acls.SaslScheme) ? ErrorCode.SessionClosedRequireSaslAuth : ErrorCode.AuthFailed;
            var frame = new System.Buffers.ArrayBufferWriter<byte>(32);
            Framing.WriteFrame(frame, incoming.Xid, (ref JuteWriter w, int xid) =>
            {
                new ReplyHeader(xid, 0, error).Write(ref w);
                new SaslResponse(null).Write(ref w);
            });
            incoming.Connection.Send(frame.WrittenSpan.ToArray(), isResponse: true);
            incoming.Connection.CloseAfterFlush();
            return;
        }
        if (_sasl.IsComplete)
        {
            var id = new Id(Acls.SaslScheme, _sasl.AuthorizationId!);
            if (!_auth.Ids.Contains(id)) _auth = new AuthContext([.. _auth.Ids, id]);
            // zookeeper.superUser: ZooKeeper adds Id("super", "") after the sasl id.
            var super = new Id(Acls.SuperScheme, "");
            if (_settings.SaslSuperUsers.Contains(id.Ident) && !_auth.Ids.Contains(super)) _auth = new AuthContext([.. _auth.Ids, super]);
            _audit.Identify(_sessionId, _auth, incoming.Connection.RemoteAddress);
            _log.Info("Session 0x{SessionId:x} authenticated with SASL as {User}", _sessionId, _sasl.AuthorizationId);
            EndSasl();
        }
        incoming.Connection.Send(new ReplyHeader(incoming.Xid, _lastZxid, ErrorCode.Ok), new SaslResponse(token), isResponse: true);
    }

    /// <summary>Drops the SASL exchange in progress and the native security context it may hold.</summary>
    private void EndSasl()
    {
        _sasl?.Dispose();
        _sasl = null;
    }

    private void OnOutput(SessionOutput output)
    {
        if (output.Seq < 0) { Emit(output); return; }     // unsequenced: the replica no longer tracks this session
        if (output.Seq != _nextSeq)
        {
            _early[output.Seq] = output;
            return;
        }
        Emit(output);
        _nextSeq++;
        while (_early.Count > 0 && _early.Remove(_nextSeq, out var next))
        {
            Emit(next);
            _nextSeq++;
        }
    }

    private void Emit(SessionOutput output)
    {
        switch (output)
        {
            case Reply reply:
                if (reply.Zxid > _lastZxid) _lastZxid = reply.Zxid;
                long latencyMs = 0;
                if (_requestsFrom is { } from && from.TryTakeReceived(out var receivedTicks, out var op))
                {
                    latencyMs = _metrics.Stats.RecordLatency(receivedTicks);
                    _metrics.RecordRequest(op, receivedTicks);
                    Metrics.ServerTelemetry.TraceRequest(op, receivedTicks, reply.Err, _sessionId, reply.Zxid);
                }
                if (_connection is { } c)
                {
                    c.LastLatencyMs = latencyMs;
                    c.LastResponseMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    c.LastZxid = _lastZxid;
                    c.Send(new ReplyHeader(reply.Xid, reply.Zxid, reply.Err), reply.Body, isResponse: true);
                    if (c.IsLastReply(reply.Xid)) c.CloseAfterFlush();
                }
                break;
            case Notification n:
                // ZooKeeper's ServerCnxn.process(event, znodeAcl): the session's auth as it is now must have READ.
                if (n.Acl is null || Acls.Check(n.Acl, Perms.Read, _auth)) _connection?.Send(n.Frame, isResponse: false);
                break;
            case FeedMark mark:
                _replica.Tell(new FeedMarkReached(mark.SubscriptionId));
                break;
            case SessionValidated v:
                CompleteHandshake(v);
                break;
            case SessionEnded ended:
                _log.Info("Session 0x{SessionId:x} {Outcome}", _sessionId, ended.Expired ? "expired" : "closed");
                _attaching?.Connection.CloseAfterFlush();
                _connection?.CloseAfterFlush();
                _attaching = null;
                _connection = null;
                Context.Stop(Self);
                break;
        }
    }

    private void CompleteHandshake(SessionValidated validated)
    {
        if (_attaching is not { } attach) return;
        _attaching = null;
        var connection = attach.Connection;
        var request = attach.Request;
        if (!validated.Valid)
        {
            connection.Send(Frames.Encode(new ConnectResponse(0, 0, 0, new byte[16], false, request.HasReadOnlyFlag)), isResponse: false);
            connection.CloseAfterFlush();
            Context.Stop(Self);
            return;
        }
        if (request.LastZxidSeen > validated.LastZxid)
        {
            // The client has seen a newer state than ours; it must try another server (ZooKeeper refuses the same way).
            _log.Info("Refusing session 0x{SessionId:x}: client saw zxid 0x{ClientZxid:x}, ours is 0x{Zxid:x}", _sessionId, request.LastZxidSeen, validated.LastZxid);
            connection.Abort();
            return;
        }
        // Known here: the session exists, so this server has applied the secret that was committed before it.
        if (SessionPasswords.For(Context.System).For(_sessionId) is not { } password)
        {
            connection.Abort();
            return;
        }
        _lastZxid = validated.LastZxid;
        connection.LastZxid = _lastZxid;   // what its pings answer until a reply carries a newer one
        connection.Send(Frames.Encode(new ConnectResponse(0, _timeoutMs, _sessionId, password, _readOnly, request.HasReadOnlyFlag)), isResponse: false);
        _connection = connection;
        _requestsFrom = connection;
        _log.Debug("Session 0x{SessionId:x} connected from {ClientAddress}", _sessionId, connection.RemoteAddress);
        var touch = new SessionTouched(_sessionId, _timeoutMs);
        _tracker.Tell(touch);
        // Touches after this one come from the read loop, at most twice per tick (ZooKeeper's followers batch touches
        // per tick too).
        connection.Bind(new RequestRoute(_sessionId, Self, _replica, _tracker, touch, _settings.TickTime / 2, _audit, _settings.EnforceAuthSchemes), _auth);
    }

    /// <summary>Stopped by the session manager (this server stopped serving): the client's connection closes with it.</summary>
    protected override void PostStop()
    {
        EndSasl();
        _attaching?.Connection.Abort();
        _connection?.Abort();
    }

    /// <summary>The replica gave up on this session's requests here: the client reconnects and asks again.</summary>
    private void OnDropConnection()
    {
        if (_readOnly)
        {
            // A read-only session the replica refused or gave up: it ends here (PostStop closes the connection).
            _replica.Tell(new ConnectionLost(_sessionId));
            Context.Stop(Self);
            return;
        }
        _attaching?.Connection.Abort();
        _attaching = null;
        if (_connection is not { } connection) return;
        _log.Warning("Closing the connection of session 0x{SessionId:x}: a request could not be completed on this server", _sessionId);
        _connection = null;
        _requestsFrom = null;
        connection.Detached = true;   // before ConnectionLost: the replica drops its late requests
        connection.Abort();
        _replica.Tell(new ConnectionLost(_sessionId));
    }

    private void OnConnectionEnded(ConnectionEnded ended)
    {
        if (ReferenceEquals(ended.Connection, _attaching?.Connection)) _attaching = null;
        if (!ReferenceEquals(ended.Connection, _connection)) return;
        _connection = null;
        _replica.Tell(new ConnectionLost(_sessionId));
        if (_readOnly) Context.Stop(Self);
    }
}
