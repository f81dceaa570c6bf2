using Coordination.Server.Metrics;

namespace Coordination.Server.Network;

/// <summary>
/// The client port's bounds that span connections (README "Resource bounds"), shared by the listener and every
/// connection of one server: the settings, the metrics, and the count of requests outstanding across the server
/// (ZooKeeper's globalOutstandingLimit).
/// </summary>
public sealed class ClientPortLimits(ServerSettings settings, ClientPortMetrics metrics, ServerStats stats)
{
    public ServerSettings Settings { get; } = settings;
    public ClientPortMetrics Metrics { get; } = metrics;
    /// <summary>The server's packet and latency counters (srvr, stat, mntr).</summary>
    public ServerStats Stats { get; } = stats;
    private readonly int _globalLimit = settings.GlobalOutstandingLimit;
    private readonly AsyncSignal _belowLimit = new();
    private long _outstanding;

    /// <summary>Requests read from any connection and not yet answered.</summary>
    public long Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>True while the server holds global-outstanding-limit requests or more.</summary>
    public bool Throttled => IsThrottled(0);

    /// <summary>True when the server would hold global-outstanding-limit requests or more with
    /// <paramref name="pending"/> more (a read batch not yet counted).</summary>
    public bool IsThrottled(int pending) => _globalLimit > 0 && Volatile.Read(ref _outstanding) + pending >= _globalLimit;

    /// <summary>
    /// Requests a connection reads before it counts them here, together: a twentieth of the limit, at most 32 (1 for
    /// small limits, which are then exact). Several connections read at once, so the server may pass the limit by
    /// this much per connection being read at that moment.
    /// </summary>
    public int AdmitBatch { get; } = Math.Clamp(settings.GlobalOutstandingLimit / 20, 1, 32);

    public void Enter(int count) => Interlocked.Add(ref _outstanding, count);

    public void Leave(long count)
    {
        if (Interlocked.Add(ref _outstanding, -count) < _globalLimit) _belowLimit.Set();
    }

    /// <summary>Completes at the next fall below the limit; take it before checking <see cref="Throttled"/> again.</summary>
    public Task BelowLimitAsync() => _belowLimit.WaitAsync();
}
