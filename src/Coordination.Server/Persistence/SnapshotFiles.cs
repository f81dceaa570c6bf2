using System.Globalization;
using System.Runtime.InteropServices;
using System.Collections.Concurrent;
using Akka.Actor;
using Coordination.Core;

namespace Coordination.Server.Persistence;

/// <summary>
/// Snapshot files in the data dir: <c>snapshot.&lt;startZxid as 16 hex digits&gt;</c>. A snapshot is written to a
/// <c>.tmp</c> file by a thread of its own, fsynced as it goes, then renamed, so a file with the final name is always complete
/// (a crash leaves at most a .tmp, removed at the next start). After each new snapshot only the newest
/// <c>retained</c> are kept and the journal is purged up to the oldest kept one's start.
/// </summary>
public sealed class SnapshotFiles
{
    public const string Prefix = "snapshot.";
    private readonly string _dir;
    private readonly int _retained;
    private readonly bool _purge;
    private IActorRef? _log;

    public SnapshotFiles(string dataDir, int retained, bool purge)
    {
        _dir = Path.GetFullPath(dataDir);
        _retained = Math.Max(1, retained);
        _purge = purge;
    }

    public string Directory => _dir;

    /// <summary>Where to send <see cref="PurgeJournal"/> after a snapshot is written.</summary>
    public void AttachLog(IActorRef log) => _log = log;

    public static string FileName(long zxid) => Prefix + zxid.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>The snapshot files, newest (highest start zxid) first.</summary>
    public IReadOnlyList<(long Zxid, string Path)> List()
    {
        var result = new List<(long, string)>();
        if (!System.IO.Directory.Exists(_dir)) return result;
        foreach (var file in System.IO.Directory.EnumerateFiles(_dir, Prefix + "*"))
        {
            var name = Path.GetFileName(file);
            if (name.Length != Prefix.Length + 16) continue;
            if (long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var zxid))
                result.Add((zxid, file));
        }
        result.Sort((a, b) => b.Item1.CompareTo(a.Item1));
        return result;
    }

    public void RemoveTemporaryFiles()
    {
        if (!System.IO.Directory.Exists(_dir)) return;
        foreach (var file in System.IO.Directory.EnumerateFiles(_dir, Prefix + "*.tmp")) File.Delete(file);
    }

    /// <summary>Starts a background writer for a snapshot beginning at <paramref name="startZxid"/>.</summary>
    public Writer Begin(long startZxid) => new(this, startZxid);

    /// <summary>Writes a complete snapshot (as produced by <see cref="DataTree.WriteSnapshot"/>) under its final name, durably.</summary>
    public static void WriteDurably(string path, Action<Stream> write)
    {
        var tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            write(fs);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
        FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>
    /// Makes the directory's entries durable (a file created, renamed or deleted in it), as ZooKeeper does after a
    /// rename. .NET cannot open a directory as a file (it refuses with UnauthorizedAccessException), so on Linux this
    /// calls open(2) and fsync(2) itself. A failure throws: the caller must not count the change as durable.
    /// Windows (NTFS journals its metadata) and other systems skip it.
    /// </summary>
    public static void FsyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux()) return;
        const int readOnlyCloseOnExec = 0x80000; // O_RDONLY | O_CLOEXEC (same value on every Linux architecture)
        const int interrupted = 4;               // EINTR
        var fd = OpenPath(dir, readOnlyCloseOnExec);
        if (fd < 0) throw DirectorySyncFailed(dir, "open");
        try
        {
            while (Fsync(fd) != 0)
                if (Marshal.GetLastPInvokeError() != interrupted) throw DirectorySyncFailed(dir, "fsync");
        }
        finally
        {
            ClosePath(fd);
        }
    }

    private static IOException DirectorySyncFailed(string dir, string call) =>
        new($"cannot make {dir} durable: {call} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenPath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int ClosePath(int fd);

    private void Retain()
    {
        var all = List();
        for (var i = _retained; i < all.Count; i++) File.Delete(all[i].Path);
        if (_purge && all.Count > 0)
        {
            var oldestKept = all[Math.Min(_retained, all.Count) - 1].Zxid;
            _log?.Tell(new PurgeJournal(oldestKept));
        }
    }

    /// <summary>Receives the chunks of one fuzzy snapshot and writes them on a thread of its own.</summary>
    public sealed class Writer
    {
        // Bytes written between two fdatasyncs of the snapshot. Flushed once at the end, a snapshot of a million
        // znodes left a quarter of a GB in the page cache, and the journal's next fdatasync waited for all of it
        // (ext4's ordered mode writes dirty data with the journal commit): group commits held up to 176 ms at
        // saturation (issue 23). A few MB at a time keeps each of those waits short.
        private const long SyncEveryBytes = 8 << 20;
        private readonly BlockingCollection<ArraySegment<byte>> _chunks = new();
        private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile bool _aborted;
        public long StartZxid { get; }
        public string Path { get; }
        public Task Completion => _completion.Task;

        internal Writer(SnapshotFiles owner, long startZxid)
        {
            StartZxid = startZxid;
            Path = System.IO.Path.Combine(owner._dir, FileName(startZxid));
            // Its writes and fdatasyncs block for milliseconds at a time: not on the thread pool the actors run on.
            new Thread(() => Run(owner)) { IsBackground = true, Name = "snapshot-writer" }.Start();
        }

        private void Run(SnapshotFiles owner)
        {
            var tmp = Path + ".tmp";
            try
            {
                using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    long unsynced = 0;
                    foreach (var chunk in _chunks.GetConsumingEnumerable())
                    {
                        try { if (!_aborted) fs.Write(chunk); }
                        finally { DataTree.FuzzySnapshot.ReturnBytes(chunk); }
                        unsynced += chunk.Count;
                        if (unsynced < SyncEveryBytes || _aborted) continue;
                        fs.Flush(flushToDisk: true);
                        unsynced = 0;
                    }
                    if (_aborted) throw new OperationCanceledException("snapshot aborted");
                    fs.Flush(flushToDisk: true);
                }
                File.Move(tmp, Path, overwrite: true);
                FsyncDirectory(owner._dir);
                owner.Retain();
                _completion.SetResult();
            }
            catch (Exception e)
            {
                while (_chunks.TryTake(out var left)) DataTree.FuzzySnapshot.ReturnBytes(left);
                try { File.Delete(tmp); } catch (IOException) { }
                _completion.SetException(e);
            }
        }

        /// <summary>Queues a chunk from <see cref="DataTree.FuzzySnapshot.TakeBytes"/>; its array goes back to the pool once written.</summary>
        public void Write(ArraySegment<byte> chunk)
        {
            if (chunk.Count > 0 && !_chunks.IsAddingCompleted) _chunks.Add(chunk);
            else DataTree.FuzzySnapshot.ReturnBytes(chunk);
        }

        public void Complete() => _chunks.CompleteAdding();

        public void Abort()
        {
            _aborted = true;
            _chunks.CompleteAdding();
        }
    }
}

/// <summary>When the replica takes fuzzy snapshots and where it writes them; <paramref name="History"/> is the journal
/// the change feed reads history from, with these snapshots (null: none).</summary>
public sealed record SnapshotPolicy(SnapshotFiles Files, long EveryTxns, long EveryBytes, int ChunkNodes, Feed.JournalRecords? History = null)
{
    /// <summary>The share of the tree's size the txns since the last snapshot must reach too (reference.conf,
    /// snapshot-log-ratio).</summary>
    public double LogRatio { get; init; } = 1.0;

    /// <summary>About how long one replica turn of a fuzzy snapshot works (reference.conf, snapshot-chunk-time);
    /// zero: <see cref="ChunkNodes"/> alone bounds it.</summary>
    public TimeSpan ChunkTime { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>The policy the persistence settings describe.</summary>
    public static SnapshotPolicy For(SnapshotFiles files, PersistenceSettings settings, Feed.JournalRecords? history) =>
        new(files, settings.SnapshotEveryTxns, settings.SnapshotEveryBytes, settings.SnapshotChunkNodes, history)
        {
            LogRatio = settings.SnapshotLogRatio,
            ChunkTime = settings.SnapshotChunkTime,
        };

    /// <summary>Whether the txns since the last snapshot (<paramref name="bytes"/> as estimated) call for a new one:
    /// ZooKeeper's counts, and once the tree the last one wrote (<paramref name="snapshotBytes"/>, see
    /// <see cref="SizeOf"/>) outgrew <see cref="EveryBytes"/>, also <see cref="LogRatio"/> times its size. Against the
    /// last snapshot, not the tree now: a tree that only grows would otherwise never catch up with itself.</summary>
    public bool IsDue(long txns, long bytes, long snapshotBytes) =>
        (txns >= EveryTxns || bytes >= EveryBytes) && (snapshotBytes <= EveryBytes || bytes >= LogRatio * snapshotBytes);

    /// <summary>About what a snapshot of <paramref name="tree"/> writes: data, paths and 80 bytes of stat a znode.</summary>
    public static long SizeOf(DataTree tree) => tree.ApproximateDataSize + 80L * tree.NodeCount;
}

/// <summary>Asks the replica for a snapshot now (the admin snapshot command), serialized in one turn so that it is
/// consistent; it answers its zxid, or -1 if a periodic one is running. The file appears once written.</summary>
public sealed record TakeSnapshot
{
    public static readonly TakeSnapshot Instance = new();
}
