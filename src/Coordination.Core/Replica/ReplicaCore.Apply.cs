using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in applying a committed txn (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.Commit"/>).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>The txn is applied to the tree: the host records what it keeps of it (the change feed, the session
    /// secret; the audit log when <paramref name="audit"/>), before anyone is told.</summary>
    void Committed(in TxnHeader header, Txn txn, ApplyResult result, bool audit);
    /// <summary>A watch fired: the event goes to each recipient with the sequence number the core gave it.</summary>
    void FanOut(WatchTrigger trigger, long zxid, IReadOnlyList<(TAddress Actor, long Seq)> recipients);
    /// <summary>The outcome of an applied txn for the session that wrote it.</summary>
    TOutcome Outcome(in TxnHeader header, ApplyResult result);
    /// <summary>A createSession txn committed. <paramref name="session"/> is the session when its client asked here
    /// (<see cref="ReplicaCore{TAddress,TRead,TOutcome}.CreateSession"/>): it is answered with <paramref name="seq"/>.</summary>
    void SessionCreated(in TxnHeader header, CreateSessionTxn create, ReplicaSession<TAddress, TRead, TOutcome>? session, long seq);
    /// <summary>A closeSession txn committed. <paramref name="session"/> is the session if it was served here (its
    /// requests before the close are answered already), <paramref name="requested"/> whether the close was its own request.</summary>
    void SessionEnded(in TxnHeader header, ReplicaSession<TAddress, TRead, TOutcome>? session, bool requested);
    /// <summary>A committed batch is applied and everything waiting for it answered: the host's own work after a batch
    /// (the server: the change feed's subscribers, the snapshot policy).</summary>
    void BatchApplied(IReadOnlyList<Proposal> batch);
}

// Applying a committed txn, in the one order that keeps invariants 3 and 4: the tree changes, each watch it fires
// takes its watchers' next sequence numbers (so an event precedes any answer of that session that shows the change,
// watch-before-data), then the writer's answer is released in its session's request order. After a batch: the end
// of a journal replay, prep's applied point, the re-attachments and syncs waiting for it. And reaping, the leader's
// other source of txns.
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>The watches registered on this server (watches are not replicated).</summary>
    public WatchTable Watches { get; } = new();

    /// <summary>
    /// Ensemble: the txns Zab committed, in zxid order, applied to <paramref name="tree"/> (<see cref="ApplyBatch"/>).
    /// What this server proposed is applied as it was prepared; anything else is decoded from its entry.
    /// </summary>
    public void ApplyCommitted(DataTree tree, IReadOnlyList<LogEntry> entries)
    {
        var batch = new List<Proposal>(entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (_proposed.Remove(entry.Zxid, out var proposal)) batch.Add(proposal);
            else
            {
                var (header, txn) = Txns.Deserialize(entry.Payload);
                batch.Add(new Proposal(header, txn));
            }
        }
        ApplyBatch(tree, batch);
    }

    /// <summary>Leader: what commits at <paramref name="zxid"/> is <paramref name="proposal"/>, not what was prepared
    /// (the peer refused a reconfig: its error txn commits instead).</summary>
    public void ReplaceProposed(long zxid, Proposal proposal)
    {
        if (_proposed.ContainsKey(zxid)) _proposed[zxid] = proposal;
    }

    /// <summary>
    /// Applies committed txns to <paramref name="tree"/> in zxid order (<see cref="Commit"/>), then: a journal replay
    /// that reached the snapshot's end is over, prep forgets what is now in the tree, and the re-attachments and syncs
    /// whose point is applied are answered; last, the host's own work (<see cref="IReplicaHost{TAddress,TRead,TOutcome}.BatchApplied"/>).
    /// </summary>
    public void ApplyBatch(DataTree tree, IReadOnlyList<Proposal> batch)
    {
        for (var i = 0; i < batch.Count; i++) Commit(tree, batch[i].Header, batch[i].Txn);
        if (tree.ReplayMode && tree.LastZxid >= tree.SnapshotEndZxid) tree.FinishReplay();
        Prep.Applied(tree.LastZxid);
        ReleaseValidations(tree);
        Applied();
        _host.BatchApplied(batch);
    }

    /// <summary>
    /// Applies one committed txn to <paramref name="tree"/>: the host records it, its watches fan out, and the
    /// session that wrote it (if served here) gets its outcome in order. A batch goes through <see cref="ApplyBatch"/>.
    /// </summary>
    public ApplyResult Commit(DataTree tree, in TxnHeader header, Txn txn)
    {
        var result = tree.Apply(header, txn);
        _host.Committed(header, txn, result, Audits(header.SessionId, txn));
        if (txn is SessionSecretTxn) return result;   // internal: nothing to watch or answer
        FanOut(result.Triggers, header.Zxid);
        switch (txn)
        {
            case CreateSessionTxn create:
                var created = Created(header.SessionId, create.TimeoutMs);
                _host.SessionCreated(header, create, created, created?.NextSeq() ?? 0);
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

    /// <summary>As ZooKeeper, the server a client is connected to audits its writes (its session's creation included);
    /// the leader audits expirations and reaps. Standalone, every txn.</summary>
    private bool Audits(long sessionId, Txn txn) =>
        !_ensemble || Sessions.ContainsKey(sessionId) || _creating.ContainsKey(sessionId)
        || (Leading && (txn is CloseSessionTxn || sessionId == 0));

    /// <summary>
    /// Standalone, leader: the reap tick (ZooKeeper's ContainerManager). Proposes the deletion of empty containers and
    /// expired TTL nodes of <paramref name="tree"/>, at most <paramref name="budget"/> of them, each re-checked by prep
    /// against the writes prepared and not applied yet (a child being created keeps its container).
    /// </summary>
    public void Reap(DataTree tree, long wallMs, int budget)
    {
        if (!Leading) return;
        foreach (var path in tree.FindReapable(wallMs))
        {
            if (budget-- <= 0) break;
            if (Prep.PrepareReap(path, wallMs) is { } prepared) Log(prepared);
        }
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
