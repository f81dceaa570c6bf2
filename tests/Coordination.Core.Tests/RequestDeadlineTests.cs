using Coordination.Core;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>Invariant 9's arithmetic: a request waiting past its bound is given up, and the checks that find it run
/// often enough that this happens within the session timeout, for every timeout a server can negotiate.</summary>
public sealed class RequestDeadlineTests
{
    [Fact]
    public void A_request_is_overdue_only_after_three_quarters_of_its_session_timeout()
    {
        Assert.Equal(2250, RequestDeadline.BoundMs(3000));
        Assert.False(RequestDeadline.IsOverdue(sinceMs: 10_000, nowMs: 12_250, sessionTimeoutMs: 3000));
        Assert.True(RequestDeadline.IsOverdue(sinceMs: 10_000, nowMs: 12_251, sessionTimeoutMs: 3000));
        // A monotonic clock may start anywhere, negative values included.
        Assert.True(RequestDeadline.IsOverdue(sinceMs: -5000, nowMs: -2749, sessionTimeoutMs: 3000));
    }

    [Theory]
    [InlineData(100, 100, 2000)]
    [InlineData(4000, 4000, 40_000)]
    [InlineData(1000, 1000, 10_000)]
    [InlineData(60, 60, 600)]
    public void Every_overdue_request_is_found_within_its_session_timeout(int minTimeoutMs, int fromMs, int toMs)
    {
        var interval = (long)RequestDeadline.CheckInterval(minTimeoutMs).TotalMilliseconds;
        Assert.True(interval > 0);
        for (var timeout = fromMs; timeout <= toMs; timeout += Math.Max(1, (toMs - fromMs) / 97))
        {
            // The last check before the request turns overdue may come just before it does: the next one finds it.
            var foundBy = RequestDeadline.BoundMs(timeout) + 1 + interval;
            Assert.True(foundBy < timeout, $"timeout {timeout} ms: found only after {foundBy} ms (checks every {interval} ms)");
        }
    }
}
