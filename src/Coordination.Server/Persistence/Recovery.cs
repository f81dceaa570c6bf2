using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Coordination.Core;

namespace Coordination.Server.Persistence;

/// <summary>
/// Start-up recovery: the newest valid snapshot plus the journal's txns after it. A corrupt or truncated snapshot
/// (bad checksum, short file) is skipped for the next older one, but only if the journal still holds every txn
/// after that older one; otherwise the start is refused with a message naming the files. The journal must also
/// reach the end of the snapshot it continues, or acknowledged txns would be missing: that refuses the start too.
/// </summary>
public static class Recovery
{
    public sealed record Result(DataTree Tree, IActorRef Log, string? SnapshotFile, RecoveryOutcome Outcome, TimeSpan Elapsed, IReadOnlyList<string> Skipped);

    public static Result Run(ActorSystem system, PersistenceSettings settings, SnapshotFiles files, ILoggingAdapter log, bool readOnly = false)
    {
        var clock = Stopwatch.StartNew();
        if (!readOnly) files.RemoveTemporaryFiles();
        var snapshots = files.List();
        var skipped = new List<string>();
        var candidates = new List<string?>();
        foreach (var snapshot in snapshots) candidates.Add(snapshot.Path);
        candidates.Add(null); // last resort: the journal from its first txn
        var attempt = 0;
        var journal = settings.UsesFileLog ? settings.LogDirectory
            : settings.UsesEventLog ? settings.EventLogDirectory
            : settings.SqliteFile ?? $"{settings.ProviderName} journal";
        FileJournal.RefuseOtherJournal(settings);
        foreach (var candidate in candidates)
        {
            DataTree tree;
            if (candidate is null) tree = new DataTree();
            else if (TryReadSnapshot(candidate, log, skipped) is { } read) tree = read;
            else continue;

            tree.ReplayMode = true;
            var sink = new RecoverySink(tree, tree.LastZxid);
            var name = attempt++ == 0 ? "txnlog" : $"txnlog-{attempt}";
            IActorRef actor = ActorRefs.Nobody;
            RecoveryOutcome outcome;
            try
            {
                if (settings.UsesFileLog) actor = ReplayFileLog(system, settings, sink, name, readOnly);
                else actor = JournalTxnLogRef.Start(system, settings, sink, name);
                outcome = sink.Completion.GetAwaiter().GetResult();
            }
            catch (JournalGapException gap)
            {
                system.Stop(actor);
                if (candidate is null)
                    throw new RecoveryException(
                        $"cannot recover: the journal ({journal}) no longer holds the early txns ({gap.Message}; older ones were purged) and no valid snapshot covers them." +
                        (skipped.Count > 0 ? " Unusable snapshots: " + string.Join("; ", skipped) : ""));
                log.Warning("The journal does not continue {0} ({1}); trying an older snapshot", candidate, gap.Message);
                skipped.Add($"{candidate}: journal gap");
                continue;
            }
            catch (Exception e)
            {
                system.Stop(actor);
                throw new RecoveryException($"cannot read the journal {journal}: {e.GetBaseException().Message}; refusing to start. Restore it from a backup (see README).", e);
            }

            if (tree.LastZxid < tree.SnapshotEndZxid)
            {
                system.Stop(actor);
                throw new RecoveryException(
                    $"the journal {journal} ends at zxid 0x{tree.LastZxid:x}, before the end (0x{tree.SnapshotEndZxid:x}) of snapshot {candidate}: " +
                    "acknowledged txns are missing; refusing to start");
            }
            tree.FinishReplay();
            if (skipped.Count > 0)
                log.Warning("Recovered from an older snapshot; skipped: {0}", string.Join("; ", skipped));
            log.Info("Recovered {Znodes} znodes, {Sessions} sessions at zxid 0x{Zxid:x} from {Snapshot} + {JournalTxns} journal txns in {ElapsedMs} ms",
                tree.DistinctNodeCount, tree.Sessions.Count, tree.LastZxid, candidate ?? "(no snapshot)", outcome.TxnsReplayed, clock.ElapsedMilliseconds);
            log.Info("Journal: {Journal} ({Place})", settings.Journal, journal);
            return new Result(tree, actor, candidate, outcome, clock.Elapsed, skipped);
        }
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Replays the file journal into the sink; then (unless read-only) opens it for appending.</summary>
    private static IActorRef ReplayFileLog(ActorSystem system, PersistenceSettings settings, RecoverySink sink, string name, bool readOnly)
    {
        long last = 0;
        void Replay(LogRecordKind kind, long zxid, ReadOnlyMemory<byte> bytes)
        {
            if (kind != LogRecordKind.Txn) return; // a standalone log is truncated only where a write failed
            sink.Replay(zxid, bytes.Span);
            last = zxid;
        }
        IActorRef actor = ActorRefs.Nobody;
        if (readOnly) FileTxnLog.Read(settings.LogDirectory, Replay);
        else actor = FileJournal.Start(system, settings, sink.Tree.LastZxid, name, Replay);
        sink.Complete(Math.Max(last, sink.Tree.LastZxid));
        return actor;
    }

    /// <summary>Reads a snapshot file, or records why it is unusable (bad checksum, short file) and returns null.</summary>
    public static DataTree? TryReadSnapshot(string path, ILoggingAdapter log, List<string> skipped)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            return DataTree.ReadSnapshot(fs);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            log.Warning("Snapshot {0} is unusable ({1}); trying an older one", path, e.Message);
            skipped.Add($"{path}: {e.Message}");
            return null;
        }
    }
}
