using Akka.Actor;
using Akka.Event;
using Coordination.Core;

namespace Coordination.Server.Pipeline;

// Invariant 9: every request is answered, or its connection is closed, within the session timeout. In an ensemble
// a request may wait on another member (a forwarded write, sync, createSession or closeSession; a validation that
// syncs with the leader first; a proposal waiting for a quorum), and a leader change, a lost remote message or a
// refusal can leave it waiting. Leader changes are handled where they happen (a server without a leader drops its
// clients, DropClients); everything else is caught here, whatever its cause: every waiting request carries the time
// it began waiting, and one still unanswered after RequestDeadline's bound gives up the session's queue and closes
// its connection. The client then reconnects and asks again.
public sealed partial class ReplicaActor
{
    /// <summary>A session being created or validated, waiting on another member since <see cref="SinceMs"/>.</summary>
    private readonly record struct Waiting(IActorRef Session, long SinceMs, int TimeoutMs);

    private sealed class CheckStalls
    {
        public static readonly CheckStalls Instance = new();
    }

    private void ReceiveStallChecks() => Receive<CheckStalls>(_ => OnCheckStalls());

    private void StartStallChecks() =>
        Timers.StartPeriodicTimer("stalls", CheckStalls.Instance, RequestDeadline.CheckInterval(_settings.MinSessionTimeoutMs));

    private void OnCheckStalls()
    {
        var now = _monotonic();
        _core.Tick(now);
        foreach (var (sessionId, (request, _, since)) in _validations.ToList())
        {
            if (!RequestDeadline.IsOverdue(since, now, request.TimeoutMs)) continue;
            _validations.Remove(sessionId);
            _logger.Warning("Re-attachment of session 0x{0:x} unanswered after {1} ms: closing its connection", sessionId, now - since);
            request.Session.Tell(DropConnection.Instance);
        }
        foreach (var (sessionId, creating) in _creating.ToList())
        {
            if (!RequestDeadline.IsOverdue(creating.SinceMs, now, creating.TimeoutMs)) continue;
            // If the createSession commits after all, nobody is attached to the session and it expires.
            _creating.Remove(sessionId);
            _logger.Warning("Creation of session 0x{0:x} unanswered after {1} ms: closing its connection", sessionId, now - creating.SinceMs);
            creating.Session.Tell(DropConnection.Instance);
        }
    }

    /// <summary>
    /// The session's connection closed: what it asked for is answered to no one. Its reads and syncs are dropped;
    /// its writes stay queued, orphaned: they complete in order (a newer connection's requests wait behind them, as
    /// in ZooKeeper), and their answers are not taken for the newer connection's requests, which may reuse xids.
    /// </summary>
    private void OnConnectionLost(ConnectionLost m)
    {
        _watches.RemoveSession(m.SessionId);
        EndSubscriptions(m.SessionId);
        if (!_sessions.TryGetValue(m.SessionId, out var session)) return;
        if (session.ReadOnly) EndReadOnlySession(m.SessionId);   // it ends with its connection
        if (session.ReadOnly) return;
        _core.ConnectionLost(session);
    }
}
