using Coordination.Server.Persistence;

namespace Coordination.Server.Feed;

/// <summary>
/// The kept zxids of the file journal's segments (<see cref="KeptZxids"/>), read incrementally: the floor is computed
/// after every snapshot, and read whole each time the journal (a few snapshots' worth) cost a third of what the server
/// allocated at saturation. A sealed segment (a newer one follows it) is never written again, so it is read once and
/// its records kept as runs, by path and start point; the newest is read on from where the last read stopped (its
/// writer only appends). Segments a purge deleted drop out at the next read. Thread-safe (the floor's thread and the
/// history readers' share it).
/// </summary>
internal sealed class SegmentZxidCache(string directory)
{
    /// <summary>A segment's records as runs of txns and truncations, in log order.</summary>
    private sealed class SegmentRecords
    {
        private readonly List<(LogRecordKind Kind, long First, long Last)> _records = new();

        public void Record(LogRecordKind kind, long zxid, ReadOnlyMemory<byte> _)
        {
            if (kind == LogRecordKind.Txn && _records.Count > 0 && _records[^1] is (LogRecordKind.Txn, var first, var last) && last == zxid - 1)
                _records[^1] = (kind, first, zxid);
            else _records.Add((kind, zxid, zxid));
        }

        /// <summary>Drops the txns above <paramref name="cutoff"/>, as <see cref="FileTxnLog.ReadSegment"/> drops them once a
        /// newer segment starts there (a failed write's, read before it was erased).</summary>
        public void DropAbove(long cutoff)
        {
            for (var i = _records.Count - 1; i >= 0; i--)
            {
                var (kind, first, last) = _records[i];
                if (kind != LogRecordKind.Txn || last <= cutoff) continue;
                if (first > cutoff) _records.RemoveAt(i);
                else _records[i] = (kind, first, cutoff);
            }
        }

        public void ApplyTo(KeptZxids kept)
        {
            foreach (var (kind, first, last) in _records)
                if (kind == LogRecordKind.Txn) kept.AddRun(first, last);
                else kept.CutAbove(first);
        }
    }

    private sealed class Entry(SegmentRecords records, FileTxnLog.SegmentPosition position)
    {
        public readonly SegmentRecords Records = records;
        public FileTxnLog.SegmentPosition Position = position;
        public bool Sealed;
    }

    private readonly object _lock = new();
    private readonly Dictionary<(string Path, long StartsAfter), Entry> _entries = new();
    private long _bytesRead;
    private readonly Dictionary<string, int> _readsByPath = new();

    /// <summary>Bytes of segment files read so far (records, not headers).</summary>
    public long BytesRead { get { lock (_lock) return _bytesRead; } }

    /// <summary>How many times a segment's records were read (tests).</summary>
    internal int ReadsOf(string path) { lock (_lock) return _readsByPath.GetValueOrDefault(path); }

    /// <summary>How many segments have cached records (tests).</summary>
    internal int Cached { get { lock (_lock) return _entries.Count; } }

    /// <summary>The journal's kept zxids as they are now; a journal that cannot be read throws as <see cref="FileTxnLog.ReadSegment"/>.</summary>
    public KeptZxids Read()
    {
        lock (_lock)
        {
            var segments = FileTxnLog.Segments(directory, _ => { });
            var present = segments.Select(s => (s.Path, s.StartsAfter)).ToHashSet();
            foreach (var gone in _entries.Keys.Where(k => !present.Contains(k)).ToList())
            {
                _entries.Remove(gone);
                _readsByPath.Remove(gone.Path);
            }

            var kept = new KeptZxids();
            var last = segments.Count > 0 ? segments[0].StartsAfter : 0;
            for (var i = 0; i < segments.Count; i++)
            {
                var segment = segments[i];
                long? cutoff = i + 1 < segments.Count ? segments[i + 1].StartsAfter : null;
                var entry = _entries.GetValueOrDefault((segment.Path, segment.StartsAfter));
                if (entry is not { Sealed: true }) entry = ReadOn(segment, cutoff, entry ?? new Entry(new SegmentRecords(), FileTxnLog.StartOf(segment, last)));
                entry.Records.ApplyTo(kept);
                last = entry.Position.Last;
            }
            return kept;
        }
    }

    private Entry ReadOn(FileTxnLog.SegmentFile segment, long? cutoff, Entry entry)
    {
        var key = (segment.Path, segment.StartsAfter);
        // A failed read leaves records half added: the segment is read from its start next time.
        _entries.Remove(key);
        if (cutoff is { } cut) entry.Records.DropAbove(cut);
        var from = entry.Position.Offset;
        entry.Position = FileTxnLog.ReadSegment(segment, cutoff, entry.Position, entry.Records.Record, live: true, payloadsKept: false);
        entry.Sealed = cutoff is not null;
        _bytesRead += entry.Position.Offset - from;
        _readsByPath[segment.Path] = _readsByPath.GetValueOrDefault(segment.Path) + 1;
        _entries[key] = entry;
        return entry;
    }
}
