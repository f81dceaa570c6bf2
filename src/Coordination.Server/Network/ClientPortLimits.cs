using Coordination.Server.Metrics;

namespace Coordination.Server.Network;

/// <summary>
/// The client port's bounds that span connections (README "Resource bounds"), shared by the listener and every
/// connection of one server: the settings, the metrics, and the count of requests outstanding across the server
/// (ZooKeeper's globalOutstandingLimit).
/// </summary>
public sealed class ClientPortLimits(ServerSettings settings, ClientPortMetrics metrics)
{
    public ServerSettings Settings { get; } = settings;
    public ClientPortMetrics Metrics { get; } = metrics;
    private readonly int _globalLimit = settings.GlobalOutstandingLimit;
    private readonly AsyncSignal _belowLimit = new();
    private long _outstanding;

    /// <summary>Requests read from any connection and not yet answered.</summary>
    public long Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>True while the server holds global-outstanding-limit requests or more.</summary>
    public bool Throttled => _globalLimit > 0 && Volatile.Read(ref _outstanding) >= _globalLimit;

    public void Enter() => Interlocked.Increment(ref _outstanding);

    public void Leave(long count)
    {
        if (Interlocked.Add(ref _outstanding, -count) < _globalLimit) _belowLimit.Set();
    }

    /// <summary>Completes at the next fall below the limit; take it before checking <see cref="Throttled"/> again.</summary>
    public Task BelowLimitAsync() => _belowLimit.WaitAsync();
}
