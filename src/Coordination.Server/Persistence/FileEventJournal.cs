using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Serialization;

namespace Coordination.Server.Persistence;

/// <summary>
/// An Akka.Persistence journal plugin over the server's own segment log (<see cref="FileTxnLog"/>: CRC-checked
/// records, preallocated segments, fdatasync) and its group-commit writer thread (<see cref="FileLogWriter"/>): writes
/// from every persistent actor that arrive while a group is being made durable share the next fdatasync. Usable by
/// any Akka.Persistence application:
/// <code>
/// akka.persistence.journal.plugin = "akka.persistence.journal.coordination-file"
/// akka.persistence.journal.coordination-file.dir = "/var/lib/app/journal"
/// </code>
/// with <see cref="DefaultConfig"/> as a fallback of the system's config.
/// <para>
/// The log's "zxid" of a record is a journal-wide ordinal, so that the log's crash rules (a torn or failed write is
/// dropped at recovery, a lost acknowledged record refuses to start) hold for events as they do for txns. Events that
/// are not deleted are kept in memory, indexed by persistence id, as the log itself replays them at start; replays
/// are served from there. That suits the event-sourcing pattern the server uses (a snapshot, then
/// <c>DeleteMessages</c> up to it), not an unbounded history: segments whose events are all deleted are purged,
/// after the deletion markers they hold are carried forward, so the highest sequence number of a persistence id
/// survives the deletion of all its events.
/// </para>
/// </summary>
public sealed class FileEventJournal : AsyncWriteJournal
{
    public const string PluginId = "akka.persistence.journal.coordination-file";

    /// <summary>The plugin's settings, under <c>akka.persistence.journal.coordination-file</c>.</summary>
    public static Config DefaultConfig { get; } = ConfigurationFactory.ParseString("""
        akka.persistence.journal.coordination-file {
          class = "Coordination.Server.Persistence.FileEventJournal, Coordination.Server"
          plugin-dispatcher = "akka.actor.default-dispatcher"
          # The directory of the log's segments (created if missing).
          dir = "journal"
          # fdatasync every group of writes before acknowledging it. Off only for tests and benchmarks.
          force-sync = on
          # A new segment after this many bytes; space is preallocated in steps of preallocate-bytes.
          segment-bytes = 64MiB
          preallocate-bytes = 4MiB
          # Events per group commit (one write and one fdatasync).
          max-batch-events = 1000
          # Old segments are purged (after carrying deletion markers forward) once deletions have freed this many events.
          purge-after-deleted-events = 10000
          # Read the log without opening it for writing (a backup beside the process that writes it); writes fail.
          read-only = off
        }
        """);

    private const byte EventRecord = 1;
    private const byte DeletionRecord = 2;

    /// <summary>What the journal knows of one persistence id.</summary>
    private sealed class Stream
    {
        /// <summary>Undeleted events: sequence number → (log ordinal, serialized <see cref="IPersistentRepresentation"/>).</summary>
        public readonly SortedList<long, (long Ordinal, byte[] Bytes)> Events = new();
        public long HighestSequenceNr;
        public long DeletedTo;
        /// <summary>The ordinal of the record that holds <see cref="DeletedTo"/> and <see cref="HighestSequenceNr"/>, 0 if none.</summary>
        public long MarkerOrdinal;
    }

    private readonly Dictionary<string, Stream> _streams = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private readonly FileLogWriter? _writer;
    /// <summary>Why the log could not be read (corrupt, unreadable): every replay and write fails with it, so that a
    /// persistent actor's recovery reports it instead of timing out against a stopped journal.</summary>
    private readonly Exception? _openFailure;
    private readonly Serializer _serializer;
    private readonly long _purgeAfterDeleted;
    private long _deletedSincePurge;

    public FileEventJournal(Config config)
    {
        config = config.WithFallback(DefaultConfig.GetConfig("akka.persistence.journal.coordination-file"));
        _serializer = Context.System.Serialization.FindSerializerForType(typeof(Persistent));
        _purgeAfterDeleted = Math.Max(1, config.GetLong("purge-after-deleted-events", 10000));
        var dir = Path.GetFullPath(config.GetString("dir", "journal"));
        try
        {
            if (config.GetBoolean("read-only", false))
            {
                if (Directory.Exists(dir)) FileTxnLog.Read(dir, Recover);
                return;
            }
            var log = FileTxnLog.Open(dir, config.GetBoolean("force-sync", true), config.GetByteSize("segment-bytes") ?? 64L << 20,
                config.GetByteSize("preallocate-bytes") ?? 4L << 20, 0, Recover);
            _writer = new FileLogWriter(log, config.GetInt("max-batch-events", 1000), Context.GetLogger(), metrics: null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _streams.Clear();
            _openFailure = e;
            Context.GetLogger().Error(e, "Journal {0} cannot be read", dir);
        }
    }

    private FileLogWriter Writer => _writer ?? throw _openFailure ?? new InvalidOperationException("the journal is read-only");

    protected override void PostStop()
    {
        _writer?.Dispose();
        base.PostStop();
    }

    // ------------------------------------------------------------------ writing

    protected override async Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var writes = new List<PendingEvent[]>();
        var results = new List<Exception?>();
        foreach (var write in messages)
        {
            try
            {
                var events = ((IImmutableList<IPersistentRepresentation>)write.Payload)
                    .Select(p => new PendingEvent(p.PersistenceId, p.SequenceNr, _serializer.ToBinary(p))).ToArray();
                writes.Add(events);
                results.Add(null);
            }
            catch (Exception e)
            {
                // Not serializable: this write is rejected (the actor hears PersistRejected), the others go on.
                results.Add(e);
            }
        }
        if (writes.Count > 0)
        {
            var work = new AppendEvents(writes);
            Writer.Post(work);
            await work.Durable.Task.ConfigureAwait(false);
            lock (_lock)
            {
                foreach (var e in writes.SelectMany(w => w))
                {
                    var stream = StreamOf(e.PersistenceId);
                    stream.Events[e.SequenceNr] = (e.Ordinal, e.Bytes);
                    stream.HighestSequenceNr = Math.Max(stream.HighestSequenceNr, e.SequenceNr);
                    _lastOrdinal = Math.Max(_lastOrdinal, e.Ordinal);
                }
            }
        }
        return results.ToImmutableList();
    }

    protected override async Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken cancellationToken)
    {
        long highest, deletedTo;
        lock (_lock)
        {
            var stream = StreamOf(persistenceId);
            highest = stream.HighestSequenceNr;
            deletedTo = Math.Max(stream.DeletedTo, Math.Min(toSequenceNr, highest));
            if (deletedTo == stream.DeletedTo) return;
        }
        var marker = new AppendMarkers([new Marker(persistenceId, deletedTo, highest)]);
        Writer.Post(marker);
        await marker.Durable.Task.ConfigureAwait(false);
        long purgeTo = -1;
        lock (_lock)
        {
            var stream = StreamOf(persistenceId);
            stream.DeletedTo = Math.Max(stream.DeletedTo, deletedTo);
            stream.MarkerOrdinal = marker.Markers[0].Ordinal;
            _lastOrdinal = Math.Max(_lastOrdinal, stream.MarkerOrdinal);
            while (stream.Events.Count > 0 && stream.Events.Keys[0] <= stream.DeletedTo)
            {
                stream.Events.RemoveAt(0);
                _deletedSincePurge++;
            }
            if (_deletedSincePurge >= _purgeAfterDeleted)
            {
                _deletedSincePurge = 0;
                purgeTo = OldestLiveOrdinal() - 1;
            }
        }
        if (purgeTo > 0) await PurgeAsync(purgeTo).ConfigureAwait(false);
    }

    /// <summary>
    /// Drops the segments below the oldest undeleted event. Deletion markers in them are written again first (and
    /// the purge happens only once they are durable), so no persistence id loses its highest sequence number.
    /// </summary>
    private async Task PurgeAsync(long purgeTo)
    {
        Marker[] carried;
        lock (_lock)
        {
            carried = _streams.Where(s => s.Value.MarkerOrdinal is > 0 && s.Value.MarkerOrdinal <= purgeTo)
                .Select(s => new Marker(s.Key, s.Value.DeletedTo, s.Value.HighestSequenceNr)).ToArray();
        }
        if (carried.Length > 0)
        {
            var work = new AppendMarkers(carried);
            Writer.Post(work);
            await work.Durable.Task.ConfigureAwait(false);
            lock (_lock)
            {
                foreach (var m in carried) _lastOrdinal = Math.Max(_lastOrdinal, m.Ordinal);
                foreach (var m in carried)
                    if (_streams[m.PersistenceId].MarkerOrdinal <= purgeTo) _streams[m.PersistenceId].MarkerOrdinal = m.Ordinal;
            }
        }
        Writer.Purge(purgeTo);
    }

    private long OldestLiveOrdinal()
    {
        var oldest = long.MaxValue;
        foreach (var stream in _streams.Values)
            if (stream.Events.Count > 0) oldest = Math.Min(oldest, stream.Events.Values[0].Ordinal);
        return oldest == long.MaxValue ? _lastOrdinal + 1 : oldest;
    }

    // ------------------------------------------------------------------ reading

    public override Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        if (_openFailure is not null) return Task.FromException(_openFailure);
        List<byte[]> replay;
        lock (_lock)
        {
            replay = new List<byte[]>();
            if (_streams.TryGetValue(persistenceId, out var stream))
            {
                var from = Math.Max(fromSequenceNr, stream.DeletedTo + 1);
                foreach (var (seqNr, e) in stream.Events)
                {
                    if (replay.Count >= max || seqNr > toSequenceNr) break;
                    if (seqNr >= from) replay.Add(e.Bytes);
                }
            }
        }
        foreach (var bytes in replay) recoveryCallback((IPersistentRepresentation)_serializer.FromBinary(bytes, typeof(Persistent)));
        return Task.CompletedTask;
    }

    public override Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        if (_openFailure is not null) return Task.FromException<long>(_openFailure);
        lock (_lock) return Task.FromResult(_streams.TryGetValue(persistenceId, out var s) ? s.HighestSequenceNr : 0L);
    }

    // ------------------------------------------------------------------ the log's records

    private long _lastOrdinal;

    private Stream StreamOf(string persistenceId)
    {
        if (!_streams.TryGetValue(persistenceId, out var stream)) _streams[persistenceId] = stream = new Stream();
        return stream;
    }

    /// <summary>Replays the log at start: events and markers in order; a cut (a torn or failed write) drops what follows it.</summary>
    private void Recover(LogRecordKind kind, long ordinal, ReadOnlyMemory<byte> payload) =>
        _lastOrdinal = Recover(_streams, _lastOrdinal, kind, ordinal, payload, only: null);

    /// <summary>
    /// The undeleted events of <paramref name="persistenceId"/> in a log directory, serialized, by sequence number,
    /// read as the journal reads them at start (without opening the log for writing): what
    /// <see cref="FileEventReadJournal"/> serves.
    /// </summary>
    internal static List<(long SequenceNr, byte[] Bytes)> ReadEvents(string dir, string persistenceId)
    {
        var streams = new Dictionary<string, Stream>(StringComparer.Ordinal);
        long last = 0;
        if (Directory.Exists(dir)) FileTxnLog.Read(dir, (kind, ordinal, payload) => last = Recover(streams, last, kind, ordinal, payload, persistenceId));
        return streams.TryGetValue(persistenceId, out var stream) ? stream.Events.Select(e => (e.Key, e.Value.Bytes)).ToList() : [];
    }

    /// <summary>Applies one log record to <paramref name="streams"/> (those of <paramref name="only"/>, when given);
    /// returns the last ordinal.</summary>
    private static long Recover(Dictionary<string, Stream> streams, long lastOrdinal, LogRecordKind kind, long ordinal, ReadOnlyMemory<byte> payload, string? only)
    {
        if (kind == LogRecordKind.Truncate)
        {
            foreach (var stream in streams.Values)
                while (stream.Events.Count > 0 && stream.Events.Values[^1].Ordinal > ordinal) stream.Events.RemoveAt(stream.Events.Count - 1);
            return Math.Min(lastOrdinal, ordinal);
        }
        var span = payload.Span;
        var type = span[0];
        var idLength = BinaryPrimitives.ReadUInt16LittleEndian(span[1..]);
        var persistenceId = Encoding.UTF8.GetString(span.Slice(3, idLength));
        if (only is not null && persistenceId != only) return ordinal;
        var rest = span[(3 + idLength)..];
        if (!streams.TryGetValue(persistenceId, out var s)) streams[persistenceId] = s = new Stream();
        if (type == EventRecord)
        {
            var count = BinaryPrimitives.ReadInt32LittleEndian(rest);
            rest = rest[4..];
            for (var i = 0; i < count; i++)
            {
                var seqNr = BinaryPrimitives.ReadInt64LittleEndian(rest);
                var length = BinaryPrimitives.ReadInt32LittleEndian(rest[8..]);
                s.HighestSequenceNr = Math.Max(s.HighestSequenceNr, seqNr);
                if (seqNr > s.DeletedTo) s.Events[seqNr] = (ordinal, rest.Slice(12, length).ToArray());
                rest = rest[(12 + length)..];
            }
        }
        else if (type == DeletionRecord)
        {
            s.DeletedTo = Math.Max(s.DeletedTo, BinaryPrimitives.ReadInt64LittleEndian(rest));
            s.HighestSequenceNr = Math.Max(s.HighestSequenceNr, BinaryPrimitives.ReadInt64LittleEndian(rest[8..]));
            s.MarkerOrdinal = ordinal;
            while (s.Events.Count > 0 && s.Events.Keys[0] <= s.DeletedTo) s.Events.RemoveAt(0);
        }
        else throw new InvalidDataException($"unknown journal record type {type} at ordinal {ordinal}");
        return ordinal;
    }

    private static void WriteHeader(IBufferWriter<byte> output, byte type, string persistenceId)
    {
        var id = Encoding.UTF8.GetBytes(persistenceId);
        if (id.Length > ushort.MaxValue) throw new ArgumentException("persistence id too long", nameof(persistenceId));
        var header = output.GetSpan(3);
        header[0] = type;
        BinaryPrimitives.WriteUInt16LittleEndian(header[1..], (ushort)id.Length);
        output.Advance(3);
        output.Write(id);
    }

    private static void WriteLong(IBufferWriter<byte> output, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(output.GetSpan(8), value);
        output.Advance(8);
    }

    private sealed class PendingEvent(string persistenceId, long sequenceNr, byte[] bytes)
    {
        public readonly string PersistenceId = persistenceId;
        public readonly long SequenceNr = sequenceNr;
        public readonly byte[] Bytes = bytes;
        public long Ordinal;
    }

    private sealed record Marker(string PersistenceId, long DeletedTo, long HighestSequenceNr)
    {
        public long Ordinal { get; set; }
    }

    /// <summary>Work for the writer thread: the ordinal of each record is the log's next one, assigned where it is written.</summary>
    private abstract class JournalWork : LogWork
    {
        public readonly TaskCompletionSource Durable = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal override void Completed(Exception? failure)
        {
            if (failure is null) Durable.TrySetResult();
            else Durable.TrySetException(failure);
        }
    }

    /// <summary>Each atomic write is one record (its events all survive a crash or none does).</summary>
    private sealed class AppendEvents(List<PendingEvent[]> writes) : JournalWork
    {
        internal override int TxnCount => writes.Count;

        internal override Exception? Write(FileTxnLog log)
        {
            foreach (var write in writes)
            {
                var ordinal = log.LastZxid + 1;
                var output = log.BeginRecord(LogRecordKind.Txn, ordinal);
                WriteHeader(output, EventRecord, write[0].PersistenceId);
                BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), write.Length);
                output.Advance(4);
                foreach (var e in write)
                {
                    e.Ordinal = ordinal;
                    WriteLong(output, e.SequenceNr);
                    BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), e.Bytes.Length);
                    output.Advance(4);
                    output.Write(e.Bytes);
                }
                log.EndRecord();
            }
            return null;
        }
    }

    private sealed class AppendMarkers(Marker[] markers) : JournalWork
    {
        public Marker[] Markers => markers;
        internal override int TxnCount => markers.Length;

        internal override Exception? Write(FileTxnLog log)
        {
            foreach (var m in markers)
            {
                m.Ordinal = log.LastZxid + 1;
                var output = log.BeginRecord(LogRecordKind.Txn, m.Ordinal);
                WriteHeader(output, DeletionRecord, m.PersistenceId);
                WriteLong(output, m.DeletedTo);
                WriteLong(output, m.HighestSequenceNr);
                log.EndRecord();
            }
            return null;
        }
    }
}
