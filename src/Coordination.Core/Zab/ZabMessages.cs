namespace Coordination.Core.Zab;

/// <summary>
/// A logged txn: its zxid and its opaque bytes (the jute encoding of header and txn). A reconfig txn also carries the
/// configuration it makes (<see cref="Config"/>, whose version is this zxid): the peer counts quorums by it from the
/// moment it is logged, and activates it when it commits. Hosts must keep it with the entry (journal and wire).
/// </summary>
public sealed record LogEntry(long Zxid, byte[] Payload, ZabConfig? Config = null);

/// <summary>Messages between peers. <see cref="From"/> is the sender's server id.</summary>
public abstract record ZabMessage(long From);

/// <summary>An election notification, with the sender's committed configuration (as ZooKeeper's notifications carry
/// theirs): a peer that is electing with an older one adopts it, so a member that slept through a reconfiguration
/// elects among the right voters, and one that was removed meanwhile learns it. <see cref="Pending"/> is the sender's
/// newest logged reconfiguration not yet committed (ZooKeeper's last seen configuration): a member that has not
/// logged it links with the servers it names (<see cref="ZabPeer.HeardOfConfig"/>), and adopts nothing from it.</summary>
public sealed record ElectionMessage(long From, Notification Notification, ZabConfig? Config = null, ZabConfig? Pending = null) : ZabMessage(From);
/// <summary>Learner → leader, discovery: the learner's accepted epoch and history.</summary>
public sealed record FollowerInfo(long From, long AcceptedEpoch, long LastZxid, bool IsObserver) : ZabMessage(From);
/// <summary>Leader → learner: the new epoch (NEWEPOCH).</summary>
public sealed record LeaderInfo(long From, long NewEpoch) : ZabMessage(From);
/// <summary>Learner → leader: it accepted the new epoch; carries its current epoch and last zxid.</summary>
public sealed record AckEpoch(long From, long CurrentEpoch, long LastZxid) : ZabMessage(From);
/// <summary>
/// Leader → learner, synchronisation plus NEWLEADER in one message: truncate if told, install the snapshot at
/// <see cref="SnapshotZxid"/> if told (the bytes travel on their own channel), append <see cref="Entries"/>,
/// then adopt <see cref="Epoch"/> as current epoch. Everything up to <see cref="CommittedZxid"/> is committed.
/// <see cref="Config"/> is the leader's active (committed) configuration: a learner that knows an older one adopts it,
/// as a ZooKeeper learner takes the configuration its leader's snapshot or NEWLEADER carries.
/// </summary>
public sealed record SyncLearner(long From, SyncMode Mode, long TruncateTo, long SnapshotZxid, IReadOnlyList<LogEntry> Entries,
    long Epoch, long CommittedZxid, ZabConfig? Config = null) : ZabMessage(From);
/// <summary>Learner → leader: it is synchronised and durable at the new epoch (ACK of NEWLEADER).</summary>
public sealed record AckNewLeader(long From, long Epoch, long LastZxid) : ZabMessage(From);
/// <summary>Leader → learner: broadcast has begun; commit up to <see cref="CommittedZxid"/> and serve clients.</summary>
public sealed record UpToDate(long From, long CommittedZxid) : ZabMessage(From);
public sealed record Propose(long From, LogEntry Entry) : ZabMessage(From);
/// <summary>Cumulative: the sender has durably logged everything up to <see cref="Zxid"/>.</summary>
public sealed record Ack(long From, long Zxid) : ZabMessage(From);
/// <summary>Everything up to <see cref="Zxid"/> is committed.</summary>
public sealed record Commit(long From, long Zxid) : ZabMessage(From);
/// <summary>Leader → observer: a committed txn (observers never see uncommitted proposals).</summary>
public sealed record Inform(long From, LogEntry Entry) : ZabMessage(From);
/// <summary>Leader → learner. <see cref="Round"/> is the leader's latest leadership-confirmation round (see
/// <see cref="ZabPeer.ConfirmLeadership"/>); the learner echoes it in its <see cref="PingReply"/>.</summary>
public sealed record Ping(long From, long CommittedZxid, long Round = 0) : ZabMessage(From);
public sealed record PingReply(long From, long LastZxid, long Round = 0) : ZabMessage(From);

/// <summary>What a peer asks its host to do, in order. Storage outputs must be carried out before later sends.</summary>
public abstract record ZabOutput;
public sealed record SendTo(long To, ZabMessage Message) : ZabOutput;
/// <summary>Append to the log; the host reports <see cref="ZabPeer.Persisted"/> once durable (group commit allowed).</summary>
public sealed record AppendEntries(IReadOnlyList<LogEntry> Entries) : ZabOutput;
/// <summary>Drop logged txns after <see cref="Zxid"/> (they were never committed). Append-only journals record this as an event.</summary>
public sealed record TruncateLog(long Zxid) : ZabOutput;
/// <summary>Replace the state with the leader's snapshot at <see cref="Zxid"/>, fetched from <see cref="Leader"/>.</summary>
public sealed record InstallSnapshot(long Leader, long Zxid) : ZabOutput;
/// <summary>
/// A learner refused its leader's sync: it was told to truncate to <see cref="TruncateTo"/>, below the base of its own
/// history (<see cref="RetainedFrom"/>, a snapshot it has applied). Every txn a learner applied is committed, and the
/// leader has every committed txn, so that only happens when this member's base is not in the leader's history (it
/// was restored from a snapshot the leader's quorum was not restored from). Truncating the log would leave the
/// applied tree behind and mix histories; the learner looks for a leader again instead, and the host says why.
/// </summary>
public sealed record SyncRefused(long Leader, long TruncateTo, long RetainedFrom) : ZabOutput;
/// <summary>Durably record the accepted epoch (before acknowledging it) or the current epoch.</summary>
public sealed record SaveEpochs(long AcceptedEpoch, long CurrentEpoch) : ZabOutput;
/// <summary>Apply committed txns up to <see cref="Zxid"/> to the state.</summary>
public sealed record CommitUpTo(long Zxid) : ZabOutput;
/// <summary>
/// Leader: a quorum (this leader included) answered a ping round that started after every
/// <see cref="ZabPeer.ConfirmLeadership"/> request up to <see cref="UpToRequest"/> arrived: no other leader can have
/// committed anything this one has not seen before those requests, so syncs held for them may be answered.
/// </summary>
public sealed record LeadershipConfirmed(long UpToRequest) : ZabOutput;
/// <summary>
/// A reconfiguration committed (or a newer committed one was learned in a sync): from now on <see cref="Config"/> is
/// the configuration. The host writes it durably (atomically replacing ZooKeeper's dynamic config file) so that a
/// restart constructs the peer with it, and opens or closes member links to match.
/// </summary>
public sealed record ConfigActivated(ZabConfig Config) : ZabOutput;
/// <summary>The peer's role changed; <see cref="ServesClients"/> is true only once synchronised with a quorum-backed leader.</summary>
public sealed record RoleChanged(PeerState Role, long Leader, long Epoch, bool ServesClients) : ZabOutput;
