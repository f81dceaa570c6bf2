using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Persistence;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Start-up of an ensemble member: the newest valid snapshot becomes the tree, and the journal's entries after it
/// become the Zab log. Unlike a standalone server, nothing of the log is applied here: a follower's log may end in
/// proposals that were never committed, so entries are applied only when Zab commits them after this server has
/// synchronised with the leader (which may also TRUNC them away first).
/// </summary>
public static class EnsembleRecovery
{
    public sealed record Result(DataTree Tree, IActorRef Journal, List<LogEntry> Entries, string? SnapshotFile);

    public static Result Run(ActorSystem system, PersistenceSettings persistence, SnapshotFiles files, ILoggingAdapter log, bool readOnly = false)
    {
        if (!readOnly) files.RemoveTemporaryFiles();
        var skipped = new List<string>();
        DataTree? tree = null;
        string? file = null;
        foreach (var (_, path) in files.List())
        {
            tree = Recovery.TryReadSnapshot(path, log, skipped);
            if (tree is null) continue;
            file = path;
            break;
        }
        tree ??= new DataTree();
        tree.ReplayMode = tree.SnapshotEndZxid > tree.LastZxid;

        var recovery = new ZabLogRecovery(tree.LastZxid);
        IActorRef journal = ActorRefs.Nobody;
        List<LogEntry> entries;
        try
        {
            FileJournal.RefuseOtherJournal(persistence);
            if (persistence.UsesFileLog)
            {
                void Collect(LogRecordKind kind, long zxid, ReadOnlyMemory<byte> bytes)
                {
                    if (kind == LogRecordKind.Txn) recovery.Add(zxid, bytes);
                    else recovery.TruncateAfter(zxid);
                }
                if (readOnly) FileTxnLog.Read(persistence.LogDirectory, Collect);
                else journal = FileJournal.Start(system, persistence, tree.LastZxid, "zab-log", Collect, _ => system.Terminate());
                recovery.Complete();
            }
            else journal = system.ActorOf(ZabJournalActor.Props(persistence, recovery), "zab-log");
            entries = recovery.Completion.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            system.Stop(journal);
            throw new RecoveryException($"cannot read the Zab log: {e.GetBaseException().Message}", e);
        }
        if (entries.Count > 0 && !Continues(tree.LastZxid, entries[0].Zxid))
        {
            // The journal no longer holds the txns right after this snapshot (an older snapshot had to be used).
            // Start from the snapshot alone: the leader brings this server up to date (DIFF or SNAP).
            log.Warning("The Zab log does not continue snapshot 0x{0:x} (first entry 0x{1:x}); starting from the snapshot alone",
                tree.LastZxid, entries[0].Zxid);
            entries.Clear();
        }
        log.Info("Ensemble member recovered: snapshot {0} at zxid 0x{1:x}, {2} log entries after it, last 0x{3:x}, on the {4} journal",
            file ?? "(none)", tree.LastZxid, entries.Count, entries.Count > 0 ? entries[^1].Zxid : tree.LastZxid, persistence.Journal);
        return new Result(tree, journal, entries, file);
    }

    /// <summary>
    /// A member's state for a backup, read beside the running member: its snapshot plus its whole log, applied as
    /// ZooKeeper's own tools load snap + txnlog. The last few txns may be proposals that were not yet committed
    /// when the backup ran; a backup of the leader (or of a member after a sync) is the safe choice.
    /// </summary>
    public static DataTree ReadState(ActorSystem system, PersistenceSettings persistence, SnapshotFiles files, ILoggingAdapter log)
    {
        var recovered = Run(system, persistence, files, log, readOnly: true);
        var tree = recovered.Tree;
        foreach (var entry in recovered.Entries)
        {
            var (header, txn) = Txns.Deserialize(entry.Payload);
            tree.Apply(header, txn);
        }
        tree.FinishReplay();
        return tree;
    }

    /// <summary>True when <paramref name="next"/> can directly follow <paramref name="zxid"/> in one history:
    /// the next counter of the same epoch, or the first txn of a later epoch.</summary>
    public static bool Continues(long zxid, long next) =>
        next == zxid + 1 || (Zxids.EpochOf(next) > Zxids.EpochOf(zxid) && Zxids.CounterOf(next) == 1);
}
