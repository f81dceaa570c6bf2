using Akka.Actor;
using Coordination.Core;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Sessions;

/// <summary>
/// Leader-side session liveness. Sessions report activity; every tick the ones whose deadline passed are
/// handed to the replica, which expires them with a replicated closeSession txn.
/// </summary>
public sealed class SessionTrackerActor : ReceiveActor, IWithTimers
{
    private sealed class Tick { public static readonly Tick Instance = new(); }

    private readonly SessionExpiry _expiry;
    private readonly Func<long> _clock;
    private readonly TimeSpan _tick;
    private IActorRef _replica = ActorRefs.Nobody;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Tells the tracker where expirations go (the replica is created after the tracker).</summary>
    public sealed record SetReplica(IActorRef Replica);

    public SessionTrackerActor(TimeSpan tick, Func<long> clock)
    {
        _tick = tick;
        _clock = clock;
        _expiry = new SessionExpiry((long)tick.TotalMilliseconds);
        Receive<SetReplica>(m => _replica = m.Replica);
        Receive<SessionOpened>(m => _expiry.Touch(m.SessionId, m.TimeoutMs, _clock()));
        Receive<SessionTouched>(m =>
        {
            // Only sessions the replica opened are tracked; a touch never resurrects a closed session.
            if (_expiry.Contains(m.SessionId)) _expiry.Touch(m.SessionId, m.TimeoutMs, _clock());
        });
        Receive<SessionClosed>(m => _expiry.Remove(m.SessionId));
        Receive<Tick>(_ =>
        {
            foreach (var sessionId in _expiry.TakeExpired(_clock())) _replica.Tell(new ExpireSession(sessionId));
        });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, _tick);

    public static Props Props(TimeSpan tick, Func<long> clock) => Akka.Actor.Props.Create(() => new SessionTrackerActor(tick, clock));
}
