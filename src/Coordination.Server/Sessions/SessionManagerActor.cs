using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Network;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Sessions;

/// <summary>A connection finished its handshake frame and wants a session.</summary>
public sealed record Connect(ClientConnection Connection, ConnectRequest Request);

/// <summary>
/// Parent of the session actors on this server: assigns new session ids, checks passwords, and routes a
/// re-attaching connection to the session's actor (creating one when the session was opened elsewhere or
/// before a restart; the replica then decides whether the session still exists).
/// </summary>
public sealed class SessionManagerActor : ReceiveActor
{
    private readonly ServerSettings _settings;
    private readonly IActorRef _replica;
    private readonly IActorRef _tracker;
    private readonly Dictionary<long, IActorRef> _sessions = new();
    private readonly Dictionary<IActorRef, long> _ids = new();
    private long _nextSessionId;

    public SessionManagerActor(ServerSettings settings, IActorRef replica, IActorRef tracker, long nowMs)
    {
        _settings = settings;
        _replica = replica;
        _tracker = tracker;
        _nextSessionId = SessionIds.Initial(settings.ServerId, nowMs);

        Receive<Connect>(OnConnect);
        Receive<Terminated>(t =>
        {
            if (_ids.Remove(t.ActorRef, out var id)) _sessions.Remove(id);
        });
    }

    /// <summary>
    /// A session actor's state (its output sequence and connection) cannot be rebuilt by a restart, so a failure
    /// while handling one message is logged and the actor resumes with its state intact.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(e => e is ActorInitializationException ? Directive.Stop : Directive.Resume);

    public static Props Props(ServerSettings settings, IActorRef replica, IActorRef tracker, long nowMs) =>
        Akka.Actor.Props.Create(() => new SessionManagerActor(settings, replica, tracker, nowMs));

    private void OnConnect(Connect connect)
    {
        var request = connect.Request;
        var timeout = _settings.NegotiateTimeout(request.Timeout);
        var sessionId = request.SessionId;
        if (sessionId == 0)
        {
            sessionId = _nextSessionId++;
        }
        else if (!request.Password.AsSpan().SequenceEqual(SessionIds.Password(sessionId, _settings.SessionSecret)))
        {
            // A wrong password looks like an expired session to the client, as in ZooKeeper.
            connect.Connection.Send(Frames.Encode(new ConnectResponse(0, 0, 0, new byte[16], false, request.HasReadOnlyFlag)), isResponse: false);
            connect.Connection.CloseAfterFlush();
            return;
        }

        if (!_sessions.TryGetValue(sessionId, out var session))
        {
            session = Context.ActorOf(
                SessionActor.Props(sessionId, SessionIds.Password(sessionId, _settings.SessionSecret), _settings, _replica, _tracker),
                $"session-{sessionId:x16}");
            Context.Watch(session);
            _sessions[sessionId] = session;
            _ids[session] = sessionId;
        }
        session.Tell(new Attach(connect.Connection, request, timeout));
    }
}
