using System.Text;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The file journal's format and its crash rules, on real files: what was committed reads back in order; a torn
/// record ends its segment and nothing is ever appended after it; a later segment's start point drops records of
/// writes that failed; truncation records and purging of whole segments.
/// </summary>
public sealed class FileTxnLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("file-txnlog-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private sealed record Rec(LogRecordKind Kind, long Zxid, string Payload);

    private static List<Rec> ReadAll(string dir)
    {
        var records = new List<Rec>();
        FileTxnLog.Read(dir, (k, z, p) => records.Add(new Rec(k, z, Encoding.UTF8.GetString(p.Span))));
        return records;
    }

    private static FileTxnLog Open(string dir, List<Rec>? replayed = null, long floor = 0, long segmentBytes = 64 << 20) =>
        FileTxnLog.Open(dir, forceSync: true, segmentBytes, preallocateBytes: 1 << 20, floor,
            (k, z, p) => replayed?.Add(new Rec(k, z, Encoding.UTF8.GetString(p.Span))));

    private static void AppendTxns(FileTxnLog log, long from, long to, string tag = "v")
    {
        for (var z = from; z <= to; z++) log.Append(LogRecordKind.Txn, z, Encoding.UTF8.GetBytes($"{tag}{z}"));
        log.Commit();
    }

    private static List<long> TxnZxids(IEnumerable<Rec> records) =>
        records.Where(r => r.Kind == LogRecordKind.Txn).Select(r => r.Zxid).ToList();

    [Fact]
    public void Committed_records_read_back_in_order_with_their_payloads_and_the_log_continues_after_a_reopen()
    {
        using (var log = Open(_dir))
        {
            AppendTxns(log, 1, 3);
            AppendTxns(log, 4, 10);
            Assert.Equal(10, log.LastDurableZxid);
        }
        var replayed = new List<Rec>();
        using (var log = Open(_dir, replayed))
        {
            Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), TxnZxids(replayed));
            Assert.All(replayed, r => Assert.Equal($"v{r.Zxid}", r.Payload));
            Assert.Equal(10, log.LastZxid);
            AppendTxns(log, 11, 12);
        }
        // Each open appends into a new segment: never after what a crash may have torn.
        Assert.Equal(2, FileTxnLog.List(_dir).Count);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), TxnZxids(ReadAll(_dir)));
    }

    [Fact]
    public void A_segment_is_preallocated_and_the_zeros_after_the_last_record_end_it()
    {
        using (var log = Open(_dir)) AppendTxns(log, 1, 2);
        var segment = FileTxnLog.List(_dir).Single().Path;
        Assert.True(new FileInfo(segment).Length >= 1 << 20, $"segment is {new FileInfo(segment).Length} bytes, expected the 1 MiB preallocation");
        Assert.Equal([1L, 2L], TxnZxids(ReadAll(_dir)));
    }

    [Fact]
    public void A_torn_record_ends_its_segment_and_later_appends_go_to_a_new_segment()
    {
        using (var log = Open(_dir)) { AppendTxns(log, 1, 3); AppendTxns(log, 4, 6); }
        // The last write (records 4..6) is torn by a crash: only its start reached the disk, up to the middle of 5.
        var segment = FileTxnLog.List(_dir).Single().Path;
        var bytes = File.ReadAllBytes(segment);
        Array.Clear(bytes, IndexOf(bytes, "v5"u8.ToArray()) + 1, 64);
        File.WriteAllBytes(segment, bytes);

        var replayed = new List<Rec>();
        using (var log = Open(_dir, replayed))
        {
            Assert.Equal([1L, 2L, 3L, 4L], TxnZxids(replayed));
            Assert.Equal(4, log.LastZxid);
            AppendTxns(log, 5, 7, tag: "w");
        }
        var all = ReadAll(_dir).Where(r => r.Kind == LogRecordKind.Txn).ToList();
        Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L, 7L], all.Select(r => r.Zxid));
        // The torn record 5 was never read back; 5..7 are the new ones.
        Assert.Equal(["v1", "v2", "v3", "v4", "w5", "w6", "w7"], all.Select(r => r.Payload));
    }

    [Fact]
    public void A_damaged_record_followed_by_an_intact_one_is_corruption_and_refuses_to_open_with_file_and_offset()
    {
        using (var log = Open(_dir)) { AppendTxns(log, 1, 3); AppendTxns(log, 4, 6); }
        var segment = FileTxnLog.List(_dir).Single().Path;
        var bytes = File.ReadAllBytes(segment);
        var at = IndexOf(bytes, "v5"u8.ToArray());
        bytes[at + 1] ^= 0xFF;   // one flipped bit in the newest segment; record 6 after it is intact
        File.WriteAllBytes(segment, bytes);
        var recordOffset = at - FileTxnLog.RecordHeaderSize;

        var e = Assert.Throws<InvalidDataException>(() => Open(_dir).Dispose());
        Assert.Contains(segment, e.Message);
        Assert.Contains($"offset {recordOffset}", e.Message);
        Assert.Contains("CRC mismatch", e.Message);
        Assert.Throws<InvalidDataException>(() => ReadAll(_dir));
    }

    [Fact]
    public void A_segment_whose_roll_was_interrupted_by_a_crash_is_ignored_and_deleted_and_the_log_continues()
    {
        using (var log = Open(_dir)) AppendTxns(log, 1, 3);
        // A crash while rolling leaves the new segment empty (created, not yet preallocated) or preallocated zeros
        // (its header not yet on disk). Neither holds a record.
        var empty = Path.Combine(_dir, FileTxnLog.Prefix + 2.ToString("x16"));
        var zeros = Path.Combine(_dir, FileTxnLog.Prefix + 3.ToString("x16"));
        File.WriteAllBytes(empty, []);
        File.WriteAllBytes(zeros, new byte[1 << 20]);
        Assert.Equal([1L, 2L, 3L], TxnZxids(ReadAll(_dir)));

        var replayed = new List<Rec>();
        using (var log = Open(_dir, replayed))
        {
            Assert.Equal([1L, 2L, 3L], TxnZxids(replayed));
            Assert.False(File.Exists(empty));
            Assert.False(File.Exists(zeros));
            AppendTxns(log, 4, 5, tag: "w");
        }
        Assert.Equal([1L, 2L, 3L, 4L, 5L], TxnZxids(ReadAll(_dir)));
        // A segment file with anything but zeros over its header is still refused (see below).
    }

    [Fact]
    public void A_write_whose_fdatasync_failed_is_erased_so_that_a_restart_does_not_replay_it()
    {
        using (var log = Open(_dir))
        {
            AppendTxns(log, 1, 3);
            log.BeforeSync = () => throw new IOException("injected fdatasync failure");
            Assert.Throws<IOException>(() => AppendTxns(log, 4, 5));
            Assert.Equal(3, log.LastZxid);
            // The process stops here (a fail-stop ensemble member restarts), before any later write.
        }
        var replayed = new List<Rec>();
        using (var log = Open(_dir, replayed))
        {
            Assert.Equal([1L, 2L, 3L], TxnZxids(replayed));
            AppendTxns(log, 4, 5, tag: "w");
        }
        Assert.Equal(["v1", "v2", "v3", "w4", "w5"], ReadAll(_dir).Where(r => r.Kind == LogRecordKind.Txn).Select(r => r.Payload));
    }

    [Fact]
    public void Records_beyond_the_start_point_of_the_next_segment_are_dropped_as_never_acknowledged()
    {
        // Segment 1 holds 1..5, but 4 and 5 were written by a write that failed: the log went on from 3.
        var first = Path.Combine(_dir, "a");
        var second = Path.Combine(_dir, "b");
        using (var log = Open(first)) AppendTxns(log, 1, 5);
        using (var log = Open(second, floor: 3)) AppendTxns(log, 4, 5, tag: "w");
        var merged = Path.Combine(_dir, "merged");
        Directory.CreateDirectory(merged);
        File.Copy(FileTxnLog.List(first).Single().Path, Path.Combine(merged, FileTxnLog.Prefix + 1.ToString("x16")));
        File.Copy(FileTxnLog.List(second).Single().Path, Path.Combine(merged, FileTxnLog.Prefix + 2.ToString("x16")));

        var records = ReadAll(merged);
        Assert.Equal(
            [new Rec(LogRecordKind.Txn, 1, "v1"), new Rec(LogRecordKind.Txn, 2, "v2"), new Rec(LogRecordKind.Txn, 3, "v3"),
             new Rec(LogRecordKind.Truncate, 3, ""), new Rec(LogRecordKind.Txn, 4, "w4"), new Rec(LogRecordKind.Txn, 5, "w5")],
            records);
    }

    [Fact]
    public void A_read_from_a_zxid_skips_the_segments_that_end_before_it_and_reads_the_rest_as_a_whole_read_does()
    {
        using (var log = Open(_dir))
        {
            AppendTxns(log, 1, 3);
            log.RollAtNextWrite();
            AppendTxns(log, 4, 6);
            log.RollAtNextWrite();
            AppendTxns(log, 7, 9);
        }
        Assert.Equal(3, FileTxnLog.List(_dir).Count);
        var all = ReadAll(_dir);
        foreach (var from in new long[] { 0, 1, 3, 4, 5, 7, 9, 10 })
        {
            var records = new List<Rec>();
            FileTxnLog.Read(_dir, (k, z, p) => records.Add(new Rec(k, z, Encoding.UTF8.GetString(p.Span))), fromZxid: from);
            // Whole segments only: the first record read is the first of the segment that holds `from` (the last
            // segment for a zxid past the end), and from there it is what a whole read gives.
            var segmentStart = from <= 3 ? 1 : from <= 6 ? 4 : 7;
            Assert.Equal(all.SkipWhile(r => r.Kind == LogRecordKind.Truncate || r.Zxid < segmentStart).ToList(),
                records.SkipWhile(r => r.Kind == LogRecordKind.Truncate).ToList());
            Assert.Equal(segmentStart, records.First(r => r.Kind == LogRecordKind.Txn).Zxid);
        }
    }

    [Fact]
    public void Truncation_records_read_back_in_place_and_move_the_last_zxid_back()
    {
        using (var log = Open(_dir))
        {
            AppendTxns(log, 1, 5);
            log.Append(LogRecordKind.Truncate, 3, ReadOnlySpan<byte>.Empty);
            Assert.Equal(3, log.LastZxid);
            log.Commit();
            Assert.Equal(3, log.LastDurableZxid);
            AppendTxns(log, 4, 4, tag: "w");
        }
        var replayed = new List<Rec>();
        using (var log = Open(_dir, replayed)) Assert.Equal(4, log.LastZxid);
        Assert.Equal(new Rec(LogRecordKind.Truncate, 3, ""), replayed[5]);
        Assert.Equal(new Rec(LogRecordKind.Txn, 4, "w4"), replayed[6]);
    }

    [Fact]
    public void Purge_deletes_only_whole_old_segments_and_never_the_current_one()
    {
        var payload = new byte[4000];
        using (var log = Open(_dir, segmentBytes: 1 << 16))
        {
            for (var z = 1L; z <= 100; z++)
            {
                log.Append(LogRecordKind.Txn, z, payload);
                log.Commit();
            }
            var before = FileTxnLog.List(_dir).Count;
            Assert.True(before >= 5, $"expected several 64 KiB segments, got {before}");

            Assert.True(log.Purge(60) > 0);
            var remaining = TxnZxids(ReadAll(_dir));
            Assert.True(remaining[0] <= 61, $"a segment holding zxid 61 was purged (log now starts at {remaining[0]})");
            Assert.True(remaining[0] > 1, "nothing was purged");
            Assert.Equal(100, remaining[^1]);
            Assert.Equal(Enumerable.Range((int)remaining[0], 100 - (int)remaining[0] + 1).Select(i => (long)i), remaining);

            log.Purge(long.MaxValue);
            Assert.Single(FileTxnLog.List(_dir));
            log.Append(LogRecordKind.Txn, 101, payload);
            log.Commit();
        }
        Assert.Equal(101, TxnZxids(ReadAll(_dir))[^1]);
    }

    /// <summary>
    /// The change feed's history and the backup verb read the log while its writer appends. A write is not atomic for
    /// a reader: it can find a record half copied into the page cache, more so in its read buffer, filled earlier; by
    /// the time it looks past the damage for an intact record, the writer has appended the next one. The tail being
    /// written looked like corruption in the middle of the newest segment and the read threw (the feed then told its
    /// subscriber Compacted). Here the reader's buffer holds record 4 torn while the "writer" completes it and writes
    /// record 5: the reader must read 1..5, as a damaged record that stays damaged still refuses (test above).
    /// </summary>
    [Fact]
    public void A_record_a_reader_caught_half_written_beside_the_writer_is_read_again_not_called_corruption()
    {
        using (var log = Open(_dir)) { AppendTxns(log, 1, 3); AppendTxns(log, 4, 4); AppendTxns(log, 5, 5); }
        var segment = FileTxnLog.List(_dir).Single().Path;
        var written = File.ReadAllBytes(segment);
        var torn = IndexOf(written, "v4"u8.ToArray()) + 1;        // record 4's header and first payload byte are there
        var tornState = (byte[])written.Clone();
        Array.Clear(tornState, torn, written.Length - torn);       // ...the rest of it and record 5 are not yet
        File.WriteAllBytes(segment, tornState);

        var zxids = new List<long>();
        FileTxnLog.Read(_dir, (kind, zxid, _) =>
        {
            zxids.Add(zxid);
            if (zxid != 3) return;
            // The reader has record 4 torn in its buffer; meanwhile the writer finishes it and appends record 5.
            using var fs = new FileStream(segment, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            fs.Position = torn;
            fs.Write(written, torn, written.Length - torn);
        });
        Assert.Equal([1L, 2L, 3L, 4L, 5L], zxids);
    }

    [Fact]
    public void A_file_that_is_not_a_segment_is_refused_with_its_name()
    {
        Directory.CreateDirectory(_dir);
        var bogus = Path.Combine(_dir, FileTxnLog.Prefix + 1.ToString("x16"));
        File.WriteAllText(bogus, "this is not a transaction log segment");
        var e = Assert.Throws<InvalidDataException>(() => ReadAll(_dir));
        Assert.Contains(bogus, e.Message);
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        throw new InvalidOperationException("not found");
    }
}
