using Akka.Actor;
using Akka.Event;
using Coordination.Core;

namespace Coordination.Server.Pipeline;

// Invariant 9: every request is answered, or its connection is closed, within the session timeout. In an ensemble
// a request may wait on another member (a forwarded write, sync, createSession or closeSession; a validation that
// syncs with the leader first; a proposal waiting for a quorum), and a leader change, a lost remote message or a
// refusal can leave it waiting. Leader changes are handled where they happen (a server without a leader drops its
// clients, DropClients); everything else is caught by the core's Tick, whatever its cause: every waiting request,
// creation and re-attachment carries the time it began waiting, and one still unanswered after RequestDeadline's
// bound gives up the session's queue (or the waiting client) and closes its connection. The client then reconnects
// and asks again. This actor only owns the timer.
public sealed partial class ReplicaActor
{
    private sealed class CheckStalls
    {
        public static readonly CheckStalls Instance = new();
    }

    private void ReceiveStallChecks() => Receive<CheckStalls>(_ => OnCheckStalls());

    private void StartStallChecks() =>
        Timers.StartPeriodicTimer("stalls", CheckStalls.Instance, RequestDeadline.CheckInterval(_settings.MinSessionTimeoutMs));

    private void OnCheckStalls() => _core.Tick(_monotonic());

    /// <summary>
    /// The session's connection closed: what it asked for is answered to no one. Its reads and syncs are dropped;
    /// its writes stay queued, orphaned: they complete in order (a newer connection's requests wait behind them, as
    /// in ZooKeeper), and their answers are not taken for the newer connection's requests, which may reuse xids.
    /// </summary>
    private void OnConnectionLost(ConnectionLost m)
    {
        _watches.RemoveSession(m.SessionId);
        EndSubscriptions(m.SessionId);
        if (_sessions.TryGetValue(m.SessionId, out var session)) _core.ConnectionLost(session);   // a read-only one ends with it
    }
}
