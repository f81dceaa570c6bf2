namespace Coordination.Server.Metrics;

/// <summary>The change feed (op WatchChanges): what is retained and how subscribers are served. Reported by mntr
/// (with the zk_ prefix) and so by /metrics. The gauges are set by the replica after each change.</summary>
public sealed class ChangeFeedMetrics
{
    private long _eventsSent;
    private long _compacted;
    private long _subscriptions;
    private long _retainedTxns;
    private long _retainedBytes;
    private long _retainedAfter;
    private long _heldBytes;
    private long _historyReaders;
    private long _historyBufferedBytes;
    private long _journalAfter = -1;
    private (long Txns, long Bytes, long TimeMs) _limits;

    public long EventsSent => Interlocked.Read(ref _eventsSent);
    /// <summary>Subscriptions refused or ended because what they asked for was no longer retained.</summary>
    public long Compacted => Interlocked.Read(ref _compacted);
    public long RetainedAfter => Interlocked.Read(ref _retainedAfter);

    public void Sent(int events) => Interlocked.Add(ref _eventsSent, events);
    public void CompactedOnce() => Interlocked.Increment(ref _compacted);

    /// <summary><paramref name="heldBytes"/>: the memory the record holds (whole chunks of frames, the index rings),
    /// which <paramref name="retainedBytes"/> (the frames' exact sizes) does not show.</summary>
    public void Set(int subscriptions, int retainedTxns, long retainedBytes, long retainedAfter, long heldBytes)
    {
        Volatile.Write(ref _heldBytes, heldBytes);
        Volatile.Write(ref _subscriptions, subscriptions);
        Volatile.Write(ref _retainedTxns, retainedTxns);
        Volatile.Write(ref _retainedBytes, retainedBytes);
        Volatile.Write(ref _retainedAfter, retainedAfter);
    }

    /// <summary>Subscriptions being served from the journal, the bytes of history read and not sent yet, and the zxid
    /// after which the journal can rebuild history (-1: it cannot). Compacted names the lower of it and
    /// retained_after_zxid (what memory retains).</summary>
    public void SetHistory(int readers, long bufferedBytes, long journalAfter)
    {
        Volatile.Write(ref _historyReaders, readers);
        Volatile.Write(ref _historyBufferedBytes, bufferedBytes);
        Volatile.Write(ref _journalAfter, journalAfter);
    }

    public long HistoryBufferedBytes => Volatile.Read(ref _historyBufferedBytes);

    /// <summary>The configured retention bounds (retain-txns, retain-bytes, retain-time), shown beside what is retained.</summary>
    public void SetLimits(long txns, long bytes, TimeSpan time) => _limits = (txns, bytes, (long)time.TotalMilliseconds);

    /// <summary>The mntr lines (name without zk_, value); events_sent and compacted are counters, the rest gauges.</summary>
    public IEnumerable<(string Name, long Value)> Values()
    {
        yield return ("change_feed_subscriptions", Volatile.Read(ref _subscriptions));
        yield return ("change_feed_retained_txns", Volatile.Read(ref _retainedTxns));
        yield return ("change_feed_retained_bytes", Volatile.Read(ref _retainedBytes));
        yield return ("change_feed_retained_after_zxid", RetainedAfter);
        yield return ("change_feed_held_bytes", Volatile.Read(ref _heldBytes));
        yield return ("change_feed_retain_txns_limit", _limits.Txns);
        yield return ("change_feed_retain_bytes_limit", _limits.Bytes);
        yield return ("change_feed_retain_time_ms", _limits.TimeMs);
        yield return ("change_feed_journal_after_zxid", Volatile.Read(ref _journalAfter));
        yield return ("change_feed_history_readers", Volatile.Read(ref _historyReaders));
        yield return ("change_feed_history_buffered_bytes", HistoryBufferedBytes);
        yield return ("change_feed_events_sent", EventsSent);
        yield return ("change_feed_compacted", Compacted);
    }
}
