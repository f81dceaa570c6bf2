using Coordination.Core.Zab;
using Coordination.Server.Feed;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The change feed's history floor reads the file journal incrementally (<see cref="SegmentZxidCache"/>): a sealed
/// segment once, the newest from where the last read stopped, and a purged segment drops out. Over a real file
/// journal, each computation's zxids must equal those of a whole read (<see cref="FileTxnLog.Read(string, Action{LogRecordKind, long, ReadOnlyMemory{byte}})"/>).
/// </summary>
public sealed class SegmentZxidCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "segment-zxids-" + Guid.NewGuid().ToString("N"));
    private readonly FileTxnLog _log;
    private readonly FileJournalRecords _journal;
    private readonly SegmentZxidCache _cache;
    private long _last;

    public SegmentZxidCacheTests()
    {
        _log = FileTxnLog.Open(_dir, forceSync: false, 1 << 20, 1 << 12, 0, (_, _, _) => { });
        _journal = new FileJournalRecords(_dir);
        _cache = _journal.Segments;
    }

    public void Dispose()
    {
        _log.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static long Z(long counter) => Zxids.Make(1, counter);

    /// <summary>Journals txns up to counter <paramref name="to"/> in one group, in a new segment when told.</summary>
    private void Append(long to, bool newSegment = false)
    {
        if (newSegment) _log.RollAtNextWrite();
        for (var c = _last + 1; c <= to; c++) _log.Append(LogRecordKind.Txn, Z(c), new byte[100]);
        _log.Commit();
        _last = to;
    }

    private List<long> WholeRead()
    {
        var kept = new KeptZxids();
        FileTxnLog.Read(_dir, (kind, zxid, _) => kept.Record(kind, zxid));
        return kept.ToList();
    }

    private static List<long> Counters(long from, long to) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(c => Z(c)).ToList();

    [Fact]
    public void A_sealed_segment_is_read_once_across_floor_computations()
    {
        Append(100);
        Append(200, newSegment: true);
        Append(300, newSegment: true);
        var segments = FileTxnLog.List(_dir).Select(s => s.Path).ToList();
        Assert.Equal(3, segments.Count);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(Counters(1, 300), _cache.Read().ToList());
            Assert.Equal(0, JournalHistory.Floor(_journal, []));
        }
        Assert.Equal((1, 1), (_cache.ReadsOf(segments[0]), _cache.ReadsOf(segments[1])));
        Assert.Equal(WholeRead(), _cache.Read().ToList());
    }

    [Fact]
    public void The_open_segment_is_read_on_from_where_the_last_read_stopped()
    {
        Append(100);
        Append(200, newSegment: true);
        var open = FileTxnLog.List(_dir)[^1].Path;
        Assert.Equal(Counters(1, 200), _cache.Read().ToList());
        var before = _cache.BytesRead;
        Append(210);
        Assert.Equal(Counters(1, 210), _cache.Read().ToList());
        // Only the 10 new records: each is 17 bytes of header and 100 of payload.
        Assert.Equal(10 * (FileTxnLog.RecordHeaderSize + 100), _cache.BytesRead - before);
        Assert.Equal(2, _cache.ReadsOf(open));
        // Sealed by the next segment: read once more for what came after the last read, then no more.
        Append(220);
        Append(300, newSegment: true);
        Assert.Equal(Counters(1, 300), _cache.Read().ToList());
        Assert.Equal(Counters(1, 300), _cache.Read().ToList());
        Assert.Equal(3, _cache.ReadsOf(open));
        Assert.Equal(WholeRead(), _cache.Read().ToList());
    }

    [Fact]
    public void A_purge_drops_the_entries_of_the_segments_it_deleted()
    {
        Append(100);
        Append(200, newSegment: true);
        Append(300, newSegment: true);
        var first = FileTxnLog.List(_dir)[0].Path;
        Assert.Equal(Counters(1, 300), _cache.Read().ToList());
        Assert.Equal(3, _cache.Cached);
        Assert.Equal(2, _log.Purge(Z(200)));
        Assert.Equal(Counters(201, 300), _cache.Read().ToList());
        Assert.Equal((1, 0), (_cache.Cached, _cache.ReadsOf(first)));
        Assert.Equal(WholeRead(), _cache.Read().ToList());
    }

    [Fact]
    public void A_truncation_in_a_later_segment_cuts_what_a_sealed_segment_cached()
    {
        Append(100);
        Append(200, newSegment: true);
        Assert.Equal(Counters(1, 200), _cache.Read().ToList());
        // Zab TRUNC to 150, then the new leader's epoch continues it.
        _log.RollAtNextWrite();
        _log.Append(LogRecordKind.Truncate, Z(150), []);
        _log.Append(LogRecordKind.Txn, Zxids.Make(2, 1), new byte[10]);
        _log.Commit();
        Assert.Equal([.. Counters(1, 150), Zxids.Make(2, 1)], _cache.Read().ToList());
        Assert.Equal(WholeRead(), _cache.Read().ToList());
    }

    [Fact]
    public void Reading_a_segment_for_its_zxids_allocates_nothing_per_record()
    {
        Append(20_000);
        _cache.Read();   // the first read of this process JITs the path
        Append(40_000, newSegment: true);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var kept = _cache.Read();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(Counters(1, 40_000), kept.ToList());
        // 20,000 new records of 100 bytes: a payload array each would be over 2 MB; a read's buffers and file streams
        // are some 100 KiB.
        Assert.True(allocated < 512 << 10, $"{allocated} bytes allocated to read 20,000 records' zxids");
    }
}
