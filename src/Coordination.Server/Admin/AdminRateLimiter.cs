namespace Coordination.Server.Admin;

/// <summary>
/// One permit per interval in fixed windows, as ZooKeeper 3.9's util.RateLimiter(1, interval) that guards its snapshot
/// and restore commands: the first call is allowed, and a refused call does not move the window.
/// </summary>
internal sealed class AdminRateLimiter(TimeSpan interval, Func<long> monotonicMs)
{
    private readonly long _intervalMs = (long)interval.TotalMilliseconds;
    private readonly object _gate = new();
    private long _windowStart = monotonicMs();
    private bool _used;

    public bool Allow()
    {
        lock (_gate)
        {
            var now = monotonicMs();
            if (now > _windowStart + _intervalMs)
            {
                _windowStart = now;
                _used = false;
            }
            if (_used) return false;
            _used = true;
            return true;
        }
    }
}
