using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Sessions;

/// <summary>Replica → tracker: a local session opened on this member, which alone tracks and expires it.</summary>
internal sealed record LocalSessionOpened(long SessionId, int TimeoutMs);

/// <summary>
/// Session liveness. The leader (or a standalone server) decides expiry: sessions report activity, and every tick
/// the ones whose deadline passed go to the parent (the node, which hands them to the replica: the tracker is created
/// first), and the replica expires them with a replicated closeSession txn.
/// On a follower the tracker collects its sessions' activity and sends it to the leader's tracker once per tick,
/// as ZooKeeper's followers do with their pings.
/// </summary>
public sealed class SessionTrackerActor : ReceiveActor, IWithTimers
{
    private sealed class Tick { public static readonly Tick Instance = new(); }

    private readonly SessionExpiry _expiry;
    /// <summary>This member's local sessions: expired here, whatever the role, never reported to the leader.</summary>
    private readonly SessionExpiry _local;
    private readonly Func<long> _clock;
    private readonly TimeSpan _tick;
    private readonly EnsembleLink? _ensemble;
    private Pipeline.TrustedMembersChanged? _trusted;
    /// <summary>Expiry is decided here: standalone, or the established leader.</summary>
    private bool _decides;
    private IActorRef? _leaderTracker;
    private readonly Dictionary<long, int> _touched = new();
    private MemberSenders? _senders;
    /// <summary>The sessions' timeouts, which bound a memory trim's pause.</summary>
    private readonly SessionTimeouts _timeouts = new();

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Asks for the session deadline buckets (the admin dump command); answered with <see cref="ExpiryMap"/>.</summary>
    public sealed record GetExpiryMap
    {
        public static readonly GetExpiryMap Instance = new();
    }

    public sealed record ExpiryMap(IReadOnlyDictionary<long, long[]> SessionsByDeadline);

    public SessionTrackerActor(TimeSpan tick, Func<long> clock, EnsembleLink? ensemble = null)
    {
        _tick = tick;
        _clock = clock;
        _ensemble = ensemble;
        _decides = ensemble is null;
        _expiry = new SessionExpiry((long)tick.TotalMilliseconds);
        _local = new SessionExpiry((long)tick.TotalMilliseconds);
        Receive<GetExpiryMap>(_ => Sender.Tell(new ExpiryMap(MergedBuckets())));
        Receive<LocalSessionOpened>(m =>
        {
            _local.Touch(m.SessionId, m.TimeoutMs, _clock());
            _timeouts.Opened(m.SessionId, m.TimeoutMs);
        });
        Receive<SessionOpened>(m =>
        {
            _timeouts.Opened(m.SessionId, m.TimeoutMs);
            _local.Remove(m.SessionId);   // an upgraded local session is global from its createSession's commit on
            _expiry.Touch(m.SessionId, m.TimeoutMs, _clock());
        });
        Receive<SessionTouched>(m =>
        {
            if (_local.Contains(m.SessionId)) _local.Touch(m.SessionId, m.TimeoutMs, _clock());
            else if (_leaderTracker is not null) _touched[m.SessionId] = m.TimeoutMs;
            // Only sessions the replica opened are tracked; a touch never resurrects a closed session.
            else if (_expiry.Contains(m.SessionId)) _expiry.Touch(m.SessionId, m.TimeoutMs, _clock());
        });
        // Members change with reconfigurations: a joiner's sessions are kept alive too, and a new member may lead.
        Receive<Pipeline.TrustedMembersChanged>(m =>
        {
            _trusted = m;
            _senders = new MemberSenders(m.Members);
        });
        Receive<SessionsTouched>(m =>
        {
            // Only a member may keep sessions alive, and only in its own name.
            _senders ??= new MemberSenders(_ensemble!.Members);
            if (!_senders.Vouches(Sender, m.ServerId))
            {
                MemberSenders.Refuse(Context.System, Context.GetLogger(), m, Sender);
                return;
            }
            var now = _clock();
            for (var i = 0; i < m.SessionIds.Length; i++)
                if (_expiry.Contains(m.SessionIds[i])) _expiry.Touch(m.SessionIds[i], m.TimeoutsMs[i], now);
        });
        Receive<SessionClosed>(m =>
        {
            _expiry.Remove(m.SessionId);
            _local.Remove(m.SessionId);
            _timeouts.Closed(m.SessionId);
        });
        Receive<RoleChanged>(role =>
        {
            _decides = role.ServesClients && role.Role == PeerState.Leading;
            _leaderTracker = role.ServesClients && !_decides
                ? Ensemble.RemotePaths.Resolve(Context.System, (_trusted?.AddressOf(role.Leader) ?? _ensemble!.Members.AddressOf(role.Leader)) + NodeActor.TrackerPath)
                : null;
            _touched.Clear();
            // A member that stops serving drops its clients, local sessions and all.
            if (!role.ServesClients) foreach (var sessionId in _local.TakeExpired(long.MaxValue)) _timeouts.Closed(sessionId);
        });
        Receive<Tick>(_ =>
        {
            if (_leaderTracker is { } leader && _touched.Count > 0)
            {
                leader.Tell(new SessionsTouched(_ensemble!.ServerId, _touched.Keys.ToArray(), _touched.Values.ToArray()));
                _touched.Clear();
            }
            // Every server keeps deadlines (a new leader re-arms them all), but only the decider acts on them.
            var expired = _expiry.TakeExpired(_clock());
            if (_decides) foreach (var sessionId in expired) Context.Parent.Tell(new ExpireSession(sessionId));
            foreach (var sessionId in _local.TakeExpired(_clock())) Context.Parent.Tell(new ExpireLocalSession(sessionId));
        });
    }

    /// <summary>Local and global deadlines together, as ZooKeeper's LeaderSessionTracker.getSessionExpiryMap.</summary>
    private IReadOnlyDictionary<long, long[]> MergedBuckets()
    {
        var merged = new Dictionary<long, long[]>(_local.Buckets());
        foreach (var (deadline, ids) in _expiry.Buckets())
            merged[deadline] = merged.TryGetValue(deadline, out var local) ? [.. local, .. ids] : ids;
        return merged;
    }

    protected override void PreStart()
    {
        _timeouts.Register();
        Timers.StartPeriodicTimer("tick", Tick.Instance, _tick);
        if (_ensemble is null) return;
        Context.System.EventStream.Subscribe(Self, typeof(RoleChanged));
        Context.System.EventStream.Subscribe(Self, typeof(Pipeline.TrustedMembersChanged));
    }

    protected override void PostStop() => _timeouts.Unregister();

    public static Props Props(TimeSpan tick, Func<long> clock, EnsembleLink? ensemble = null) =>
        Akka.Actor.Props.Create(() => new SessionTrackerActor(tick, clock, ensemble));
}
