using Coordination.Server.Ensemble;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Which snapshot part a learner fetching from its leader takes (PeerActor.OnSnapshotPart).</summary>
public sealed class SnapshotPartTests
{
    private static SnapshotPart Part(long from, long zxid, long offset) => new(from, zxid, offset, [1, 2, 3], Last: false, Missing: false);

    [Fact]
    public void Only_the_part_asked_for_last_is_taken()
    {
        const long leader = 3, zxid = 0x5_0000_0010, asked = 1 << 20;
        Assert.True(Part(leader, zxid, asked).Answers(leader, zxid, asked));
        // The leader no longer has the snapshot: that answer names the offset asked for too.
        Assert.True((Part(leader, zxid, asked) with { Bytes = [], Last = true, Missing = true }).Answers(leader, zxid, asked));

        Assert.False(Part(leader, zxid, 0).Answers(leader, zxid, asked), "a late part of an earlier fetch (before a restart)");
        Assert.False(Part(leader, zxid, 2 << 20).Answers(leader, zxid, asked), "a part not asked for yet");
        Assert.False(Part(2, zxid, asked).Answers(leader, zxid, asked), "another member's part of a snapshot at the same zxid");
        Assert.False(Part(leader, zxid - 1, asked).Answers(leader, zxid, asked), "a part of another snapshot");
        Assert.False(Part(leader, zxid, 0).Answers(leader, zxid, -1), "nothing is taken before the first part is asked for");
    }
}
