using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Runtime.InteropServices;
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
/// dropped at recovery, a lost acknowledged record refuses to start) hold for events as they do for txns. In memory
/// the journal keeps, per persistence id, only the sequence number and record ordinal of each undeleted event
/// (16 bytes): an event's payload is not held once written, since holding every undeleted event cost the server its
/// tail latency at saturation (a gen-2 heap 4x the file journal's; docs/architecture.md §6). The payloads read when
/// the log is opened are kept for the first replay of their persistence id (a persistent actor recovers right after
/// the journal starts), then dropped; any later replay reads the log from the segment that holds its first event.
/// That suits the event-sourcing pattern the server uses (a snapshot, then <c>DeleteMessages</c> up to it), not an
/// unbounded history: segments whose events are all deleted are purged, after the deletion markers they hold are
/// carried forward, so the highest sequence number of a persistence id survives the deletion of all its events.
/// </para>
/// </summary>
public sealed class FileEventJournal : AsyncWriteJournal
{
    public const string PluginId = "akka.persistence.journal.coordination-file";

    /// <summary>The plugin's settings, under <c>akka.persistence.journal.coordination-file</c>.</summary>
    public static Config DefaultConfig { get; } = ConfigurationFactory.ParseString("""
        akka.persistence.journal.coordination-file {
          class = "Coordination.Server.Persistence.FileEventJournal, Coordination.Server"
          # The server uses coordination.persistence.journal-dispatcher (InlineDispatcher: the writer thread answers
          # and the persistent actor's handler runs there); on this one each answer is a thread-pool hop.
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

    /// <summary>Events each stored as its serialized <see cref="Persistent"/> envelope (written before session 19; still read).</summary>
    private const byte EnvelopeEventRecord = 1;
    private const byte DeletionRecord = 2;
    /// <summary>Events each stored as its payload's bytes, as its serializer made them, with the envelope's fields beside them.</summary>
    private const byte EventRecord = 3;

    /// <summary>What the journal knows of one persistence id.</summary>
    private sealed class Stream
    {
        /// <summary>Its undeleted events: sequence number and record ordinal, in order.</summary>
        public readonly EventIndex Events = new();
        /// <summary>The payloads read from the log, by sequence number, until the first replay (null after it).</summary>
        public Dictionary<long, StoredEvent>? Held;
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
    private readonly Akka.Serialization.Serialization _serialization;
    private readonly ExtendedActorSystem _system;
    private readonly string _dir;
    private readonly long _purgeAfterDeleted;
    private long _deletedSincePurge;

    public FileEventJournal(Config config)
    {
        config = config.WithFallback(DefaultConfig.GetConfig("akka.persistence.journal.coordination-file"));
        _system = (ExtendedActorSystem)Context.System;
        _serialization = _system.Serialization;
        _purgeAfterDeleted = Math.Max(1, config.GetLong("purge-after-deleted-events", 10000));
        var dir = _dir = Path.GetFullPath(config.GetString("dir", "journal"));
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

    /// <summary>Events whose payloads the journal holds in memory: those read at start that no replay has taken yet.</summary>
    internal int HeldEvents
    {
        get { lock (_lock) return _streams.Values.Sum(s => s.Held?.Count ?? 0); }
    }

    private FileLogWriter Writer => _writer ?? throw _openFailure ?? new InvalidOperationException("the journal is read-only");

    protected override void PostStop()
    {
        _writer?.Dispose();
        base.PostStop();
    }

    // ------------------------------------------------------------------ writing

    /// <summary>
    /// Answers <see cref="WriteMessages"/> itself, in place of AsyncWriteJournal, whose answer goes through a
    /// resequencer child on the thread pool (a thread wake per write that cannot be moved to another dispatcher: the
    /// child is created without one, and deployment config does not reach /system) and a circuit breaker's timer per
    /// write. The replies are AsyncWriteJournal's, in its order: <see cref="WriteMessagesSuccessful"/> (or
    /// <see cref="WriteMessagesFailed"/>), then per message <see cref="WriteMessageSuccess"/>,
    /// <see cref="WriteMessageRejected"/> or <see cref="WriteMessageFailure"/>, and <see cref="LoopMessageSuccess"/> for
    /// what was not persisted. They are sent from the writer thread right after the group's fdatasync; the writer
    /// completes work in the order it was posted, which is the order the resequencer restored. Replays and deletions
    /// stay AsyncWriteJournal's.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (message is not WriteMessages write) return base.AroundReceive(receive, message);
        Write(write);
        return true;
    }

    /// <summary>
    /// Serializes each event's payload here, on the sender's thread (a payload that cannot be serialized rejects its
    /// atomic write only), and hands the writes to the writer thread, which answers once they are durable.
    /// </summary>
    private void Write(WriteMessages message)
    {
        var writes = new List<PendingWrite>();
        List<Exception?>? results = null;
        try
        {
            var index = 0;
            foreach (var write in PreparePersistentBatch(message.Messages))
            {
                try
                {
                    var payload = (IImmutableList<IPersistentRepresentation>)write.Payload;
                    var events = new StoredEvent[payload.Count];
                    for (var i = 0; i < events.Length; i++) events[i] = Store(payload[i]);
                    writes.Add(new PendingWrite(Fits(write.PersistenceId), events));
                }
                catch (Exception e)
                {
                    // Not serializable: this write is rejected (the actor hears PersistRejected), the others go on.
                    results ??= Enumerable.Repeat<Exception?>(null, index).ToList();
                    results.Add(e);
                    index++;
                    continue;
                }
                results?.Add(null);
                index++;
            }
        }
        catch (Exception e)
        {
            // An event adapter failed: every write is rejected, as AsyncWriteJournal does.
            writes.Clear();
            results = Enumerable.Repeat<Exception?>(e, message.Messages.Count(m => m is AtomicWrite)).ToList();
        }
        // Null: nothing rejected.
        var work = new AppendEvents(this, writes, new WriteReplies(message, results, Self));
        // Without a log, what is left to store fails; what was rejected is still only rejected.
        if (_writer is null) work.Completed(writes.Count == 0 ? null : _openFailure ?? new InvalidOperationException("the journal is read-only"));
        // Even a write with nothing left to store goes through the writer, so that its answer keeps its place.
        else _writer.Post(work);
    }

    /// <summary>Never called: <see cref="AroundReceive"/> takes every <see cref="WriteMessages"/> before AsyncWriteJournal sees it.</summary>
    protected override Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken) =>
        throw new NotSupportedException("FileEventJournal answers WriteMessages itself (AroundReceive)");

    /// <summary>AsyncWriteJournal's answers to one <see cref="WriteMessages"/>, in its order.</summary>
    private sealed class WriteReplies(WriteMessages message, List<Exception?>? rejections, IActorRef journal)
    {
        public void Send(Exception? failure)
        {
            var target = message.PersistentActor;
            var id = message.ActorInstanceId;
            target.Tell(failure is null ? WriteMessagesSuccessful.Instance : new WriteMessagesFailed(failure, message.Messages.Count(m => m is AtomicWrite)), journal);
            var atomic = 0;
            foreach (var envelope in message.Messages)
            {
                if (envelope is not AtomicWrite write)
                {
                    target.Tell(new LoopMessageSuccess(envelope.Payload, id), envelope.Sender);
                    continue;
                }
                var rejected = rejections?[atomic];
                atomic++;
                foreach (var p in (IEnumerable<IPersistentRepresentation>)write.Payload)
                {
                    object reply = failure is not null ? new WriteMessageFailure(p, failure, id)
                        : rejected is not null ? new WriteMessageRejected(p, rejected, id)
                        : new WriteMessageSuccess(p, id);
                    target.Tell(reply, p.Sender);
                }
            }
        }
    }

    /// <summary>The payload's bytes as its own serializer writes them; for an <see cref="IBufferSerializer"/>'s
    /// payload (a <see cref="TxnBatchEvent"/>), the payload itself, written into the log's buffer on the writer thread.</summary>
    private StoredEvent Store(IPersistentRepresentation p)
    {
        var payload = p.Payload;
        var serializer = _serialization.FindSerializerFor(payload);
        // Checked here, so that a string too long for its record rejects this write only, not the writer's group.
        var serializerManifest = Fits(Akka.Serialization.Serialization.ManifestFor(serializer, payload));
        var manifest = Fits(p.Manifest ?? "");
        var writerGuid = Fits(p.WriterGuid ?? "");
        if (serializer is IBufferSerializer direct)
            return new StoredEvent(p.SequenceNr, serializer.Identifier, serializerManifest, manifest, writerGuid, p.Timestamp, direct, payload);
        var bytes = Akka.Serialization.Serialization.WithTransport(_system, (serializer, payload), static s => s.serializer.ToBinary(s.payload));
        return new StoredEvent(p.SequenceNr, serializer.Identifier, serializerManifest, manifest, writerGuid, p.Timestamp, bytes);
    }

    private static string Fits(string value) => Encoding.UTF8.GetByteCount(value) <= ushort.MaxValue ? value
        : throw new ArgumentException("a persistence id, manifest or writer id longer than 65535 bytes cannot be stored");

    /// <summary>On the writer thread, once the writes are durable: they become what replays serve.</summary>
    private void Written(List<PendingWrite> writes)
    {
        lock (_lock)
        {
            foreach (var write in writes)
            {
                var stream = StreamOf(write.PersistenceId);
                foreach (var e in write.Events)
                {
                    stream.Events.Add(e.SequenceNr, e.Ordinal);
                    stream.HighestSequenceNr = Math.Max(stream.HighestSequenceNr, e.SequenceNr);
                }
                _lastOrdinal = Math.Max(_lastOrdinal, write.Events[0].Ordinal);
            }
        }
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
            _deletedSincePurge += stream.Events.RemoveTo(stream.DeletedTo, stream.Held);
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
            if (stream.Events.Count > 0) oldest = Math.Min(oldest, stream.Events[0].Ordinal);
        return oldest == long.MaxValue ? _lastOrdinal + 1 : oldest;
    }

    // ------------------------------------------------------------------ reading

    public override Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max,
        Action<IPersistentRepresentation> recoveryCallback)
    {
        if (_openFailure is not null) return Task.FromException(_openFailure);
        List<(long SequenceNr, long Ordinal)> wanted;
        Dictionary<long, StoredEvent>? held;
        lock (_lock)
        {
            if (!_streams.TryGetValue(persistenceId, out var stream)) return Task.CompletedTask;
            wanted = stream.Events.Range(Math.Max(fromSequenceNr, stream.DeletedTo + 1), toSequenceNr, max);
            held = stream.Held;
            stream.Held = null;
        }
        if (wanted.Count == 0) return Task.CompletedTask;
        if (held is not null && Pick(wanted, held) is { } fromMemory)
        {
            foreach (var e in fromMemory) recoveryCallback(e.ToRepresentation(persistenceId, _serialization));
            return Task.CompletedTask;
        }
        // Read off the journal's thread: a persistent actor's recovery waits for it, nobody else does.
        return Task.Run(() =>
        {
            foreach (var e in ReadFromLog(persistenceId, wanted)) recoveryCallback(e.ToRepresentation(persistenceId, _serialization));
        });
    }

    /// <summary>
    /// The events of <paramref name="wanted"/> (sequence number and ordinal, as the index has them), read from the log
    /// from the segment that holds the first. An event of the log that the index does not list with that ordinal is
    /// not one of them (the write failed, or a cut dropped it and the ordinal was used again). A purge may delete a
    /// segment while it is read: a purge only takes segments whose events are deleted, so the read is done again.
    /// </summary>
    private List<StoredEvent> ReadFromLog(string persistenceId, List<(long SequenceNr, long Ordinal)> wanted)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var read = ReadStream(_dir, persistenceId, wanted[0].Ordinal);
                return Pick(wanted, read?.Held ?? []) ?? throw new InvalidDataException(
                    $"the journal's log in {_dir} lacks events of {persistenceId} that its index lists ({wanted.Count} from sequence {wanted[0].SequenceNr})");
            }
            catch (FileNotFoundException) when (attempt < 3) { }
        }
    }

    /// <summary>The events of <paramref name="wanted"/> in order, each as the log holds it at its ordinal; null if one is missing.</summary>
    private static List<StoredEvent>? Pick(List<(long SequenceNr, long Ordinal)> wanted, Dictionary<long, StoredEvent> events)
    {
        var picked = new List<StoredEvent>(wanted.Count);
        foreach (var (seqNr, ordinal) in wanted)
        {
            if (!events.TryGetValue(seqNr, out var e) || e.Ordinal != ordinal) return null;
            picked.Add(e);
        }
        return picked;
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
    /// The undeleted events of <paramref name="persistenceId"/> between the sequence numbers in a log directory, in order,
    /// read as the journal reads them at start (without opening the log for writing): what
    /// <see cref="FileEventReadJournal"/> serves.
    /// </summary>
    internal static List<IPersistentRepresentation> ReadEvents(string dir, string persistenceId, long fromSequenceNr, long toSequenceNr,
        Akka.Serialization.Serialization serialization)
    {
        if (ReadStream(dir, persistenceId, fromOrdinal: 0) is not { } stream) return [];
        return Pick(stream.Events.Range(fromSequenceNr, toSequenceNr, long.MaxValue), stream.Held!)!
            .Select(e => e.ToRepresentation(persistenceId, serialization)).ToList();
    }

    /// <summary>
    /// The txn zxids of <paramref name="persistenceId"/>'s undeleted events in the log of <paramref name="dir"/>, in
    /// order, for the change feed's journal floor: each <see cref="TxnBatchEvent"/>'s txns and each
    /// <see cref="LogTruncatedEvent"/>, read from the records without deserializing an event (nothing is allocated
    /// per record, where a read through Akka.Persistence.Query copies and decodes every event). False when the log
    /// holds an event of that id that this scan cannot read (one stored as an envelope, or of another serializer).
    /// </summary>
    internal static bool ScanTxnZxids(string dir, string persistenceId, Action<LogRecordKind, long> onRecord)
    {
        // Per event, its zxids as runs (one for a batch of consecutive txns); deletion markers come after the events
        // they delete, so nothing is told until the whole log is read.
        var runs = new List<(long SequenceNr, long Ordinal, long First, long Last, bool Truncation)>();
        long deletedTo = 0;
        var readable = true;
        var id = Encoding.UTF8.GetBytes(persistenceId);
        var segments = FileTxnLog.Segments(dir, _ => { });
        var last = segments.Count > 0 ? segments[0].StartsAfter : 0;
        for (var i = 0; i < segments.Count && readable; i++)
        {
            long? cutoff = i + 1 < segments.Count ? segments[i + 1].StartsAfter : null;
            last = FileTxnLog.ReadSegment(segments[i], cutoff, FileTxnLog.StartOf(segments[i], last), (kind, ordinal, payload) =>
            {
                if (kind == LogRecordKind.Truncate)
                {
                    runs.RemoveAll(r => r.Ordinal > ordinal);
                    return;
                }
                var span = payload.Span;
                var idLength = BinaryPrimitives.ReadUInt16LittleEndian(span[1..]);
                if (!span.Slice(3, idLength).SequenceEqual(id)) return;
                var rest = span[(3 + idLength)..];
                if (span[0] == DeletionRecord) deletedTo = Math.Max(deletedTo, BinaryPrimitives.ReadInt64LittleEndian(rest));
                else if (span[0] != EventRecord || !ScanEvents(rest, ordinal, runs)) readable = false;
            }, live: true, payloadsKept: false).Last;
        }
        if (!readable) return false;
        foreach (var run in runs)
        {
            if (run.SequenceNr <= deletedTo) continue;
            if (run.Truncation) onRecord(LogRecordKind.Truncate, run.First);
            else for (var zxid = run.First; zxid <= run.Last; zxid++) onRecord(LogRecordKind.Txn, zxid);
        }
        return true;
    }

    /// <summary>The zxids of one record's events (<see cref="StoredEvent.Write"/>'s layout; the payloads as
    /// <see cref="TxnEventSerializer"/> writes them); false for an event of another serializer.</summary>
    private static bool ScanEvents(ReadOnlySpan<byte> rest, long ordinal, List<(long SequenceNr, long Ordinal, long First, long Last, bool Truncation)> runs)
    {
        var count = BinaryPrimitives.ReadInt32LittleEndian(rest);
        rest = rest[4..];
        for (var e = 0; e < count; e++)
        {
            var seqNr = BinaryPrimitives.ReadInt64LittleEndian(rest);
            var serializerId = BinaryPrimitives.ReadInt32LittleEndian(rest[8..]);
            rest = rest[20..];
            var manifestLength = BinaryPrimitives.ReadUInt16LittleEndian(rest);
            var manifest = rest.Slice(2, manifestLength);
            rest = rest[(2 + manifestLength)..];
            for (var skip = 0; skip < 2; skip++) rest = rest[(2 + BinaryPrimitives.ReadUInt16LittleEndian(rest))..];
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest);
            var payload = rest.Slice(4, length);
            rest = rest[(4 + length)..];
            if (serializerId != TxnEventSerializer.Id) return false;
            if (manifest.SequenceEqual("T"u8))
            {
                runs.Add((seqNr, ordinal, BinaryPrimitives.ReadInt64BigEndian(payload), 0, true));
                continue;
            }
            if (!manifest.SequenceEqual("B"u8)) return false;
            var txns = BinaryPrimitives.ReadInt32BigEndian(payload);
            var at = 4;
            for (var t = 0; t < txns; t++)
            {
                var zxid = BinaryPrimitives.ReadInt64BigEndian(payload[at..]);
                at += 12 + BinaryPrimitives.ReadInt32BigEndian(payload[(at + 8)..]);
                if (runs.Count > 0 && runs[^1] is { Truncation: false } run && run.SequenceNr == seqNr && run.Last == zxid - 1)
                    runs[^1] = run with { Last = zxid };
                else runs.Add((seqNr, ordinal, zxid, zxid, false));
            }
        }
        return true;
    }

    /// <summary>One persistence id as the log holds it (its events' payloads in <see cref="Stream.Held"/>), read from
    /// the segment that holds <paramref name="fromOrdinal"/>; null if it has no record there.</summary>
    private static Stream? ReadStream(string dir, string persistenceId, long fromOrdinal)
    {
        var streams = new Dictionary<string, Stream>(StringComparer.Ordinal);
        long last = 0;
        if (Directory.Exists(dir))
            FileTxnLog.Read(dir, (kind, ordinal, payload) => last = Recover(streams, last, kind, ordinal, payload, persistenceId), fromOrdinal);
        return streams.GetValueOrDefault(persistenceId);
    }

    /// <summary>Applies one log record to <paramref name="streams"/> (those of <paramref name="only"/>, when given);
    /// returns the last ordinal.</summary>
    private static long Recover(Dictionary<string, Stream> streams, long lastOrdinal, LogRecordKind kind, long ordinal, ReadOnlyMemory<byte> payload, string? only)
    {
        if (kind == LogRecordKind.Truncate)
        {
            foreach (var stream in streams.Values) stream.Events.RemoveAfter(ordinal, stream.Held);
            return Math.Min(lastOrdinal, ordinal);
        }
        var span = payload.Span;
        var type = span[0];
        var idLength = BinaryPrimitives.ReadUInt16LittleEndian(span[1..]);
        var persistenceId = Encoding.UTF8.GetString(span.Slice(3, idLength));
        if (only is not null && persistenceId != only) return ordinal;
        var rest = span[(3 + idLength)..];
        if (!streams.TryGetValue(persistenceId, out var s)) streams[persistenceId] = s = new Stream { Held = new() };
        if (type is EventRecord or EnvelopeEventRecord)
        {
            var count = BinaryPrimitives.ReadInt32LittleEndian(rest);
            rest = rest[4..];
            for (var i = 0; i < count; i++)
            {
                var e = type == EventRecord ? StoredEvent.Read(ref rest) : StoredEvent.ReadEnvelope(ref rest);
                e.Ordinal = ordinal;
                s.HighestSequenceNr = Math.Max(s.HighestSequenceNr, e.SequenceNr);
                if (e.SequenceNr <= s.DeletedTo) continue;
                s.Events.Add(e.SequenceNr, ordinal);
                s.Held![e.SequenceNr] = e;
            }
        }
        else if (type == DeletionRecord)
        {
            s.DeletedTo = Math.Max(s.DeletedTo, BinaryPrimitives.ReadInt64LittleEndian(rest));
            s.HighestSequenceNr = Math.Max(s.HighestSequenceNr, BinaryPrimitives.ReadInt64LittleEndian(rest[8..]));
            s.MarkerOrdinal = ordinal;
            s.Events.RemoveTo(s.DeletedTo, s.Held);
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

    /// <summary>One atomic write: its events go in one record, so they all survive a crash or none does.</summary>
    private sealed record PendingWrite(string PersistenceId, StoredEvent[] Events);

    /// <summary>
    /// One event as the log keeps it: the payload's serialized bytes with the serializer's id and manifest and the
    /// envelope's fields, from which replay rebuilds the <see cref="Persistent"/> (the plugin does not serialize the
    /// envelope: that cost a protobuf message and two copies of the payload per event). Events of records written
    /// before (<see cref="EnvelopeEventRecord"/>) keep the serialized envelope.
    /// </summary>
    internal sealed class StoredEvent(long sequenceNr, int serializerId, string serializerManifest, string manifest, string writerGuid,
        long timestamp, byte[]? bytes)
    {
        /// <summary>An event to be written whose serializer writes it into the log's buffer (<see cref="Write"/>).</summary>
        public StoredEvent(long sequenceNr, int serializerId, string serializerManifest, string manifest, string writerGuid,
            long timestamp, IBufferSerializer serializer, object payload)
            : this(sequenceNr, serializerId, serializerManifest, manifest, writerGuid, timestamp, bytes: null)
        {
            _serializer = serializer;
            _payload = payload;
        }

        private readonly IBufferSerializer? _serializer;
        private readonly object? _payload;

        public readonly long SequenceNr = sequenceNr;
        /// <summary>The ordinal of the record that holds it (set when written or read).</summary>
        public long Ordinal;
        /// <summary>The bytes are a whole serialized <see cref="Persistent"/> (an <see cref="EnvelopeEventRecord"/>'s event).</summary>
        private bool _isEnvelope;

        public IPersistentRepresentation ToRepresentation(string persistenceId, Akka.Serialization.Serialization serialization)
        {
            if (bytes is null) throw new InvalidOperationException("an event being written is not replayed from memory");
            if (_isEnvelope)
                return (IPersistentRepresentation)serialization.FindSerializerForType(typeof(Persistent)).FromBinary(bytes, typeof(Persistent));
            var payload = serialization.Deserialize(bytes, serializerId, serializerManifest);
            return new Persistent(payload, SequenceNr, persistenceId, manifest, false, ActorRefs.NoSender, writerGuid, timestamp);
        }

        /// <summary>int64 sequence number, int32 serializer id, int64 timestamp, the serializer's manifest, the
        /// event adapter's manifest and the writer's id (uint16 length + UTF-8 each), int32 length + the payload's bytes.</summary>
        public void Write(IBufferWriter<byte> output)
        {
            var span = output.GetSpan(20);
            BinaryPrimitives.WriteInt64LittleEndian(span, SequenceNr);
            BinaryPrimitives.WriteInt32LittleEndian(span[8..], serializerId);
            BinaryPrimitives.WriteInt64LittleEndian(span[12..], timestamp);
            output.Advance(20);
            WriteString(output, serializerManifest);
            WriteString(output, manifest);
            WriteString(output, writerGuid);
            if (_serializer is null)
            {
                BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), bytes!.Length);
                output.Advance(4);
                output.Write(bytes);
                return;
            }
            if (output is not ArrayBufferWriter<byte> log)
            {
                var scratch = new ArrayBufferWriter<byte>();
                _serializer.Write(_payload!, scratch);
                BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), scratch.WrittenCount);
                output.Advance(4);
                output.Write(scratch.WrittenSpan);
                return;
            }
            // The length goes before the bytes, and is known once they are written: patched in place.
            var lengthAt = log.WrittenCount;
            log.GetSpan(4);
            log.Advance(4);
            _serializer.Write(_payload!, log);
            BinaryPrimitives.WriteInt32LittleEndian(MemoryMarshal.AsMemory(log.WrittenMemory).Span.Slice(lengthAt, 4), log.WrittenCount - lengthAt - 4);
        }

        public static StoredEvent Read(ref ReadOnlySpan<byte> rest)
        {
            var seqNr = BinaryPrimitives.ReadInt64LittleEndian(rest);
            var serializerId = BinaryPrimitives.ReadInt32LittleEndian(rest[8..]);
            var timestamp = BinaryPrimitives.ReadInt64LittleEndian(rest[12..]);
            rest = rest[20..];
            var serializerManifest = ReadString(ref rest);
            var manifest = ReadString(ref rest);
            var writerGuid = ReadString(ref rest);
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest);
            var bytes = rest.Slice(4, length).ToArray();
            rest = rest[(4 + length)..];
            return new StoredEvent(seqNr, serializerId, serializerManifest, manifest, writerGuid, timestamp, bytes);
        }

        /// <summary>An event of an <see cref="EnvelopeEventRecord"/>: int64 sequence number, int32 length, the serialized envelope.</summary>
        public static StoredEvent ReadEnvelope(ref ReadOnlySpan<byte> rest)
        {
            var seqNr = BinaryPrimitives.ReadInt64LittleEndian(rest);
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest[8..]);
            var bytes = rest.Slice(12, length).ToArray();
            rest = rest[(12 + length)..];
            return new StoredEvent(seqNr, 0, "", "", "", 0, bytes) { _isEnvelope = true };
        }

        private static void WriteString(IBufferWriter<byte> output, string value)
        {
            var length = Encoding.UTF8.GetByteCount(value);
            var span = output.GetSpan(2 + length);
            BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)length);
            Encoding.UTF8.GetBytes(value, span[2..]);
            output.Advance(2 + length);
        }

        private static string ReadString(ref ReadOnlySpan<byte> rest)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
            var value = length == 0 ? "" : Encoding.UTF8.GetString(rest.Slice(2, length));
            rest = rest[(2 + length)..];
            return value;
        }
    }

    private sealed record Marker(string PersistenceId, long DeletedTo, long HighestSequenceNr)
    {
        public long Ordinal { get; set; }
    }

    /// <summary>
    /// Each atomic write is one record. Once they are durable (or failed) the writer thread makes them what replays
    /// serve and answers the persistent actor; on the journal's dispatcher (<see cref="InlineDispatcher"/>) the
    /// actor's persist handler then runs here too, so keep what follows a write small.
    /// </summary>
    private sealed class AppendEvents(FileEventJournal journal, List<PendingWrite> writes, WriteReplies replies) : LogWork
    {
        internal override int TxnCount => writes.Count;

        internal override Exception? Write(FileTxnLog log)
        {
            foreach (var write in writes)
            {
                var ordinal = log.LastZxid + 1;
                var output = log.BeginRecord(LogRecordKind.Txn, ordinal);
                WriteHeader(output, EventRecord, write.PersistenceId);
                BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), write.Events.Length);
                output.Advance(4);
                foreach (var e in write.Events)
                {
                    e.Ordinal = ordinal;
                    e.Write(output);
                }
                log.EndRecord();
            }
            return null;
        }

        internal override void Completed(Exception? failure)
        {
            if (failure is null) journal.Written(writes);
            replies.Send(failure);
        }
    }

    /// <summary>Deletion markers (and those carried forward before a purge); <see cref="Durable"/> completes off the writer thread.</summary>
    private sealed class AppendMarkers(Marker[] markers) : LogWork
    {
        public readonly TaskCompletionSource Durable = new(TaskCreationOptions.RunContinuationsAsynchronously);
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

        internal override void Completed(Exception? failure)
        {
            if (failure is null) Durable.TrySetResult();
            else Durable.TrySetException(failure);
        }
    }
}
