using Akka.Configuration;

namespace Coordination.Server.Feed;

/// <summary>The <c>coordination.change-feed</c> section (documented in reference.conf).</summary>
public sealed record ChangeFeedSettings
{
    /// <summary>Most txns with changes retained for subscribers; older ones answer Compacted.</summary>
    public long RetainTxns { get; init; } = 100_000;
    /// <summary>Most bytes of changes retained: their frames as a subscriber gets them, exactly.</summary>
    public long RetainBytes { get; init; } = 64L << 20;
    /// <summary>Changes older than this are dropped; zero keeps them until a count bound drops them.</summary>
    public TimeSpan RetainTime { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Subscriptions one connection may hold at once; more are refused with BadArguments.</summary>
    public int MaxSubscriptionsPerConnection { get; init; } = 64;
    /// <summary>Bytes of changes sent to one subscription per turn, before others get theirs.</summary>
    public int BatchBytes { get; init; } = 64 << 10;
    /// <summary>Serve changes older than the in-memory record from the file journal on disk (back to the oldest
    /// snapshot the journal continues); off: such zxids answer Compacted.</summary>
    public bool HistoryFromJournal { get; init; }
    /// <summary>Subscriptions read from the journal at once (each rebuilds a tree from a snapshot); others wait.</summary>
    public int HistoryReaders { get; init; } = 2;
    /// <summary>With <see cref="HistoryFromJournal"/> on a journal that serves history: how long memory goes on recording
    /// changes after the last subscription ended; after that, and from the start, changes are recorded only while
    /// someone subscribes. <see cref="TimeSpan.MaxValue"/>: always.</summary>
    public TimeSpan IdleRecording { get; init; } = TimeSpan.FromMinutes(1);

    public static ChangeFeedSettings Default { get; } = new();

    public static ChangeFeedSettings Create(Config? c)
    {
        if (c is null || c.IsEmpty) return Default;
        return new ChangeFeedSettings
        {
            RetainTxns = Math.Max(0, c.GetLong("retain-txns", Default.RetainTxns)),
            RetainBytes = Math.Max(0, c.GetByteSize("retain-bytes") ?? Default.RetainBytes),
            RetainTime = c.GetTimeSpan("retain-time", Default.RetainTime),
            MaxSubscriptionsPerConnection = Math.Max(1, c.GetInt("max-subscriptions-per-connection", Default.MaxSubscriptionsPerConnection)),
            BatchBytes = (int)Math.Clamp(c.GetByteSize("batch-size") ?? Default.BatchBytes, 1 << 10, 16 << 20),
            HistoryFromJournal = c.GetBoolean("history-from-journal", Default.HistoryFromJournal),
            HistoryReaders = Math.Max(1, c.GetInt("history-readers", Default.HistoryReaders)),
            IdleRecording = c.GetString("idle-recording", "") is "infinite" ? TimeSpan.MaxValue : c.GetTimeSpan("idle-recording", Default.IdleRecording),
        };
    }
}
