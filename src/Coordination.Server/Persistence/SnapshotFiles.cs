using System.Globalization;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Akka.Actor;
using Coordination.Core;

namespace Coordination.Server.Persistence;

/// <summary>
/// Snapshot files in the data dir: <c>snapshot.&lt;startZxid as 16 hex digits&gt;</c>. A snapshot is written to a
/// <c>.tmp</c> file by a background task, fsynced, then renamed, so a file with the final name is always complete
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

    /// <summary>Receives the chunks of one fuzzy snapshot and writes them on a background task.</summary>
    public sealed class Writer
    {
        private readonly Channel<byte[]> _chunks = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        public long StartZxid { get; }
        public string Path { get; }
        public Task Completion { get; }

        internal Writer(SnapshotFiles owner, long startZxid)
        {
            StartZxid = startZxid;
            Path = System.IO.Path.Combine(owner._dir, FileName(startZxid));
            Completion = Task.Run(async () =>
            {
                var tmp = Path + ".tmp";
                try
                {
                    await using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: false))
                    {
                        await foreach (var chunk in _chunks.Reader.ReadAllAsync().ConfigureAwait(false))
                            fs.Write(chunk);
                        fs.Flush(flushToDisk: true);
                    }
                    File.Move(tmp, Path, overwrite: true);
                    FsyncDirectory(owner._dir);
                    owner.Retain();
                }
                catch
                {
                    try { File.Delete(tmp); } catch (IOException) { }
                    throw;
                }
            });
        }

        public void Write(byte[] chunk)
        {
            if (chunk.Length > 0) _chunks.Writer.TryWrite(chunk);
        }

        public void Complete() => _chunks.Writer.TryComplete();

        public void Abort() => _chunks.Writer.TryComplete(new OperationCanceledException("snapshot aborted"));
    }
}

/// <summary>When the replica takes fuzzy snapshots and where it writes them; <paramref name="History"/> is the journal
/// the change feed reads history from, with these snapshots (null: none).</summary>
public sealed record SnapshotPolicy(SnapshotFiles Files, long EveryTxns, long EveryBytes, int ChunkNodes, Feed.JournalRecords? History = null);

/// <summary>Asks the replica for a snapshot now (the admin snapshot command), serialized in one turn so that it is
/// consistent; it answers its zxid, or -1 if a periodic one is running. The file appears once written.</summary>
public sealed record TakeSnapshot
{
    public static readonly TakeSnapshot Instance = new();
}
