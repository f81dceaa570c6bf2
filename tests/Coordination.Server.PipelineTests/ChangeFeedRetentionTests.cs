using Coordination.Protocol;
using Coordination.Server.Feed;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The change feed's retention (<see cref="ChangeFeed.Trim"/>): each bound (txns, bytes, age) alone drops the oldest
/// entries past it and no more, moves <see cref="ChangeFeed.RetainedAfter"/> to the last dropped zxid, and a cursor
/// asked for before it is refused (Compacted) while one from it is not. The running server's side (mntr, /metrics,
/// the age timer) is ChangeFeedWireTests'.
/// </summary>
public sealed class ChangeFeedRetentionTests
{
    private static readonly Stat Stat = new(1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1);

    private static Change[] Changed(int dataBytes) => [new(EventType.NodeDataChanged, "/r", new byte[dataBytes], Stat, null)];

    private static void AssertRetained(ChangeFeed feed, long oldest, long last)
    {
        Assert.Equal(last - oldest + 1, feed.RetainedTxns);
        Assert.Equal(oldest - 1, feed.RetainedAfter);
        Assert.Equal(oldest, feed.At(feed.FirstSeq)!.Zxid);
        Assert.Null(feed.CursorAfter(oldest - 2));
        Assert.Equal(feed.FirstSeq, feed.CursorAfter(oldest - 1));
    }

    [Fact]
    public void The_count_bound_keeps_the_newest_txns()
    {
        var feed = new ChangeFeed(new ChangeFeedSettings { RetainTxns = 3, RetainBytes = long.MaxValue, RetainTime = TimeSpan.Zero }, 0);
        for (var zxid = 1; zxid <= 5; zxid++) feed.Append(zxid, Changed(10), 0);
        AssertRetained(feed, oldest: 3, last: 5);
    }

    [Fact]
    public void The_byte_bound_keeps_the_newest_that_fit()
    {
        var probe = new ChangeFeed(ChangeFeedSettings.Default, 0);
        probe.Append(1, Changed(1000), 0);
        var entryBytes = probe.RetainedBytes;
        var feed = new ChangeFeed(new ChangeFeedSettings { RetainTxns = long.MaxValue, RetainBytes = 3 * entryBytes + entryBytes / 2, RetainTime = TimeSpan.Zero }, 0);
        for (var zxid = 1; zxid <= 6; zxid++) feed.Append(zxid, Changed(1000), 0);
        AssertRetained(feed, oldest: 4, last: 6);
        Assert.Equal(3 * entryBytes, feed.RetainedBytes);
    }

    [Fact]
    public void The_age_bound_drops_what_is_older_also_without_new_changes()
    {
        var feed = new ChangeFeed(new ChangeFeedSettings { RetainTxns = long.MaxValue, RetainBytes = long.MaxValue, RetainTime = TimeSpan.FromSeconds(1) }, 0);
        feed.Append(1, Changed(10), nowMs: 0);
        feed.Append(2, Changed(10), nowMs: 500);
        feed.Append(3, Changed(10), nowMs: 1200);   // 1 is now older than 1 s
        AssertRetained(feed, oldest: 2, last: 3);
        feed.Trim(nowMs: 1500);                      // 2 is exactly 1 s old: kept
        AssertRetained(feed, oldest: 2, last: 3);
        feed.Trim(nowMs: 2300);                      // the replica's timer, nothing appended: 2 and 3 go
        Assert.Equal((0, 3L, 0L), (feed.RetainedTxns, feed.RetainedAfter, feed.RetainedBytes));
        Assert.Null(feed.CursorAfter(2));
        Assert.Equal(feed.EndSeq, feed.CursorAfter(3));
    }

    /// <summary>
    /// A txn passed while memory does not record (<see cref="ChangeFeed.Pass"/>): what was retained goes, the record
    /// starts after the txn with no gap (a cursor from it is the end; one from before is refused), and appending
    /// resumes from there.
    /// </summary>
    [Fact]
    public void A_passed_txn_drops_what_was_retained_and_the_record_starts_after_it()
    {
        var feed = new ChangeFeed(ChangeFeedSettings.Default, 0);
        feed.Append(1, Changed(10), 0);
        feed.Append(2, Changed(10), 0);
        feed.Pass(3);
        feed.Pass(4);
        feed.Pass(2);   // replayed after a fuzzy snapshot: already past it
        Assert.Equal((0, 4L, 4L, 0L), (feed.RetainedTxns, feed.RetainedAfter, feed.LastZxid, feed.RetainedBytes));
        Assert.Null(feed.CursorAfter(3));
        Assert.Equal(feed.EndSeq, feed.CursorAfter(4));
        feed.Append(5, Changed(10), 0);
        AssertRetained(feed, oldest: 5, last: 5);
    }

    [Theory]
    [InlineData("", 60_000.0)]
    [InlineData("idle-recording = 0s", 0.0)]
    [InlineData("idle-recording = 5m", 300_000.0)]
    [InlineData("idle-recording = infinite", double.MaxValue)]
    public void Idle_recording_is_read_from_its_setting(string hocon, double expectedMs)
    {
        var settings = ChangeFeedSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(hocon + "\nretain-txns = 10"));
        var expected = expectedMs == double.MaxValue ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(expectedMs);
        Assert.Equal(expected, settings.IdleRecording);
    }
}
