using Coordination.Server.Metrics;

namespace Coordination.Server.Network;

/// <summary>
/// The client port's bounds that span connections (README "Resource bounds"), shared by the listener and every
/// connection of one server: the settings, the metrics, and the requests outstanding across the server, counted
/// (ZooKeeper's globalOutstandingLimit) and in bytes (global-outstanding-bytes).
/// </summary>
public sealed class ClientPortLimits(ServerSettings settings, ClientPortMetrics metrics, ServerStats stats)
{
    public ServerSettings Settings { get; } = settings;
    public ClientPortMetrics Metrics { get; } = metrics;
    /// <summary>The server's packet and latency counters (srvr, stat, mntr).</summary>
    public ServerStats Stats { get; } = stats;
    private readonly int _globalLimit = settings.GlobalOutstandingLimit;
    private readonly long _globalBytes = settings.GlobalOutstandingBytes;
    private readonly AsyncSignal _belowLimit = new();
    private long _outstanding;
    private long _outstandingBytes;

    /// <summary>Requests read from any connection and not yet answered.</summary>
    public long Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>Bytes (as framed) of the requests read from any connection for the replica and not yet answered.</summary>
    public long OutstandingBytes => Volatile.Read(ref _outstandingBytes);

    /// <summary>True while the server holds global-outstanding-limit requests or global-outstanding-bytes or more.</summary>
    public bool Throttled => IsThrottled(0, 0);

    /// <summary>True when the server would hold global-outstanding-limit requests or global-outstanding-bytes or more
    /// with <paramref name="pending"/> more requests of <paramref name="pendingBytes"/> (a read batch not yet counted).</summary>
    public bool IsThrottled(int pending, long pendingBytes) =>
        (_globalLimit > 0 && Volatile.Read(ref _outstanding) + pending >= _globalLimit) ||
        (_globalBytes > 0 && Volatile.Read(ref _outstandingBytes) + pendingBytes >= _globalBytes);

    /// <summary>
    /// Requests a connection reads before it counts them here, together: a twentieth of the limit, at most 32 (1 for
    /// small limits, which are then exact). Several connections read at once, so the server may pass the limit by
    /// this much per connection being read at that moment.
    /// </summary>
    public int AdmitBatch { get; } = Math.Clamp(settings.GlobalOutstandingLimit / 20, 1, 32);

    public void Enter(int count, long bytes)
    {
        Interlocked.Add(ref _outstanding, count);
        if (bytes > 0) Interlocked.Add(ref _outstandingBytes, bytes);
    }

    public void Leave(long count, long bytes)
    {
        if (count > 0) Interlocked.Add(ref _outstanding, -count);
        if (bytes > 0) Interlocked.Add(ref _outstandingBytes, -bytes);
        if (!Throttled) _belowLimit.Set();
    }

    /// <summary>Completes at the next fall below the limits; take it before checking <see cref="Throttled"/> again.</summary>
    public Task BelowLimitAsync() => _belowLimit.WaitAsync();
}
