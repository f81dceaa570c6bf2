using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Streams;
using Coordination.Server.Persistence;

namespace Coordination.Server.Feed;

/// <summary>
/// A journal's records in order, as the change feed's history reads them (<see cref="JournalHistory"/>): each txn with
/// its zxid and jute bytes, and each truncation (the txns logged before it with a greater zxid are dropped). Read from
/// the file journal's segments, or through Akka.Persistence.Query from a journal written by a persistent actor (the
/// "sql" and "persistent-file" journals): the events of the writer's persistence id, from the oldest not deleted.
/// </summary>
public abstract class JournalRecords
{
    private protected JournalRecords() { }

    /// <summary>Calls <paramref name="onRecord"/> for every record, oldest first, on the caller's thread (which it
    /// blocks: a history reader's own). An exception thrown by <paramref name="onRecord"/> ends the read and propagates;
    /// a journal that cannot be read throws <see cref="IOException"/>.</summary>
    internal abstract void Read(Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord);

    /// <summary>The txn zxids of the journal in order, after its truncations (ensemble TRUNC records, torn writes).</summary>
    internal virtual KeptZxids KeptZxids()
    {
        var kept = new KeptZxids();
        Read((kind, zxid, _) => kept.Record(kind, zxid));
        return kept;
    }

    /// <summary>The journal a server with these settings writes: the file journal's segments, or the events of its
    /// journal writer (<paramref name="ensemble"/>: the Zab log's) through the journal's read-journal plugin.</summary>
    internal static JournalRecords Of(ActorSystem system, PersistenceSettings settings, bool ensemble)
    {
        if (settings.UsesFileLog) return new FileJournalRecords(settings.LogDirectory);
        var persistenceId = ensemble ? settings.ZabPersistenceId : settings.PersistenceId;
        var query = new QueryJournalRecords(system, settings.ReadJournalPluginId, persistenceId);
        return settings.UsesEventLog ? new EventLogJournalRecords(query, settings.EventLogDirectory, persistenceId) : query;
    }
}

/// <summary>
/// The persistent-file journal: its records through Akka.Persistence.Query, its kept zxids scanned from the log's
/// segments without decoding an event (<see cref="FileEventJournal.ScanTxnZxids"/>): through the query, every floor
/// computation copied and decoded the whole journal, whose events then lived long enough to reach gen 2.
/// </summary>
internal sealed class EventLogJournalRecords(QueryJournalRecords query, string directory, string persistenceId) : JournalRecords
{
    internal override void Read(Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord) => query.Read(onRecord);

    internal override KeptZxids KeptZxids()
    {
        var kept = new KeptZxids();
        return FileEventJournal.ScanTxnZxids(directory, persistenceId, kept.Record) ? kept : query.KeptZxids();
    }
}

/// <summary>The file journal's segments (<see cref="FileTxnLog.Read"/>); their kept zxids are read incrementally
/// (<see cref="SegmentZxidCache"/>).</summary>
internal sealed class FileJournalRecords(string directory) : JournalRecords
{
    internal SegmentZxidCache Segments { get; } = new(directory);

    internal override void Read(Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord) => FileTxnLog.Read(directory, onRecord);

    internal override KeptZxids KeptZxids() => Segments.Read();
}

/// <summary>
/// The events of one persistence id through Akka.Persistence.Query (<see cref="ICurrentEventsByPersistenceIdQuery"/>):
/// each <see cref="TxnBatchEvent"/> gives its txns, each <see cref="LogTruncatedEvent"/> a truncation. The query
/// streams what the journal holds when it starts; events deleted by a purge are not in it.
/// </summary>
internal sealed class QueryJournalRecords(ActorSystem system, string readJournalPluginId, string persistenceId) : JournalRecords
{
    private readonly Lazy<(ICurrentEventsByPersistenceIdQuery Journal, IMaterializer Materializer)> _query = new(() =>
        (PersistenceQuery.Get(system).ReadJournalFor<ICurrentEventsByPersistenceIdQuery>(readJournalPluginId),
         system.Materializer(namePrefix: "feed-history")));

    internal override void Read(Action<LogRecordKind, long, ReadOnlyMemory<byte>> onRecord)
    {
        IAsyncEnumerator<EventEnvelope> events;
        try
        {
            var (journal, materializer) = _query.Value;
            events = journal.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue).RunAsAsyncEnumerable(materializer).GetAsyncEnumerator();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw Unreadable(e);
        }
        try
        {
            while (true)
            {
                try
                {
                    if (!events.MoveNextAsync().AsTask().GetAwaiter().GetResult()) return;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw Unreadable(e);
                }
                switch (events.Current.Event)
                {
                    case TxnBatchEvent batch:
                        foreach (var (zxid, bytes) in batch.Entries()) onRecord(LogRecordKind.Txn, zxid, bytes);
                        break;
                    case LogTruncatedEvent truncated:
                        onRecord(LogRecordKind.Truncate, truncated.Zxid, ReadOnlyMemory<byte>.Empty);
                        break;
                    case var other:
                        throw new InvalidDataException($"journal {persistenceId}: unexpected event {other?.GetType().Name ?? "null"} at sequence {events.Current.SequenceNr}");
                }
            }
        }
        finally
        {
            // Cancels the stream when the reader stops early.
            events.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private IOException Unreadable(Exception e) =>
        new($"journal {persistenceId} cannot be read through {readJournalPluginId}: {e.GetBaseException().Message}", e);
}
