namespace Coordination.Server.Persistence;

/// <summary>
/// A persistence id's undeleted events in <see cref="FileEventJournal"/>: each one's sequence number and the ordinal
/// of the log record that holds it, in sequence order. Events are appended at the end and deleted from the front
/// (<c>DeleteMessages</c> up to a sequence number), so it is a ring of value pairs: a deletion is O(deleted), not a
/// shift of everything behind it under the lock the log's writer thread takes after every group commit.
/// </summary>
internal sealed class EventIndex
{
    private (long SequenceNr, long Ordinal)[] _items = new (long, long)[4];
    private int _head;
    private int _count;

    public int Count => _count;

    public (long SequenceNr, long Ordinal) this[int index] => _items[(_head + index) % _items.Length];

    /// <summary>Adds an event after the others; one with a sequence number that is already there replaces it and
    /// every event after it (the log holds a later write of it, after a cut).</summary>
    public void Add(long sequenceNr, long ordinal)
    {
        while (_count > 0 && this[_count - 1].SequenceNr >= sequenceNr) _count--;
        if (_count == _items.Length)
        {
            var grown = new (long, long)[_items.Length * 2];
            for (var i = 0; i < _count; i++) grown[i] = this[i];
            _items = grown;
            _head = 0;
        }
        _items[(_head + _count) % _items.Length] = (sequenceNr, ordinal);
        _count++;
    }

    /// <summary>Drops the events up to <paramref name="sequenceNr"/> (and their payloads from <paramref name="held"/>);
    /// returns how many.</summary>
    public int RemoveTo(long sequenceNr, Dictionary<long, FileEventJournal.StoredEvent>? held)
    {
        var removed = 0;
        while (_count > 0 && this[0].SequenceNr <= sequenceNr)
        {
            held?.Remove(this[0].SequenceNr);
            _head = (_head + 1) % _items.Length;
            _count--;
            removed++;
        }
        if (_count == 0) _head = 0;
        return removed;
    }

    /// <summary>Drops the events of records after <paramref name="ordinal"/> (a cut in the log).</summary>
    public void RemoveAfter(long ordinal, Dictionary<long, FileEventJournal.StoredEvent>? held)
    {
        while (_count > 0 && this[_count - 1].Ordinal > ordinal)
        {
            held?.Remove(this[_count - 1].SequenceNr);
            _count--;
        }
    }

    /// <summary>The events from <paramref name="fromSequenceNr"/> to <paramref name="toSequenceNr"/>, at most <paramref name="max"/>.</summary>
    public List<(long SequenceNr, long Ordinal)> Range(long fromSequenceNr, long toSequenceNr, long max)
    {
        // The first at or after fromSequenceNr, by binary search (sequence numbers increase).
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (this[mid].SequenceNr < fromSequenceNr) lo = mid + 1;
            else hi = mid;
        }
        var range = new List<(long, long)>();
        for (var i = lo; i < _count && range.Count < max && this[i].SequenceNr <= toSequenceNr; i++) range.Add(this[i]);
        return range;
    }
}
