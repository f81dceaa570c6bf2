using Coordination.Core.Zab;

namespace Coordination.Server.Ensemble;

// Messages between the servers of an ensemble besides the Zab protocol itself. All of them cross Akka.Remote and
// are written by ZabSerializer (bound through IEnsembleMessage). Senders name themselves by server id.

/// <summary>Marker for the ensemble messages that ZabSerializer writes.</summary>
public interface IEnsembleMessage;

/// <summary>Follower replica → leader replica: a client's write (or sync), as its jute body, with the session's auth ids.</summary>
public sealed record ForwardedRequest(long ServerId, long SessionId, int Xid, int Op, byte[] Body, IReadOnlyList<(string Scheme, string Ident)> Auth)
    : IEnsembleMessage;

/// <summary>Follower replica → leader replica: a client on that server asks for a new session.</summary>
public sealed record ForwardedCreateSession(long ServerId, long SessionId, int TimeoutMs) : IEnsembleMessage;

/// <summary>Follower replica → leader replica: a session (re)attached to that server, which now owns it.</summary>
public sealed record SessionOwner(long ServerId, long SessionId) : IEnsembleMessage;

/// <summary>Leader replica → follower replica: a forwarded request was refused before any proposal (error code).</summary>
public sealed record ForwardRejected(long SessionId, int Xid, int Err) : IEnsembleMessage;

/// <summary>
/// Leader replica → follower replica, the answer to a forwarded sync: the leader had proposed up to
/// <see cref="Zxid"/> when it saw the sync; the follower answers it once it has applied that far.
/// </summary>
public sealed record SyncPoint(long SessionId, int Xid, long Zxid) : IEnsembleMessage;

/// <summary>Follower tracker → leader tracker, once per tick: these sessions were active (ZooKeeper's follower pings).</summary>
public sealed record SessionsTouched(long ServerId, long[] SessionIds, int[] TimeoutsMs) : IEnsembleMessage;

/// <summary>Learner peer → leader peer: send the snapshot file that starts at <see cref="Zxid"/>, from <see cref="Offset"/>.</summary>
public sealed record FetchSnapshot(long From, long Zxid, long Offset) : IEnsembleMessage;

/// <summary>Leader peer → learner peer: one chunk of a snapshot file. <see cref="Missing"/>: the leader no longer has it.</summary>
public sealed record SnapshotPart(long From, long Zxid, long Offset, byte[] Bytes, bool Last, bool Missing) : IEnsembleMessage
{
    /// <summary>
    /// Whether this is the answer to the learner's last <see cref="FetchSnapshot"/>: from the server it fetches from,
    /// of the snapshot it installs, at the offset it asked for. A part of an earlier fetch (another member's, or one
    /// that arrives after this peer restarted and asked again) would otherwise be appended at the wrong place.
    /// </summary>
    public bool Answers(long server, long zxid, long offset) => From == server && Zxid == zxid && Offset == offset;
}

/// <summary>
/// Leader peer → learner peer: leading entries of a large <see cref="SyncLearner"/>, sent ahead of it in pieces so
/// that no remote frame outgrows the transport's limit. The learner prepends them to the SyncLearner that follows.
/// </summary>
public sealed record SyncEntriesPart(long From, IReadOnlyList<LogEntry> Entries) : IEnsembleMessage;

/// <summary>
/// Leader peer → follower peer: consecutive proposals sent as one remote message (the txns a burst of requests
/// prepared together). The follower takes them as that many Zab PROPOSALs, in order.
/// </summary>
public sealed record ProposeMany(long From, IReadOnlyList<LogEntry> Entries) : IEnsembleMessage;

/// <summary>Follower replica → leader replica: the forwarded requests of one burst, in order, as one remote message.</summary>
public sealed record ForwardedRequests(IReadOnlyList<ForwardedRequest> Requests) : IEnsembleMessage;
