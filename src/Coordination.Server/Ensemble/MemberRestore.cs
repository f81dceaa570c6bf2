using System.Security.Cryptography;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Persistence;

namespace Coordination.Server.Ensemble;

/// <summary>
/// <c>--restore FILE</c> on an ensemble member (ZooKeeper's "restore every member from the same snapshot", done while
/// the member is stopped): the member's snapshots and journal are moved aside into <c>pre-restore.&lt;epoch&gt;</c>, and
/// the snapshot becomes its whole history at the zxid (E, 0), E one past every epoch this member has seen (its
/// epochs file) and past the snapshot's own; its epochs become E, so the next leader starts epoch E + 1.
/// <para>Why that keeps members from diverging: once a quorum of members is restored, the leader they elect has the
/// snapshot as its base at a zxid above every txn any old member logged (a txn's epoch was accepted by a quorum, and
/// that quorum shares a member with the restored one), so Zab sends a full snapshot (SNAP) to any member not
/// restored, or restored with a smaller E, instead of a DIFF or TRUNC against a history the leader never had.</para>
/// The membership (the dynamic config file) stays. A marker (the file's SHA-256) makes a later start with the same
/// <c>--restore</c> (a service definition that keeps the flag, a node restarted after a quarantine) start from the
/// data dir instead of throwing the data written since away.
/// </summary>
internal static class MemberRestore
{
    public const string MarkerFile = "restored-from";

    /// <summary>Restores <paramref name="file"/> into the member's data dir; returns what was done, for the log.</summary>
    public static string Run(string file, PersistenceSettings persistence, SnapshotFiles files)
    {
        var dataDir = files.Directory;
        if (!persistence.UsesFileLog && !persistence.UsesEventLog && persistence.SqliteFile is null)
            throw new RecoveryException($"--restore {file}: an ensemble member restores only a journal in its data dir (file, persistent-file or SQLite)");
        byte[] bytes;
        DataTree tree;
        try
        {
            bytes = File.ReadAllBytes(file);
            tree = DataTree.ReadSnapshot(new MemoryStream(bytes, writable: false));
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new RecoveryException($"--restore {file}: not a valid snapshot ({e.Message})", e);
        }
        var digest = Convert.ToHexString(SHA256.HashData(bytes));
        var marker = Path.Combine(dataDir, MarkerFile);
        if (File.Exists(marker) && File.ReadAllText(marker).Trim() == digest)
            return $"--restore {file}: this member was already restored from it; starting from its data dir";

        var epochFile = ZabLog.EpochFile(dataDir);
        var (accepted, current) = ZabLog.ReadEpochs(epochFile);
        var epoch = Math.Max(Math.Max(accepted, current), Zxids.EpochOf(tree.LastZxid)) + 1;
        try
        {
            tree.AdoptForRestore(Zxids.Make(epoch, 0), sessionSecret: null);
        }
        catch (InvalidOperationException e)
        {
            throw new RecoveryException($"--restore {file}: {e.Message}", e);
        }
        // The new epochs first: a crash after this leaves the old data with a higher epoch (harmless), and a second
        // --restore then counts from it.
        ZabLog.WriteEpochs(epochFile, epoch, epoch);
        var aside = Path.Combine(dataDir, $"pre-restore.{epoch}");
        Directory.CreateDirectory(aside);
        foreach (var (_, path) in files.List()) File.Move(path, Path.Combine(aside, Path.GetFileName(path)));
        foreach (var dir in new[] { persistence.LogDirectory, persistence.EventLogDirectory })
            if (Directory.Exists(dir)) Directory.Move(dir, Path.Combine(aside, Path.GetFileName(dir)));
        if (persistence.SqliteFile is { } db)
            foreach (var path in new[] { db, db + "-wal", db + "-shm" })
                if (File.Exists(path)) File.Move(path, Path.Combine(aside, Path.GetFileName(path)));
        SnapshotFiles.WriteDurably(Path.Combine(dataDir, SnapshotFiles.FileName(tree.LastZxid)), tree.WriteSnapshot);
        SnapshotFiles.WriteDurably(marker, s => s.Write(System.Text.Encoding.ASCII.GetBytes(digest + "\n")));
        return $"Restored {file} as this member's history at zxid 0x{tree.LastZxid:x} (epoch {epoch}); the old data is in {aside}";
    }
}
