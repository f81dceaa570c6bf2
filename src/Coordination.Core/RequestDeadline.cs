namespace Coordination.Core;

/// <summary>
/// Invariant 9's clock: every request is answered, or its connection is closed, within the session timeout. A
/// client keeps hearing from its server while a request waits (pings are answered at once, not queued), so it
/// never gives up on a request that waits forever; the server must. A request still unanswered after two thirds of
/// its session's timeout (the silence after which ZooKeeper clients themselves drop a connection) is given up and
/// its connection closed. Checks run every sixth of the shortest session timeout, so this happens within five
/// sixths of the session's timeout. Pure: time is a parameter.
/// </summary>
public static class RequestDeadline
{
    /// <summary>How long a request may wait before its connection is closed.</summary>
    public static long BoundMs(int sessionTimeoutMs) => 2L * sessionTimeoutMs / 3;

    /// <summary>True when a request waiting since <paramref name="sinceMs"/> has waited past its bound.</summary>
    public static bool IsOverdue(long sinceMs, long nowMs, int sessionTimeoutMs) => nowMs - sinceMs > BoundMs(sessionTimeoutMs);

    /// <summary>How often to look for overdue requests on a server whose shortest session timeout is
    /// <paramref name="minSessionTimeoutMs"/>.</summary>
    public static TimeSpan CheckInterval(int minSessionTimeoutMs) => TimeSpan.FromMilliseconds(Math.Max(10, minSessionTimeoutMs / 6));
}
