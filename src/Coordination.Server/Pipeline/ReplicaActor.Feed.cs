using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Feed;

namespace Coordination.Server.Pipeline;

/// <summary>
/// The change feed (ops WatchChanges and StopChanges, Coordination.Akka extensions): every committed change is
/// recorded in the <see cref="ChangeFeed"/> as it is applied, and each subscription walks it with a cursor, first
/// catching up from the zxid it asked for and then following commits: one walk, so there is no gap and no duplicate
/// at the hand-over. Changes go to the session as notifications, in its output order, so its READ check on the
/// znode's ACL applies to them as to watch events.
/// Flow control: a subscription gets at most <see cref="ChangeFeedSettings.BatchBytes"/> per turn (a turn per applied
/// batch, or every <see cref="PumpInterval"/> while one lags), and none while its connection is
/// <see cref="Network.ClientConnection.Backlogged"/>: a slow subscriber is paused, and costs the server its cursor
/// only; if it falls behind what is retained in memory, it goes on from the journal on disk (below), else it is told
/// Compacted and its subscription ends.
/// History older than the in-memory record (after a restart it starts at the recovered snapshot) is rebuilt from the
/// journal (its segments, or an Akka.Persistence journal through Akka.Persistence.Query) by a <see cref="JournalHistoryReader"/> on its own thread, one batch at a time as the subscriber takes
/// them; when the reader reaches the zxid the replica had applied when it began, the subscription moves to a cursor
/// after the last zxid read: no gap, no duplicate. At most <see cref="ChangeFeedSettings.HistoryReaders"/> read at
/// once (each holds a tree); others wait their turn.
/// </summary>
public sealed partial class ReplicaActor
{
    private ChangeFeed _feed = null!;
    private readonly List<Subscription> _subscriptions = new();
    private static readonly TimeSpan PumpInterval = TimeSpan.FromMilliseconds(10);

    private sealed class Subscription(long sessionId, int xid, string prefix, long after, long cursor, Network.ClientConnection? connection)
    {
        /// <summary>Every change under the prefix up to this zxid has been sent.</summary>
        public long Position = after;
        /// <summary>Set while the subscription is served from the journal: the changes after this zxid are read there.</summary>
        public long? HistoryAfter;
        public HistoryRead? Read;
        /// <summary>History entries read and not sent yet (at most one batch).</summary>
        public readonly Queue<FeedEntry> Backlog = new();
        public long BacklogBytes;
        /// <summary>
        /// A batch's worth was sent and its <see cref="FeedMark"/> has not come back: the connection counts what it is
        /// sent only when the session actor hands it over, so nothing more is sent until then (else a session actor
        /// that lags would let batches pile up past the connection's bound before <c>Backlogged</c> could see them).
        /// At most two batches and a frame are ever on their way uncounted.
        /// </summary>
        public bool AwaitingMark;
        /// <summary>Bytes sent since the last mark; a mark follows once they reach a batch (live changes are small and
        /// many: a mark per pump would double the session actor's messages).</summary>
        public long UnmarkedBytes;
        public readonly long Id = Interlocked.Increment(ref _nextSubscriptionId);
        public readonly long SessionId = sessionId;
        public readonly int Xid = xid;
        public readonly string Prefix = prefix;
        /// <summary>The prefix as a frame holds it, to filter retained changes without making their paths' strings.</summary>
        public readonly byte[] PrefixUtf8 = System.Text.Encoding.UTF8.GetBytes(prefix);
        /// <summary>Changes at or below this zxid are not sent (a subscriber that saw a member ahead of this one).</summary>
        public readonly long After = after;
        public readonly Network.ClientConnection? Connection = connection;
        public long Cursor = cursor;
    }

    private static long _nextSubscriptionId;

    private sealed class FeedPump { public static readonly FeedPump Instance = new(); }
    private sealed class RetentionTick { public static readonly RetentionTick Instance = new(); }
    private sealed class RefreshHistoryFloor { public static readonly RefreshHistoryFloor Instance = new(); }
    private sealed record HistoryFloorIs(long? Zxid, int Generation, TimeSpan Took);
    private sealed record HistoryRead(JournalHistoryReader Reader)
    {
        public bool Requested;
        public HistoryBatch? Last;
    }
    private sealed record HistoryBatchRead(Subscription Subscription, HistoryRead Read, HistoryBatch Batch);

    /// <summary>History can be rebuilt from the journal for changes after this zxid; null when it cannot (no file
    /// journal, not computed yet, or off).</summary>
    private long? _historyFloor;
    private int _historyFloorGeneration;
    /// <summary>How long the last computation of the floor took (it reads the whole journal, but for the file journal's
    /// segments read before: <see cref="SegmentZxidCache"/>).</summary>
    private TimeSpan _historyFloorCost;
    /// <summary>Snapshots were written since the floor was last computed, while nobody subscribed: the floor may be lower
    /// than the journal's (a purge only raises it), and is computed again at the next subscription.</summary>
    private bool _historyFloorStale;
    /// <summary>A computation of the floor is running (its generation's answer has not come back).</summary>
    private bool _historyFloorPending;
    /// <summary>When (<c>_monotonic</c>, ms) the last computation of the floor began.</summary>
    private long _historyFloorStartedMs = long.MinValue / 2;
    private int _historyReads;
    /// <summary>Whether applied changes are recorded in memory now: always, unless the journal serves history (see
    /// <see cref="FeedCanPause"/>); then only while someone subscribes and for idle-recording after.</summary>
    private bool _feedRecording = true;
    /// <summary>When (<c>_monotonic</c>, ms) the feed last had a subscription: set at each subscription, each pump while
    /// there are any (after every applied batch) and each that ends.</summary>
    private long _feedInUseMs = long.MinValue / 2;
    /// <summary>Memory need not record while nobody subscribes: the journal has every change it would, and a subscriber
    /// is served from there (after a restart, the usual case, that is where its history is anyway).</summary>
    private bool FeedCanPause => _settings.ChangeFeed.HistoryFromJournal && _snapshots is { History: not null } &&
                                 _settings.ChangeFeed.IdleRecording != TimeSpan.MaxValue;

    /// <summary>The oldest zxid a subscriber may ask for: what Compacted names.</summary>
    private long OldestRetained => _historyFloor is { } floor && floor < _feed.RetainedAfter ? floor : _feed.RetainedAfter;

    /// <summary>Whether a zxid older than memory retains is served from the journal. A stale floor is only lower than the
    /// journal's, and a reader that finds its zxid purged ends with Compacted; an unknown one that is stale or still
    /// being computed lets the reader decide (memory that did not record holds nothing older than the last txn).</summary>
    private bool HistoryCovers(long zxid) =>
        zxid < _feed.RetainedAfter && (_historyFloor is { } floor ? zxid >= floor : _historyFloorStale || _historyFloorPending);

    /// <summary>Where a tree's history starts for the feed: after its snapshot's last txn (a fuzzy snapshot's txns up to
    /// its end are replayed on top of it and give no reliable changes).</summary>
    private static long FeedStart(DataTree tree) => Math.Max(tree.LastZxid, tree.SnapshotEndZxid);

    /// <summary>The feed's messages, in every role (registered by <c>ReceiveCommon</c>).</summary>
    private void ReceiveFeedMessages()
    {
        Receive<FeedPump>(_ => PumpFeeds());
        Receive<FeedMarkReached>(m =>
        {
            foreach (var sub in _subscriptions)
                if (sub.Id == m.SubscriptionId) sub.AwaitingMark = false;
            PumpFeeds();
        });
        Receive<RetentionTick>(_ =>
        {
            _feed.Trim(_monotonic());
            PumpFeeds();
        });
        Receive<RefreshHistoryFloor>(_ => ComputeHistoryFloor());
        Receive<HistoryFloorIs>(m =>
        {
            _historyFloorCost = m.Took;
            if (m.Generation != _historyFloorGeneration) return;
            _historyFloor = m.Zxid;
            _historyFloorPending = false;
            PublishFeedMetrics();
        });
        Receive<HistoryBatchRead>(OnHistoryBatch);
    }

    private void InitFeed()
    {
        _feed = new ChangeFeed(_settings.ChangeFeed, FeedStart(_tree));
        _feedRecording = !FeedCanPause;
        ComputeHistoryFloor();
        var limits = _settings.ChangeFeed;
        _metrics.ClientPort.Feed.SetLimits(limits.RetainTxns, limits.RetainBytes, limits.RetainTime);
        PublishFeedMetrics();
    }

    /// <summary>Retention by age is enforced on a timer too, not only when a change is recorded (an idle server
    /// would otherwise keep old changes forever).</summary>
    private void StartFeedRetention()
    {
        var age = _settings.ChangeFeed.RetainTime;
        if (age <= TimeSpan.Zero) return;
        var period = TimeSpan.FromTicks(Math.Clamp(age.Ticks / 10, TimeSpan.FromMilliseconds(100).Ticks, TimeSpan.FromSeconds(10).Ticks));
        Timers.StartPeriodicTimer("feed-retention", RetentionTick.Instance, period);
    }

    /// <summary>Finds, off this thread, how far back the journal on disk can rebuild history (after a start, a
    /// snapshot, or a snapshot installed from the leader: each moves it).</summary>
    private void ComputeHistoryFloor()
    {
        var generation = ++_historyFloorGeneration;
        _historyFloorStale = false;
        _historyFloorStartedMs = _monotonic();
        if (!_settings.ChangeFeed.HistoryFromJournal || _snapshots is not { History: { } journal } policy)
        {
            _historyFloor = null;
            return;
        }
        var files = policy.Files;
        _historyFloorPending = true;
        // Its own thread: it reads the journal, blocking (through a stream for an Akka.Persistence journal).
        Task.Factory.StartNew(() =>
            {
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                var floor = JournalHistory.Floor(journal, files.List());
                return (Floor: floor, Took: System.Diagnostics.Stopwatch.GetElapsedTime(started));
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .PipeTo(Self, success: r => new HistoryFloorIs(r.Floor, generation, r.Took), failure: _ => new HistoryFloorIs(null, generation, TimeSpan.Zero));
    }

    /// <summary>A snapshot was written: older snapshots were deleted and the journal's purge before them is on its
    /// way to the log writer; the floor is recomputed once that has most likely happened (a purge after it only makes
    /// a reader end with Compacted, never skip). A timer already running is left to fire: restarted at every snapshot,
    /// it never fired while snapshots came more often than once a second, and the floor stayed where the start put it.
    /// The wait grows with what the last computation cost (<see cref="HistoryFloorDelay"/>).
    /// While nobody subscribes the floor is only marked stale: computing it reads back every txn written since the last
    /// time (the whole journal on the Akka.Persistence journals) and the oldest snapshot, and at setData saturation that
    /// cost 2-20 % of the server's CPU per write (runs differ) for a value nothing used (docs/architecture.md §4,
    /// "The change feed").</summary>
    private void RefreshHistoryFloorSoon()
    {
        if (!_settings.ChangeFeed.HistoryFromJournal || _snapshots is not { History: not null }) return;
        if (_subscriptions.Count == 0) _historyFloorStale = true;
        else if (!Timers.IsTimerActive("history-floor"))
            Timers.StartSingleTimer("history-floor", RefreshHistoryFloor.Instance, HistoryFloorDelay(_historyFloorCost));
    }

    /// <summary>
    /// The wait before the floor is computed again after a snapshot: a second, or 20 times what the last computation
    /// took, whichever is longer, so that the reads of the whole journal take at most a twentieth of a core. At
    /// setData saturation a snapshot comes every half second and the journal holds a few of them (tens of MB): read
    /// every second, it was a third of what the server allocated (issue 23). A floor that is late is only lower than
    /// the journal's: a subscriber asking below the new floor gets a reader that ends with Compacted, never a gap.
    /// </summary>
    /// <summary>
    /// A subscription found the floor stale: it is computed now, or, if the last computation began less than
    /// <see cref="HistoryFloorDelay"/> ago, once that has passed, so that a client that subscribes and unsubscribes
    /// around snapshots cannot make the server read its journal more often than snapshots do (nor start reads that
    /// overlap). Until then a zxid the stale floor covers goes to a reader, which says Compacted if it is gone.
    /// </summary>
    private void RefreshStaleHistoryFloor()
    {
        if (!_historyFloorStale) return;
        var wait = HistoryFloorWait(_monotonic() - _historyFloorStartedMs, _historyFloorCost);
        if (wait <= TimeSpan.Zero) ComputeHistoryFloor();
        else if (!Timers.IsTimerActive("history-floor")) Timers.StartSingleTimer("history-floor", RefreshHistoryFloor.Instance, wait);
    }

    /// <summary>How long a computation of the floor must still wait, <paramref name="sinceLastStartMs"/> after the last
    /// began: zero means now.</summary>
    internal static TimeSpan HistoryFloorWait(long sinceLastStartMs, TimeSpan lastCost)
    {
        var delay = HistoryFloorDelay(lastCost);
        var since = Math.Max(0, sinceLastStartMs);
        return since >= delay.TotalMilliseconds ? TimeSpan.Zero : delay - TimeSpan.FromMilliseconds(since);
    }

    internal static TimeSpan HistoryFloorDelay(TimeSpan lastCost) =>
        TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, lastCost.Ticks * 20));

    /// <summary>
    /// Records the changes of a txn just applied, or, while memory does not record, only moves past it. Memory stops
    /// recording idle-recording after the last subscription ended (when <see cref="FeedCanPause"/>): not recording gave a
    /// server nobody subscribed to 13-45 % more setData throughput at saturation (docs/architecture.md §4, "Session 27").
    /// A subscription starts it again (<see cref="Subscribe"/>).
    /// </summary>
    private void RecordChanges(long zxid, IReadOnlyList<WatchTrigger> triggers)
    {
        if (!_feedRecording)
        {
            _feed.Pass(zxid);
            return;
        }
        var now = _monotonic();
        if (_subscriptions.Count == 0 && FeedCanPause && now - _feedInUseMs >= _settings.ChangeFeed.IdleRecording.TotalMilliseconds)
        {
            _feedRecording = false;
            _feed.Pass(zxid);
            PublishFeedMetrics();
            return;
        }
        _feed.Append(zxid, _tree, triggers, now);
    }

    /// <summary>The tree was replaced by a snapshot from the leader: the history before it is gone here.</summary>
    private void ResetFeed()
    {
        _feed.Reset(FeedStart(_tree));
        _historyFloor = null;   // the journal jumps over the installed snapshot: recomputed from it
        ComputeHistoryFloor();
        PumpFeeds();
    }

    private (ErrorCode, ZkResponse) Subscribe(ClientRequest request, WatchChangesRequest r)
    {
        var position = new ChangeFeedPosition(request.Xid, OldestRetained, _feed.LastZxid);
        if (!Paths.IsValid(r.Prefix)) return (ErrorCode.BadArguments, EmptyResponse.Instance);
        RemoveSubscriptions(s => s.SessionId == request.SessionId && s.Xid == request.Xid);
        if (_subscriptions.Count(s => s.SessionId == request.SessionId) >= _settings.ChangeFeed.MaxSubscriptionsPerConnection)
            return (ErrorCode.BadArguments, EmptyResponse.Instance);
        // Memory records from here on (if it did not): it holds nothing before the last txn applied, and the journal
        // serves what is older.
        _feedRecording = true;
        _feedInUseMs = _monotonic();
        var cursor = _feed.CursorAfter(r.AfterZxid);
        if (cursor is null && !HistoryCovers(r.AfterZxid))
        {
            // A stale floor named here may be lower than the journal's: it is computed again (paced as any computation).
            RefreshStaleHistoryFloor();
            _metrics.ClientPort.Feed.CompactedOnce();
            return (ErrorCode.Compacted, position);
        }
        _subscriptions.Add(new Subscription(request.SessionId, request.Xid, r.Prefix, r.AfterZxid, cursor ?? _feed.EndSeq, request.Connection)
        {
            HistoryAfter = cursor is null ? r.AfterZxid : null,
        });
        Self.Tell(FeedPump.Instance);   // after this reply, which is sent as soon as this returns
        RefreshStaleHistoryFloor();
        PublishFeedMetrics();
        return (ErrorCode.Ok, position);
    }

    private (ErrorCode, ZkResponse) Unsubscribe(long sessionId, StopChangesRequest r)
    {
        var removed = RemoveSubscriptions(s => s.SessionId == sessionId && s.Xid == r.Subscription);
        PublishFeedMetrics();
        return (removed > 0 ? ErrorCode.Ok : ErrorCode.NoWatcher, EmptyResponse.Instance);
    }

    /// <summary>A session's subscriptions end with its connection (the client resumes from the last zxid it saw).</summary>
    private void EndSubscriptions(long sessionId)
    {
        if (RemoveSubscriptions(s => s.SessionId == sessionId) > 0) PublishFeedMetrics();
    }

    private void EndAllSubscriptions()
    {
        RemoveSubscriptions(_ => true);
        PublishFeedMetrics();
    }

    private int RemoveSubscriptions(Predicate<Subscription> which)
    {
        var removed = 0;
        for (var i = _subscriptions.Count - 1; i >= 0; i--)
        {
            if (!which(_subscriptions[i])) continue;
            StopHistory(_subscriptions[i]);
            _subscriptions.RemoveAt(i);
            removed++;
        }
        if (removed > 0) _feedInUseMs = _monotonic();
        return removed;
    }

    /// <summary>The history readers' threads end with the replica.</summary>
    protected override void PostStop()
    {
        foreach (var sub in _subscriptions) StopHistory(sub);
        base.PostStop();
    }

    // ------------------------------------------------------------------ history from the journal

    private void StartHistory(Subscription sub, long after)
    {
        var files = _snapshots!.Files;
        var reader = new JournalHistoryReader(_snapshots.History!, files.List, sub.Prefix, after, _tree.LastZxid, _settings.ChangeFeed.BatchBytes);
        sub.Read = new HistoryRead(reader);
        _historyReads++;
        RequestHistory(sub);
    }

    private void RequestHistory(Subscription sub)
    {
        var read = sub.Read!;
        read.Requested = true;
        read.Reader.NextAsync().PipeTo(Self, success: batch => new HistoryBatchRead(sub, read, batch),
            failure: e => new HistoryBatchRead(sub, read, new HistoryBatch([], sub.Position, 0, true, e.GetBaseException().Message)));
    }

    private void StopHistory(Subscription sub)
    {
        if (sub.Read is not { } read) return;
        read.Reader.Dispose();
        sub.Read = null;
        _historyReads--;
        sub.Backlog.Clear();
        sub.BacklogBytes = 0;
    }

    private void OnHistoryBatch(HistoryBatchRead m)
    {
        if (m.Subscription.Read != m.Read) return;   // ended meanwhile
        m.Read.Requested = false;
        m.Read.Last = m.Batch;
        foreach (var entry in m.Batch.Entries) m.Subscription.Backlog.Enqueue(entry);
        m.Subscription.BacklogBytes += m.Batch.Bytes;
        PumpFeeds();
    }

    /// <summary>
    /// A subscription's turn while it is served from the journal: its read entries within the budget; then the next
    /// batch, or, once the reader is done, the move to the in-memory record right after the last zxid read (a new
    /// read from there if that is no longer retained in memory either). False when it ended (Compacted).
    /// </summary>
    private bool PumpHistory(Subscription sub, SessionState session, ref long budget, ref int sent)
    {
        while (budget > 0 && sub.Connection is not { Backlogged: true } && sub.Backlog.TryDequeue(out var entry))
        {
            sub.BacklogBytes -= entry.Bytes;
            sub.Position = entry.Zxid;
            if (entry.Zxid <= sub.After) continue;
            for (var c = 0; c < entry.Changes.Length; c++)
            {
                var frame = ChangeFeed.Encode(entry, c, sub.Xid);
                session.Actor.Tell(new Notification(session.NextSeq(), entry.Zxid, frame, entry.Changes[c].Acl));
                budget -= frame.Length;
                sent++;
            }
        }
        if (sub.Backlog.Count > 0) return true;
        if (sub.Read is null)
        {
            if (_historyReads < _settings.ChangeFeed.HistoryReaders) StartHistory(sub, sub.HistoryAfter!.Value);
            return true;
        }
        if (sub.Read.Requested) return true;
        if (sub.Read.Last is not { Done: true } last)
        {
            if (sub.Read.Last is { } read) sub.Position = Math.Max(sub.Position, read.Covered);
            RequestHistory(sub);
            return true;
        }
        StopHistory(sub);
        if (last.Error is not null)
        {
            _logger.Warning("Change feed history for session 0x{0:x} ends: {1}", sub.SessionId, last.Error);
            return false;
        }
        sub.Position = Math.Max(sub.Position, last.Covered);
        if (_feed.CursorAfter(sub.Position) is { } cursor)
        {
            sub.HistoryAfter = null;
            sub.Cursor = cursor;
        }
        else sub.HistoryAfter = sub.Position;   // the in-memory record moved on meanwhile: read on from the journal
        return true;
    }

    /// <summary>Gives every subscription its turn: what it has not been sent yet, up to a batch, unless its
    /// connection is backlogged. Re-arms itself while one lags. Runs after every applied batch and retention tick,
    /// so it also keeps mntr's retention gauges current when nobody subscribes.</summary>
    private void PumpFeeds()
    {
        if (_subscriptions.Count == 0)
        {
            PublishFeedMetrics();
            return;
        }
        _feedInUseMs = _monotonic();
        var lagging = false;
        var sent = 0;
        for (var i = _subscriptions.Count - 1; i >= 0; i--)
        {
            var sub = _subscriptions[i];
            if (!_sessions.TryGetValue(sub.SessionId, out var session))
            {
                StopHistory(sub);
                _subscriptions.RemoveAt(i);
                continue;
            }
            if (sub.AwaitingMark) continue;   // its mark's return pumps it
            long budget = _settings.ChangeFeed.BatchBytes;
            var budgetBefore = budget;
            if (sub.HistoryAfter is null && sub.Cursor < _feed.FirstSeq)
            {
                // Fell behind what memory retains: on from the journal if it still has the changes.
                if (HistoryCovers(sub.Position)) sub.HistoryAfter = sub.Position;
                else
                {
                    EndCompacted(sub, session);
                    _subscriptions.RemoveAt(i);
                    continue;
                }
            }
            if (sub.HistoryAfter is not null)
            {
                if (!PumpHistory(sub, session, ref budget, ref sent))
                {
                    EndCompacted(sub, session);
                    _subscriptions.RemoveAt(i);
                    continue;
                }
                if (sub.HistoryAfter is not null)
                {
                    lagging |= sub.Read is null || sub.Backlog.Count > 0 || sub.Read.Last is { Done: true };
                    MarkIfBatchSent(sub, session, budgetBefore - budget);
                    continue;
                }
            }
            while (budget > 0 && sub.Connection is not { Backlogged: true } && sub.Cursor < _feed.EndSeq)
            {
                var entry = _feed.At(sub.Cursor);
                sub.Cursor++;
                sub.Position = entry.Zxid;
                if (entry.Zxid <= sub.After) continue;
                for (var c = 0; c < entry.Changes; c++)
                {
                    if (!_feed.Covers(entry, c, sub.PrefixUtf8)) continue;
                    var frame = _feed.FrameFor(entry, c, sub.Xid);
                    session.Actor.Tell(new Notification(session.NextSeq(), entry.Zxid, frame, _feed.AclOf(entry, c)));
                    budget -= frame.Length;
                    sent++;
                }
            }
            if (sub.Cursor < _feed.EndSeq) lagging = true;
            MarkIfBatchSent(sub, session, budgetBefore - budget);
        }
        if (sent > 0) _metrics.ClientPort.Feed.Sent(sent);
        PublishFeedMetrics();
        if (lagging && !Timers.IsTimerActive("feed-pump")) Timers.StartSingleTimer("feed-pump", FeedPump.Instance, PumpInterval);
    }

    /// <summary>Once a batch's worth was sent, a <see cref="FeedMark"/> in the session's sequence; the subscription
    /// waits for it.</summary>
    private void MarkIfBatchSent(Subscription sub, SessionState session, long bytes)
    {
        sub.UnmarkedBytes += bytes;
        if (sub.UnmarkedBytes < _settings.ChangeFeed.BatchBytes) return;
        session.Actor.Tell(new FeedMark(session.NextSeq(), sub.Id));
        sub.AwaitingMark = true;
        sub.UnmarkedBytes = 0;
    }

    private void EndCompacted(Subscription sub, SessionState session)
    {
        var end = new ChangeFeedPosition(sub.Xid, OldestRetained, _feed.LastZxid);
        session.Actor.Tell(new Notification(session.NextSeq(), _feed.LastZxid,
            Frames.Encode(new ReplyHeader(Xids.Change, _feed.LastZxid, ErrorCode.Compacted), end)));
        _metrics.ClientPort.Feed.CompactedOnce();
        StopHistory(sub);
    }

    private void PublishFeedMetrics()
    {
        long buffered = 0;
        foreach (var sub in _subscriptions) buffered += sub.BacklogBytes;
        _metrics.ClientPort.Feed.Set(_subscriptions.Count, _feed.RetainedTxns, _feed.RetainedBytes, _feed.RetainedAfter, _feed.HeldBytes + _feed.IndexBytes);
        _metrics.ClientPort.Feed.SetHistory(_historyReads, buffered, _historyFloor ?? -1);
    }
}
