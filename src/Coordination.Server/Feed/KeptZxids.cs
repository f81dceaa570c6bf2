using Coordination.Server.Persistence;

namespace Coordination.Server.Feed;

/// <summary>
/// The txn zxids a journal keeps after its truncations, as runs of consecutive zxids: within an epoch a journal's
/// zxids follow each other, so a few runs hold a journal of any length, and the floor costs no memory per txn.
/// Built by <see cref="Record"/>ing the journal's records in order (as ZabLogRecovery reads them: entries ascend
/// between truncations; a lower one can only follow a lost truncate marker).
/// </summary>
internal sealed class KeptZxids
{
    private readonly List<(long First, long Last)> _runs = new();

    public bool IsEmpty => _runs.Count == 0;
    public long First => _runs[0].First;
    public long Last => _runs[^1].Last;

    public void Record(LogRecordKind kind, long zxid)
    {
        if (kind == LogRecordKind.Txn) AddRun(zxid, zxid);
        else CutAbove(zxid);
    }

    /// <summary>Txns <paramref name="first"/>..<paramref name="last"/> in order: each drops what is logged above the
    /// one before it.</summary>
    public void AddRun(long first, long last)
    {
        CutAbove(first - 1);
        if (_runs.Count > 0 && _runs[^1].Last == first - 1) _runs[^1] = (_runs[^1].First, last);
        else _runs.Add((first, last));
    }

    /// <summary>Drops every zxid above <paramref name="zxid"/>.</summary>
    public void CutAbove(long zxid)
    {
        while (_runs.Count > 0 && _runs[^1].First > zxid) _runs.RemoveAt(_runs.Count - 1);
        if (_runs.Count > 0 && _runs[^1].Last > zxid) _runs[^1] = (_runs[^1].First, zxid);
    }

    public bool Contains(long zxid)
    {
        var (low, high) = (0, _runs.Count - 1);
        while (low <= high)
        {
            var mid = (low + high) >>> 1;
            if (zxid < _runs[mid].First) high = mid - 1;
            else if (zxid > _runs[mid].Last) low = mid + 1;
            else return true;
        }
        return false;
    }

    /// <summary>The first zxid of the journal's tail in which each txn <paramref name="joins"/> the one before it
    /// (within a run they follow each other).</summary>
    public long TailStart(Func<long, long, bool> joins)
    {
        var i = _runs.Count - 1;
        while (i > 0 && joins(_runs[i - 1].Last, _runs[i].First)) i--;
        return _runs[i].First;
    }

    public List<long> ToList()
    {
        var list = new List<long>();
        foreach (var (first, last) in _runs)
            for (var z = first; z <= last; z++) list.Add(z);
        return list;
    }

    public int Count => _runs.Sum(r => (int)(r.Last - r.First + 1));

    public static KeptZxids Of(IEnumerable<long> txns)
    {
        var kept = new KeptZxids();
        foreach (var zxid in txns) kept.Record(LogRecordKind.Txn, zxid);
        return kept;
    }
}
