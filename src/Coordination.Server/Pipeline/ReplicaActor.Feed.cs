using Akka.Actor;
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
/// only; if it falls behind what is retained, it is told Compacted and its subscription ends.
/// </summary>
public sealed partial class ReplicaActor
{
    private ChangeFeed _feed = null!;
    private readonly List<Subscription> _subscriptions = new();
    private static readonly TimeSpan PumpInterval = TimeSpan.FromMilliseconds(10);

    private sealed class Subscription(long sessionId, int xid, string prefix, long after, long cursor, Network.ClientConnection? connection)
    {
        public readonly long SessionId = sessionId;
        public readonly int Xid = xid;
        public readonly string Prefix = prefix;
        /// <summary>Changes at or below this zxid are not sent (a subscriber that saw a member ahead of this one).</summary>
        public readonly long After = after;
        public readonly Network.ClientConnection? Connection = connection;
        public long Cursor = cursor;
    }

    private sealed class FeedPump { public static readonly FeedPump Instance = new(); }

    /// <summary>Where a tree's history starts for the feed: after its snapshot's last txn (a fuzzy snapshot's txns up to
    /// its end are replayed on top of it and give no reliable changes).</summary>
    private static long FeedStart(DataTree tree) => Math.Max(tree.LastZxid, tree.SnapshotEndZxid);

    private void InitFeed()
    {
        _feed = new ChangeFeed(_settings.ChangeFeed, FeedStart(_tree));
        PublishFeedMetrics();
    }

    /// <summary>Records the changes of a txn just applied.</summary>
    private void RecordChanges(long zxid, IReadOnlyList<WatchTrigger> triggers)
    {
        var changes = new List<Change>();
        foreach (var trigger in triggers)
        {
            switch (trigger.Type)
            {
                case EventType.NodeDeleted:
                    changes.Add(new Change(EventType.NodeDeleted, trigger.Path, null, default, trigger.Acl));
                    break;
                case EventType.NodeCreated or EventType.NodeDataChanged:
                    // The state after the whole txn (a multi may change the znode again, or delete it: then its
                    // NodeDeleted follows).
                    var node = _tree.Find(trigger.Path);
                    changes.Add(new Change(trigger.Type, trigger.Path, node?.Data, node?.Stat ?? default, trigger.Acl));
                    break;
            }
        }
        _feed.Append(zxid, changes.ToArray(), _monotonic());
    }

    /// <summary>The tree was replaced by a snapshot from the leader: the history before it is gone here.</summary>
    private void ResetFeed()
    {
        _feed.Reset(FeedStart(_tree));
        PumpFeeds();
    }

    private (ErrorCode, ZkResponse) Subscribe(ClientRequest request, WatchChangesRequest r)
    {
        var position = new ChangeFeedPosition(request.Xid, _feed.RetainedAfter, _feed.LastZxid);
        if (!Paths.IsValid(r.Prefix)) return (ErrorCode.BadArguments, EmptyResponse.Instance);
        _subscriptions.RemoveAll(s => s.SessionId == request.SessionId && s.Xid == request.Xid);
        if (_subscriptions.Count(s => s.SessionId == request.SessionId) >= _settings.ChangeFeed.MaxSubscriptionsPerConnection)
            return (ErrorCode.BadArguments, EmptyResponse.Instance);
        if (_feed.CursorAfter(r.AfterZxid) is not { } cursor)
        {
            _metrics.ClientPort.Feed.CompactedOnce();
            return (ErrorCode.Compacted, position);
        }
        _subscriptions.Add(new Subscription(request.SessionId, request.Xid, r.Prefix, r.AfterZxid, cursor, request.Connection));
        Self.Tell(FeedPump.Instance);   // after this reply, which is sent as soon as this returns
        PublishFeedMetrics();
        return (ErrorCode.Ok, position);
    }

    private (ErrorCode, ZkResponse) Unsubscribe(long sessionId, StopChangesRequest r)
    {
        var removed = _subscriptions.RemoveAll(s => s.SessionId == sessionId && s.Xid == r.Subscription);
        PublishFeedMetrics();
        return (removed > 0 ? ErrorCode.Ok : ErrorCode.NoWatcher, EmptyResponse.Instance);
    }

    /// <summary>A session's subscriptions end with its connection (the client resumes from the last zxid it saw).</summary>
    private void EndSubscriptions(long sessionId)
    {
        if (_subscriptions.RemoveAll(s => s.SessionId == sessionId) > 0) PublishFeedMetrics();
    }

    private void EndAllSubscriptions()
    {
        _subscriptions.Clear();
        PublishFeedMetrics();
    }

    /// <summary>Gives every subscription its turn: what it has not been sent yet, up to a batch, unless its
    /// connection is backlogged. Re-arms itself while one lags.</summary>
    private void PumpFeeds()
    {
        if (_subscriptions.Count == 0) return;
        var lagging = false;
        var sent = 0;
        for (var i = _subscriptions.Count - 1; i >= 0; i--)
        {
            var sub = _subscriptions[i];
            if (!_sessions.TryGetValue(sub.SessionId, out var session))
            {
                _subscriptions.RemoveAt(i);
                continue;
            }
            if (sub.Cursor < _feed.FirstSeq)
            {
                var end = new ChangeFeedPosition(sub.Xid, _feed.RetainedAfter, _feed.LastZxid);
                session.Actor.Tell(new Notification(session.NextSeq(), _feed.LastZxid,
                    Frames.Encode(new ReplyHeader(Xids.Change, _feed.LastZxid, ErrorCode.Compacted), end)));
                _metrics.ClientPort.Feed.CompactedOnce();
                _subscriptions.RemoveAt(i);
                continue;
            }
            long budget = _settings.ChangeFeed.BatchBytes;
            while (budget > 0 && sub.Connection is not { Backlogged: true } && _feed.At(sub.Cursor) is { } entry)
            {
                sub.Cursor++;
                if (entry.Zxid <= sub.After) continue;
                for (var c = 0; c < entry.Changes.Length; c++)
                {
                    var change = entry.Changes[c];
                    if (!WatchChangesRequest.Covers(sub.Prefix, change.Path)) continue;
                    var frame = _feed.FrameFor(entry, c, sub.Xid);
                    session.Actor.Tell(new Notification(session.NextSeq(), entry.Zxid, frame, change.Acl));
                    budget -= frame.Length;
                    sent++;
                }
            }
            if (sub.Cursor < _feed.EndSeq) lagging = true;
        }
        if (sent > 0) _metrics.ClientPort.Feed.Sent(sent);
        PublishFeedMetrics();
        if (lagging && !Timers.IsTimerActive("feed-pump")) Timers.StartSingleTimer("feed-pump", FeedPump.Instance, PumpInterval);
    }

    private void PublishFeedMetrics() =>
        _metrics.ClientPort.Feed.Set(_subscriptions.Count, _feed.RetainedTxns, _feed.RetainedBytes, _feed.RetainedAfter);
}
