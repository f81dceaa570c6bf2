using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Coordination.Core;
using Coordination.Server.Metrics;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Persistence;

/// <summary>Asks the log to drop journal entries no retained snapshot needs (every txn with zxid ≤ <see cref="UpToZxid"/>).</summary>
public sealed record PurgeJournal(long UpToZxid);

/// <summary>
/// Where the first incarnation of the journal writer replays the journal during recovery: every txn with zxid
/// greater than <see cref="FromZxid"/> is applied to <see cref="Tree"/> in replay mode.
/// </summary>
public sealed class RecoverySink(DataTree tree, long fromZxid)
{
    private readonly TaskCompletionSource<RecoveryOutcome> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public DataTree Tree { get; } = tree;
    public long FromZxid { get; } = fromZxid;
    public long FirstJournalZxid { get; set; }
    public long TxnsReplayed { get; set; }
    public Task<RecoveryOutcome> Completion => _done.Task;
    internal void Complete(long lastZxid) => _done.TrySetResult(new RecoveryOutcome(FirstJournalZxid, lastZxid, TxnsReplayed));

    /// <summary>Applies one journalled txn if it is after the snapshot; a missing zxid in between is a gap.</summary>
    internal void Replay(long zxid, ReadOnlySpan<byte> bytes)
    {
        if (FirstJournalZxid == 0) FirstJournalZxid = zxid;
        if (zxid <= FromZxid) return;
        if (zxid != Tree.LastZxid + 1)
            throw new JournalGapException($"journal jumps from zxid 0x{Tree.LastZxid:x} to 0x{zxid:x}");
        var (header, txn) = Txns.Deserialize(bytes);
        Tree.Apply(header, txn);
        TxnsReplayed++;
    }
    internal void Fail(Exception e) => _done.TrySetException(e);
}

public sealed record RecoveryOutcome(long FirstJournalZxid, long LastJournalZxid, long TxnsReplayed);

/// <summary>The journal's txns do not continue the snapshot: a zxid is missing between them.</summary>
public sealed class JournalGapException(string message) : Exception(message);

/// <summary>
/// The durable transaction log of the persistent-actor journals, as the replica holds it: a ref with no mailbox behind
/// it (like <see cref="FileJournalRef"/>) whose Tell hands <see cref="LogAppend"/> and <see cref="PurgeJournal"/>
/// straight to the current <see cref="JournalWriterActor"/>, the persistent actor, so that an append crosses one
/// mailbox to reach it rather than two (the façade actor it replaces forwarded every append). While no writer runs
/// (restarting after a failure) an append is failed at once. Stopping it stops its <see cref="Supervisor"/>.
/// </summary>
public sealed class JournalTxnLogRef : MinimalActorRef
{
    private IActorRef? _writer;
    private long _lastDurableZxid;

    private JournalTxnLogRef(ActorSystem system, string name)
    {
        Provider = ((ExtendedActorSystem)system).Provider;
        Path = new RootActorPath(Provider.DefaultAddress) / "user" / name / "log";
    }

    public override ActorPath Path { get; }
    public override IActorRefProvider Provider { get; }

    /// <summary>The <see cref="JournalTxnLogActor"/> that starts (and restarts) the writer; the node watches it.</summary>
    public IActorRef Supervisor { get; private set; } = ActorRefs.Nobody;

    /// <summary>Starts the journal's supervisor and first writer, which recovers into <paramref name="sink"/>.</summary>
    public static JournalTxnLogRef Start(ActorSystem system, PersistenceSettings settings, RecoverySink sink, string name)
    {
        var log = new JournalTxnLogRef(system, name);
        log.Supervisor = system.ActorOf(JournalTxnLogActor.Props(settings, sink, log), name);
        return log;
    }

    /// <summary>The writer appends go to (null while it restarts); set by the supervisor.</summary>
    internal IActorRef? Writer
    {
        get => Volatile.Read(ref _writer);
        set => Volatile.Write(ref _writer, value);
    }

    /// <summary>The last zxid a writer made durable: where the next incarnation must continue. Set by the writer
    /// (a field rather than a message to the supervisor per write).</summary>
    internal long LastDurableZxid
    {
        get => Volatile.Read(ref _lastDurableZxid);
        set => Volatile.Write(ref _lastDurableZxid, value);
    }

    protected override void TellInternal(object message, IActorRef sender)
    {
        switch (message)
        {
            case LogAppend append:
                // A writer that stopped but whose supervisor has not yet heard of it would drop the append unanswered
                // (IsTerminated is obsolete for watching; here it is only that check, on the append's path).
#pragma warning disable CS0618
                if (Writer is IInternalActorRef { IsTerminated: false } writer) writer.Tell(append, sender);
#pragma warning restore CS0618
                else sender.Tell(new LogAppendFailed(append.Batch, new IOException("transaction log unavailable (restarting after a failure)")));
                break;
            case PurgeJournal purge:
                Writer?.Tell(purge, sender);
                break;
            default:
                Provider.DeadLetters.Tell(new DeadLetter(message, sender, this), sender);
                break;
        }
    }

    public override void Stop() => Supervisor.Tell(PoisonPill.Instance);
}

/// <summary>
/// The supervisor of the persistent-actor journal: it owns one <see cref="JournalWriterActor"/> child and makes it
/// the target of its <see cref="JournalTxnLogRef"/>. When the journal fails (Akka stops a persistent actor on a
/// persist failure, e.g. disk full or I/O error), the writer fails every append in flight or buffered, appends that
/// arrive meanwhile are failed at once by the ref, and a new writer is started after an exponential backoff: the
/// server recovers by itself once the disk works again.
/// </summary>
public sealed class JournalTxnLogActor : ReceiveActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    private readonly PersistenceSettings _settings;
    private readonly JournalTxnLogRef _log;
    private readonly ILoggingAdapter _logger = Context.GetLogger();
    private IActorRef? _writer;
    private TimeSpan _backoff;
    private long _durableAtStart;
    private int _incarnation;

    private sealed record Restart;

    public JournalTxnLogActor(PersistenceSettings settings, RecoverySink sink, JournalTxnLogRef log)
    {
        _settings = settings;
        _log = log;
        _backoff = settings.RestartBackoffMin;
        _writer = StartWriter(sink, -1);

        Receive<JournalWriterActor.Recovered>(r => _log.LastDurableZxid = Math.Max(_log.LastDurableZxid, r.LastZxid));
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(_writer)) return;
            _writer = null;
            _log.Writer = null;
            // An incarnation that made something durable worked: the next failure starts the backoff afresh.
            if (_log.LastDurableZxid > _durableAtStart) _backoff = _settings.RestartBackoffMin;
            _logger.Warning("Transaction log writer stopped; restarting it in {0}", _backoff);
            Timers.StartSingleTimer("restart", new Restart(), _backoff);
            _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, _settings.RestartBackoffMax.Ticks));
        });
        Receive<Restart>(_ => _writer ??= StartWriter(null, _log.LastDurableZxid));
    }

    private IActorRef StartWriter(RecoverySink? sink, long expectedLastZxid)
    {
        var writer = Context.ActorOf(Akka.Actor.Props.Create(() => new JournalWriterActor(_settings, sink, expectedLastZxid, _log))
            .WithDispatcher(_settings.JournalActorDispatcher), $"writer-{++_incarnation}");
        Context.Watch(writer);
        _durableAtStart = _log.LastDurableZxid;
        _log.Writer = writer;
        return writer;
    }

    // Any failure of the writer stops it; Terminated then schedules a fresh incarnation (which recovers first).
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void PostStop() => _log.Writer = null;

    internal static Props Props(PersistenceSettings settings, RecoverySink sink, JournalTxnLogRef log) =>
        Akka.Actor.Props.Create(() => new JournalTxnLogActor(settings, sink, log));
}

/// <summary>
/// The persistent actor. Group commit: appends that arrive while a write is in flight are buffered and persisted
/// together, as one <see cref="TxnBatchEvent"/>, when it completes. Each append is answered only from the persist
/// handler, i.e. after the journal reported the row committed (with SQLite WAL + synchronous=FULL: fsynced;
/// with FileEventJournal: after its group's fdatasync).
/// </summary>
public sealed class JournalWriterActor : UntypedPersistentActor
{
    internal sealed record Recovered(long LastZxid);

    private readonly PersistenceSettings _settings;
    private RecoverySink? _sink;
    private readonly long _expectedLastZxid;
    private readonly JournalTxnLogRef? _ref;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    /// <summary>Appends that arrived while a write was in flight, in order; they go out together next.</summary>
    private List<Pending> _buffer = new();
    private List<Pending>? _inFlight;
    private readonly Queue<(long Seq, long LastZxid)> _index = new();
    private long _lastZxid;
    private long _nextZxid;
    private readonly ServerMetrics _metrics = ServerMetrics.For(Context.System);

    /// <summary>One append as the replica sent it: answered with its own batch, as the file journal answers it.</summary>
    private readonly record struct Pending(IActorRef Sender, IReadOnlyList<Proposal> Batch);

    public JournalWriterActor(PersistenceSettings settings, RecoverySink? sink, long expectedLastZxid, JournalTxnLogRef? log)
    {
        _settings = settings;
        _sink = sink;
        _expectedLastZxid = expectedLastZxid;
        _ref = log;
        JournalPluginId = settings.JournalPluginId;
        SnapshotPluginId = settings.SnapshotPluginId;
    }

    public override string PersistenceId => _settings.PersistenceId;

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case TxnBatchEvent batch:
            {
                long last = 0;
                foreach (var (zxid, bytes) in batch.Entries())
                {
                    last = zxid;
                    _sink?.Replay(zxid, bytes.Span);
                }
                if (last != 0)
                {
                    _lastZxid = last;
                    _index.Enqueue((LastSequenceNr, last));
                }
                break;
            }
            case RecoveryCompleted:
                if (_sink is { } done)
                {
                    _sink = null;
                    done.Complete(_lastZxid);
                    // A restored snapshot, or a purged journal, may be ahead of the journal's last row.
                    _lastZxid = Math.Max(_lastZxid, done.Tree.LastZxid);
                }
                else if (_expectedLastZxid >= 0 && _lastZxid > _expectedLastZxid)
                {
                    // A batch reported failed did reach the journal (e.g. an I/O error after commit). Its txns were
                    // never acknowledged nor applied here; the tree and the journal disagree, so start over from
                    // the journal, which recovery replays in full.
                    _log.Error("Journal ends at zxid 0x{Zxid:x} but 0x{AcknowledgedZxid:x} was the last acknowledged; terminating so that recovery replays the journal",
                        _lastZxid, _expectedLastZxid);
                    Context.System.Terminate();
                }
                _lastZxid = Math.Max(_lastZxid, _expectedLastZxid);
                _nextZxid = _lastZxid + 1;
                Context.Parent.Tell(new Recovered(_lastZxid));
                _log.Info("Transaction log recovered: last zxid 0x{Zxid:x}, sequence {SequenceNr}", _lastZxid, LastSequenceNr);
                break;
        }
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _sink?.Fail(reason);
        _sink = null;
        base.OnRecoveryFailure(reason, message);
    }

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case LogAppend append:
                OnAppend(append);
                break;
            case PurgeJournal purge:
                OnPurge(purge.UpToZxid);
                break;
            case DeleteMessagesSuccess ok:
                _log.Info("Journal purged up to sequence {0}", ok.ToSequenceNr);
                break;
            case DeleteMessagesFailure failed:
                _log.Warning("Journal purge up to sequence {0} failed: {1}", failed.ToSequenceNr, failed.Cause.Message);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void OnAppend(LogAppend append)
    {
        if (append.Batch.Count == 0) { Sender.Tell(new LogAppended(append.Batch)); return; }
        // After a failure the replica re-prepares from its last applied zxid; anything prepared on top of the failed
        // txns must not be logged.
        if (append.Batch[0].Header.Zxid != _nextZxid)
        {
            Sender.Tell(new LogAppendFailed(append.Batch, new IOException(
                $"txn 0x{append.Batch[0].Header.Zxid:x} is out of sequence (expected 0x{_nextZxid:x}) after a log failure")));
            return;
        }
        _buffer.Add(new Pending(Sender, append.Batch));
        _metrics.AddProposals(append.Batch.Count);
        _nextZxid = append.Batch[^1].Header.Zxid + 1;
        if (_inFlight is null) Flush();
    }

    private void Flush()
    {
        if (_buffer.Count == 0) return;
        // Whole appends, up to max-batch-txns (at least one); the rest waits for the next write.
        var take = 0;
        var txns = 0;
        while (take < _buffer.Count && (take == 0 || txns + _buffer[take].Batch.Count <= _settings.MaxBatchTxns))
            txns += _buffer[take++].Batch.Count;
        List<Pending> batch;
        if (take == _buffer.Count)
        {
            batch = _buffer;
            _buffer = new List<Pending>();
        }
        else
        {
            batch = _buffer.GetRange(0, take);
            _buffer.RemoveRange(0, take);
        }
        _inFlight = batch;
        var appends = new IReadOnlyList<Proposal>[batch.Count];
        for (var i = 0; i < batch.Count; i++) appends[i] = batch[i].Batch;
        var lastZxid = appends[^1][^1].Header.Zxid;
        // Serialized by the journal on its writer thread (TxnEventSerializer is an IBufferSerializer).
        var evt = TxnBatchEvent.Of(appends);
        var writeStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        PersistAsync(evt, _ =>
        {
            _metrics.RecordJournalWrite(writeStarted, txns);
            _lastZxid = lastZxid;
            _index.Enqueue((LastSequenceNr, lastZxid));
            if (_ref is not null) _ref.LastDurableZxid = lastZxid;
            Reply(batch, failure: null);
            _inFlight = null;
            Flush();
        });
    }

    private static void Reply(List<Pending> appends, Exception? failure)
    {
        foreach (var (sender, batch) in appends)
            sender.Tell(failure is null ? new LogAppended(batch) : new LogAppendFailed(batch, failure));
    }

    private void FailAll(Exception cause)
    {
        if (_inFlight is { } inFlight) Reply(inFlight, cause);
        Reply(_buffer, cause);
        _inFlight = null;
        _buffer = new List<Pending>();
        _nextZxid = _lastZxid + 1;
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "Journal write failed (sequence {0}); failing {1} appends", sequenceNr, (_inFlight?.Count ?? 0) + _buffer.Count);
        FailAll(cause);
        base.OnPersistFailure(cause, @event, sequenceNr); // stops this actor; the parent restarts a new one
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "Journal rejected a write (sequence {0})", sequenceNr);
        FailAll(cause);
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    private void OnPurge(long upToZxid)
    {
        long seq = -1;
        while (_index.Count > 0 && _index.Peek().LastZxid <= upToZxid) seq = _index.Dequeue().Seq;
        if (seq > 0) DeleteMessages(seq);
    }

    protected override void PostStop()
    {
        if (_inFlight is not null || _buffer.Count > 0) FailAll(new IOException("transaction log stopped"));
        base.PostStop();
    }
}
