using Akka.Actor;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Ensemble;

/// <summary>
/// A server's Zab log as the peer sees it: the entries since the newest snapshot in memory (what DIFF sends and what
/// commits apply), made durable by the <see cref="ZabJournalActor"/>; the epochs in a small fsynced file; and the
/// snapshot files, which SNAP transfers. Used only from the peer actor's thread. Committed entries go to the replica
/// as <see cref="ApplyCommitted"/>, in zxid order.
/// </summary>
public sealed class ZabLog : IZabStorage, IZabSnapshots
{
    private readonly List<LogEntry> _entries;
    private readonly IActorRef _journal;
    private readonly SnapshotFiles _files;
    private readonly string _epochFile;
    private readonly IActorRef _replica;
    private long _retainedFrom;
    private long _applied;

    /// <param name="replica">Where committed txns go (the replica whose child the peer using this log is).</param>
    public ZabLog(long snapshotZxid, List<LogEntry> entries, IActorRef journal, SnapshotFiles files, IActorRef replica)
    {
        _replica = replica;
        _retainedFrom = _applied = snapshotZxid;
        _entries = entries;
        _journal = journal;
        _files = files;
        _epochFile = EpochFile(files.Directory);
        (AcceptedEpoch, CurrentEpoch) = ReadEpochs(_epochFile);
    }

    public long AcceptedEpoch { get; private set; }
    public long CurrentEpoch { get; private set; }
    public long LastZxid => _entries.Count > 0 ? _entries[^1].Zxid : _retainedFrom;
    public long RetainedFrom => _retainedFrom;
    /// <summary>The data dir, where the dynamic config file lives beside the snapshots.</summary>
    public string Directory => _files.Directory;

    public IReadOnlyList<LogEntry> EntriesAfter(long zxid)
    {
        var from = FirstAfter(zxid);
        return from == _entries.Count ? [] : _entries.GetRange(from, _entries.Count - from);
    }

    /// <summary>The index of the first entry with a zxid greater than <paramref name="zxid"/>.</summary>
    private int FirstAfter(long zxid)
    {
        int lo = 0, hi = _entries.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_entries[mid].Zxid <= zxid) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    public Task AppendAsync(IReadOnlyList<LogEntry> entries)
    {
        _entries.AddRange(entries);
        // The only continuation is the peer's PipeTo (a Tell): it may run inline on the journal's thread, which
        // saves a thread-pool hop per append.
        var durable = new TaskCompletionSource();
        _journal.Tell(new AppendToLog(entries, durable));
        return durable.Task;
    }

    public Task TruncateAsync(long zxid)
    {
        var from = FirstAfter(zxid);
        _entries.RemoveRange(from, _entries.Count - from);
        var durable = new TaskCompletionSource();
        _journal.Tell(new TruncateLogAfter(zxid, durable));
        return durable.Task;
    }

    public void SaveEpochs(long acceptedEpoch, long currentEpoch)
    {
        // Rare (once per election) and must be durable before the peer acknowledges the epoch: written in place.
        WriteEpochs(_epochFile, acceptedEpoch, currentEpoch);
        AcceptedEpoch = acceptedEpoch;
        CurrentEpoch = currentEpoch;
    }

    /// <summary>The member's epochs file in its data dir.</summary>
    internal static string EpochFile(string dataDir) => Path.Combine(dataDir, "epochs");

    internal static void WriteEpochs(string file, long acceptedEpoch, long currentEpoch) =>
        SnapshotFiles.WriteDurably(file, s =>
        {
            using var w = new StreamWriter(s, leaveOpen: true);
            w.Write($"{acceptedEpoch} {currentEpoch}\n");
        });

    internal static (long, long) ReadEpochs(string file)
    {
        if (!File.Exists(file)) return (0, 0);
        var parts = File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !long.TryParse(parts[0], out var accepted) || !long.TryParse(parts[1], out var current))
            throw new RecoveryException($"{file} is corrupt: expected '<acceptedEpoch> <currentEpoch>'");
        return (accepted, current);
    }

    public void Commit(long zxid)
    {
        if (zxid <= _applied) return;
        var from = FirstAfter(_applied);
        var upTo = FirstAfter(zxid);
        if (upTo <= from) return;
        var batch = _entries.GetRange(from, upTo - from);
        _applied = batch[^1].Zxid;
        _replica.Tell(new ApplyCommitted(batch));
    }

    // ------------------------------------------------------------------ snapshots (IZabSnapshots)

    public string? SnapshotPath(long zxid)
    {
        foreach (var (z, path) in _files.List())
            if (z == zxid) return path;
        return null;
    }

    public string TemporaryPath(long zxid) => Path.Combine(_files.Directory, SnapshotFiles.FileName(zxid) + ".fetch.tmp");

    public Task Install(string fetchedFile, long zxid)
    {
        DataTree tree;
        using (var fs = File.OpenRead(fetchedFile)) tree = DataTree.ReadSnapshot(fs);
        if (tree.LastZxid != zxid) throw new InvalidDataException($"fetched snapshot starts at 0x{tree.LastZxid:x}, expected 0x{zxid:x}");
        // Newer local snapshots would shadow this one at the next start; they hold only a stale history.
        foreach (var (z, path) in _files.List())
            if (z >= zxid) File.Delete(path);
        File.Move(fetchedFile, Path.Combine(_files.Directory, SnapshotFiles.FileName(zxid)));
        SnapshotFiles.FsyncDirectory(_files.Directory);
        var truncated = TruncateAsync(zxid);
        _entries.Clear();
        _retainedFrom = _applied = zxid;
        tree.ReplayMode = tree.SnapshotEndZxid > tree.LastZxid;
        _replica.Tell(new ReplaceTree(tree));
        return truncated;
    }

    public void SnapshotTaken(long startZxid)
    {
        if (startZxid <= _retainedFrom || startZxid > _applied) return;
        _entries.RemoveRange(0, FirstAfter(startZxid));
        _retainedFrom = startZxid;
    }
}

/// <summary>What a peer needs for SNAP synchronisation, beside its log.</summary>
public interface IZabSnapshots
{
    /// <summary>The snapshot file that starts at <paramref name="zxid"/>, or null if there is none (any more).</summary>
    string? SnapshotPath(long zxid);
    /// <summary>Where a snapshot fetched from the leader is written before it is installed.</summary>
    string TemporaryPath(long zxid);
    /// <summary>Makes a fetched snapshot this server's state: its log restarts there and the replica takes the tree.
    /// The task completes once the log's truncation to it is durable too.</summary>
    Task Install(string fetchedFile, long zxid);
    /// <summary>The replica wrote a snapshot starting at <paramref name="startZxid"/>: the log before it may go.</summary>
    void SnapshotTaken(long startZxid);
}
