using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

// Immutable messages of the request pipeline (docs/architecture.md §4). Session → Replica → TxnLog → Replica → Session.

/// <summary>A client request after framing and decoding, sent by its connection's read loop to the replica in request order
/// (<see cref="Session"/> orders its outputs);
/// <see cref="Connection"/> (where it came from) paces change-feed subscriptions.</summary>
public sealed record ClientRequest(long SessionId, int Xid, OpCode Op, ZkRequest Body, AuthContext Auth, IActorRef Session,
    Network.ClientConnection? Connection = null)
{
    /// <summary>The write's body as the client sent it (kept by the read loop, <see cref="Network.ClientConnection.KeepWriteBodies"/>), forwarded as it is
    /// when this server follows; null when the connection did not keep it (the forward then encodes <see cref="Body"/>).</summary>
    public byte[]? BodyBytes { get; init; }
}

/// <summary>The log asks for a batch of proposals to be made durable (group commit).</summary>
public sealed record LogAppend(IReadOnlyList<Proposal> Batch);

/// <summary>The log reports a batch durable; in a standalone server this is also the commit.</summary>
public sealed record LogAppended(IReadOnlyList<Proposal> Batch);

/// <summary>The log could not persist a batch; none of it may be applied.</summary>
public sealed record LogAppendFailed(IReadOnlyList<Proposal> Batch, Exception Cause);

/// <summary>
/// Everything the replica sends to one session carries that session's next output sequence number, assigned in
/// apply order. The session emits strictly in this order, which is what makes watch events precede any response
/// that shows their change (invariant 4) even though events travel through a dispatcher child.
/// </summary>
public abstract record SessionOutput(long Seq);

/// <summary>A response to a request (reply header fields plus body).</summary>
public sealed record Reply(long Seq, int Xid, long Zxid, ErrorCode Err, ZkResponse Body) : SessionOutput(Seq);

/// <summary>A watch notification, already framed once for all recipients. <see cref="Acl"/> is the znode's ACL
/// (see WatchTrigger.Acl): the session delivers the event only if its current auth has READ on it.</summary>
public sealed record Notification(long Seq, long Zxid, byte[] Frame, IReadOnlyList<Acl>? Acl = null) : SessionOutput(Seq);

/// <summary>
/// Follows a change-feed batch to the session actor, in sequence: when it is emitted, every change before it has been
/// handed to the connection (and counts in its queued bytes), and the session actor echoes it to the replica as
/// <see cref="FeedMarkReached"/>. The replica sends a subscription's next batch only then, so a session actor that lags
/// cannot pile up batches the connection has not counted yet.
/// </summary>
public sealed record FeedMark(long Seq, long SubscriptionId) : SessionOutput(Seq);

/// <summary>The session actor emitted <see cref="FeedMark"/>: the subscription may be sent its next batch.</summary>
public sealed record FeedMarkReached(long SubscriptionId);

/// <summary>The answer to a handshake: the session exists (with its timeout) or it does not.</summary>
public sealed record SessionValidated(long Seq, bool Valid, int TimeoutMs, long LastZxid) : SessionOutput(Seq);

/// <summary>The session was closed by request or expired: its ephemerals are gone.</summary>
public sealed record SessionEnded(long Seq, bool Expired) : SessionOutput(Seq);

/// <summary>Replica → watch dispatcher: deliver one event to these sessions with their sequence numbers.</summary>
public sealed record Fanout(WatcherEvent Event, long Zxid, IReadOnlyList<(IActorRef Session, long Seq)> Recipients, IReadOnlyList<Acl>? Acl = null);

// Session lifecycle requests to the replica.
public sealed record CreateSession(long SessionId, int TimeoutMs, IActorRef Session);
public sealed record ValidateSession(long SessionId, int TimeoutMs, IActorRef Session);
/// <summary>Read-only mode: a session of a read-only client, served from this member's state only (no txn, so a
/// <see cref="IsNew"/> one is unknown to the ensemble). Answered with <see cref="SessionValidated"/>.</summary>
public sealed record OpenReadOnlySession(long SessionId, int TimeoutMs, IActorRef Session, bool IsNew);
public sealed record ExpireSession(long SessionId);
/// <summary>The session's connection closed: its watches go, as ZooKeeper ties watches to the connection.</summary>
public sealed record ConnectionLost(long SessionId);

/// <summary>
/// Replica → session actor: this server cannot complete the session's requests (a forward or its answer was lost,
/// or the leader refused it while going away). The client's connection closes, so that it reconnects and asks
/// again (invariant 9: every request is answered, or its connection is closed, within the session timeout).
/// </summary>
public sealed class DropConnection
{
    public static readonly DropConnection Instance = new();
}

// Session liveness to the tracker (leader side).
public sealed record SessionOpened(long SessionId, int TimeoutMs);
public sealed record SessionTouched(long SessionId, int TimeoutMs);
public sealed record SessionClosed(long SessionId);

/// <summary>Asks the replica for a point-in-time view for four-letter words and metrics.</summary>
public sealed record GetReplicaStats(bool WithWatchDetail, bool WithEphemerals, bool WithDigest = false)
{
    public static readonly GetReplicaStats Basic = new(false, false);
}

/// <summary>Asks the replica for a znode's ACL (the admin endpoint authorizes its commands against the root's).</summary>
public sealed record GetNodeAcl(string Path);

/// <summary>The answer to <see cref="GetNodeAcl"/>: null when the znode does not exist.</summary>
public sealed record NodeAcl(IReadOnlyList<Acl>? Acl);

public sealed record ReplicaStats(
    long LastZxid, int NodeCount, long DataSize, int EphemeralCount, int WatchCount, int WatchPathCount, int SessionCount,
    long Digest, IReadOnlyDictionary<long, IReadOnlyList<string>>? WatchesBySession,
    IReadOnlyDictionary<string, IReadOnlyList<long>>? WatchesByPath,
    IReadOnlyDictionary<long, IReadOnlyCollection<string>>? EphemeralsBySession, int OutstandingRequests);

/// <summary>A request whose body did not decode; it is answered with MarshallingError, in order.</summary>
public sealed record MalformedRequest(string Reason) : ZkRequest
{
    public override void Write(ref JuteWriter w) { }
}

/// <summary>A request with an op code the server does not implement; answered with Unimplemented, in order.</summary>
public sealed record UnknownOpRequest : ZkRequest
{
    public static readonly UnknownOpRequest Instance = new();
    public override void Write(ref JuteWriter w) { }
}

// Ensemble: the peer actor hands the replica what Zab committed, and a tree fetched from the leader (SNAP).

/// <summary>Committed log entries, in zxid order, to apply (each entry's payload is <see cref="Txns.Serialize"/>'s bytes).</summary>
public sealed record ApplyCommitted(IReadOnlyList<Core.Zab.LogEntry> Entries);

/// <summary>The replica's state becomes this tree (a snapshot installed from the leader); commits continue from it.</summary>
public sealed record ReplaceTree(DataTree Tree);
