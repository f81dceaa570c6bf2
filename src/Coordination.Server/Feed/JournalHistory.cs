using System.Threading.Channels;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;
using Coordination.Protocol;
using Coordination.Server.Persistence;

namespace Coordination.Server.Feed;

/// <summary>
/// The change feed's history from the journal (<see cref="JournalRecords"/>: the file journal's segments, or an
/// Akka.Persistence journal through Akka.Persistence.Query): the changes of txns older than what the replica's
/// in-memory <see cref="ChangeFeed"/> retains. A journal holds raw txns, and an event needs the znode's Stat and ACL
/// after each txn (and a session close's deleted ephemerals exist only in the tree), so history is rebuilt the way
/// recovery rebuilds the tree: a base (a snapshot, or the empty tree when the journal starts at the first txn) plus
/// the journal's txns after it, applied to a private tree off the replica's thread.
/// <para>
/// A base serves only if the journal continues it without a hole: every txn follows the one before
/// (<see cref="EnsembleRecovery.Continues"/>) and no snapshot file lies between two of them (a follower that installed
/// a leader's snapshot kept its older segments and continues after the snapshot, so its journal jumps over it), nor
/// after the last (the same follower before it has journalled a txn after that snapshot).
/// An ensemble journal also holds proposals that a TRUNC removed: they are dropped as recovery drops them.
/// </para>
/// </summary>
internal static class JournalHistory
{
    /// <summary>A tree to replay the journal on: a snapshot file's start zxid, or 0 for the empty tree.</summary>
    public readonly record struct Base(long Zxid, string? Path);

    /// <summary>
    /// The bases the journal continues without a hole, oldest first: those from which history can be rebuilt.
    /// <paramref name="snapshots"/> are the snapshot files (any order).
    /// </summary>
    public static List<Base> Bases(KeptZxids kept, IReadOnlyList<(long Zxid, string Path)> snapshots)
    {
        var starts = snapshots.Select(s => s.Zxid).Order().ToList();
        var result = new List<Base>();
        // Nothing journalled, or a snapshot newer than the journal's last txn (one installed from the leader before
        // the txns after it are journalled, or one that ran ahead of the log): the journal does not reach the state
        // from any older base, so only the newest snapshot (or the empty tree) is the state.
        if (kept.IsEmpty || starts.Count > 0 && starts[^1] > kept.Last)
        {
            result.Add(starts.Count > 0 ? new Base(starts[^1], snapshots.First(s => s.Zxid == starts[^1]).Path) : new Base(0, null));
            return result;
        }
        // The contiguous tail of the journal: from tail on it has no hole.
        var tail = kept.TailStart((before, next) => EnsembleRecovery.Continues(before, next) && !SnapshotBetween(starts, before, next));
        bool Continued(long zxid) =>
            zxid >= tail ? kept.Contains(zxid) || zxid > kept.Last
                         : EnsembleRecovery.Continues(zxid, tail) && !SnapshotBetween(starts, zxid, tail);
        if (Continued(0)) result.Add(new Base(0, null));
        foreach (var (zxid, path) in snapshots.OrderBy(s => s.Zxid))
            if (zxid > 0 && Continued(zxid)) result.Add(new Base(zxid, path));
        return result;
    }

    private static bool SnapshotBetween(List<long> starts, long low, long high)
    {
        var i = starts.BinarySearch(low + 1);
        if (i < 0) i = ~i;
        return i < starts.Count && starts[i] < high;
    }

    /// <summary>The tree of a base, and where its history starts (see <c>ReplicaActor.FeedStart</c>), or null when
    /// its snapshot cannot be read.</summary>
    public static DataTree? Load(Base b)
    {
        if (b.Path is null) return new DataTree();
        try
        {
            using var fs = new FileStream(b.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            var tree = DataTree.ReadSnapshot(fs);
            tree.ReplayMode = tree.SnapshotEndZxid > tree.LastZxid;
            return tree;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Where the history of a snapshot base starts (its end zxid, as <see cref="Load"/>'s tree would say), or
    /// null when its snapshot cannot be read.</summary>
    private static long? EndOf(Base b)
    {
        try
        {
            using var fs = new FileStream(b.Path!, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            return DataTree.ReadSnapshotZxids(fs).End;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The zxid after which history can be rebuilt from this journal, or null when it cannot.</summary>
    public static long? Floor(JournalRecords journal, IReadOnlyList<(long Zxid, string Path)> snapshots)
    {
        foreach (var b in Bases(journal.KeptZxids(), snapshots))
        {
            if (b.Path is null) return 0;
            if (EndOf(b) is { } end) return end;
        }
        return null;
    }
}

/// <summary>One batch of history: the entries of txns up to <see cref="Covered"/> (those with changes under the
/// prefix); <see cref="Done"/> when the journal has nothing more up to the zxid asked for; <see cref="Error"/> when the
/// history cannot be read (purged meanwhile, a hole, an unreadable snapshot): the subscriber is then told Compacted.</summary>
internal sealed record HistoryBatch(IReadOnlyList<FeedEntry> Entries, long Covered, long Bytes, bool Done, string? Error = null);

/// <summary>
/// Reads the changes under a prefix after a zxid from the journal on its own thread, one batch ahead of the consumer:
/// a bounded channel of one batch, so a subscriber that does not read holds the reader (and its tree) still, and at
/// most two batches of <c>batchBytes</c> exist at a time besides the tree. Dispose stops it.
/// </summary>
internal sealed class JournalHistoryReader : IDisposable
{
    private readonly Channel<HistoryBatch> _batches = Channel.CreateBounded<HistoryBatch>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();

    public JournalHistoryReader(JournalRecords journal, Func<IReadOnlyList<(long Zxid, string Path)>> snapshots, string prefix, long afterZxid, long upToZxid, long batchBytes)
    {
        Task.Factory.StartNew(() => Run(journal, snapshots, prefix, afterZxid, upToZxid, batchBytes), _stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The next batch; one at a time.</summary>
    public Task<HistoryBatch> NextAsync() => _batches.Reader.ReadAsync(_stop.Token).AsTask();

    public void Dispose()
    {
        _stop.Cancel();
        _batches.Writer.TryComplete();
    }

    private sealed class StopReading : Exception;

    private void Run(JournalRecords journal, Func<IReadOnlyList<(long Zxid, string Path)>> snapshots, string prefix, long after, long upTo, long batchBytes)
    {
        var covered = after;
        try
        {
            // The snapshots first, then the journal. The replica snapshots only txns it has journalled, so a journal
            // read after the listing reaches every snapshot listed; one read before it could end before a snapshot
            // written meanwhile, which would then look like a leader's installed past the journal (Bases' rule)
            // and hide every older base (a CI flake: the sql journal, read through a query, is slow to read).
            var files = snapshots();
            var keptRuns = journal.KeptZxids();
            var bases = JournalHistory.Bases(keptRuns, files);
            var kept = keptRuns.ToList();
            DataTree? tree = null;
            // The newest base at or before the zxid asked for whose history starts early enough.
            foreach (var b in Enumerable.Reverse(bases))
            {
                if (b.Zxid > after) continue;
                var t = JournalHistory.Load(b);
                if (t is not null && Math.Max(t.LastZxid, t.SnapshotEndZxid) <= after) { tree = t; break; }
            }
            if (tree is null)
            {
                Send(new HistoryBatch([], covered, 0, true, "no snapshot and journal cover it any more " +
                    $"(journal as read: {kept.Count} txns{(kept.Count > 0 ? $", 0x{kept[0]:x}..0x{kept[^1]:x}" : "")}; " +
                    $"snapshots: {string.Join(", ", files.Select(f => f.Zxid).Order().Select(z => $"0x{z:x}"))}; " +
                    $"bases: {string.Join(", ", bases.Select(b => $"0x{b.Zxid:x}"))})"));
                return;
            }

            var batch = new List<FeedEntry>();
            long bytes = 0;
            var next = kept.BinarySearch(tree.LastZxid + 1);
            if (next < 0) next = ~next;
            try
            {
                journal.Read((kind, zxid, payload) =>
            {
                if (kind != LogRecordKind.Txn || next >= kept.Count || zxid != kept[next]) return;   // truncated away
                next++;
                if (zxid <= tree.LastZxid) return;
                if (zxid > upTo) throw new StopReading();
                if (!EnsembleRecovery.Continues(tree.LastZxid, zxid))
                    throw new InvalidDataException($"the journal jumps from 0x{tree.LastZxid:x} to 0x{zxid:x}");
                var (header, txn) = Txns.Deserialize(payload.Span);
                var result = tree.Apply(header, txn);
                if (tree.ReplayMode)
                {
                    if (tree.LastZxid >= tree.SnapshotEndZxid) tree.FinishReplay();
                    return;
                }
                if (zxid > after)
                {
                    var changes = ChangeFeed.ChangesOf(tree, result.Triggers, prefix);
                    if (changes.Length > 0)
                    {
                        var entry = ChangeFeed.EntryOf(zxid, changes, 0);
                        batch.Add(entry);
                        bytes += entry.Bytes;
                    }
                }
                covered = zxid;
                if (bytes >= batchBytes)
                {
                    Send(new HistoryBatch(batch, covered, bytes, false));
                    batch = new List<FeedEntry>();
                    bytes = 0;
                }
            });
            }
            catch (StopReading)
            {
                // Reached the zxid asked for: what follows is the in-memory feed's (or not committed yet).
            }
            Send(new HistoryBatch(batch, covered, bytes, true));
        }
        catch (OperationCanceledException) { }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or JuteException)
        {
            try { Send(new HistoryBatch([], covered, 0, true, e.Message)); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>Waits (on this reader's own thread) until the consumer has taken the previous batch.</summary>
    private void Send(HistoryBatch batch) => _batches.Writer.WriteAsync(batch, _stop.Token).AsTask().GetAwaiter().GetResult();
}
