using System.Text;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

public class SessionExpiryTests
{
    [Fact]
    public void DeadlineRoundsUpToTheNextTick()
    {
        var q = new SessionExpiry(2000);
        Assert.Equal(14000, q.DeadlineFor(10000, 3000));  // 13000 → next tick 14000
        Assert.Equal(14000, q.DeadlineFor(10000, 2000));  // exactly on a tick still moves to the next one
        Assert.Equal(14000, q.DeadlineFor(10000, 3999));
        Assert.Equal(16000, q.DeadlineFor(10000, 4000));
    }

    [Fact]
    public void TouchMovesBetweenBucketsAndTakeExpiredRemoves()
    {
        var q = new SessionExpiry(1000);
        q.Touch(1, 3000, 0);      // deadline 4000
        q.Touch(2, 3000, 500);    // 4000
        q.Touch(3, 5000, 0);      // 6000
        Assert.Equal(3, q.Count);
        Assert.Equal(4000, q.NextDeadline);
        Assert.Empty(q.TakeExpired(3999));
        q.Touch(1, 3000, 2500);   // moves to 6000
        Assert.Equal(6000, q.DeadlineOf(1));
        Assert.Equal([2L], q.TakeExpired(4000));
        Assert.False(q.Contains(2));
        Assert.Equal(2, q.Count);
        Assert.Empty(q.TakeExpired(5999));
        Assert.Equal([1L, 3L], q.TakeExpired(10_000));
        Assert.Equal(0, q.Count);
        Assert.Null(q.NextDeadline);
        Assert.Empty(q.TakeExpired(20_000));
    }

    [Fact]
    public void TakeExpiredReturnsSeveralBucketsInOrder()
    {
        var q = new SessionExpiry(100);
        q.Touch(30, 1000, 0);    // 1100
        q.Touch(10, 500, 0);     // 600
        q.Touch(20, 500, 50);    // 600
        q.Touch(5, 2000, 0);     // 2100
        Assert.Equal([10L, 20L, 30L], q.TakeExpired(1500));
        Assert.True(q.Contains(5));
    }

    [Fact]
    public void RemoveStopsTracking()
    {
        var q = new SessionExpiry(1000);
        q.Touch(1, 1000, 0);
        q.Remove(1);
        q.Remove(2);
        Assert.False(q.Contains(1));
        Assert.Empty(q.TakeExpired(100_000));
        Assert.Null(q.DeadlineOf(1));
    }

    [Fact]
    public void TickMustBePositive() => Assert.Throws<ArgumentOutOfRangeException>(() => new SessionExpiry(0));

    [Fact]
    public void InitialSessionIdLayout()
    {
        const long now = 0x0000_0193_ABCD_1234;
        var id = SessionIds.Initial(3, now);
        Assert.Equal(3, (int)((ulong)id >> 56));
        // ((now << 24) >>> 8): the low 40 bits of now, shifted left by 16.
        Assert.Equal((now & 0xFF_FFFF_FFFF) << 16, id & 0x00FF_FFFF_FFFF_FFFF);
        Assert.Equal(0, id & 0xFFFF);
        Assert.NotEqual(EphemeralOwner.Container, SessionIds.Initial(0x80, 0));
        Assert.Equal(EphemeralOwner.Container + 1, SessionIds.Initial(0x80, 0));
        Assert.Equal(0x0100_0000_0000_0000, SessionIds.Initial(1, 0));
    }

    [Fact]
    public void PasswordsAreDeterministicPerIdAndSecret()
    {
        byte[] secret = [.. Enumerable.Range(1, SessionIds.SecretLength).Select(i => (byte)i)];
        byte[] other = [.. secret];
        other[^1] ^= 1;
        var p = SessionIds.Password(42, secret);
        Assert.Equal(16, p.Length);
        Assert.Equal(p, SessionIds.Password(42, secret));
        Assert.NotEqual(p, SessionIds.Password(43, secret));
        Assert.NotEqual(p, SessionIds.Password(42, other));
        Assert.True(SessionIds.CheckPassword(42, secret, p));
        Assert.False(SessionIds.CheckPassword(42, other, p));
        Assert.False(SessionIds.CheckPassword(42, secret, p[..15]));
    }
}
