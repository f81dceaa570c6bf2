using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
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
public sealed class SessionManagerActor : ReceiveActor, IWithTimers
{
    private readonly ServerSettings _settings;
    private readonly IActorRef _replica;
    private readonly IActorRef _tracker;
    private readonly Dictionary<long, IActorRef> _sessions = new();
    private readonly Dictionary<IActorRef, long> _ids = new();
    private long _nextSessionId;
    private readonly bool _inEnsemble;
    private readonly SessionPasswords _passwords = SessionPasswords.For(Context.System);
    /// <summary>In an ensemble, clients are served only while this server follows or leads an established leader.</summary>
    private bool _serving;
    /// <summary>Read-only mode: cut off from the quorum, this member serves clients that asked for read-only.</summary>
    private bool _readOnly;
    private readonly Ensemble.EnsembleState? _ensembleState;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class EnterReadOnly { public static readonly EnterReadOnly Instance = new(); }

    public SessionManagerActor(ServerSettings settings, IActorRef replica, IActorRef tracker, long nowMs, Ensemble.EnsembleState? ensemble = null)
    {
        _settings = settings;
        _replica = replica;
        _tracker = tracker;
        _nextSessionId = SessionIds.Initial(settings.ServerId, nowMs);
        _inEnsemble = ensemble is not null;
        _ensembleState = ensemble;
        _serving = !_inEnsemble;

        Receive<Connect>(OnConnect);
        Receive<RoleChanged>(role =>
        {
            var wasServing = _serving;
            _serving = role.ServesClients;
            if (wasServing && !_serving)
            {
                // ZooKeeper's behaviour on losing the leader or the quorum: close every client connection so that
                // the clients fail over. Their sessions live on in the ensemble; the session actors here go.
                Context.System.Log.Warning("No established leader: closing {0} client sessions on this server", _sessions.Count);
                StopSessions();
            }
            // As ZooKeeper's QuorumPeer: read-only after a grace period of looking, and not once a leader is found.
            if (role.Role == PeerState.Looking && _settings.ReadOnlyMode)
            {
                if (!_readOnly && !Timers.IsTimerActive(EnterReadOnly.Instance))
                    Timers.StartSingleTimer(EnterReadOnly.Instance, EnterReadOnly.Instance, ReadOnlyGrace);
            }
            else LeaveReadOnly();
        });
        Receive<EnterReadOnly>(_ =>
        {
            _readOnly = true;
            _ensembleState!.ReadOnly = true;
            Context.System.Log.Warning("Cut off from the quorum: serving read-only clients (read-only mode)");
        });
        Receive<Terminated>(t =>
        {
            if (_ids.Remove(t.ActorRef, out var id)) _sessions.Remove(id);
        });
    }

    /// <summary>
    /// A session actor's state (its output sequence and connection) cannot be rebuilt by a restart, so a failure
    /// while handling one message is logged and the actor resumes with its state intact.
    /// </summary>
    /// <summary>How long a member looks for a leader before it serves read-only clients: ZooKeeper's max(2 s, tickTime).</summary>
    private TimeSpan ReadOnlyGrace => TimeSpan.FromMilliseconds(Math.Max(2000, _settings.TickTime.TotalMilliseconds));

    /// <summary>A leader was found: the read-only sessions end (they live on this member only) and their clients move on.</summary>
    private void LeaveReadOnly()
    {
        Timers.Cancel(EnterReadOnly.Instance);
        if (!_readOnly) return;
        _readOnly = false;
        _ensembleState!.ReadOnly = false;
        Context.System.Log.Info("Leaving read-only mode: closing {0} read-only sessions", _sessions.Count);
        StopSessions();
    }

    private void StopSessions()
    {
        foreach (var session in _sessions.Values) Context.Stop(session);
    }

    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(e => e is ActorInitializationException ? Directive.Stop : Directive.Resume);

    public static Props Props(ServerSettings settings, IActorRef replica, IActorRef tracker, long nowMs, Ensemble.EnsembleState? ensemble = null) =>
        Akka.Actor.Props.Create(() => new SessionManagerActor(settings, replica, tracker, nowMs, ensemble));

    protected override void PreStart()
    {
        if (_inEnsemble) Context.System.EventStream.Subscribe(Self, typeof(RoleChanged));
    }

    private void OnConnect(Connect connect)
    {
        var request = connect.Request;
        // Read-only mode serves only clients that asked for it (ZooKeeper closes the others' connections too).
        var readOnly = !_serving && _readOnly && request.ReadOnly;
        if (!_serving && !readOnly)
        {
            // As a ZooKeeper server that is not running: the client's connection closes and it tries the next host.
            connect.Connection.Abort();
            return;
        }
        var timeout = _settings.NegotiateTimeout(request.Timeout);
        var sessionId = request.SessionId;
        if (sessionId == 0)
        {
            sessionId = _nextSessionId++;
        }
        else if (!_passwords.Known)
        {
            // Not caught up with the deployment's secret yet (a member just synchronised): the client tries again.
            connect.Connection.Abort();
            return;
        }
        else if (!_passwords.Check(sessionId, request.Password))
        {
            // A wrong password looks like an expired session to the client, as in ZooKeeper.
            connect.Connection.Send(Frames.Encode(new ConnectResponse(0, 0, 0, new byte[16], false, request.HasReadOnlyFlag)), isResponse: false);
            connect.Connection.CloseAfterFlush();
            return;
        }

        if (!_sessions.TryGetValue(sessionId, out var session))
        {
            session = Context.ActorOf(
                SessionActor.Props(sessionId, _settings, _replica, _tracker, readOnly),
                $"session-{sessionId:x16}");
            Context.Watch(session);
            _sessions[sessionId] = session;
            _ids[session] = sessionId;
        }
        session.Tell(new Attach(connect.Connection, request, timeout));
    }
}
