using Coordination.Protocol;
using Coordination.Server.Feed;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The change feed keeps its frames as bytes in reused chunks (<see cref="ChangeFeed"/>'s ring): through many turns
/// of the ring, with entries from a few bytes to larger than a chunk or than the whole bound, every retained change
/// still reads back as exactly its frame (also one whose path or data runs over a chunk's end), the retained bytes
/// are exactly the retained frames', the byte bound drops exactly what a list of the same frames would, and the
/// memory held stays within the bound plus two chunks.
/// </summary>
public sealed class ChangeFeedRingTests
{
    private static readonly Stat Stat = new(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);

    private static Change Changed(string path, int dataBytes, byte fill) =>
        new(EventType.NodeDataChanged, path, Enumerable.Repeat(fill, dataBytes).ToArray(), Stat, null);

    /// <summary>Every retained change against the model: its frame for a subscription, its prefix filter.</summary>
    private static void AssertReadsBack(ChangeFeed feed, List<(long Zxid, Change[] Changes)> model)
    {
        Assert.Equal(model.Count, feed.RetainedTxns);
        Assert.Equal(model.Sum(e => e.Changes.Sum(c => (long)ChangeFrames.Encoded(e.Zxid, c, 0).Length)), feed.RetainedBytes);
        for (var i = 0; i < model.Count; i++)
        {
            var entry = feed.At(feed.FirstSeq + i);
            var (zxid, changes) = model[i];
            Assert.Equal((zxid, changes.Length), (entry.Zxid, entry.Changes));
            for (var c = 0; c < changes.Length; c++)
            {
                Assert.Equal(ChangeFrames.Encoded(zxid, changes[c], 1000 + i), feed.FrameFor(entry, c, 1000 + i));
                foreach (var prefix in new[] { "/", "/n", "/n/d1", "/n/d", changes[c].Path, changes[c].Path + "x" })
                    Assert.True(WatchChangesRequest.Covers(prefix, changes[c].Path) == feed.Covers(entry, c, System.Text.Encoding.UTF8.GetBytes(prefix)),
                        $"Covers({prefix}, {changes[c].Path}) at zxid {zxid}");
            }
        }
    }

    [Fact]
    public void The_index_rings_shrink_back_after_a_burst_and_what_is_retained_still_reads_back()
    {
        var settings = new ChangeFeedSettings { RetainTxns = 200_000, RetainBytes = 1L << 30, RetainTime = TimeSpan.FromSeconds(1) };
        var feed = new ChangeFeed(settings, 0);
        var quiet = feed.IndexBytes;
        for (long zxid = 1; zxid <= 100_000; zxid++) feed.Append(zxid, [Changed("/n/a", 10, 1)], 0);
        // Rings of 131,072 entries and changes: about 7 MiB.
        Assert.InRange(feed.IndexBytes, 6 << 20, 8 << 20);
        // Two seconds later the burst has aged out; three txns are retained.
        var model = new List<(long Zxid, Change[] Changes)>();
        for (long zxid = 100_001; zxid <= 100_003; zxid++)
        {
            model.Add((zxid, [Changed("/n/b", 20, 2), Changed("/n/c", 30, 3)]));
            feed.Append(zxid, model[^1].Changes, 2000);
        }
        Assert.Equal(quiet, feed.IndexBytes);
        AssertReadsBack(feed, model);
    }

    [Fact]
    public void Entries_of_very_different_sizes_read_back_exactly_through_many_turns_of_the_ring_within_the_byte_bound()
    {
        const long bound = 96 << 10;   // chunks of 6 KiB
        var settings = new ChangeFeedSettings { RetainTxns = 40, RetainBytes = bound, RetainTime = TimeSpan.Zero };
        var feed = new ChangeFeed(settings, 0);
        var model = new List<(long Zxid, Change[] Changes)>();
        var random = new Random(23);
        long written = 0;
        for (long zxid = 1; zxid <= 1500; zxid++)
        {
            var sizes = random.Next(10) switch
            {
                0 => [random.Next(6 << 10, 40 << 10)],            // larger than a chunk
                1 => [random.Next(100 << 10, 130 << 10)],         // larger than the whole bound: dropped at once
                2 => new[] { random.Next(0, 3000), random.Next(0, 300), random.Next(0, 30) },   // a multi
                _ => [random.Next(0, 200)],
            };
            var changes = sizes.Select((size, k) => Changed($"/n/d{random.Next(1000)}" + new string('p', random.Next(0, 300)), size, (byte)(zxid + k))).ToArray();
            feed.Append(zxid, changes, 0);
            written += changes.Sum(c => ChangeFrames.Encoded(zxid, c, 0).Length);

            model.Add((zxid, changes));
            while (model.Count > settings.RetainTxns || model.Sum(e => e.Changes.Sum(c => (long)ChangeFrames.Encoded(e.Zxid, c, 0).Length)) > bound) model.RemoveAt(0);
            Assert.Equal(model.Count == 0 ? zxid : model[0].Zxid - 1, feed.RetainedAfter);
            Assert.InRange(feed.HeldBytes, 0, bound + 2 * (6 << 10));
            if (zxid % 50 == 0 || sizes.Length == 3) AssertReadsBack(feed, model);
        }
        Assert.True(written > 50 * bound, $"the ring turned over {written / bound} times its bound");
        AssertReadsBack(feed, model);

        feed.Reset(5000);   // a snapshot from the leader: nothing retained, and the ring starts over
        model.Clear();
        AssertReadsBack(feed, model);
        feed.Append(5001, [Changed("/n/after", 10_000, 1)], 0);
        model.Add((5001, [Changed("/n/after", 10_000, 1)]));
        AssertReadsBack(feed, model);
    }

    [Fact]
    public void A_change_whose_path_or_data_runs_over_a_chunks_end_reads_back_exactly()
    {
        const int chunk = 4 << 10;   // the smallest chunk
        var feed = new ChangeFeed(new ChangeFeedSettings { RetainTxns = 1000, RetainBytes = 16 * chunk, RetainTime = TimeSpan.Zero }, 0);
        var frameOverhead = ChangeFrames.Encoded(1, Changed("/n/x", 0, 0), 0).Length - "/n/x".Length;
        // The first frame ends 40 bytes before the chunk's end: the second one's path length and path (from byte 28
        // of its frame on) run over it; the third starts in the next chunk and its data runs over that one's end.
        var fill = Changed("/n/first", chunk - 40 - frameOverhead - "/n/first".Length, 7);
        var straddling = Changed("/n/" + new string('s', 30), 100, 8);
        var bigData = Changed("/n/big", 2 * chunk, 9);
        Assert.Equal(chunk - 40, ChangeFrames.Encoded(1, fill, 0).Length);
        var model = new List<(long Zxid, Change[] Changes)> { (1, [fill]), (2, [straddling]), (3, [bigData]) };
        foreach (var (zxid, changes) in model) feed.Append(zxid, changes, 0);
        AssertReadsBack(feed, model);
        Assert.True(feed.Covers(feed.At(feed.FirstSeq + 1), 0, "/n"u8));
        Assert.False(feed.Covers(feed.At(feed.FirstSeq + 1), 0, "/n/ss"u8));
    }
}
