using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in applying a committed txn (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.Commit"/>).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>The txn is applied to the tree: the host records what it keeps of it (audit, change feed, the session
    /// secret), before anyone is told.</summary>
    void Committed(in TxnHeader header, Txn txn, ApplyResult result);
    /// <summary>A watch fired: the event goes to each recipient with the sequence number the core gave it.</summary>
    void FanOut(WatchTrigger trigger, long zxid, IReadOnlyList<(TAddress Actor, long Seq)> recipients);
    /// <summary>The outcome of an applied txn for the session that wrote it.</summary>
    TOutcome Outcome(in TxnHeader header, ApplyResult result);
    /// <summary>A createSession txn committed; the server the client is connected to answers it.</summary>
    void SessionCreated(in TxnHeader header, CreateSessionTxn create);
    /// <summary>A closeSession txn committed. <paramref name="session"/> is the session if it was served here (its
    /// requests before the close are answered already), <paramref name="requested"/> whether the close was its own request.</summary>
    void SessionEnded(in TxnHeader header, ReplicaSession<TAddress, TRead, TOutcome>? session, bool requested);
}

// Applying a committed txn, in the one order that keeps invariants 3 and 4: the tree changes, each watch it fires
// takes its watchers' next sequence numbers (so an event precedes any answer of that session that shows the change,
// watch-before-data), then the writer's answer is released in its session's request order.
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>The watches registered on this server (watches are not replicated).</summary>
    public WatchTable Watches { get; } = new();

    /// <summary>
    /// Applies one committed txn to <paramref name="tree"/>: the host records it, its watches fan out, and the
    /// session that wrote it (if served here) gets its outcome in order. After a batch, call <see cref="Applied"/>.
    /// </summary>
    public ApplyResult Commit(DataTree tree, in TxnHeader header, Txn txn)
    {
        var result = tree.Apply(header, txn);
        _host.Committed(header, txn, result);
        if (txn is SessionSecretTxn) return result;   // internal: nothing to watch or answer
        FanOut(result.Triggers, header.Zxid);
        switch (txn)
        {
            case CreateSessionTxn create:
                _host.SessionCreated(header, create);
                break;
            case CloseSessionTxn:
                Watches.RemoveSession(header.SessionId);
                var (session, requested) = End(header.SessionId, header.Cxid, _host.Outcome(header, result));
                _host.SessionEnded(header, session, requested);
                break;
            default:
                if (Sessions.TryGetValue(header.SessionId, out var writer)) Complete(writer, header.Cxid, _host.Outcome(header, result));
                break;
        }
        return result;
    }

    /// <summary>Each trigger's watchers served here take their next sequence number now, at apply time.</summary>
    private void FanOut(IReadOnlyList<WatchTrigger> triggers, long zxid)
    {
        for (var i = 0; i < triggers.Count; i++)
        {
            var trigger = triggers[i];
            var watchers = Watches.Trigger(trigger);
            if (watchers.Count == 0) continue;
            var recipients = new List<(TAddress, long)>(watchers.Count);
            foreach (var sessionId in watchers)
                if (Sessions.TryGetValue(sessionId, out var s)) recipients.Add((s.Actor, s.NextSeq()));
            if (recipients.Count > 0) _host.FanOut(trigger, zxid, recipients);
        }
    }
}
