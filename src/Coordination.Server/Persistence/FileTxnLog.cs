using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Coordination.Server.Persistence;

public enum LogRecordKind : byte
{
    /// <summary>A txn's jute bytes (<see cref="Coordination.Core.Txns.Serialize"/>).</summary>
    Txn = 1,
    /// <summary>Every txn logged before this record with a zxid greater than its zxid is dropped (Zab TRUNC).</summary>
    Truncate = 2,
}

/// <summary>
/// The transaction log as plain files, the way ZooKeeper keeps it (FileTxnLog): append-only segments
/// <c>&lt;dir&gt;/log.&lt;ordinal as 16 hex digits&gt;</c>, each a 16-byte header then records
/// <c>[u32 payload length][u32 CRC-32 of kind, zxid and payload][u8 kind][i64 zxid][payload]</c> (little-endian),
/// ended by zeros. Space is preallocated in blocks so that an append's fdatasync rarely has to update the file size.
/// <para>
/// Crash safety: a record counts only if its CRC matches, and reading a segment stops at the first one that does not.
/// New records never go after a torn or failed write: every <see cref="Open"/> and every write after a failure starts
/// a new segment, whose header holds the zxid the log ended at when it was started. Records of older segments with a
/// greater zxid were never acknowledged (their write failed or was torn), so <see cref="Read"/> drops them, as a
/// truncation. A write whose fdatasync failed is also overwritten with zeros at once, so that a restart cannot
/// replay txns whose clients were told they failed.
/// </para>
/// <para>
/// A torn tail is told from corruption as ZooKeeper does: zeros where a record would start end a segment; a damaged
/// record at the end of the newest segment (a write torn by a crash) ends it too; but a damaged record followed by an
/// intact one, or one that hides txns an older segment must hold, is corruption and refuses to open, naming the file
/// and offset. A segment file holding nothing but zeros (a crash while rolling, before its header was durable:
/// ZOOKEEPER-1621) has no records and is ignored, and deleted by <see cref="Open"/>.
/// </para>
/// Not thread-safe: one writer (<see cref="FileLogWriter"/>) owns it. No actors and no timers, so it is testable on
/// its own.
/// </summary>
public sealed class FileTxnLog : IDisposable
{
    public const string Prefix = "log.";
    public const int RecordHeaderSize = 17;
    private const int SegmentHeaderSize = 16;
    private const uint Magic = 0x474C5843; // "CXLG"
    private const int Version = 1;
    /// <summary>Largest record payload accepted on read: a 1 MiB znode write plus headers fits many times over.</summary>
    public const int MaxPayload = 64 << 20;

    private readonly string _dir;
    private readonly bool _forceSync;
    private readonly long _segmentBytes;
    private readonly long _preallocateBytes;
    private readonly List<Segment> _segments;
    private long _nextOrdinal;
    private readonly ArrayBufferWriter<byte> _pending = new(1 << 16);
    private SafeFileHandle? _handle;
    private long _end;            // where the next write goes in the current segment
    private long _allocated;      // bytes preallocated in the current segment
    private bool _rollBeforeWrite;
    private int _recordStart = -1;
    private long _pendingMaxZxid;

    private sealed class Segment(string path, long ordinal, long startsAfter)
    {
        public string Path { get; } = path;
        public long Ordinal { get; } = ordinal;
        public long StartsAfter { get; } = startsAfter;
        public long MaxZxid { get; set; } = startsAfter;
    }

    /// <summary>The zxid of the last txn made durable (or recovered), after truncations.</summary>
    public long LastDurableZxid { get; private set; }
    /// <summary>The zxid of the last txn appended, durable or still pending.</summary>
    public long LastZxid { get; private set; }
    public int SegmentCount => _segments.Count;
    public bool HasPending => _pending.WrittenCount > 0;

    /// <summary>Fault injection for tests: runs after a group's records are written and before their fdatasync; what it
    /// throws is that fdatasync's failure.</summary>
    public Action? BeforeSync { get; set; }

    private FileTxnLog(string dir, bool forceSync, long segmentBytes, long preallocateBytes, List<Segment> segments, long nextOrdinal, long lastZxid)
    {
        _nextOrdinal = nextOrdinal;
        _dir = dir;
        _forceSync = forceSync;
        _segmentBytes = segmentBytes;
        _preallocateBytes = preallocateBytes;
        _segments = segments;
        LastDurableZxid = LastZxid = lastZxid;
        _rollBeforeWrite = true; // never append after what a crash may have torn
    }

    /// <summary>
    /// Reads the whole log in order (see <see cref="Read"/>), then opens it for appending; the first write starts a
    /// new segment. <paramref name="lastZxidFloor"/> is where the log continues if it is empty or purged (the
    /// snapshot's zxid).
    /// </summary>
    public static FileTxnLog Open(string dir, bool forceSync, long segmentBytes, long preallocateBytes, long lastZxidFloor,
        Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord)
    {
        Directory.CreateDirectory(dir);
        var segments = new List<Segment>();
        var last = lastZxidFloor;
        void Track(LogRecordKind kind, long zxid, ReadOnlyMemory<byte> payload)
        {
            last = kind == LogRecordKind.Txn ? zxid : Math.Min(last, zxid);
            onRecord(kind, zxid, payload);
        }
        var empty = new List<string>();
        foreach (var (path, ordinal, startsAfter, maxZxid) in ReadSegments(dir, Track, empty.Add))
            segments.Add(new Segment(path, ordinal, startsAfter) { MaxZxid = maxZxid });
        // The next segment's ordinal follows every file's, so that it never collides with one left behind.
        var nextOrdinal = List(dir).Select(f => f.Ordinal).DefaultIfEmpty(0).Max() + 1;
        foreach (var path in empty) File.Delete(path);
        if (empty.Count > 0) SnapshotFiles.FsyncDirectory(dir);
        return new FileTxnLog(dir, forceSync, Math.Max(1 << 16, segmentBytes), Math.Max(1 << 12, preallocateBytes), segments, nextOrdinal, Math.Max(last, lastZxidFloor));
    }

    /// <summary>
    /// Every record of the log in order, without changing anything (also beside a running writer, e.g. for a backup or
    /// the change feed's history: it then reads a prefix of what was written, see <see cref="LiveRereads"/>).
    /// A record whose zxid exceeds the next segment's start point is dropped; each such cut is reported as a
    /// <see cref="LogRecordKind.Truncate"/> record so that readers which keep entries can drop them too.
    /// </summary>
    public static void Read(string dir, Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord) => Read(dir, onRecord, fromZxid: 0);

    /// <summary>As <see cref="Read(string, Action{LogRecordKind, long, ReadOnlyMemory{byte}})"/>, but segments that end
    /// before <paramref name="fromZxid"/> (the next one starts at or before it) are not read.</summary>
    public static void Read(string dir, Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord, long fromZxid)
    {
        foreach (var _ in ReadSegments(dir, onRecord, _ => { }, live: true, fromZxid)) { }
    }

    /// <summary>
    /// How often a reader beside a running writer reads a damaged record again, a millisecond apart, before it
    /// counts as damage. A write is not atomic for a reader: it can see a record half copied into the page cache
    /// (more so through its read buffer, filled earlier), and by the time it looked past it for an intact record the
    /// writer had appended the next ones, so the tail being written looked like corruption in the middle of the
    /// newest segment and the read threw. A record still damaged after these reads is damage.
    /// </summary>
    private const int LiveRereads = 100;

    private static IEnumerable<(string Path, long Ordinal, long StartsAfter, long MaxZxid)> ReadSegments(
        string dir, Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord, Action<string> onEmpty, bool live = false, long fromZxid = 0)
    {
        var segments = Segments(dir, onEmpty);
        var last = segments.Count > 0 ? segments[0].StartsAfter : 0;
        for (var i = 0; i < segments.Count; i++)
        {
            long? cutoff = i + 1 < segments.Count ? segments[i + 1].StartsAfter : null;
            if (cutoff < fromZxid)
            {
                last = cutoff.Value;
                continue;
            }
            var end = ReadSegment(segments[i], cutoff, StartOf(segments[i], last), onRecord, live);
            last = end.Last;
            yield return (segments[i].Path, segments[i].Ordinal, segments[i].StartsAfter, end.MaxZxid);
        }
    }

    /// <summary>A segment file with a valid header: <see cref="StartsAfter"/> is the zxid the log had reached when it
    /// was begun.</summary>
    internal readonly record struct SegmentFile(string Path, long Ordinal, long StartsAfter);

    /// <summary>Where a read of a segment stopped: the offset to go on from (the zeros after its last record, or a torn
    /// one), the zxid the log was at there (after truncations), and the greatest txn zxid read.</summary>
    internal readonly record struct SegmentPosition(long Offset, long Last, long MaxZxid);

    /// <summary>The segments with a valid header, oldest first; files of zeros (a roll a crash interrupted) go to
    /// <paramref name="onEmpty"/>.</summary>
    internal static List<SegmentFile> Segments(string dir, Action<string> onEmpty)
    {
        var segments = new List<SegmentFile>();
        foreach (var file in List(dir))
        {
            if (ReadHeader(file.Path) is { } startsAfter) segments.Add(new SegmentFile(file.Path, file.Ordinal, startsAfter));
            else onEmpty(file.Path);
        }
        return segments;
    }

    /// <summary>The first position of a segment, for <see cref="ReadSegment"/>: <paramref name="last"/> is the zxid
    /// the log was at before it.</summary>
    internal static SegmentPosition StartOf(SegmentFile segment, long last) => new(SegmentHeaderSize, last, segment.StartsAfter);

    /// <summary>
    /// The records of one segment from <paramref name="from"/> on, as <see cref="Read"/> gives them: txns above
    /// <paramref name="cutoff"/> (the next segment's start point; null for the newest segment) are dropped, and the
    /// cut is reported as a truncation at the end. Returns where the read stopped, to go on from there while the
    /// segment is the newest (its writer only appends to it). With <paramref name="payloadsKept"/> false, a payload is
    /// valid only during its <paramref name="onRecord"/> call (one buffer serves them all: a reader that wants only
    /// the zxids allocates nothing per record).
    /// </summary>
    internal static SegmentPosition ReadSegment(SegmentFile segment, long? cutoff, SegmentPosition from,
        Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord, bool live, bool payloadsKept = true)
    {
        var (last, maxZxid) = (from.Last, from.MaxZxid);
        var end = new SegmentEnd { Offset = from.Offset };
        foreach (var (kind, zxid, payload) in Records(segment.Path, end, live, from.Offset, payloadsKept))
        {
            if (kind == LogRecordKind.Txn)
            {
                if (cutoff is { } c && zxid > c) continue;
                maxZxid = Math.Max(maxZxid, zxid);
                last = zxid;
            }
            else last = Math.Min(last, zxid);
            onRecord(kind, zxid, payload);
        }
        if (cutoff is { } cut)
        {
            // The next segment was started when the log reached `cut`, after those records were durable: a segment
            // that now ends earlier lost acknowledged txns (a torn tail is only possible in the newest segment).
            if (last < cut)
                throw new InvalidDataException($"{segment.Path} ends at zxid 0x{last:x}{end.Describe()}, but the log had reached 0x{cut:x} when the next segment began: acknowledged txns are missing or corrupt");
            onRecord(LogRecordKind.Truncate, cut, ReadOnlyMemory<byte>.Empty);
            last = cut;
        }
        else if (end.Damage is not null && FindIntactRecord(segment.Path, end.Offset + 1) is { } intact)
        {
            // A write torn by a crash is the last thing in the newest segment; an intact record after the damage
            // means the damage is in the middle of what was written: corruption, not a crash.
            throw new InvalidDataException($"{segment.Path} is corrupt{end.Describe()}, and an intact record follows at offset {intact}: " +
                "this is not a write torn by a crash, and the records after it may have been acknowledged");
        }
        return new SegmentPosition(end.Offset, last, maxZxid);
    }

    /// <summary>The segment files, oldest first.</summary>
    public static List<(string Path, long Ordinal)> List(string dir)
    {
        var result = new List<(string, long)>();
        if (!Directory.Exists(dir)) return result;
        foreach (var file in Directory.EnumerateFiles(dir, Prefix + "*"))
        {
            var name = Path.GetFileName(file);
            if (name.Length == Prefix.Length + 16 &&
                long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var ordinal))
                result.Add((file, ordinal));
        }
        result.Sort((a, b) => a.Item2.CompareTo(b.Item2));
        return result;
    }

    /// <summary>The segment's start point, or null for a file of zeros (a segment whose roll a crash interrupted).</summary>
    private static long? ReadHeader(string path)
    {
        // Unbuffered: the change feed's floor looks at every header about once a second.
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        Span<byte> header = stackalloc byte[SegmentHeaderSize];
        if (fs.ReadAtLeast(header, SegmentHeaderSize, throwOnEndOfStream: false) == SegmentHeaderSize &&
            BinaryPrimitives.ReadUInt32LittleEndian(header) == Magic && BinaryPrimitives.ReadInt32LittleEndian(header[4..]) == Version)
            return BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        fs.Position = 0;
        var buffer = new byte[1 << 16];
        int read;
        while ((read = fs.Read(buffer)) > 0)
            if (buffer.AsSpan(0, read).ContainsAnyExcept((byte)0))
                throw new InvalidDataException($"{path} is not a transaction log segment (bad header)");
        return null;
    }

    /// <summary>Where reading a segment stopped: at zeros or the end of the file, or at a damaged record.</summary>
    private sealed class SegmentEnd
    {
        public long Offset;
        public string? Damage;
        public string Describe() => Damage is null ? "" : $" (damaged record at offset {Offset}: {Damage})";
    }

    /// <summary>The offset of the first intact record (CRC and bounds hold) at or after <paramref name="from"/>, if any.</summary>
    private static long? FindIntactRecord(string path, long from)
    {
        byte[] bytes;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            bytes = new byte[fs.Length];
            fs.ReadExactly(bytes);
        }
        for (var at = Math.Max(from, SegmentHeaderSize); at + RecordHeaderSize <= bytes.Length; at++)
        {
            var record = bytes.AsSpan((int)at);
            if (record[8] is not ((byte)LogRecordKind.Txn or (byte)LogRecordKind.Truncate)) continue;
            var length = BinaryPrimitives.ReadInt32LittleEndian(record);
            if (length < 0 || length > record.Length - RecordHeaderSize) continue;
            if (Crc32.HashToUInt32(record.Slice(8, RecordHeaderSize - 8 + length)) == BinaryPrimitives.ReadUInt32LittleEndian(record[4..])) return at;
        }
        return null;
    }

    private static IEnumerable<(LogRecordKind, long, ReadOnlyMemory<byte>)> Records(string path, SegmentEnd end, bool live, long from, bool payloadsKept)
    {
        var fs = OpenAt(path, from);
        try
        {
            var header = new byte[RecordHeaderSize];
            byte[]? reused = payloadsKept ? null : [];
            var hash = new Crc32();
            var rereads = 0;
            while (true)
            {
                end.Offset = fs.Position;
                var (payload, damage) = ReadRecord(fs, header, hash, ref reused);
                if (damage is not null && live && rereads < LiveRereads)
                {
                    // Perhaps a write in progress (see LiveRereads): read it again, past the read buffer.
                    if (rereads++ > 0) Thread.Sleep(1);
                    fs.Dispose();
                    fs = OpenAt(path, end.Offset);
                    continue;
                }
                end.Damage = damage;
                if (payload is null) yield break;
                rereads = 0;
                yield return ((LogRecordKind)header[8], BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(9)), payload.AsMemory(0, BinaryPrimitives.ReadInt32LittleEndian(header)));
            }
        }
        finally
        {
            fs.Dispose();
        }
    }

    private static FileStream OpenAt(string path, long offset) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16) { Position = offset };

    /// <summary>The record at the stream's position: its payload (its header in <paramref name="header"/>), or no
    /// payload at the zeros after the last record, or why the bytes there are not a record. The payload is read into
    /// <paramref name="reused"/> (grown when too short) unless it is null.</summary>
    private static (byte[]? Payload, string? Damage) ReadRecord(FileStream fs, byte[] header, Crc32 hash, ref byte[]? reused)
    {
        var read = fs.ReadAtLeast(header, RecordHeaderSize, throwOnEndOfStream: false);
        if (!header.AsSpan(0, read).ContainsAnyExcept((byte)0)) return (null, null); // the zeros after the last record
        if (read != RecordHeaderSize) return (null, "cut short by the end of the file");
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        var kind = (LogRecordKind)header[8];
        if (length < 0 || length > MaxPayload || kind is not (LogRecordKind.Txn or LogRecordKind.Truncate)) return (null, "bad record header");
        if (reused is not null && reused.Length < length) reused = new byte[Math.Max(length, 2 * reused.Length)];
        var payload = reused ?? new byte[length];
        if (fs.ReadAtLeast(payload.AsSpan(0, length), length, throwOnEndOfStream: false) != length) return (null, "cut short by the end of the file");
        hash.Reset();
        hash.Append(header.AsSpan(8));
        hash.Append(payload.AsSpan(0, length));
        return hash.GetCurrentHashAsUInt32() == crc ? (payload, null) : (null, "CRC mismatch");
    }

    // ------------------------------------------------------------------ appending

    /// <summary>Starts a record; write its payload to the returned writer, then call <see cref="EndRecord"/>.</summary>
    public IBufferWriter<byte> BeginRecord(LogRecordKind kind, long zxid)
    {
        if (_recordStart >= 0) throw new InvalidOperationException("a record is already open");
        _recordStart = _pending.WrittenCount;
        var header = _pending.GetSpan(RecordHeaderSize)[..RecordHeaderSize];
        header.Clear();
        header[8] = (byte)kind;
        BinaryPrimitives.WriteInt64LittleEndian(header[9..], zxid);
        _pending.Advance(RecordHeaderSize);
        if (kind == LogRecordKind.Txn)
        {
            LastZxid = zxid;
            _pendingMaxZxid = Math.Max(_pendingMaxZxid, zxid);
        }
        else LastZxid = Math.Min(LastZxid, zxid);
        return _pending;
    }

    public void EndRecord()
    {
        var record = MemoryMarshal.AsMemory(_pending.WrittenMemory[_recordStart..]).Span;
        BinaryPrimitives.WriteInt32LittleEndian(record, record.Length - RecordHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], Crc32.HashToUInt32(record[8..]));
        _recordStart = -1;
    }

    public void Append(LogRecordKind kind, long zxid, ReadOnlySpan<byte> payload)
    {
        BeginRecord(kind, zxid).Write(payload);
        EndRecord();
    }

    /// <summary>
    /// Writes every pending record and makes them durable (fdatasync, unless force-sync is off). On failure the
    /// pending records are dropped, <see cref="LastZxid"/> goes back to <see cref="LastDurableZxid"/>, and the next
    /// write starts a new segment (what the failed write left on disk is then dropped at recovery).
    /// </summary>
    public void Commit()
    {
        if (_recordStart >= 0) throw new InvalidOperationException("a record is still open");
        if (_pending.WrittenCount == 0) return;
        try
        {
            var bytes = _pending.WrittenSpan;
            if (_rollBeforeWrite || _handle is null || (_end > SegmentHeaderSize && _end + bytes.Length > _segmentBytes)) Roll();
            EnsureAllocated(_end + bytes.Length);
            try
            {
                RandomAccess.Write(_handle!, bytes, _end);
                BeforeSync?.Invoke();
                Sync(_handle!);
            }
            catch (Exception failure)
            {
                Erase(_end, bytes.Length, failure);
                throw;
            }
            _end += bytes.Length;
            var current = _segments[^1];
            current.MaxZxid = Math.Max(current.MaxZxid, _pendingMaxZxid);
            LastDurableZxid = LastZxid;
        }
        catch
        {
            LastZxid = LastDurableZxid;
            _rollBeforeWrite = true;
            throw;
        }
        finally
        {
            _pending.ResetWrittenCount();
            if (_pending.Capacity > 8 << 20) _pending.Clear(); // don't keep a huge buffer's contents around
            _pendingMaxZxid = 0;
        }
    }

    /// <summary>
    /// A write or its fdatasync failed, yet its records may be in the file (the page cache may still write them back):
    /// overwrite them with zeros, durably, so that no restart replays txns whose clients were told they failed.
    /// </summary>
    private void Erase(long offset, int length, Exception failure)
    {
        try
        {
            var zeros = new byte[Math.Min(length, 1 << 20)];
            for (var done = 0; done < length; done += zeros.Length)
                RandomAccess.Write(_handle!, zeros.AsSpan(0, Math.Min(zeros.Length, length - done)), offset + done);
            Sync(_handle!);
        }
        catch (Exception e)
        {
            // The next write (or restart) starts a new segment whose start point drops these records, unless this
            // process dies before one is written: say so.
            throw new IOException($"transaction log write failed ({failure.Message}) and its records could not be erased ({e.Message}): " +
                "they may be replayed if the server restarts before its next successful write", failure);
        }
    }

    /// <summary>The next write starts a new segment, so the current one can be purged once a snapshot covers it
    /// (ZooKeeper rolls its log at each snapshot for the same reason).</summary>
    public void RollAtNextWrite() => _rollBeforeWrite = true;

    /// <summary>Drops the pending records (nothing was written): the log is as after the last <see cref="Commit"/>.</summary>
    public void DiscardPending()
    {
        _pending.ResetWrittenCount();
        _recordStart = -1;
        _pendingMaxZxid = 0;
        LastZxid = LastDurableZxid;
    }

    private void Roll()
    {
        _handle?.Dispose();
        _handle = null;
        var ordinal = _nextOrdinal++;
        var path = Path.Combine(_dir, Prefix + ordinal.ToString("x16", CultureInfo.InvariantCulture));
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
        try
        {
            _allocated = 0;
            Preallocate(handle, 0, _preallocateBytes);
            Span<byte> header = stackalloc byte[SegmentHeaderSize];
            BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(header[4..], Version);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], LastDurableZxid);
            RandomAccess.Write(handle, header, 0);
            Sync(handle);
            SnapshotFiles.FsyncDirectory(_dir);
        }
        catch
        {
            handle.Dispose();
            try { File.Delete(path); } catch (IOException) { }
            throw;
        }
        _handle = handle;
        _end = SegmentHeaderSize;
        _allocated = _preallocateBytes;
        _segments.Add(new Segment(path, ordinal, LastDurableZxid));
        _rollBeforeWrite = false;
    }

    private void EnsureAllocated(long size)
    {
        if (size <= _allocated) return;
        var grown = Math.Max(size, _allocated + _preallocateBytes);
        Preallocate(_handle!, _allocated, grown - _allocated);
        _allocated = grown;
    }

    /// <summary>
    /// Drops whole segments (oldest first, never the one being written) whose txns all have zxid ≤
    /// <paramref name="upToZxid"/>. Returns how many were deleted.
    /// </summary>
    public int Purge(long upToZxid)
    {
        var deleted = 0;
        while (_segments.Count > 1 && _segments[0].MaxZxid <= upToZxid)
        {
            File.Delete(_segments[0].Path);
            _segments.RemoveAt(0);
            deleted++;
        }
        if (deleted > 0) SnapshotFiles.FsyncDirectory(_dir);
        return deleted;
    }

    public void Dispose()
    {
        _handle?.Dispose();
        _handle = null;
    }

    // ------------------------------------------------------------------ platform

    [DllImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static extern int FDataSync(SafeFileHandle fd);

    [DllImport("libc", EntryPoint = "posix_fallocate", SetLastError = false)]
    private static extern int PosixFallocate(SafeFileHandle fd, long offset, long length);

    private static bool _noFDataSync = !OperatingSystem.IsLinux();
    private static bool _noFallocate = !OperatingSystem.IsLinux();

    private void Sync(SafeFileHandle handle)
    {
        if (!_forceSync) return;
        if (!_noFDataSync)
        {
            try
            {
                if (FDataSync(handle) == 0) return;
                throw new IOException($"fdatasync failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }
            catch (EntryPointNotFoundException) { _noFDataSync = true; }
            catch (DllNotFoundException) { _noFDataSync = true; }
        }
        RandomAccess.FlushToDisk(handle);
    }

    private static void Preallocate(SafeFileHandle handle, long offset, long length)
    {
        if (!_noFallocate)
        {
            try
            {
                var error = PosixFallocate(handle, offset, length);
                if (error == 0) return;
                // EOPNOTSUPP/EINVAL: the file system cannot preallocate; anything else (ENOSPC) is a real failure.
                if (error is not (95 or 22)) throw new IOException($"cannot preallocate the transaction log: {Marshal.GetPInvokeErrorMessage(error)}");
            }
            catch (EntryPointNotFoundException) { _noFallocate = true; }
            catch (DllNotFoundException) { _noFallocate = true; }
        }
        RandomAccess.SetLength(handle, offset + length);
    }
}
