using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Server.Feed;

/// <summary>One znode changed by a committed txn, with its state after the txn and the ACL a subscriber needs READ on.</summary>
public sealed record Change(EventType Type, string Path, byte[]? Data, Stat Stat, IReadOnlyList<Acl>? Acl);

/// <summary>The changes of one txn read back from the journal (history: short-lived, one subscriber's), when it was
/// applied and its estimated size.</summary>
public sealed record FeedEntry(long Zxid, Change[] Changes, long Bytes, long AtMs);

/// <summary>A retained txn (see <see cref="ChangeFeed.At"/>): its changes are read through the feed, by index.</summary>
public readonly struct RetainedEntry
{
    internal RetainedEntry(long zxid, long atMs, int changes, long bytes, long firstChange) =>
        (Zxid, AtMs, Changes, Bytes, FirstChange) = (zxid, atMs, changes, bytes, firstChange);

    public long Zxid { get; }
    public long AtMs { get; }
    /// <summary>How many changes the txn made (a multi has several).</summary>
    public int Changes { get; }
    /// <summary>Its frames' bytes.</summary>
    public long Bytes { get; }
    /// <summary>The number of its first change in the feed's index.</summary>
    internal long FirstChange { get; }
}

/// <summary>
/// The committed changes this replica retains for change-feed subscribers (op WatchChanges), oldest first, bounded by
/// <see cref="ChangeFeedSettings"/> (txns, bytes, age). Each entry has a sequence number; a subscriber's cursor is the
/// sequence number of the next entry it gets, so catching up and following live are the same walk and nothing falls
/// between them. A cursor below <see cref="FirstSeq"/> lost entries to retention: its subscriber is told Compacted.
/// Each change is kept as the frame a subscriber gets (with subscription id 0), encoded once at append into a
/// <see cref="ByteRing"/>, and indexed by structs without references but the ACL the tree shares: the feed costs the GC
/// a few long-lived arrays, however fast it turns over, and its retained bytes are the frames' exact sizes.
/// Pure and single-threaded (owned by the replica actor): testable on its own.
/// </summary>
public sealed class ChangeFeed
{
    private readonly record struct EntrySlot(long Zxid, long AtMs, long FirstChange, int Changes);
    private readonly record struct ChangeSlot(long Offset, int Length);

    /// <summary>Where ChangeEvent's subscription id sits in its frame: after the length (4) and the reply header (4 + 8 + 4).</summary>
    private const int SubscriptionOffset = 20;
    /// <summary>Where the path's length sits: after the subscription id and the event type; the path's bytes follow it.</summary>
    private const int PathLengthOffset = SubscriptionOffset + 8;
    /// <summary>Largest encoding buffer kept between appends (a 1 MiB znode's is dropped after use).</summary>
    private const int KeepScratchBytes = 64 << 10;

    private readonly ChangeFeedSettings _settings;
    private readonly ByteRing _frames;
    /// <summary>Entries by sequence number, changes by change number, modulo their (power-of-two) lengths.</summary>
    private EntrySlot[] _entries = new EntrySlot[MinRingLength];
    private ChangeSlot[] _changes = new ChangeSlot[MinRingLength];
    private IReadOnlyList<Acl>?[] _acls = new IReadOnlyList<Acl>?[MinRingLength];
    private long _firstChange, _endChange;
    private ArrayBufferWriter<byte> _scratch = new(256);
    /// <summary>The frames copied out lately, by change number modulo its length (change numbers are never reused):
    /// subscribers with the same subscription id (the usual case: each asked at the same point of its session) share
    /// one copy. Small frames only, each kept until 1,024 later changes were sent: it dies young, and this holds at
    /// most 4 MiB.</summary>
    private readonly (long Change, int Subscription, byte[]? Frame)[] _recentFrames = new (long, int, byte[]?)[1024];
    private const int RecentFrameBytes = 4 << 10;
    private byte[] _pathScratch = new byte[256];

    public ChangeFeed(ChangeFeedSettings settings, long startZxid)
    {
        _settings = settings;
        // A sixteenth of the bound: what whole chunks hold beyond the retained bytes (two chunks at most) stays small.
        _frames = new ByteRing((int)Math.Clamp(settings.RetainBytes / 16, 4 << 10, 1 << 20));
        RetainedAfter = LastZxid = startZxid;
    }

    /// <summary>Every change with a greater zxid is retained (from the oldest retained entry on).</summary>
    public long RetainedAfter { get; private set; }
    /// <summary>The zxid of the last txn recorded (with changes or not).</summary>
    public long LastZxid { get; private set; }
    /// <summary>The retained frames' bytes, exactly (each as sent, but for its subscription id).</summary>
    public long RetainedBytes { get; private set; }
    public int RetainedTxns => (int)(EndSeq - FirstSeq);
    /// <summary>The sequence number of the oldest retained entry.</summary>
    public long FirstSeq { get; private set; }
    /// <summary>The sequence number the next entry will get.</summary>
    public long EndSeq { get; private set; }
    /// <summary>Memory the retained frames hold: whole chunks.</summary>
    public long HeldBytes => (long)_frames.ChunksHeld * _frames.ChunkBytes;
    /// <summary>Memory the index rings hold (entries, changes and their ACL references): with <see cref="HeldBytes"/>,
    /// what mntr's change_feed_held_bytes shows beside retained_bytes (the frames' exact sizes).</summary>
    public long IndexBytes => (long)_entries.Length * Unsafe.SizeOf<EntrySlot>() + (long)_changes.Length * Unsafe.SizeOf<ChangeSlot>() + (long)_acls.Length * IntPtr.Size;

    /// <summary>Records a committed txn; one with no changes only moves <see cref="LastZxid"/>. Txns at or below
    /// <see cref="LastZxid"/> (replayed after a fuzzy snapshot) were recorded before, or never will be.</summary>
    public void Append(long zxid, Change[] changes, long nowMs)
    {
        if (zxid <= LastZxid) return;
        LastZxid = zxid;
        if (changes.Length == 0) return;
        var first = _endChange;
        foreach (var c in changes) AddChange(zxid, c.Type, c.Path, c.Data, c.Stat, c.Acl);
        EndEntry(zxid, first, nowMs);
    }

    /// <summary>Records the txn just applied to <paramref name="tree"/> (see <see cref="ChangesOf"/>), straight from its
    /// watch triggers: no <see cref="Change"/> is made.</summary>
    internal void Append(long zxid, DataTree tree, IReadOnlyList<WatchTrigger> triggers, long nowMs)
    {
        if (zxid <= LastZxid) return;
        LastZxid = zxid;
        var first = _endChange;
        for (var i = 0; i < triggers.Count; i++)   // by index: foreach through the interface allocates an enumerator
        {
            var trigger = triggers[i];
            if (!IsChange(trigger.Type)) continue;
            var node = trigger.Type == EventType.NodeDeleted ? null : tree.Find(trigger.Path);
            AddChange(zxid, trigger.Type, trigger.Path, node?.Data, node?.Stat ?? default, trigger.Acl);
        }
        if (_endChange > first) EndEntry(zxid, first, nowMs);
    }

    /// <summary>Moves past a txn without recording it (nobody subscribes, and the journal has it): what was retained is
    /// dropped, and the record starts after it.</summary>
    public void Pass(long zxid)
    {
        if (zxid <= LastZxid) return;
        if (RetainedTxns > 0) Reset(zxid);
        else RetainedAfter = LastZxid = zxid;
    }

    private static bool IsChange(EventType type) => type is EventType.NodeDeleted or EventType.NodeCreated or EventType.NodeDataChanged;

    /// <summary>Writes one change's frame (subscription id 0) into the ring and indexes it.</summary>
    private void AddChange(long zxid, EventType type, string path, byte[]? data, Stat stat, IReadOnlyList<Acl>? acl)
    {
        _scratch.ResetWrittenCount();
        Framing.WriteFrame(_scratch, (zxid, type, path, data, stat), static (ref JuteWriter w, (long Zxid, EventType Type, string Path, byte[]? Data, Stat Stat) c) =>
        {
            new ReplyHeader(Xids.Change, c.Zxid, ErrorCode.Ok).Write(ref w);
            ChangeEvent.Write(ref w, 0, c.Type, c.Path, c.Data, c.Stat);
        });
        var offset = _frames.Append(_scratch.WrittenSpan);
        var length = _scratch.WrittenCount;
        if (_scratch.Capacity > KeepScratchBytes) _scratch = new ArrayBufferWriter<byte>(256);
        if (_endChange - _firstChange == _changes.Length)
        {
            _changes = Resized(_changes, _firstChange, _endChange, 2 * _changes.Length);
            _acls = Resized(_acls, _firstChange, _endChange, 2 * _acls.Length);
        }
        _changes[_endChange & (_changes.Length - 1)] = new ChangeSlot(offset, length);
        _acls[_endChange & (_acls.Length - 1)] = acl;
        _endChange++;
        RetainedBytes += length;
    }

    private void EndEntry(long zxid, long firstChange, long nowMs)
    {
        if (EndSeq - FirstSeq == _entries.Length) _entries = Resized(_entries, FirstSeq, EndSeq, 2 * _entries.Length);
        _entries[EndSeq & (_entries.Length - 1)] = new EntrySlot(zxid, nowMs, firstChange, (int)(_endChange - firstChange));
        EndSeq++;
        Trim(nowMs);
    }

    /// <summary>A ring of <paramref name="length"/> (a power of two), holding numbers [<paramref name="first"/>,
    /// <paramref name="end"/>) at the same places modulo its length.</summary>
    private static T[] Resized<T>(T[] ring, long first, long end, int length)
    {
        var resized = new T[length];
        for (var i = first; i < end; i++) resized[i & (resized.Length - 1)] = ring[i & (ring.Length - 1)];
        return resized;
    }

    /// <summary>Smallest ring length kept: what a quiet feed starts with.</summary>
    private const int MinRingLength = 16;

    /// <summary>The rings grow by doubling in a burst (100,000 txns: about 7 MiB); once what they hold falls to a quarter
    /// of their length they are halved, so a burst's rings do not stay for good. A quarter, not a half: a feed that
    /// hovers at a power of two does not grow and shrink at every append.</summary>
    private void ShrinkRings()
    {
        if (ShrunkLength(_entries.Length, EndSeq - FirstSeq) is var entries && entries < _entries.Length)
            _entries = Resized(_entries, FirstSeq, EndSeq, entries);
        if (ShrunkLength(_changes.Length, _endChange - _firstChange) is var changes && changes < _changes.Length)
        {
            _changes = Resized(_changes, _firstChange, _endChange, changes);
            _acls = Resized(_acls, _firstChange, _endChange, changes);
        }
    }

    private static int ShrunkLength(int length, long held)
    {
        while (length > MinRingLength && held <= length / 4) length /= 2;
        return length;
    }

    private ref EntrySlot Slot(long seq) => ref _entries[seq & (_entries.Length - 1)];
    private ref ChangeSlot ChangeAt(long change) => ref _changes[change & (_changes.Length - 1)];

    /// <summary>The changes of a txn just applied to <paramref name="tree"/>, from its watch triggers (those under
    /// <paramref name="prefix"/> only, when given): created or changed znodes with their state after the whole txn (a
    /// multi may change one again, or delete it: then its NodeDeleted follows), deleted ones.</summary>
    internal static Change[] ChangesOf(DataTree tree, IReadOnlyList<WatchTrigger> triggers, string? prefix = null)
    {
        List<Change>? changes = null;
        foreach (var trigger in triggers)
        {
            if (!IsChange(trigger.Type)) continue;
            if (prefix is not null && !WatchChangesRequest.Covers(prefix, trigger.Path)) continue;
            var node = trigger.Type == EventType.NodeDeleted ? null : tree.Find(trigger.Path);
            (changes ??= new List<Change>()).Add(new Change(trigger.Type, trigger.Path, node?.Data, node?.Stat ?? default, trigger.Acl));
        }
        return changes?.ToArray() ?? [];
    }

    /// <summary>A history entry with its estimated size (paths, data, Stat).</summary>
    internal static FeedEntry EntryOf(long zxid, Change[] changes, long nowMs)
    {
        long bytes = 64;
        foreach (var c in changes) bytes += 96 + 2L * c.Path.Length + (c.Data?.Length ?? 0);
        return new FeedEntry(zxid, changes, bytes, nowMs);
    }

    /// <summary>Drops the oldest entries past the retention bounds.</summary>
    public void Trim(long nowMs)
    {
        var oldest = _settings.RetainTime > TimeSpan.Zero ? nowMs - (long)_settings.RetainTime.TotalMilliseconds : long.MinValue;
        while (RetainedTxns > 0 && (RetainedTxns > _settings.RetainTxns || RetainedBytes > _settings.RetainBytes || Slot(FirstSeq).AtMs < oldest))
        {
            var dropped = Slot(FirstSeq);
            RetainedBytes -= BytesOf(dropped);
            for (var c = dropped.FirstChange; c < dropped.FirstChange + dropped.Changes; c++) _acls[c & (_acls.Length - 1)] = null;
            _firstChange = dropped.FirstChange + dropped.Changes;
            RetainedAfter = dropped.Zxid;
            FirstSeq++;
        }
        _frames.Release(_firstChange < _endChange ? ChangeAt(_firstChange).Offset : _frames.End);
        ShrinkRings();
    }

    /// <summary>An entry's frames lie one after the other in the ring.</summary>
    private long BytesOf(in EntrySlot entry)
    {
        ref var last = ref ChangeAt(entry.FirstChange + entry.Changes - 1);
        return last.Offset + last.Length - ChangeAt(entry.FirstChange).Offset;
    }

    /// <summary>The history now starts at <paramref name="zxid"/> (the replica took a snapshot from its leader):
    /// nothing before it is retained, and every cursor taken so far is compacted, caught up or not.</summary>
    public void Reset(long zxid)
    {
        FirstSeq = EndSeq = EndSeq + 1;
        Array.Clear(_acls);
        _firstChange = _endChange;
        _frames.Clear();
        RetainedBytes = 0;
        RetainedAfter = LastZxid = zxid;
        ShrinkRings();
    }

    /// <summary>The cursor of the first change after <paramref name="afterZxid"/>, or null when changes after it are no
    /// longer retained. A zxid beyond <see cref="LastZxid"/> (the subscriber saw a member that is ahead) gives the end.</summary>
    public long? CursorAfter(long afterZxid)
    {
        if (afterZxid < RetainedAfter) return null;
        long lo = FirstSeq, hi = EndSeq;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (Slot(mid).Zxid <= afterZxid) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>The entry at <paramref name="cursor"/>, which must be retained (from <see cref="FirstSeq"/> to before
    /// <see cref="EndSeq"/>); valid until the next append, trim or reset.</summary>
    public RetainedEntry At(long cursor)
    {
        if (cursor < FirstSeq || cursor >= EndSeq) throw new ArgumentOutOfRangeException(nameof(cursor), $"{cursor} is outside [{FirstSeq}, {EndSeq})");
        var slot = Slot(cursor);
        return new RetainedEntry(slot.Zxid, slot.AtMs, slot.Changes, BytesOf(slot), slot.FirstChange);
    }

    /// <summary>The ACL a subscriber needs READ on to be sent change <paramref name="index"/> of <paramref name="entry"/>.</summary>
    public IReadOnlyList<Acl>? AclOf(in RetainedEntry entry, int index) => _acls[(entry.FirstChange + index) & (_acls.Length - 1)];

    /// <summary>Whether change <paramref name="index"/> of <paramref name="entry"/> is at or below the prefix whose UTF-8
    /// bytes are <paramref name="prefix"/>: read from its frame, no string made.</summary>
    public bool Covers(in RetainedEntry entry, int index, ReadOnlySpan<byte> prefix)
    {
        if (prefix.Length == 1 && prefix[0] == (byte)'/') return true;
        var change = ChangeAt(entry.FirstChange + index);
        var length = BinaryPrimitives.ReadInt32BigEndian(_frames.Read(change.Offset + PathLengthOffset, 4, ref _pathScratch));
        return WatchChangesRequest.Covers(prefix, _frames.Read(change.Offset + PathLengthOffset + 4, length, ref _pathScratch));
    }

    /// <summary>
    /// The frame of change <paramref name="index"/> of a retained entry for <paramref name="subscription"/>: a change's
    /// frame (length, reply header with xid -1002, ChangeEvent) is the same for every subscriber but for the
    /// subscription id, at a fixed offset; it is copied out of the ring with the id patched in, and the copy shared
    /// with the next subscribers that have the same id (short-lived: the ring's bytes are what is retained).
    /// </summary>
    public byte[] FrameFor(in RetainedEntry entry, int index, int subscription)
    {
        var number = entry.FirstChange + index;
        ref var recent = ref _recentFrames[number & (_recentFrames.Length - 1)];
        if (recent.Frame is { } shared && recent.Change == number && recent.Subscription == subscription) return shared;
        var change = ChangeAt(number);
        var frame = GC.AllocateUninitializedArray<byte>(change.Length);
        _frames.CopyTo(change.Offset, frame);
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(SubscriptionOffset), subscription);
        recent = frame.Length <= RecentFrameBytes ? (number, subscription, frame) : default;
        return frame;
    }

    /// <summary>The frame of change <paramref name="index"/> of a history entry for <paramref name="subscription"/>
    /// (read from the journal, sent to one subscriber).</summary>
    internal static byte[] Encode(FeedEntry entry, int index, int subscription)
    {
        var change = entry.Changes[index];
        return Pipeline.Frames.Encode(new ReplyHeader(Xids.Change, entry.Zxid, ErrorCode.Ok),
            new ChangeEvent(subscription, change.Type, change.Path, change.Data, change.Stat));
    }
}
