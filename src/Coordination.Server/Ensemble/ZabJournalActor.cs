using Coordination.Server.Metrics;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Persistence;
using PersistenceSettings = Coordination.Server.Persistence.PersistenceSettings;

namespace Coordination.Server.Ensemble;

/// <summary>Append entries to the ensemble's log; <see cref="Durable"/> completes once they are committed to disk.</summary>
public sealed record AppendToLog(IReadOnlyList<LogEntry> Entries, TaskCompletionSource Durable);

/// <summary>Drop the logged entries after <see cref="Zxid"/> (recorded as an event, in order with the appends);
/// <see cref="Durable"/> completes once the event is on disk.</summary>
public sealed record TruncateLogAfter(long Zxid, TaskCompletionSource Durable);

/// <summary>Where recovery collects the log: every entry after <see cref="FromZxid"/> (the snapshot's start).</summary>
public sealed class ZabLogRecovery(long fromZxid)
{
    private readonly TaskCompletionSource<List<LogEntry>> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public long FromZxid { get; } = fromZxid;
    public List<LogEntry> Entries { get; } = new();
    public Task<List<LogEntry>> Completion => _done.Task;
    internal void Complete() => _done.TrySetResult(Entries);
    internal void Fail(Exception e) => _done.TrySetException(e);

    internal void Add(long zxid, ReadOnlyMemory<byte> bytes)
    {
        if (zxid <= FromZxid) return;
        // Entries are strictly ascending between truncations; a lower one can only follow a lost truncate marker.
        TruncateAfter(zxid - 1);
        var payload = bytes.ToArray();
        Entries.Add(new LogEntry(zxid, payload, Txns.ConfigOf(payload)));
    }

    internal void TruncateAfter(long zxid)
    {
        var keep = Entries.Count;
        while (keep > 0 && Entries[keep - 1].Zxid > zxid) keep--;
        Entries.RemoveRange(keep, Entries.Count - keep);
    }
}

/// <summary>
/// The ensemble's durable Zab log: a persistent actor on Akka.Persistence.Sql or FileEventJournal (journal = sql or
/// persistent-file), like the standalone journal writer,
/// with group commit (appends that arrive during a write are persisted together as one row) and truncation events.
/// Appends and truncations are persisted strictly in arrival order. A journal failure stops the node's ActorSystem:
/// the host then starts a fresh incarnation that recovers from disk and resynchronises with the leader, which is
/// simpler and safer than guessing which in-memory entries reached the disk.
/// </summary>
public sealed class ZabJournalActor : UntypedPersistentActor
{
    private readonly PersistenceSettings _settings;
    private ZabLogRecovery? _recovery;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Queue<object> _pending = new();    // AppendToLog | TruncateLogAfter, in arrival order
    private bool _writing;
    private readonly Queue<(long Seq, long LastZxid)> _index = new();
    private readonly ServerMetrics _metrics = ServerMetrics.For(Context.System);

    public ZabJournalActor(PersistenceSettings settings, ZabLogRecovery recovery)
    {
        _settings = settings;
        _recovery = recovery;
        JournalPluginId = settings.JournalPluginId;
        SnapshotPluginId = settings.SnapshotPluginId;
    }

    public static Props Props(PersistenceSettings settings, ZabLogRecovery recovery) =>
        Akka.Actor.Props.Create(() => new ZabJournalActor(settings, recovery)).WithDispatcher(settings.JournalActorDispatcher);

    public override string PersistenceId => _settings.ZabPersistenceId;

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case TxnBatchEvent batch:
                long last = 0;
                foreach (var (zxid, bytes) in batch.Entries())
                {
                    _recovery?.Add(zxid, bytes);
                    last = zxid;
                }
                if (last != 0) _index.Enqueue((LastSequenceNr, last));
                break;
            case LogTruncatedEvent truncated:
                _recovery?.TruncateAfter(truncated.Zxid);
                break;
            case RecoveryCompleted:
                _log.Info("Zab log recovered: {0} entries after the snapshot, sequence {1}", _recovery?.Entries.Count ?? 0, LastSequenceNr);
                _recovery?.Complete();
                _recovery = null;
                break;
        }
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _recovery?.Fail(reason);
        _recovery = null;
        base.OnRecoveryFailure(reason, message);
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case AppendToLog or TruncateLogAfter:
                _pending.Enqueue(message);
                if (!_writing) WriteNext();
                break;
            case PurgeJournal purge:
                long seq = -1;
                while (_index.Count > 0 && _index.Peek().LastZxid <= purge.UpToZxid) seq = _index.Dequeue().Seq;
                if (seq > 0) DeleteMessages(seq);
                break;
            case DeleteMessagesSuccess or DeleteMessagesFailure:
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Persists the next truncation, or every append queued before the next truncation, as one row.</summary>
    private void WriteNext()
    {
        if (_pending.Count == 0) { _writing = false; return; }
        _writing = true;
        if (_pending.Peek() is TruncateLogAfter truncate)
        {
            _pending.Dequeue();
            PersistAsync(new LogTruncatedEvent(truncate.Zxid), _ =>
            {
                truncate.Durable.TrySetResult();
                WriteNext();
            });
            return;
        }
        var appends = new List<AppendToLog>();
        var txns = new List<(long, byte[])>();
        while (_pending.Count > 0 && _pending.Peek() is AppendToLog append && txns.Count < _settings.MaxBatchTxns)
        {
            _pending.Dequeue();
            appends.Add(append);
            foreach (var e in append.Entries) txns.Add((e.Zxid, e.Payload));
        }
        var lastZxid = txns.Count > 0 ? txns[^1].Item1 : 0;
        var writeStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        PersistAsync(TxnBatchEvent.From(txns), _ =>
        {
            // As the file journal's writer records each group: mntr's fsynctime, sync batch sizes and commit_count.
            _metrics.RecordJournalWrite(writeStarted, txns.Count);
            if (lastZxid != 0) _index.Enqueue((LastSequenceNr, lastZxid));
            foreach (var a in appends) a.Durable.TrySetResult();
            WriteNext();
        });
    }

    private void FailPending(Exception cause)
    {
        foreach (var item in _pending)
            if (item is AppendToLog a) a.Durable.TrySetException(cause);
            else if (item is TruncateLogAfter t) t.Durable.TrySetException(cause);
        _pending.Clear();
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "Zab log write failed (sequence {0}); restarting this server's node to recover from disk", sequenceNr);
        FailPending(cause);
        Context.System.Terminate();
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "Zab log rejected a write (sequence {0}); restarting this server's node", sequenceNr);
        FailPending(cause);
        Context.System.Terminate();
        base.OnPersistRejected(cause, @event, sequenceNr);
    }
}
