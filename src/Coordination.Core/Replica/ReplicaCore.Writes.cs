using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>A request on its way to the leader's replica: a client's <see cref="Write"/>, or with none a sync (a
/// client's, or a validation's: xid 0). The host encodes it when the burst's forwards are sent.</summary>
public readonly record struct Forward<TRead>(long SessionId, int Xid, TRead? Write) where TRead : class;

/// <summary>The host's part in preparing and batching writes (ReplicaCore.Writes.cs).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>The first txn or forward of a burst was batched: the host calls <see cref="ReplicaCore{TAddress,TRead,TOutcome}.Flush"/>
    /// once the requests already waiting are handled (the server: a message to itself, queued behind them).</summary>
    void ScheduleFlush();
    /// <summary>The txns prepared in a burst, in zxid order: to the journal (standalone) or proposed (leader).</summary>
    void Log(Proposal[] batch);
    /// <summary>The requests forwarded in a burst, in order, to the replica of server <paramref name="leader"/>. The list
    /// is the core's and reused: read it before returning.</summary>
    void Forward(long leader, IReadOnlyList<Forward<TRead>> batch);
    /// <summary>Prep threw on a write of <paramref name="serverId"/>'s client (a bug, or a body it cannot handle): the
    /// host logs it; the write is refused (MarshallingError), nothing proposed for it.</summary>
    void PrepareFailed(OpCode op, long serverId, Exception error);
    /// <summary>A txn the log failed (or prepared on top of one that failed) will never commit (a record for the
    /// host; the core forgets the proposal and a session creation waiting for it, and answers its writer if served here).</summary>
    void NotLogged(Proposal proposal);
}

// Prep and batching: a write is prepared here (standalone, leader) or forwarded (follower, observer); what a burst of
// requests prepares or forwards travels together, flushed once the burst is handled (one hop, one group commit, and in
// an ensemble one proposal message per follower instead of one per txn), or as soon as it holds MaxBatch, so that the
// log (or the leader) works on the first part of a long burst while the rest is prepared. Forwards go before the
// burst's txns and before any other message to the leader, so the leader sees this server's requests in order.
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    private readonly List<Proposal> _unlogged = new();
    private readonly List<Forward<TRead>> _unforwarded = new();
    /// <summary>Ensemble: what this server proposed, by zxid, until it commits, so that committing needs no decoding
    /// (<see cref="ApplyCommitted"/>).</summary>
    private readonly Dictionary<long, Proposal> _proposed = new();

    /// <summary>Decides the outcome of every write prepared here (ZooKeeper's PrepRequestProcessor); the host replaces
    /// it with the tree it prepares against.</summary>
    public RequestPreprocessor Prep { get; set; } = null!;
    /// <summary>This server's id in an ensemble (0 standalone).</summary>
    public long ServerId { get; init; }
    /// <summary>Follower, observer: the server whose replica takes this one's forwards (see <see cref="Forwards"/>).</summary>
    public long Leader { get; private set; } = -1;
    /// <summary>This server forwards writes and syncs to <see cref="Leader"/> (a synchronised follower or observer).</summary>
    public bool Forwards => Role is ReplicaRole.Follower or ReplicaRole.Observer;
    /// <summary>Txns prepared and not yet handed to the log.</summary>
    public int Unlogged => _unlogged.Count;
    /// <summary>
    /// A batch of txns (or of forwards) goes out as soon as it holds this many, not only when the burst is handled
    /// (0: only then). The host's flush comes round behind every request already in its mailbox: with many clients
    /// filling it, a burst grew long while the log's writer had nothing to write (reference.conf, max-write-batch).
    /// </summary>
    public int MaxBatch { get; init; }
    /// <summary>The host was asked for a <see cref="Flush"/> that has not come yet (one per burst, however many
    /// batches went out at <see cref="MaxBatch"/> meanwhile).</summary>
    private bool _flushScheduled;

    /// <summary>
    /// A client's write, routed: prepared and batched for the log (standalone, leader), batched for the leader
    /// (follower, observer), or refused in the session's order (SessionMoved; ConnectionLoss without a leader;
    /// MarshallingError when prep cannot handle it). <paramref name="request"/> is what a forward carries.
    /// <paramref name="wallMs"/> is the txn's time, <paramref name="nowMs"/> monotonic (deadlines).
    /// </summary>
    public void ClientWrite(ReplicaSession<TAddress, TRead, TOutcome> session, TRead request, int xid, OpCode op, ZkRequest body,
        AuthContext auth, long wallMs, long nowMs)
    {
        switch (RouteWrite(session.Id, ServerId))
        {
            case WriteRoute.Forward when !Forwards:
                Refuse(session, xid, nowMs, ErrorCode.ConnectionLoss);
                return;
            case WriteRoute.Forward:
                Write(session, xid, nowMs);
                ForwardLater(new Forward<TRead>(session.Id, xid, request));
                return;
            case WriteRoute.Moved:
                Refuse(session, xid, nowMs, ErrorCode.SessionMoved);
                return;
        }
        (TxnHeader Header, Txn Txn) prepared;
        try
        {
            prepared = Prep.Prepare(session.Id, xid, op, body, auth, wallMs);
        }
        catch (Exception e)
        {
            _host.PrepareFailed(op, ServerId, e);
            Refuse(session, xid, nowMs, ErrorCode.MarshallingError);
            return;
        }
        Write(session, xid, nowMs);
        Log(prepared);
    }

    /// <summary>A txn prepared here (a client's write, a session's creation or expiry, a reap): batched for the log.</summary>
    public void Log((TxnHeader Header, Txn Txn) prepared)
    {
        ScheduleFlush();
        _unlogged.Add(new Proposal(prepared.Header, prepared.Txn));
        if (MaxBatch > 0 && _unlogged.Count >= MaxBatch) FlushBatches();
    }

    /// <summary>Follower: a sync for the leader to fix the point of (a validation's has xid 0).</summary>
    public void ForwardSync(long sessionId, int xid) => ForwardLater(new Forward<TRead>(sessionId, xid, null));

    private void ForwardLater(Forward<TRead> forward)
    {
        ScheduleFlush();
        _unforwarded.Add(forward);
        if (MaxBatch > 0 && _unforwarded.Count >= MaxBatch) FlushForwards();
    }

    private void ScheduleFlush()
    {
        if (_flushScheduled) return;
        _flushScheduled = true;
        _host.ScheduleFlush();
    }

    /// <summary>The burst is handled (the flush the host was asked for): its forwards go to the leader, then its txns to the log.</summary>
    public void Flush()
    {
        _flushScheduled = false;
        FlushBatches();
    }

    /// <summary>What is batched goes out: the forwards to the leader, then the txns to the log.</summary>
    private void FlushBatches()
    {
        FlushForwards();
        if (_unlogged.Count == 0) return;
        var batch = _unlogged.ToArray();
        _unlogged.Clear();
        if (_ensemble)
            foreach (var proposal in batch) _proposed[proposal.Header.Zxid] = proposal;
        _host.Log(batch);
    }

    /// <summary>The forwards batched so far go to the leader now: before any other message to it (a session's
    /// creation or owner), and before the leader changes (to the leader they were meant for, as if sent at once).</summary>
    public void FlushForwards()
    {
        if (_unforwarded.Count == 0) return;
        if (Forwards) _host.Forward(Leader, _unforwarded);
        _unforwarded.Clear();
    }

    /// <summary>
    /// The log failed <paramref name="batch"/>: nothing of it, nor anything prepared on top of it, may be applied.
    /// Prep forgets what it had prepared, and each writer served here is refused with <paramref name="err"/> in its turn.
    /// </summary>
    public void LogFailed(IReadOnlyList<Proposal> batch, ErrorCode err)
    {
        Prep.Reset(_appliedZxid());
        for (var i = 0; i < batch.Count; i++) NotLogged(batch[i], err);
        foreach (var proposal in _unlogged) NotLogged(proposal, err);
        _unlogged.Clear();
    }

    private void NotLogged(Proposal proposal, ErrorCode err)
    {
        _proposed.Remove(proposal.Header.Zxid);
        if (proposal.Txn is CreateSessionTxn) _creating.Remove(proposal.Header.SessionId);
        _host.NotLogged(proposal);
        if (Sessions.TryGetValue(proposal.Header.SessionId, out var session))
            Complete(session, proposal.Header.Cxid, _host.Refusal(proposal.Header.Cxid, err));
    }
}
