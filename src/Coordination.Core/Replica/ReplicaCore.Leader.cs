using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in what the leader does for other members (ReplicaCore.Leader.cs).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>The link <paramref name="from"/> arrived on is authenticated as member <paramref name="serverId"/>
    /// (invariant 11: identity comes from the link, never from a field of the message).</summary>
    bool Vouches(TAddress from, long serverId);
    /// <summary>A member message naming <paramref name="serverId"/> arrived on a link that does not vouch for it:
    /// dropped unanswered; the host logs and counts it.</summary>
    void Unvouched(TAddress from, long serverId, string what);
    /// <summary>Leader → a follower's replica: its forwarded write or sync was refused before any proposal.</summary>
    void RejectForward(TAddress follower, long sessionId, int xid, ErrorCode err);
    /// <summary>Leader → a follower's replica: the point of its forwarded sync (answered once applied there).</summary>
    void AnswerSyncPoint(TAddress follower, long sessionId, int xid, long zxid);
    /// <summary>Leader: asks for a quorum round that confirms this server still leads; the answer is
    /// <see cref="ReplicaCore{TAddress,TRead,TOutcome}.LeadershipConfirmed"/> with a number at least <paramref name="request"/>.</summary>
    void ConfirmLeadership(long request);
}

// The leader's side of forwards and syncs. A follower speaks for itself only: every forward, forwarded session and
// owner must arrive on a link that vouches for the server it names, and a forwarded write must come from the server
// its session is attached to (SessionMoved otherwise). A sync's point is fixed when it arrives, and it is held until
// a quorum round confirms that this server still leads: a leader cut off from its quorum must not answer from its own
// state while another leader commits writes (invariant 5).
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>A sync whose point (<see cref="Zxid"/>) is fixed, held until leadership request <see cref="Request"/> is
    /// confirmed: a follower's (answered to <see cref="Follower"/>) or a local one (<see cref="Local"/>, in its session's queue).</summary>
    private sealed record HeldSync(long Request, long Zxid, long SessionId, int Xid, PendingSync<TRead>? Local, TAddress Follower);
    private readonly Queue<HeldSync> _heldSyncs = new();
    private long _lastConfirmRequest;

    /// <summary>
    /// Leader: a write or sync a follower forwarded for its client, from the link <paramref name="from"/>, naming
    /// <paramref name="serverId"/>: prepared and batched like a local write (the follower answers it on commit), a
    /// sync held (<see cref="HoldSync"/>), or refused to <paramref name="from"/>. Not leading, everything is refused
    /// with ConnectionLoss (the follower closes that client's connection and the client asks again where a leader serves).
    /// </summary>
    public void Forwarded(TAddress from, long serverId, long sessionId, int xid, OpCode op, ReadOnlySpan<byte> body,
        IReadOnlyList<(string Scheme, string Ident)> auth, long wallMs)
    {
        if (!_host.Vouches(from, serverId))
        {
            _host.Unvouched(from, serverId, op == OpCode.Sync ? "a forwarded sync" : "a forwarded request");
            return;
        }
        if (!Leading)
        {
            _host.RejectForward(from, sessionId, xid, ErrorCode.ConnectionLoss);
            return;
        }
        if (op == OpCode.Sync)
        {
            HoldSync(sessionId, xid, null, from);
            return;
        }
        if (IsMovedAway(sessionId, serverId, claimUnknown: false))
        {
            _host.RejectForward(from, sessionId, xid, ErrorCode.SessionMoved);
            return;
        }
        if (op == OpCode.CloseSession && !Prep.IsSessionAlive(sessionId))
        {
            _host.RejectForward(from, sessionId, xid, ErrorCode.SessionExpired);
            return;
        }
        (TxnHeader Header, Txn Txn) prepared;
        try
        {
            var reader = new JuteReader(body);
            var request = Requests.Read(op, ref reader);
            prepared = Prep.Prepare(sessionId, xid, op, request, AuthOf(auth), wallMs);
        }
        catch (Exception e)
        {
            _host.PrepareFailed(op, serverId, e);
            _host.RejectForward(from, sessionId, xid, ErrorCode.MarshallingError);
            return;
        }
        Log(prepared);
    }

    private static readonly AuthContext NoAuth = new([]);

    private static AuthContext AuthOf(IReadOnlyList<(string Scheme, string Ident)> auth)
    {
        if (auth.Count == 0) return NoAuth;
        var ids = new Id[auth.Count];
        for (var i = 0; i < ids.Length; i++) ids[i] = new Id(auth[i].Scheme, auth[i].Ident);
        return new AuthContext(ids);
    }

    /// <summary>Leader: a follower's client asks for a new session (ignored when not leading: the client's deadline
    /// closes its connection, and it asks again).</summary>
    public void ForwardedCreateSession(TAddress from, long serverId, long sessionId, int timeoutMs, long wallMs)
    {
        if (!_host.Vouches(from, serverId)) _host.Unvouched(from, serverId, "a forwarded session creation");
        else if (Leading) PrepareSession(sessionId, timeoutMs, serverId, wallMs);
    }

    /// <summary>Leader: a session (re)attached to <paramref name="serverId"/>, which now owns it.</summary>
    public void SessionOwner(TAddress from, long serverId, long sessionId)
    {
        if (!_host.Vouches(from, serverId)) _host.Unvouched(from, serverId, "a session owner");
        else Attach(sessionId, serverId);
    }

    /// <summary>
    /// A client's sync (or linearizable read, <paramref name="then"/>) in an ensemble: the leader holds it for a quorum
    /// round; a follower asks the leader for its point; without a leader it is answered with what is applied here.
    /// </summary>
    public void ClientSync(ReplicaSession<TAddress, TRead, TOutcome> session, int xid, string path, long nowMs, TRead? then = null)
    {
        var sync = Sync(session, xid, path, nowMs, then);
        if (Leading) HoldSync(session.Id, xid, sync, default!);
        else if (Forwards) ForwardSync(session.Id, xid);
        else sync.Zxid = 0;
        Drain(session);
    }

    /// <summary>
    /// Leader: the zxid a sync seen now waits for, the last txn this leader has proposed. Before its first proposal
    /// of the epoch that is the last txn of the history it leads with, all applied here when it became leader:
    /// not the epoch's zxid with counter 0, which no txn has, so that a sync waiting for it would wait for the
    /// epoch's first write (a reconnected client's sync after a failover hung until someone wrote).
    /// </summary>
    private long SyncZxid()
    {
        var lastProposed = Prep.NextZxid - 1;
        return Zxids.CounterOf(lastProposed) == 0 ? _appliedZxid() : lastProposed;
    }

    /// <summary>Leader: fixes the sync's point now and asks for a quorum round before it is answered.</summary>
    private void HoldSync(long sessionId, int xid, PendingSync<TRead>? local, TAddress follower)
    {
        _heldSyncs.Enqueue(new HeldSync(++_lastConfirmRequest, SyncZxid(), sessionId, xid, local, follower));
        _host.ConfirmLeadership(_lastConfirmRequest);
    }

    /// <summary>Leader: a quorum confirmed this server's leadership for every request up to <paramref name="upToRequest"/>:
    /// the syncs held for them are answered (a follower's with its point, a local one in its session's order).</summary>
    public void LeadershipConfirmed(long upToRequest)
    {
        while (_heldSyncs.TryPeek(out var held) && held.Request <= upToRequest)
        {
            _heldSyncs.Dequeue();
            if (held.Local is null) _host.AnswerSyncPoint(held.Follower, held.SessionId, held.Xid, held.Zxid);
            else if (Sessions.TryGetValue(held.SessionId, out var session))
            {
                held.Local.Zxid = held.Zxid;
                Drain(session);
            }
        }
    }

    /// <summary>
    /// This server stopped leading before a quorum confirmed its held syncs: they are refused as a departing
    /// leader refuses a forwarded sync (the follower closes that client's connection). Local ones go with the
    /// clients this server drops when it stops serving, or are abandoned if it still serves.
    /// </summary>
    private void RefuseHeldSyncs(long nowMs)
    {
        foreach (var held in _heldSyncs)
        {
            if (held.Local is null) _host.RejectForward(held.Follower, held.SessionId, held.Xid, ErrorCode.ConnectionLoss);
            else if (Serving && Sessions.TryGetValue(held.SessionId, out var session) && Waits(session, held.Local))
                Abandon(session, nowMs, "leadership ended before its sync was confirmed");
        }
        _heldSyncs.Clear();
    }
}
