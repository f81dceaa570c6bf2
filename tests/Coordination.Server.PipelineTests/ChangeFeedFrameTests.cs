using Coordination.Protocol;
using Coordination.Server.Feed;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// A retained change is encoded once, at append, as its frame (<see cref="ChangeFeed.FrameFor"/> copies it out): each
/// subscriber gets exactly the frame a per-subscriber encoding gives, subscribers with the same subscription id share
/// one copy, and the retained bytes are the frames' sizes exactly, from the append until their entry is dropped.
/// </summary>
public sealed class ChangeFeedFrameTests
{
    private static readonly Stat Stat = new(7, 9, 1, 2, 3, 0, 0, 0, 3, 0, 7);

    [Fact]
    public void Each_subscriber_gets_the_frame_of_its_own_subscription_and_the_retained_bytes_are_the_frames_exactly()
    {
        var feed = new ChangeFeed(new ChangeFeedSettings { RetainTxns = 1 }, 0);
        Change[] changes =
        [
            new(EventType.NodeCreated, "/a/b", "abc"u8.ToArray(), Stat, null),
            new(EventType.NodeDeleted, "/a/c", null, default, null),
        ];
        feed.Append(9, changes, 0);
        var entry = feed.At(feed.FirstSeq)!;
        var bytes = ChangeFrames.Encoded(9, changes[0], 0).Length + ChangeFrames.Encoded(9, changes[1], 0).Length;
        Assert.Equal(bytes, feed.RetainedBytes);

        var first = feed.FrameFor(entry, 0, 5);
        Assert.Equal(ChangeFrames.Encoded(9, changes[0], 5), first);
        Assert.Same(first, feed.FrameFor(entry, 0, 5));   // same subscription id: shared, not copied again
        Assert.Equal(ChangeFrames.Encoded(9, changes[0], 7), feed.FrameFor(entry, 0, 7));
        Assert.Equal(ChangeFrames.Encoded(9, changes[0], 5), feed.FrameFor(entry, 0, 5));
        Assert.Equal(ChangeFrames.Encoded(9, changes[1], -3), feed.FrameFor(entry, 1, -3));
        Assert.Equal(bytes, feed.RetainedBytes);   // sending keeps nothing

        // The entry is dropped (one txn retained): so are its frames' bytes.
        Change next = new(EventType.NodeDataChanged, "/x", null, Stat, null);
        feed.Append(10, [next], 0);
        Assert.Equal(1, feed.RetainedTxns);
        Assert.Equal(feed.At(feed.FirstSeq)!.Bytes, feed.RetainedBytes);
        Assert.Equal(ChangeFrames.Encoded(10, next, 0).Length, feed.RetainedBytes);
    }
}
