namespace Coordination.Core;

/// <summary>
/// Invariant 9's clock: every request is answered, or its connection is closed, within the session timeout. A
/// client keeps hearing from its server while a request waits (pings are answered at once, not queued), so it
/// never gives up on a request that waits forever; the server must. A request still unanswered after three quarters
/// of its session's timeout is given up and its connection closed: late enough that a slow commit on a loaded
/// machine is rarely taken for a lost one, early enough that the checks, which run every sixth of the shortest
/// session timeout, find it within eleven twelfths of the timeout. Pure: time is a parameter.
/// </summary>
public static class RequestDeadline
{
    /// <summary>How long a request may wait before its connection is closed.</summary>
    public static long BoundMs(int sessionTimeoutMs) => 3L * sessionTimeoutMs / 4;

    /// <summary>True when a request waiting since <paramref name="sinceMs"/> has waited past its bound.</summary>
    public static bool IsOverdue(long sinceMs, long nowMs, int sessionTimeoutMs) => nowMs - sinceMs > BoundMs(sessionTimeoutMs);

    /// <summary>How often to look for overdue requests on a server whose shortest session timeout is
    /// <paramref name="minSessionTimeoutMs"/>.</summary>
    public static TimeSpan CheckInterval(int minSessionTimeoutMs) => TimeSpan.FromMilliseconds(Math.Max(10, minSessionTimeoutMs / 6));
}
