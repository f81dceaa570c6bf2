using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Metrics;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Persistence;

/// <summary>
/// One unit of work for the <see cref="FileLogWriter"/>: it adds its records to the log (or refuses), and is told
/// once they are durable or failed. Runs on the writer's thread.
/// </summary>
public abstract class LogWork
{
    /// <summary>Txns this work appends (bounds a group commit).</summary>
    internal virtual int TxnCount => 0;
    /// <summary>Adds the records; returns why this work is refused (nothing added), or null.</summary>
    internal abstract Exception? Write(FileTxnLog log);
    /// <summary>The records are durable (null) or their write failed.</summary>
    internal abstract void Completed(Exception? failure);
}

/// <summary>Standalone: the replica's prepared txns; answered with <see cref="LogAppended"/> or <see cref="LogAppendFailed"/>.</summary>
internal sealed class AppendProposals(LogAppend append, IActorRef replyTo) : LogWork
{
    internal override int TxnCount => append.Batch.Count;

    internal override Exception? Write(FileTxnLog log)
    {
        // After a failure the replica re-prepares from its last applied zxid; what it prepared on top of the failed
        // txns must not be logged.
        var first = append.Batch[0].Header.Zxid;
        if (first != log.LastZxid + 1)
            return new IOException($"txn 0x{first:x} is out of sequence (expected 0x{log.LastZxid + 1:x}) after a log failure");
        foreach (var p in append.Batch)
        {
            Txns.Write(log.BeginRecord(LogRecordKind.Txn, p.Header.Zxid), p.Header, p.Txn);
            log.EndRecord();
        }
        return null;
    }

    internal override void Completed(Exception? failure) =>
        replyTo.Tell(failure is null ? new LogAppended(append.Batch) : new LogAppendFailed(append.Batch, failure));
}

/// <summary>Ensemble: Zab log entries (already serialized); <see cref="Durable"/> completes when they are on disk.</summary>
internal sealed class AppendEntries(IReadOnlyList<LogEntry> entries, TaskCompletionSource durable) : LogWork
{
    internal override int TxnCount => entries.Count;

    internal override Exception? Write(FileTxnLog log)
    {
        for (var i = 0; i < entries.Count; i++) log.Append(LogRecordKind.Txn, entries[i].Zxid, entries[i].Payload);
        return null;
    }

    internal override void Completed(Exception? failure)
    {
        if (failure is null) durable.TrySetResult();
        else durable.TrySetException(failure);
    }
}

/// <summary>Ensemble: drop the logged entries after a zxid (Zab TRUNC), in order with the appends; its task completes when that is on disk.</summary>
internal sealed class TruncateEntries(long zxid, TaskCompletionSource durable) : LogWork
{
    internal override Exception? Write(FileTxnLog log)
    {
        log.Append(LogRecordKind.Truncate, zxid, ReadOnlySpan<byte>.Empty);
        return null;
    }

    internal override void Completed(Exception? failure)
    {
        if (failure is null) durable.TrySetResult();
        else durable.TrySetException(failure);
    }
}

/// <summary>
/// The log's writer thread, ZooKeeper's SyncRequestProcessor: it takes everything queued, writes it as one group
/// (one write and one fdatasync), then completes each piece of work in order. Appends block nothing else: actors hand
/// work over with <see cref="Post"/> and get their answer as a message or a completed task. A failed write fails its
/// group; the log then starts a new segment at the next write, so the writer recovers by itself when the disk works
/// again (<paramref name="onFailure"/> lets an ensemble member restart instead).
/// </summary>
public sealed class FileLogWriter : IDisposable
{
    private readonly FileTxnLog _log;
    private readonly int _maxBatchTxns;
    private readonly ILoggingAdapter _logger;
    private readonly ServerMetrics? _metrics;
    private readonly Action<Exception>? _onFailure;
    private readonly HandOverQueue<object> _queue = new();
    private readonly Thread _thread;
    private readonly List<LogWork> _group = new();
    private readonly List<(LogWork Work, Exception? Refused)> _written = new();
    private readonly List<long> _purges = new();
    private object? _carried;
    private Exception? _stoppedBy;

    private sealed record PurgeUpTo(long Zxid);

    public FileLogWriter(FileTxnLog log, int maxBatchTxns, ILoggingAdapter logger, ServerMetrics? metrics, Action<Exception>? onFailure = null)
    {
        _log = log;
        _maxBatchTxns = Math.Max(1, maxBatchTxns);
        _logger = logger;
        _metrics = metrics;
        _onFailure = onFailure;
        _thread = new Thread(Run) { IsBackground = true, Name = "txnlog-writer" };
        _thread.Start();
    }

    public void Post(LogWork work)
    {
        if (!_queue.TryAdd(work)) work.Completed(new IOException("transaction log closed"));
    }

    /// <summary>Deletes segments whose txns are all covered by a retained snapshot (after the writes queued before).</summary>
    public void Purge(long upToZxid) => _queue.TryAdd(new PurgeUpTo(upToZxid));

    private void Run()
    {
        try
        {
            while (Next() is { } first)
            {
                Gather(first);
                WriteGroup();
            }
        }
        catch (Exception e)
        {
            _logger.Error(e, "Transaction log writer failed");
        }
    }

    private object? Next()
    {
        if (_carried is { } carried) { _carried = null; return carried; }
        return _queue.Take(); // null: closing
    }

    private void Gather(object first)
    {
        var txns = 0;
        var item = first;
        while (true)
        {
            if (item is PurgeUpTo purge) _purges.Add(purge.Zxid);
            else
            {
                var work = (LogWork)item;
                if (_group.Count > 0 && txns + work.TxnCount > _maxBatchTxns) { _carried = work; return; }
                _group.Add(work);
                txns += work.TxnCount;
            }
            if (!_queue.TryTake(out item!)) return;
        }
    }

    private void WriteGroup()
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var txns = 0;
        // Fail-stop (an ensemble member): after a failed write nothing more is logged, or later entries could be
        // acknowledged over a hole.
        var failure = _stoppedBy;
        foreach (var work in _group)
        {
            Exception? refused = null;
            if (failure is null)
            {
                try { refused = work.Write(_log); }
                catch (Exception e)
                {
                    // A record could not be serialized: write none of the group (no half-written record on disk).
                    _log.DiscardPending();
                    failure = e;
                }
            }
            if (refused is null) txns += work.TxnCount;
            _written.Add((work, refused));
        }
        if (failure is null)
        {
            try
            {
                _log.Commit();
                if (txns > 0) _metrics?.RecordJournalWrite(started, txns);
            }
            catch (Exception e) { failure = e; }
        }
        if (failure is not null && _stoppedBy is null) _logger.Error(failure, "Transaction log write failed; failing {0} txns", txns);
        foreach (var (work, refused) in _written) work.Completed(refused ?? failure);
        _written.Clear();
        _group.Clear();
        if (failure is not null && _onFailure is not null && _stoppedBy is null)
        {
            _stoppedBy = failure;
            _onFailure(failure);
        }
        foreach (var upTo in _purges)
        {
            try
            {
                var deleted = _log.Purge(upTo);
                if (deleted > 0) _logger.Info("Transaction log purged: {0} segments up to zxid 0x{1:x}", deleted, upTo);
            }
            catch (Exception e) { _logger.Error(e, "Transaction log purge up to 0x{0:x} failed", upTo); }
        }
        // A purge follows a new snapshot: what is logged from now on goes to a segment that a later purge can drop.
        if (_purges.Count > 0) _log.RollAtNextWrite();
        _purges.Clear();
    }

    /// <summary>Finishes the queued work, then closes the log.</summary>
    public void Dispose()
    {
        _queue.Close();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(30));
        _log.Dispose();
    }
}
