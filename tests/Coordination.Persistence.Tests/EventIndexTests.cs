using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>The persistent-file journal's per-stream index: appends at the end, deletions from the front, cuts at the end.</summary>
public sealed class EventIndexTests
{
    private static List<long> SequenceNrs(EventIndex index) => index.Range(0, long.MaxValue, long.MaxValue).Select(e => e.SequenceNr).ToList();

    [Fact]
    public void Deleting_a_prefix_and_appending_wrap_around_and_keep_the_order()
    {
        var index = new EventIndex();
        long next = 1;
        var expected = new List<long>();
        // Rounds of appends and deletions that leave the ring partly full, so head and tail wrap many times.
        for (var round = 0; round < 200; round++)
        {
            for (var i = 0; i < 7; i++) { index.Add(next, ordinal: next * 10); expected.Add(next++); }
            var deleteTo = expected[expected.Count / 2];
            Assert.Equal(expected.Count(s => s <= deleteTo), index.RemoveTo(deleteTo, held: null));
            expected.RemoveAll(s => s <= deleteTo);
            Assert.Equal(expected, SequenceNrs(index));
            Assert.Equal(expected[0] * 10, index[0].Ordinal);
        }
    }

    [Fact]
    public void A_sequence_number_written_again_replaces_it_and_what_followed_and_a_cut_drops_the_tail()
    {
        var index = new EventIndex();
        var held = new Dictionary<long, FileEventJournal.StoredEvent>();
        for (long s = 1; s <= 6; s++) index.Add(s, ordinal: s);
        index.Add(4, ordinal: 9);
        Assert.Equal([1L, 2, 3, 4], SequenceNrs(index));
        Assert.Equal(9, index[3].Ordinal);
        index.RemoveAfter(2, held);
        Assert.Equal([1L, 2], SequenceNrs(index));
        Assert.Equal(2, index.RemoveTo(long.MaxValue, held));
        Assert.Equal(0, index.Count);
    }

    [Fact]
    public void A_range_starts_at_the_first_event_at_or_after_its_start_and_keeps_its_bounds()
    {
        var index = new EventIndex();
        foreach (var s in new long[] { 2, 4, 6, 8, 10 }) index.Add(s, s);
        index.RemoveTo(2, held: null);
        Assert.Equal([4L, 6, 8], index.Range(3, 9, long.MaxValue).Select(e => e.SequenceNr));
        Assert.Equal([6L, 8], index.Range(6, 100, 2).Select(e => e.SequenceNr));
        Assert.Empty(index.Range(11, 100, 10));
        Assert.Empty(index.Range(5, 5, 10));
    }
}
