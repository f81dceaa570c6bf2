using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;
using Coordination.Server.Metrics;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Persistence;

/// <summary>
/// The file journal as an actor ref, for the same messages as the SQL journal's actors: <see cref="LogAppend"/>
/// (standalone), <see cref="AppendToLog"/> and <see cref="TruncateLogAfter"/> (ensemble), and
/// <see cref="PurgeJournal"/>. There is no actor and no mailbox behind it: like Akka's FunctionRef, a Tell hands the
/// work straight to the <see cref="FileLogWriter"/> thread, which answers the sender itself. An append costs one
/// thread hand-off each way, as in ZooKeeper.
/// </summary>
public sealed class FileJournalRef : MinimalActorRef
{
    private readonly FileLogWriter _writer;
    private readonly ServerMetrics _metrics;

    public FileJournalRef(FileLogWriter writer, ActorSystem system, string name)
    {
        _writer = writer;
        _metrics = ServerMetrics.For(system);
        Provider = ((ExtendedActorSystem)system).Provider;
        Path = new RootActorPath(Provider.DefaultAddress) / "system" / name;
    }

    public override ActorPath Path { get; }
    public override IActorRefProvider Provider { get; }

    protected override void TellInternal(object message, IActorRef sender)
    {
        switch (message)
        {
            case LogAppend append when append.Batch.Count == 0:
                sender.Tell(new LogAppended(append.Batch));
                break;
            case LogAppend append:
                _metrics.AddProposals(append.Batch.Count);
                _writer.Post(new AppendProposals(append, sender));
                break;
            case AppendToLog append:
                _writer.Post(new AppendEntries(append.Entries, append.Durable));
                break;
            case TruncateLogAfter truncate:
                _writer.Post(new TruncateEntries(truncate.Zxid, truncate.Durable));
                break;
            case PurgeJournal purge:
                _writer.Purge(purge.UpToZxid);
                break;
            default:
                Provider.DeadLetters.Tell(new DeadLetter(message, sender, this), sender);
                break;
        }
    }
}

public static class FileJournal
{
    /// <summary>
    /// Opens the file journal of a data dir, replaying it into <paramref name="onRecord"/>, and starts its writer. An ensemble member passes <paramref name="onFailure"/> (it restarts rather than continue after a
    /// failed write, as with the SQL journal).
    /// </summary>
    public static IActorRef Start(ActorSystem system, PersistenceSettings settings, long lastZxidFloor, string name,
        Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord, Action<Exception>? onFailure = null)
    {
        var log = FileTxnLog.Open(settings.LogDirectory, settings.ForceSync, settings.LogSegmentBytes, settings.LogPreallocateBytes, lastZxidFloor, onRecord);
        var writer = new FileLogWriter(log, settings.MaxBatchTxns, Logging(system), ServerMetrics.For(system), onFailure);
        system.RegisterOnTermination(writer.Dispose);
        return new FileJournalRef(writer, system, name);
    }

    private static ILoggingAdapter Logging(ActorSystem system) => Akka.Event.Logging.GetLogger(system, "Coordination.Server.Persistence.FileLogWriter");

    /// <summary>
    /// A journal of another kind in the data dir (an SQLite journal from "sql", or the segments of the other file
    /// format): starting would silently leave its txns behind, so refuse and say what to do. Checked for the two file
    /// journals.
    /// </summary>
    public static void RefuseOtherJournal(PersistenceSettings settings)
    {
        if (!settings.UsesFileLog && !settings.UsesEventLog) return;
        var db = Path.Combine(Path.GetFullPath(settings.DataDir), "journal.db");
        var other = File.Exists(db) && new FileInfo(db).Length > 0 ? (Place: db, Journal: "sql")
            : settings.UsesFileLog && FileTxnLog.List(settings.EventLogDirectory).Count > 0 ? (Place: settings.EventLogDirectory, Journal: "persistent-file")
            : settings.UsesEventLog && FileTxnLog.List(settings.LogDirectory).Count > 0 ? (Place: settings.LogDirectory, Journal: "file")
            : default;
        if (other.Place is null) return;
        throw new RecoveryException(
            $"{other.Place} holds a journal = {other.Journal} journal but coordination.persistence.journal = {settings.Journal}: set journal = {other.Journal} to keep using it, " +
            "or move it away after taking a backup (Coordination.Server backup) and restore that into an empty data dir");
    }
}
