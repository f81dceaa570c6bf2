using System.Buffers.Binary;
using Coordination.Protocol;

namespace Coordination.Server.Feed;

/// <summary>One znode changed by a committed txn, with its state after the txn and the ACL a subscriber needs READ on.</summary>
public sealed record Change(EventType Type, string Path, byte[]? Data, Stat Stat, IReadOnlyList<Acl>? Acl);

/// <summary>The changes of one committed txn (a multi has several), when it was applied and its estimated size.</summary>
public sealed record FeedEntry(long Zxid, Change[] Changes, long Bytes, long AtMs)
{
    /// <summary>Each change's frame as last sent (see <see cref="ChangeFeed.FrameFor"/>); null until a subscriber asks.</summary>
    internal byte[]?[]? Frames;
    /// <summary>What <see cref="Frames"/> hold, counted in the retained bytes with <see cref="Bytes"/>.</summary>
    internal long FrameBytes;
}

/// <summary>
/// The committed changes this replica retains for change-feed subscribers (op WatchChanges), oldest first, bounded by
/// <see cref="ChangeFeedSettings"/> (txns, bytes, age). Each entry has a sequence number; a subscriber's cursor is the
/// sequence number of the next entry it gets, so catching up and following live are the same walk and nothing falls
/// between them. A cursor below <see cref="FirstSeq"/> lost entries to retention: its subscriber is told Compacted.
/// Pure and single-threaded (owned by the replica actor): testable on its own.
/// </summary>
public sealed class ChangeFeed(ChangeFeedSettings settings, long startZxid)
{
    private readonly List<FeedEntry> _entries = new();
    private int _head;

    /// <summary>Every change with a greater zxid is retained (from the oldest retained entry on).</summary>
    public long RetainedAfter { get; private set; } = startZxid;
    /// <summary>The zxid of the last txn recorded (with changes or not).</summary>
    public long LastZxid { get; private set; } = startZxid;
    public long RetainedBytes { get; private set; }
    public int RetainedTxns => _entries.Count - _head;
    /// <summary>The sequence number of the oldest retained entry.</summary>
    public long FirstSeq { get; private set; }
    /// <summary>The sequence number the next entry will get.</summary>
    public long EndSeq => FirstSeq + RetainedTxns;

    /// <summary>Records a committed txn; one with no changes only moves <see cref="LastZxid"/>. Txns at or below
    /// <see cref="RetainedAfter"/> (replayed after a fuzzy snapshot) were recorded before, or never will be.</summary>
    public void Append(long zxid, Change[] changes, long nowMs)
    {
        if (zxid <= LastZxid) return;
        LastZxid = zxid;
        if (changes.Length == 0) return;
        var entry = EntryOf(zxid, changes, nowMs);
        _entries.Add(entry);
        RetainedBytes += entry.Bytes;
        Trim(nowMs);
    }

    /// <summary>An entry with its estimated size (paths, data, Stat).</summary>
    internal static FeedEntry EntryOf(long zxid, Change[] changes, long nowMs)
    {
        long bytes = 64;
        foreach (var c in changes) bytes += 96 + 2L * c.Path.Length + (c.Data?.Length ?? 0);
        return new FeedEntry(zxid, changes, bytes, nowMs);
    }

    /// <summary>The changes of a txn just applied to <paramref name="tree"/>, from its watch triggers (those under
    /// <paramref name="prefix"/> only, when given): created or changed znodes with their state after the whole txn (a
    /// multi may change one again, or delete it: then its NodeDeleted follows), deleted ones.</summary>
    internal static Change[] ChangesOf(Coordination.Core.DataTree tree, IReadOnlyList<Coordination.Core.WatchTrigger> triggers, string? prefix = null)
    {
        List<Change>? changes = null;
        foreach (var trigger in triggers)
        {
            if (trigger.Type is not (EventType.NodeDeleted or EventType.NodeCreated or EventType.NodeDataChanged)) continue;
            if (prefix is not null && !WatchChangesRequest.Covers(prefix, trigger.Path)) continue;
            var node = trigger.Type == EventType.NodeDeleted ? null : tree.Find(trigger.Path);
            (changes ??= new List<Change>()).Add(new Change(trigger.Type, trigger.Path, node?.Data, node?.Stat ?? default, trigger.Acl));
        }
        return changes?.ToArray() ?? [];
    }

    /// <summary>Drops the oldest entries past the retention bounds.</summary>
    public void Trim(long nowMs)
    {
        var oldest = settings.RetainTime > TimeSpan.Zero ? nowMs - (long)settings.RetainTime.TotalMilliseconds : long.MinValue;
        while (RetainedTxns > 0 && (RetainedTxns > settings.RetainTxns || RetainedBytes > settings.RetainBytes || _entries[_head].AtMs < oldest))
        {
            var dropped = _entries[_head];
            _entries[_head++] = null!;
            RetainedBytes -= dropped.Bytes + dropped.FrameBytes;
            RetainedAfter = dropped.Zxid;
            FirstSeq++;
        }
        if (_head > 1024 && _head > _entries.Count / 2)
        {
            _entries.RemoveRange(0, _head);
            _head = 0;
        }
    }

    /// <summary>The history now starts at <paramref name="zxid"/> (the replica took a snapshot from its leader):
    /// nothing before it is retained, and every cursor taken so far is compacted, caught up or not.</summary>
    public void Reset(long zxid)
    {
        FirstSeq = EndSeq + 1;
        _entries.Clear();
        _head = 0;
        RetainedBytes = 0;
        RetainedAfter = LastZxid = zxid;
    }

    /// <summary>The cursor of the first change after <paramref name="afterZxid"/>, or null when changes after it are no
    /// longer retained. A zxid beyond <see cref="LastZxid"/> (the subscriber saw a member that is ahead) gives the end.</summary>
    public long? CursorAfter(long afterZxid)
    {
        if (afterZxid < RetainedAfter) return null;
        int lo = _head, hi = _entries.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_entries[mid].Zxid <= afterZxid) lo = mid + 1; else hi = mid;
        }
        return FirstSeq + (lo - _head);
    }

    /// <summary>Where ChangeEvent's subscription id sits in its frame: after the length (4) and the reply header (4 + 8 + 4).</summary>
    private const int SubscriptionOffset = 20;

    /// <summary>
    /// The frame of change <paramref name="index"/> of a retained entry for <paramref name="subscription"/>. A change's
    /// frame (length, reply header with xid -1002, ChangeEvent) is the same for every subscriber but for the
    /// subscription id, at a fixed offset: encoded once, then shared while subscribers have the same id (the usual
    /// case: each asked at the same point of its session), copied with the id patched in otherwise. The frames kept
    /// count in <see cref="RetainedBytes"/>.
    /// </summary>
    public byte[] FrameFor(FeedEntry entry, int index, int subscription)
    {
        var frames = entry.Frames ??= new byte[]?[entry.Changes.Length];
        var kept = frames[index];
        byte[] frame;
        if (kept is null)
        {
            frame = Encode(entry, index, subscription);
            entry.FrameBytes += frame.Length;
            RetainedBytes += frame.Length;
        }
        else
        {
            if (BinaryPrimitives.ReadInt32BigEndian(kept.AsSpan(SubscriptionOffset)) == subscription) return kept;
            frame = GC.AllocateUninitializedArray<byte>(kept.Length);
            kept.CopyTo(frame, 0);
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(SubscriptionOffset), subscription);
        }
        return frames[index] = frame;
    }

    /// <summary>The frame of change <paramref name="index"/> of an entry for <paramref name="subscription"/>, not kept
    /// (a history entry read from the journal is sent to one subscriber).</summary>
    internal static byte[] Encode(FeedEntry entry, int index, int subscription)
    {
        var change = entry.Changes[index];
        return Pipeline.Frames.Encode(new ReplyHeader(Xids.Change, entry.Zxid, ErrorCode.Ok),
            new ChangeEvent(subscription, change.Type, change.Path, change.Data, change.Stat));
    }

    /// <summary>The entry at <paramref name="cursor"/>, or null at the end. A compacted cursor is the caller's to check.</summary>
    public FeedEntry? At(long cursor) => cursor < EndSeq ? _entries[_head + (int)(cursor - FirstSeq)] : null;
}
