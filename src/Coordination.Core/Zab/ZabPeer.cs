namespace Coordination.Core.Zab;

/// <summary>What a peer reads from its durable log; writes go through <see cref="ZabOutput"/>s.</summary>
public interface IZabLogView
{
    /// <summary>The zxid of the last txn in the log (0 when empty).</summary>
    long LastZxid { get; }
    /// <summary>The snapshot/purge point: the log holds every txn after it.</summary>
    long RetainedFrom { get; }
    /// <summary>The logged txns after <paramref name="zxid"/>, ascending (zxid ≥ RetainedFrom).</summary>
    IReadOnlyList<LogEntry> EntriesAfter(long zxid);
}

public sealed record ZabSettings(long TickMs = 100, int InitLimitTicks = 10, int SyncLimitTicks = 5, long FinalizeWaitMs = 200);

/// <summary>
/// One server's Zab protocol as a deterministic state machine (in the manner of etcd's raft): election, discovery
/// (new epoch), synchronisation (DIFF/TRUNC/SNAP) and broadcast (PROPOSAL, ACK, COMMIT), with no threads, sockets,
/// clocks or disk. The host feeds messages, ticks and durability reports, and carries out the outputs in order.
/// Leadership and commits are decided here alone; membership signals from Akka.Cluster are never consulted.
/// Membership is dynamic (ZooKeeper 3.5's reconfig): a <see cref="LogEntry"/> with a <see cref="LogEntry.Config"/> is a
/// reconfig txn. From the moment a peer logs one until it learns it committed, every quorum it counts (commits,
/// elections, discovery, leadership confirmation) needs a majority of the old and of the new voters; on commit the
/// new configuration alone counts (<see cref="ConfigActivated"/>). Without reconfig txns nothing differs.
/// A joining voter counts only once it has synced with the leader, and a reconfig that adds voters commits only once
/// they have logged it, or after a bound (<see cref="JoinerWaitTicks"/>). A server that no configuration it knows
/// names waits as a joiner (<see cref="IsJoiner"/>) and learns the current configuration from the members.
/// </summary>
public sealed class ZabPeer
{
    private sealed class Learner(long id, bool isObserver)
    {
        public readonly long Id = id;
        public readonly bool IsObserver = isObserver;
        public long AcceptedEpoch;
        public long LastZxid;
        public bool AckedEpoch;
        public bool Synced;          // sent its sync; it now receives every broadcast
        public bool AckedNewLeader;
        public long LastHeardMs;
        /// <summary>The highest confirmation round this learner echoed in a ping reply.</summary>
        public long EchoedRound;
    }

    private readonly long _myId;
    /// <summary>The active (committed) configuration, and the reconfigurations logged after it whose commit this peer
    /// has not yet seen (by version). Quorums need a majority of each of them (<see cref="RefreshQuorum"/>).</summary>
    private ZabConfig _config;
    private readonly SortedList<long, ZabConfig> _pendingConfigs = new();
    /// <summary>The newest reconfiguration another member's election notification said it logged (see <see cref="HeardOfConfig"/>).</summary>
    private ZabConfig? _heardOf;
    /// <summary>This server was started to take part and no reconfig it activated removed it: when the configurations it
    /// knows leave it out it stays a joiner (an observer no one counts) instead of going idle.</summary>
    private bool _standsBy;
    private Quorum _quorum = null!;
    private IReadOnlySet<long> _members = null!;
    private readonly IZabLogView _log;
    private readonly ZabSettings _settings;
    private readonly FastLeaderElection _election;

    // Leader state
    private readonly Dictionary<long, Learner> _learners = new();
    private readonly Dictionary<long, LogEntry> _uncommitted = new();
    private CommitTracker? _tracker;
    private long _newEpoch = -1;
    private long _nextCounter;
    private bool _established;
    private long _leadingSinceMs;
    // Leader: confirmation rounds (etcd raft's ReadIndex). Round numbers only grow over this peer's life, so a reply
    // to an earlier leadership's ping never counts for a later round.
    private long _lastRound;
    /// <summary>The round whose quorum is awaited (0: none in flight), and the last request it confirms.</summary>
    private long _roundInFlight, _roundCovers;
    /// <summary>The last request that arrived after the round in flight started: it waits for the next round.</summary>
    private long _nextRoundCovers;

    /// <summary>Leader: ticks since a reconfig that waits for its joining voters was proposed.</summary>
    private int _joinerWaitTicks;
    /// <summary>
    /// How long a reconfig that adds voters waits for them to sync and log it, beyond the quorum of the old and the new
    /// configuration it needs anyway: twice the init limit, since a joiner first syncs in the role it started with and
    /// then, having logged the reconfig that makes it a voter, elects and syncs again as a follower. Waiting means the new
    /// configuration starts with its joiners in step, so it tolerates as many failures as it is sized for at once; the
    /// bound means a joiner that never starts delays the reconfig (and the writes behind it) by this long, not forever.
    /// </summary>
    private int JoinerWaitTicks => 2 * _settings.InitLimitTicks;

    // Learner state
    private long _leaderHeardMs;
    /// <summary>Learner: when it chose its leader. It must be up to date within the init limit (ZooKeeper's learner
    /// times out its sync after initLimit): the leader's pings alone would otherwise keep alive a learner whose sync
    /// or UPTODATE was lost, which then never serves nor counts. The limit counts from the last sync step made durable
    /// here and runs only while nothing is being written, so a large snapshot install is not cut short.</summary>
    private long _learningSinceMs;
    private long _awaitNewLeaderAckAt = -1;
    private bool _upToDate;
    /// <summary>Learner: this leader's sync arrived. Broadcast messages before it were sent for a log this learner may
    /// not have (the leader did not yet know it reconnected): a COMMIT then would apply this learner's stale tail.</summary>
    private bool _syncReceived;
    /// <summary>Sent FOLLOWERINFO and heard no NEWEPOCH yet: resent every tick, since the leader may not have
    /// finished its own election when the first one arrived (ZooKeeper's learner retries its connection too).</summary>
    private bool _awaitingLeaderInfo;
    /// <summary>FOLLOWERINFOs that arrived while this peer was still electing; handled if it becomes the leader.</summary>
    private readonly Dictionary<long, FollowerInfo> _earlyFollowerInfos = new();
    /// <summary>The last zxid this peer has told its host to log (the host's log may lag by the outputs not yet carried out).</summary>
    private long _logged;
    /// <summary>
    /// Storage outputs (append, truncate, snapshot install) not yet reported durable, in order: the zxid the host
    /// reports for each (see <see cref="OnPersisted"/>), where the log ends after it, and for a truncation or install
    /// how much of the disk's log still counts while it is pending. Kept across elections: a write issued in one role
    /// may become durable in the next.
    /// </summary>
    private readonly Queue<(long Report, long End, long? CutTo)> _unpersisted = new();
    private long _storageIssued, _storageDone;
    /// <summary>Learner: NEWLEADER is acknowledged once the storage outputs up to this count are durable.</summary>
    private long _newLeaderAckAfter;
    /// <summary>Learner: the epoch of the leader's sync, made current when NEWLEADER is acknowledged.</summary>
    private long _syncedEpoch;
    /// <summary>When this peer last ticked (see <see cref="DiscountStall"/>); null before its first tick.</summary>
    private long? _lastTickMs;

    public ZabPeer(long myId, IEnumerable<long> voters, IEnumerable<long> observers, IZabLogView log, long acceptedEpoch, long currentEpoch, ZabSettings? settings = null)
        : this(myId, new ZabConfig(voters, observers, 0), log, acceptedEpoch, currentEpoch, settings)
    {
    }

    /// <param name="config">The latest committed configuration this server knows (its dynamic config file, or the
    /// snapshot's). Reconfig txns its log holds after it are found by <see cref="Start"/> and count as pending.</param>
    public ZabPeer(long myId, ZabConfig config, IZabLogView log, long acceptedEpoch, long currentEpoch, ZabSettings? settings = null)
    {
        _myId = myId;
        _config = config;
        _standsBy = config.IsMember(myId);
        RefreshQuorum();
        _log = log;
        _settings = settings ?? new ZabSettings();
        _election = new FastLeaderElection(myId, _quorum, _settings.FinalizeWaitMs);
        AcceptedEpoch = acceptedEpoch;
        CurrentEpoch = currentEpoch;
    }

    public PeerState Role { get; private set; } = PeerState.Looking;
    public long Leader { get; private set; } = -1;
    public long AcceptedEpoch { get; private set; }
    public long CurrentEpoch { get; private set; }
    public long Committed { get; private set; }
    public long Persisted { get; private set; }
    /// <summary>True when this server may serve clients: an established leader, or a learner that got UPTODATE.</summary>
    public bool ServesClients => Role == PeerState.Leading ? _established : _upToDate;
    public bool IsObserver => !_quorum.IsVoter(_myId);
    /// <summary>The active (committed) configuration.</summary>
    public ZabConfig Config => _config;
    /// <summary>The newest reconfiguration this peer logged whose commit it has not seen; null when none.</summary>
    public ZabConfig? PendingConfig => _pendingConfigs.Count > 0 ? _pendingConfigs.Values[^1] : null;
    /// <summary>
    /// A reconfiguration that a member this server knows has logged and this server has not, as that member's election
    /// notification said; null once this server logged or committed past it (activated, or lost with its txn). A
    /// leader elected with it pending needs a majority of its voters, joiners included, and a joiner follows a leader
    /// only once a quorum of the members it knows back it: the host links with the servers it names, so that their
    /// election notifications are answered (otherwise a member that logged nothing of it refuses them for good: CI's
    /// stall of a grow, docs/architecture.md §7). Nothing else follows it: quorums, members and learners come from
    /// logged configurations only, and it is never adopted.
    /// </summary>
    public ZabConfig? HeardOfConfig => _heardOf is { } heard && heard.Version > Math.Max(Committed, NewestLoggedVersion) ? heard : null;

    /// <summary>The version of the newest configuration this server logged or activated.</summary>
    private long NewestLoggedVersion => _pendingConfigs.Count > 0 ? _pendingConfigs.Keys[^1] : _config.Version;

    /// <summary>False once a committed configuration that this server activated left it out: it stays idle (no
    /// election, no learning) until its host restarts it. A server that learned such a configuration from others
    /// stays a joiner instead (see <see cref="Adopt"/>).</summary>
    public bool IsMember => _members.Contains(_myId);
    /// <summary>A server started to take part that no configuration it knows names: it observes, and no one counts it
    /// or answers it (the leader ignores a non-member) until a reconfig names it.</summary>
    public bool IsJoiner => _standsBy && !_quorum.IsVoter(_myId) && !_config.IsMember(_myId) && !_pendingConfigs.Values.Any(c => c.IsMember(_myId));
    /// <summary>Leader only: the learners connected to it, and those synchronised (acked NEWLEADER).</summary>
    public int LearnerCount => _learners.Count;
    public int SyncedLearnerCount
    {
        get
        {
            var count = 0;
            foreach (var learner in _learners.Values) if (learner.AckedNewLeader) count++;
            return count;
        }
    }
    /// <summary>Leader: the voters synchronised with it, itself included (ZooKeeper's isQuorumSynced counts these).</summary>
    public IReadOnlyList<long> SyncedVoters => Role == PeerState.Leading
        ? _learners.Values.Where(l => l.AckedNewLeader && !l.IsObserver).Select(l => l.Id).Append(_myId).ToList()
        : [];
    /// <summary>The zxid the next proposal will get, or null when this peer cannot propose now.</summary>
    public long? NextZxid => Role == PeerState.Leading && _established ? Zxids.Make(_newEpoch, _nextCounter + 1) : null;

    private IEnumerable<long> Others => _members.Where(m => m != _myId);

    public IReadOnlyList<ZabOutput> Start(long nowMs)
    {
        Persisted = _logged = _log.LastZxid;
        // Reconfig txns logged after the committed configuration: still pending as far as this peer knows (ZooKeeper's
        // last seen configuration), so elections and discovery need a quorum of them too.
        foreach (var entry in _log.EntriesAfter(Math.Max(_config.Version, _log.RetainedFrom)))
            if (entry.Config is { } config) _pendingConfigs[entry.Zxid] = config;
        RefreshQuorum();
        var outputs = new List<ZabOutput>();
        Elect(nowMs, outputs);
        return outputs;
    }

    private void Elect(long nowMs, List<ZabOutput> outputs)
    {
        Role = IsObserver && IsMember ? PeerState.Observing : PeerState.Looking;
        Leader = -1;
        ResetRoleState();
        _earlyFollowerInfos.Clear();
        outputs.Add(new RoleChanged(Role, -1, CurrentEpoch, false));
        if (!IsMember) return;   // removed: no one counts or answers it any more
        Route(_election.Start(_logged, CurrentEpoch, nowMs), nowMs, outputs);
    }

    /// <summary>Quorums and members follow the active configuration and every pending one.</summary>
    private void RefreshQuorum()
    {
        var configs = _pendingConfigs.Values.Prepend(_config).ToList();
        _quorum = Quorum.Joint(configs.Select(c => c.Voters));
        var members = configs.SelectMany(c => c.Voters.Concat(c.Observers)).ToHashSet();
        if (_standsBy) members.Add(_myId);   // a joiner: it observes (no quorum counts it) until a reconfig names it
        _members = members;
        _election?.UseQuorum(_quorum);
    }

    /// <summary>Logged reconfig txns count from now on (pending until they commit).</summary>
    private void NoteLogged(IEnumerable<LogEntry> entries)
    {
        var any = false;
        foreach (var entry in entries)
            if (entry.Config is { } config && entry.Zxid > _config.Version) { _pendingConfigs[entry.Zxid] = config; any = true; }
        if (any) RefreshQuorum();
    }

    /// <summary>Logged txns after <paramref name="zxid"/> were dropped: so were their reconfigurations.</summary>
    private void ForgetLoggedAfter(long zxid)
    {
        var any = false;
        while (_pendingConfigs.Count > 0 && _pendingConfigs.Keys[^1] > zxid) { _pendingConfigs.RemoveAt(_pendingConfigs.Count - 1); any = true; }
        if (any) RefreshQuorum();
    }

    /// <summary>
    /// Everything up to <paramref name="committed"/> is committed: the newest reconfiguration in it becomes the active
    /// configuration (ZooKeeper's COMMITANDACTIVATE). A leader forgets learners that left and steps down when it no
    /// longer votes (the others elect among the new voters); a learner whose role changed, or whose leader no longer
    /// votes, rejoins through an election in its new role. Returns false when this peer left its role.
    /// </summary>
    private bool Activate(long committed, long nowMs, List<ZabOutput> outputs)
    {
        ZabConfig? latest = null;
        while (_pendingConfigs.Count > 0 && _pendingConfigs.Keys[0] <= committed)
        {
            latest = _pendingConfigs.Values[0];
            _pendingConfigs.RemoveAt(0);
        }
        // Left out by a reconfig it committed itself: removed, not a joiner.
        if (latest is not null && !latest.IsMember(_myId)) _standsBy = false;
        return latest is null || Adopt(latest, nowMs, outputs);
    }

    /// <summary>Takes <paramref name="config"/> as the active configuration. One learned from another member (its
    /// election notification or its leader's sync) that leaves this server out makes it a joiner, not a removed
    /// member: it was started to take part, with an older configuration (ZooKeeper's joiner knows the ensemble it
    /// joins), and waits as an observer no one counts until a reconfig names it. Only a reconfig this server
    /// activated itself removes it (<see cref="Activate"/>).</summary>
    private bool Adopt(ZabConfig config, long nowMs, List<ZabOutput> outputs)
    {
        _config = config;
        while (_pendingConfigs.Count > 0 && _pendingConfigs.Keys[0] <= config.Version) _pendingConfigs.RemoveAt(0);
        RefreshQuorum();
        outputs.Add(new ConfigActivated(config));
        if (Role == PeerState.Leading)
        {
            foreach (var gone in _learners.Keys.Where(id => !_members.Contains(id)).ToList())
            {
                _learners.Remove(gone);
                _tracker?.Forget(gone);
            }
            if (IsObserver || !IsMember) { Elect(nowMs, outputs); return false; }
            return true;
        }
        return RoleStillFits(nowMs, outputs);
    }

    /// <summary>A learner follows as a voter iff it votes, and only a leader that votes.</summary>
    private bool RoleStillFits(long nowMs, List<ZabOutput> outputs)
    {
        if (Role is not (PeerState.Following or PeerState.Observing)) return true;
        if (IsMember && (Role == PeerState.Observing) == IsObserver && _quorum.IsVoter(Leader)) return true;
        Elect(nowMs, outputs);
        return false;
    }

    private void ResetRoleState()
    {
        _learners.Clear();
        _uncommitted.Clear();
        _tracker = null;
        _newEpoch = -1;
        _established = false;
        _roundInFlight = _roundCovers = _nextRoundCovers = 0;
        _upToDate = false;
        _syncReceived = false;
        _awaitingLeaderInfo = false;
        _awaitNewLeaderAckAt = -1;
    }

    private void Route(IReadOnlyList<ElectionOutput> electionOutputs, long nowMs, List<ZabOutput> outputs)
    {
        foreach (var e in electionOutputs)
        {
            switch (e)
            {
                case BroadcastNotification b:
                    foreach (var to in Others) outputs.Add(new SendTo(to, new ElectionMessage(_myId, b.Notification, _config, PendingConfig)));
                    break;
                case SendNotification s:
                    outputs.Add(new SendTo(s.To, new ElectionMessage(_myId, s.Notification, _config, PendingConfig)));
                    break;
                case ElectionDecided d when Leader == -1:
                    OnElected(d, nowMs, outputs);
                    break;
            }
        }
    }

    private void OnElected(ElectionDecided decided, long nowMs, List<ZabOutput> outputs)
    {
        Leader = decided.Vote.Leader;
        if (decided.State == PeerState.Leading)
        {
            Role = PeerState.Leading;
            _leadingSinceMs = nowMs;
            outputs.Add(new RoleChanged(Role, _myId, CurrentEpoch, false));
            TryChooseEpoch(nowMs, outputs);
            // Learners that decided faster than this peer already asked to follow it.
            foreach (var info in _earlyFollowerInfos.Values.ToList()) OnLeaderMessage(info, nowMs, outputs);
            _earlyFollowerInfos.Clear();
            return;
        }
        Role = IsObserver ? PeerState.Observing : PeerState.Following;
        _leaderHeardMs = _learningSinceMs = nowMs;
        outputs.Add(new RoleChanged(Role, Leader, CurrentEpoch, false));
        _awaitingLeaderInfo = true;
        outputs.Add(new SendTo(Leader, new FollowerInfo(_myId, AcceptedEpoch, _logged, Role == PeerState.Observing)));
    }

    private void Store(ZabOutput output, long report, long end, long? cutTo, List<ZabOutput> outputs)
    {
        outputs.Add(output);
        _unpersisted.Enqueue((report, end, cutTo));
        _storageIssued++;
        if (cutTo is { } cut) Persisted = Math.Min(Persisted, cut);
    }

    /// <summary>True when a storage output waits to report <paramref name="zxid"/> (a loop: this runs per append).</summary>
    private bool Unpersisted(long zxid)
    {
        foreach (var waiting in _unpersisted) if (waiting.Report == zxid) return true;
        return false;
    }

    /// <summary>
    /// Durability report from the host, once per storage output and in their order (appends carried out together
    /// may be reported once, for the last): the append whose last entry is <paramref name="zxid"/>, the truncation
    /// to <paramref name="zxid"/>, or the snapshot install at <paramref name="zxid"/> is on disk, with everything
    /// before it.
    /// </summary>
    public IReadOnlyList<ZabOutput> OnPersisted(long zxid, long nowMs)
    {
        var outputs = new List<ZabOutput>();
        if (!Unpersisted(zxid)) return outputs;
        long end;
        while (true)
        {
            var (report, after, _) = _unpersisted.Dequeue();
            _storageDone++;
            end = after;
            if (report == zxid) break;
        }
        // A truncation or install still pending keeps what lies past it from counting: the disk still holds the old log.
        foreach (var pending in _unpersisted)
            if (pending.CutTo is { } cut) end = Math.Min(end, cut);
        Persisted = end;
        if (Role == PeerState.Leading)
        {
            if (_tracker is not null) OnCommits(_tracker.Acked(_myId, Persisted), nowMs, outputs);
            else TryEstablish(nowMs, outputs);
        }
        else if (Role is PeerState.Following or PeerState.Observing)
        {
            if (!_upToDate) _learningSinceMs = nowMs;   // the sync makes progress (a large snapshot may take a while)
            var newLeaderAt = _awaitNewLeaderAckAt;
            if (newLeaderAt >= 0 && _storageDone >= _newLeaderAckAfter) SendNewLeaderAck(outputs);
            if (Role == PeerState.Following && _awaitNewLeaderAckAt < 0 && Persisted > newLeaderAt) outputs.Add(new SendTo(Leader, new Ack(_myId, Persisted)));
        }
        return outputs;
    }

    /// <summary>Every storage output so far is durable: the whole log is on disk.</summary>
    private bool AllPersisted => _storageDone == _storageIssued;

    /// <summary>The leader proposes a client write. Returns null when this peer cannot propose now.</summary>
    public long? AllocateZxid() => Role == PeerState.Leading && _established ? Zxids.Make(_newEpoch, ++_nextCounter) : null;

    /// <summary>
    /// Leader: may a reconfiguration to <paramref name="voters"/> and <paramref name="observers"/> be proposed now?
    /// Null when it may (then allocate its zxid and <see cref="Propose"/> a <see cref="LogEntry"/> whose
    /// <see cref="LogEntry.Config"/> has that zxid as version); otherwise ZooKeeper's reason to refuse it.
    /// <paramref name="fromVersion"/> is the client's expected version of the active configuration, or -1 for any.
    /// </summary>
    public ReconfigError? CheckReconfig(IEnumerable<long> voters, IEnumerable<long> observers, long fromVersion)
    {
        if (Role != PeerState.Leading || !_established) throw new InvalidOperationException("not an established leader");
        if (_pendingConfigs.Count > 0) return ReconfigError.ReconfigInProgress;
        var newVoters = voters.ToHashSet();
        if (newVoters.Count == 0 || newVoters.Overlaps(observers)) return ReconfigError.BadArguments;
        if (fromVersion >= 0 && fromVersion != _config.Version) return ReconfigError.BadVersion;
        // Joining voters connect once the proposal makes them members: until they have synced the quorum of the new
        // configuration must come from voters already synchronised, or the reconfiguration could hang.
        var synced = _learners.Values.Where(l => l.AckedNewLeader && !l.IsObserver).Select(l => l.Id).Append(_myId);
        return new Quorum(newVoters).IsQuorum(synced) ? null : ReconfigError.NewConfigNoQuorum;
    }

    public IReadOnlyList<ZabOutput> Propose(LogEntry entry)
    {
        if (Role != PeerState.Leading || !_established || _tracker is null) throw new InvalidOperationException("not an established leader");
        if (entry.Config is { } config)
        {
            if (config.Version != entry.Zxid) throw new ArgumentException($"a reconfig txn's configuration has its zxid as version, not {Zxids.Format(config.Version)}");
            if (CheckReconfig(config.Voters, config.Observers, -1) is { } refused) throw new InvalidOperationException($"reconfig refused: {refused}");
            _pendingConfigs[entry.Zxid] = config;
            RefreshQuorum();
        }
        // While a reconfiguration is pending this proposal (the reconfig txn too) needs a quorum of each configuration.
        // A reconfig that adds voters also waits, within a bound, for them to sync and log it (see JoinerWaitTicks).
        // (Not observers it promotes: they are in step already, and as observers they see the reconfig only once committed.)
        var joining = entry.Config?.Voters.Where(v => !_config.IsMember(v)).ToHashSet();
        _tracker.Proposed(entry.Zxid, _quorum, joining);
        if (joining is not null) _joinerWaitTicks = 0;
        _uncommitted[entry.Zxid] = entry;
        _logged = entry.Zxid;
        var outputs = new List<ZabOutput>();
        Store(new AppendEntries([entry]), entry.Zxid, entry.Zxid, null, outputs);
        foreach (var learner in _learners.Values)
            if (learner.Synced && !learner.IsObserver) outputs.Add(new SendTo(learner.Id, new Propose(_myId, entry)));
        return outputs;
    }

    /// <summary>
    /// Leader: request <paramref name="requestId"/> (ids increase) wants proof that this peer still leads, as a sync
    /// does before it is answered: without it an old leader cut off from its quorum would answer a sync from its
    /// own state until it notices, while a new leader already commits writes (ZooKeeper has this hole,
    /// ZOOKEEPER-1675). <see cref="LeadershipConfirmed"/> follows once a quorum answered a ping round that started
    /// after the request arrived. Requests that arrive while a round is in flight share the next one, which starts
    /// as soon as that round is confirmed. When this peer stops leading the requests are dropped; the host learns it
    /// from <see cref="RoleChanged"/>. A peer that is not an established leader ignores the request: its host is
    /// about to hear that it is not.
    /// </summary>
    public IReadOnlyList<ZabOutput> ConfirmLeadership(long requestId)
    {
        var outputs = new List<ZabOutput>();
        if (Role != PeerState.Leading || !_established) return outputs;
        _nextRoundCovers = Math.Max(_nextRoundCovers, requestId);
        if (_roundInFlight == 0) StartRound(outputs);
        return outputs;
    }

    private void StartRound(List<ZabOutput> outputs)
    {
        _roundInFlight = ++_lastRound;
        _roundCovers = _nextRoundCovers;
        _nextRoundCovers = 0;
        foreach (var learner in _learners.Values)
            if (!learner.IsObserver) outputs.Add(new SendTo(learner.Id, new Ping(_myId, Committed, _roundInFlight)));
        TryConfirmRound(outputs);   // an ensemble of one is its own quorum
    }

    private void TryConfirmRound(List<ZabOutput> outputs)
    {
        if (_roundInFlight == 0) return;
        var echoed = _learners.Values.Where(l => !l.IsObserver && l.AckedNewLeader && l.EchoedRound >= _roundInFlight).Select(l => l.Id).Append(_myId);
        if (!_quorum.IsQuorum(echoed)) return;
        outputs.Add(new LeadershipConfirmed(_roundCovers));
        _roundInFlight = 0;
        if (_nextRoundCovers > 0) StartRound(outputs);
    }

    public IReadOnlyList<ZabOutput> Receive(ZabMessage message, long nowMs)
    {
        var outputs = new List<ZabOutput>();
        if (!IsMember) return outputs;
        if (message is ElectionMessage election)
        {
            // The host vouches for the message's sender only: a notification in another server's name would be a vote
            // the sender forged (and a server only heard of may send notifications).
            if (election.Notification.From != election.From) return outputs;
            // What a server says about configurations counts only when a configuration this one logged names it: a server
            // only heard of is answered, and vouches for no one.
            var fromMember = _members.Contains(election.From);
            if (fromMember && election.Pending is { } pending && pending.Version > (HeardOfConfig?.Version ?? Math.Max(Committed, NewestLoggedVersion)))
                _heardOf = pending;
            if (fromMember && election.Config is { } newer && newer.Version > _config.Version && Leader == -1)
            {
                // Electing with a stale configuration: take the committed one and start over among its voters.
                Adopt(newer, nowMs, outputs);
                Elect(nowMs, outputs);
                if (!IsMember) return outputs;
            }
            Route(_election.Receive(election.Notification, nowMs), nowMs, outputs);
            return outputs;
        }
        if (Role == PeerState.Leading) OnLeaderMessage(message, nowMs, outputs);
        else if (Role == PeerState.Looking && message is FollowerInfo early && _members.Contains(early.From)) _earlyFollowerInfos[early.From] = early;
        else if (Role is PeerState.Following or PeerState.Observing && message.From == Leader) OnLearnerMessage(message, nowMs, outputs);
        return outputs;
    }

    /// <summary>
    /// The host saw the connection to <paramref name="serverId"/> break (ZooKeeper's learner sees its socket to the
    /// leader close). A learner whose leader it is starts an election at once instead of waiting for the sync limit;
    /// anything else only loses time, never safety, so other cases are ignored.
    /// </summary>
    public IReadOnlyList<ZabOutput> ConnectionLost(long serverId, long nowMs)
    {
        var outputs = new List<ZabOutput>();
        if (Role is PeerState.Following or PeerState.Observing && Leader == serverId) Elect(nowMs, outputs);
        return outputs;
    }

    public IReadOnlyList<ZabOutput> Tick(long nowMs)
    {
        var outputs = new List<ZabOutput>();
        if (!IsMember) return outputs;
        DiscountStall(nowMs);
        switch (Role)
        {
            case PeerState.Looking:
            case PeerState.Observing when Leader == -1:
                Route(_election.Tick(nowMs), nowMs, outputs);
                break;
            case PeerState.Leading:
                LeaderTick(nowMs, outputs);
                break;
            default:
                var limit = (_upToDate ? _settings.SyncLimitTicks : _settings.InitLimitTicks) * _settings.TickMs;
                if (nowMs - _leaderHeardMs > limit) Elect(nowMs, outputs);   // leader gone: ZooKeeper's syncLimit
                else if (!_upToDate && AllPersisted && nowMs - _learningSinceMs > _settings.InitLimitTicks * _settings.TickMs) Elect(nowMs, outputs);
                else if (_awaitingLeaderInfo) outputs.Add(new SendTo(Leader, new FollowerInfo(_myId, AcceptedEpoch, _logged, Role == PeerState.Observing)));
                break;
        }
        return outputs;
    }

    /// <summary>
    /// A tick that comes much later than the one before means this peer itself did not run meanwhile (a starved
    /// thread pool, a GC pause): what the others sent then may be waiting, unread, behind this very tick. That time
    /// does not count against them, as in ZooKeeper, whose limits count the peer's own ticks, which stop while it
    /// is stalled. Without this a loaded machine made healthy leaders look silent: a follower (or a leader, for its
    /// quorum) re-elected on its first tick after a stall and closed every client connection, though nothing failed.
    /// A peer that really is silent is still found after the limit's worth of ticks.
    /// </summary>
    private void DiscountStall(long nowMs)
    {
        var last = _lastTickMs;
        _lastTickMs = nowMs;
        if (last is not { } previous) return;
        var stalled = nowMs - previous - _settings.TickMs;
        if (stalled <= _settings.TickMs) return;   // ordinary timer jitter
        _leaderHeardMs = Math.Min(nowMs, _leaderHeardMs + stalled);
        _learningSinceMs = Math.Min(nowMs, _learningSinceMs + stalled);
        _leadingSinceMs = Math.Min(nowMs, _leadingSinceMs + stalled);
        foreach (var learner in _learners.Values) learner.LastHeardMs = Math.Min(nowMs, learner.LastHeardMs + stalled);
    }

    // ---------------- leader ----------------

    private Learner LearnerOf(long id, bool isObserver, long nowMs)
    {
        if (!_learners.TryGetValue(id, out var learner)) _learners[id] = learner = new Learner(id, isObserver);
        learner.LastHeardMs = nowMs;
        return learner;
    }

    private void OnLeaderMessage(ZabMessage message, long nowMs, List<ZabOutput> outputs)
    {
        if (!_members.Contains(message.From)) return;
        switch (message)
        {
            case FollowerInfo info:
            {
                // A (re)connecting learner starts over: forget what it acked before.
                _learners.Remove(info.From);
                _tracker?.Forget(info.From);
                var learner = LearnerOf(info.From, info.IsObserver || !_quorum.IsVoter(info.From), nowMs);
                learner.AcceptedEpoch = info.AcceptedEpoch;
                learner.LastZxid = info.LastZxid;
                if (_newEpoch >= 0) outputs.Add(new SendTo(info.From, new LeaderInfo(_myId, _newEpoch)));
                else TryChooseEpoch(nowMs, outputs);
                break;
            }
            case AckEpoch ack when _learners.TryGetValue(ack.From, out var learner) && _newEpoch >= 0 && !learner.AckedEpoch:
            {
                learner.LastHeardMs = nowMs;
                if (ack.CurrentEpoch > CurrentEpoch || (ack.CurrentEpoch == CurrentEpoch && ack.LastZxid > _logged))
                {
                    // A learner has more recent history than this leader: the election was stale. Start over.
                    Elect(nowMs, outputs);
                    return;
                }
                learner.AckedEpoch = true;
                learner.LastZxid = ack.LastZxid;
                SyncLearner(learner, outputs);
                break;
            }
            case AckNewLeader ack when _learners.TryGetValue(ack.From, out var learner) && ack.Epoch == _newEpoch:
            {
                learner.LastHeardMs = nowMs;
                learner.AckedNewLeader = true;
                if (_established)
                {
                    if (!learner.IsObserver) OnCommits(_tracker!.Acked(learner.Id, ack.LastZxid), nowMs, outputs);
                    if (Role == PeerState.Leading) outputs.Add(new SendTo(learner.Id, new UpToDate(_myId, Committed)));
                }
                else TryEstablish(nowMs, outputs);
                break;
            }
            case Ack ack when _learners.TryGetValue(ack.From, out var learner):
                learner.LastHeardMs = nowMs;
                if (_tracker is not null && learner.AckedNewLeader) OnCommits(_tracker.Acked(ack.From, ack.Zxid), nowMs, outputs);
                break;
            case PingReply reply when _learners.TryGetValue(reply.From, out var learner):
                learner.LastHeardMs = nowMs;
                learner.EchoedRound = Math.Max(learner.EchoedRound, reply.Round);
                TryConfirmRound(outputs);
                break;
        }
    }

    /// <summary>Discovery: once a quorum (this leader included) reported its accepted epoch, the new epoch is one past the largest.</summary>
    private void TryChooseEpoch(long nowMs, List<ZabOutput> outputs)
    {
        if (_newEpoch >= 0) return;
        // Counted by server id, as ZooKeeper's leader counts epochs: a joiner that still observes by its own
        // configuration while this leader's pending one has it vote takes the new epoch like any learner, and without
        // it a leader with a pending grow whose joiners started as observers would never sync them (they learn from
        // the sync that they vote, and rejoin as followers).
        var reported = _learners.Values.Select(l => l.Id).Append(_myId);
        if (!_quorum.IsQuorum(reported)) return;
        _newEpoch = Math.Max(AcceptedEpoch, _learners.Values.Select(l => l.AcceptedEpoch).DefaultIfEmpty(0).Max()) + 1;
        AcceptedEpoch = _newEpoch;
        outputs.Add(new SaveEpochs(AcceptedEpoch, CurrentEpoch));
        // As ZooKeeper's leader does, the ensemble's first configuration (version 0: no reconfig made it) takes this
        // epoch's first zxid as its version, and learners take it with their sync: a configuration an ensemble ran
        // under then outranks the one a joiner is started with, and clients see the version Apache's members show.
        if (_config.Version == 0 && _pendingConfigs.Count == 0) Adopt(_config.WithVersion(Zxids.Make(_newEpoch, 0)), nowMs, outputs);
        foreach (var learner in _learners.Values) outputs.Add(new SendTo(learner.Id, new LeaderInfo(_myId, _newEpoch)));
        // An ensemble of one has its quorum already.
        TryEstablish(nowMs, outputs);
    }

    private void SyncLearner(Learner learner, List<ZabOutput> outputs)
    {
        var retainedFrom = _log.RetainedFrom;
        var entries = _log.EntriesAfter(retainedFrom);
        var plan = SyncPlanner.Plan(learner.LastZxid, retainedFrom, entries.Select(e => e.Zxid).ToList());
        var sendAfter = plan.Mode == SyncMode.Snap ? retainedFrom : plan.SendAfter;
        var toSend = plan.Mode == SyncMode.Trunc ? [] : entries.Where(e => e.Zxid > sendAfter).ToList();
        // Uncommitted proposals of this epoch follow as ordinary proposals; the sync carries the log as it is now.
        outputs.Add(new SendTo(learner.Id, new SyncLearner(_myId, plan.Mode, plan.TruncateTo, plan.Mode == SyncMode.Snap ? retainedFrom : 0,
            toSend, _newEpoch, Committed, _config)));
        learner.Synced = true;
    }

    /// <summary>
    /// NEWLEADER acked by a quorum: the leader's whole log is committed and broadcast begins. The leader counts
    /// itself only once its own log is durable: entries it logged as a follower may still be on their way to disk.
    /// </summary>
    private void TryEstablish(long nowMs, List<ZabOutput> outputs)
    {
        if (_established || _newEpoch < 0) return;
        var acked = _learners.Values.Where(l => l.AckedNewLeader && !l.IsObserver).Select(l => l.Id);
        if (AllPersisted) acked = acked.Append(_myId);
        if (!_quorum.IsQuorum(acked)) return;
        _established = true;
        _nextCounter = 0;   // the epoch's first proposal is (epoch, 1)
        CurrentEpoch = _newEpoch;
        outputs.Add(new SaveEpochs(AcceptedEpoch, CurrentEpoch));
        var last = _logged;
        _tracker = new CommitTracker(_quorum, last);
        foreach (var l in _learners.Values.Where(l => l.AckedNewLeader && !l.IsObserver)) _tracker.Acked(l.Id, l.LastZxid);
        if (AllPersisted) _tracker.Acked(_myId, Persisted);
        Committed = last;
        outputs.Add(new CommitUpTo(last));
        foreach (var l in _learners.Values.Where(l => l.AckedNewLeader)) outputs.Add(new SendTo(l.Id, new UpToDate(_myId, last)));
        outputs.Add(new RoleChanged(PeerState.Leading, _myId, CurrentEpoch, true));
        // A reconfiguration pending in the log was just committed with it (by a quorum of each configuration).
        Activate(last, nowMs, outputs);
    }

    private void OnCommits(IReadOnlyList<long> committed, long nowMs, List<ZabOutput> outputs)
    {
        if (committed.Count == 0) return;
        var last = committed[^1];
        Committed = last;
        outputs.Add(new CommitUpTo(last));
        foreach (var learner in _learners.Values)
        {
            if (!learner.Synced) continue;
            if (learner.IsObserver)
            {
                foreach (var zxid in committed)
                    if (_uncommitted.TryGetValue(zxid, out var entry)) outputs.Add(new SendTo(learner.Id, new Inform(_myId, entry)));
            }
            else outputs.Add(new SendTo(learner.Id, new Commit(_myId, last)));
        }
        foreach (var zxid in committed) _uncommitted.Remove(zxid);
        Activate(last, nowMs, outputs);
    }

    private void LeaderTick(long nowMs, List<ZabOutput> outputs)
    {
        if (_tracker is { Holding: true } && ++_joinerWaitTicks > JoinerWaitTicks)
        {
            // A joiner that never came (not started, or cannot reach us): commit on the joint quorum alone rather than
            // hold every write behind the reconfig; the joiner syncs whenever it comes, as after any reconfig.
            OnCommits(_tracker.Release(), nowMs, outputs);
            if (Role != PeerState.Leading) return;
        }
        // The latest round rides on every ping: a round whose pings were lost is confirmed by the next tick's.
        foreach (var learner in _learners.Values) outputs.Add(new SendTo(learner.Id, new Ping(_myId, Committed, _lastRound)));
        var limit = (_established ? _settings.SyncLimitTicks : _settings.InitLimitTicks) * _settings.TickMs;
        if (nowMs - _leadingSinceMs <= limit) return;
        // A leader that cannot hear a quorum within the limit stops leading (and stops serving), as ZooKeeper's does.
        var heard = _learners.Values.Where(l => !l.IsObserver && nowMs - l.LastHeardMs <= limit && (l.AckedNewLeader || !_established))
            .Select(l => l.Id).Append(_myId);
        if (!_quorum.IsQuorum(heard) || (!_established && nowMs - _leadingSinceMs > limit)) Elect(nowMs, outputs);
        else if (_established) DropSilentLearners(nowMs);
    }

    /// <summary>
    /// A learner silent past its limit (the sync limit once it acked NEWLEADER, the init limit while it synchronises)
    /// is gone, as ZooKeeper's leader then shuts that LearnerHandler down. The leader stops pinging it: pings to a
    /// killed member kept redialing its address, and met its restarted incarnation in Akka.Remote's handshake. One
    /// that was only cut off hears no pings either, re-elects, and comes back with FOLLOWERINFO.
    /// </summary>
    private void DropSilentLearners(long nowMs)
    {
        List<long>? gone = null;
        foreach (var learner in _learners.Values)
        {
            var limit = (learner.AckedNewLeader ? _settings.SyncLimitTicks : _settings.InitLimitTicks) * _settings.TickMs;
            if (nowMs - learner.LastHeardMs > limit) (gone ??= new List<long>()).Add(learner.Id);
        }
        if (gone is null) return;
        foreach (var id in gone)
        {
            _learners.Remove(id);
            _tracker?.Forget(id);
        }
    }

    // ---------------- follower / observer ----------------

    private void OnLearnerMessage(ZabMessage message, long nowMs, List<ZabOutput> outputs)
    {
        _leaderHeardMs = nowMs;
        switch (message)
        {
            case LeaderInfo dup when !_awaitingLeaderInfo:
                // A duplicate, answering a resent FOLLOWERINFO. The leader forgets a learner that sends FOLLOWERINFO
                // again, so it may now wait for an ACKEPOCH that this learner already sent: ack again (the leader
                // ignores it when it already has one), or this learner would never be synchronised nor sent proposals.
                if (dup.NewEpoch == AcceptedEpoch) outputs.Add(new SendTo(Leader, new AckEpoch(_myId, CurrentEpoch, _logged)));
                break;
            case LeaderInfo info:
                _awaitingLeaderInfo = false;
                if (info.NewEpoch < AcceptedEpoch) { Elect(nowMs, outputs); return; }
                if (info.NewEpoch > AcceptedEpoch)
                {
                    AcceptedEpoch = info.NewEpoch;
                    outputs.Add(new SaveEpochs(AcceptedEpoch, CurrentEpoch));
                }
                outputs.Add(new SendTo(Leader, new AckEpoch(_myId, CurrentEpoch, _logged)));
                break;
            case SyncLearner sync:
                if (sync.Mode is SyncMode.Trunc or SyncMode.TruncThenDiff && sync.TruncateTo < _log.RetainedFrom)
                {
                    outputs.Add(new SyncRefused(Leader, sync.TruncateTo, _log.RetainedFrom));
                    Elect(nowMs, outputs);
                    return;
                }
                _syncReceived = true;
                // Truncation and snapshot installation are carried out before anything that follows them; they count
                // as durable only once the host reports them so, like appends.
                if (sync.Mode is SyncMode.Trunc or SyncMode.TruncThenDiff)
                {
                    _logged = Math.Min(_logged, sync.TruncateTo);
                    Store(new TruncateLog(sync.TruncateTo), sync.TruncateTo, _logged, _logged, outputs);
                    ForgetLoggedAfter(_logged);
                }
                if (sync.Mode == SyncMode.Snap)
                {
                    _logged = sync.SnapshotZxid;
                    // Until the install is durable the disk holds the old log, none of which is known to be the leader's.
                    Store(new InstallSnapshot(Leader, sync.SnapshotZxid), sync.SnapshotZxid, _logged, 0, outputs);
                    ForgetLoggedAfter(0);
                }
                // The leader's committed configuration is newer: take it (the snapshot or the txns that made it may predate this log).
                if (sync.Config is { } leaderConfig && leaderConfig.Version > _config.Version && !Adopt(leaderConfig, nowMs, outputs)) return;
                if (sync.Entries.Count > 0)
                {
                    // Akka.Remote may drop messages (a gated or quarantined association), unlike Zab's TCP: a sync
                    // whose leading pieces were lost would leave a hole in the log. Rejoin instead.
                    if (!Zxids.Follows(_logged, sync.Entries[0].Zxid)) { Elect(nowMs, outputs); return; }
                    _logged = sync.Entries[^1].Zxid;
                    Store(new AppendEntries(sync.Entries), _logged, _logged, null, outputs);
                    NoteLogged(sync.Entries);
                }
                var last = _logged;
                _syncedEpoch = sync.Epoch;
                if (!CommitLearner(sync.CommittedZxid, nowMs, outputs) || !RoleStillFits(nowMs, outputs)) return;
                _awaitNewLeaderAckAt = last;
                _newLeaderAckAfter = _storageIssued;
                if (AllPersisted) SendNewLeaderAck(outputs);
                break;
            case UpToDate up:
                _upToDate = true;
                if (!CommitLearner(up.CommittedZxid, nowMs, outputs)) return;
                outputs.Add(new RoleChanged(Role, Leader, CurrentEpoch, true));
                break;
            case Zab.Propose or Zab.Commit or Zab.Inform when !_syncReceived:
                break;
            case Propose propose when Role == PeerState.Following:
                if (propose.Entry.Zxid <= _logged) break;   // already logged
                // A proposal that does not continue the log means lost messages (see SyncLearner above): appending
                // it would leave a hole that later commits silently skip. Rejoin the leader, which resynchronises.
                if (!Zxids.Follows(_logged, propose.Entry.Zxid)) { Elect(nowMs, outputs); return; }
                _logged = propose.Entry.Zxid;
                Store(new AppendEntries([propose.Entry]), _logged, _logged, null, outputs);
                NoteLogged([propose.Entry]);
                break;
            case Commit commit:
                if (Missed(commit.Zxid)) { Elect(nowMs, outputs); return; }
                CommitLearner(commit.Zxid, nowMs, outputs);
                break;
            case Inform inform when Role == PeerState.Observing:
                if (inform.Entry.Zxid <= _logged) break;
                if (!Zxids.Follows(_logged, inform.Entry.Zxid)) { Elect(nowMs, outputs); return; }
                _logged = inform.Entry.Zxid;
                Store(new AppendEntries([inform.Entry]), _logged, _logged, null, outputs);
                NoteLogged([inform.Entry]);
                CommitLearner(inform.Entry.Zxid, nowMs, outputs);
                break;
            case Ping ping:
                if (Missed(ping.CommittedZxid)) { Elect(nowMs, outputs); return; }
                outputs.Add(new SendTo(Leader, new PingReply(_myId, _logged, ping.Round)));
                if (_upToDate) CommitLearner(ping.CommittedZxid, nowMs, outputs);
                break;
        }
    }

    /// <summary>
    /// The leader says <paramref name="committed"/> is committed, yet this synchronised learner never received it: on a
    /// FIFO link its proposal (or inform) came first, so messages were lost without the link breaking (Akka.Remote drops
    /// what it sends to a gated association, then reconnects; a brief partition does the same). Waiting for the next
    /// proposal to show the hole would leave this learner serving a stale state, and holding every sync and
    /// session creation it forwards, for as long as the ensemble has no write; it rejoins instead and is resynchronised.
    /// </summary>
    private bool Missed(long committed) => _upToDate && committed > _logged;

    /// <summary>
    /// The synced log is durable: only now does the leader's epoch become this learner's current epoch. Saved
    /// earlier, a crash would leave the new epoch beside the old log, and its vote would then outrank servers that
    /// hold txns committed in the epoch before.
    /// </summary>
    private void SendNewLeaderAck(List<ZabOutput> outputs)
    {
        var at = _awaitNewLeaderAckAt;
        _awaitNewLeaderAckAt = -1;
        CurrentEpoch = _syncedEpoch;
        outputs.Add(new SaveEpochs(AcceptedEpoch, CurrentEpoch));
        outputs.Add(new SendTo(Leader, new AckNewLeader(_myId, CurrentEpoch, at)));
    }

    /// <summary>Commits what the leader committed, but never past what this learner has logged. False when a
    /// reconfiguration it activated made this learner leave its role (see <see cref="Activate"/>).</summary>
    private bool CommitLearner(long zxid, long nowMs, List<ZabOutput> outputs)
    {
        var upTo = Math.Min(zxid, _logged);
        if (upTo <= Committed) return true;
        Committed = upTo;
        outputs.Add(new CommitUpTo(upTo));
        return Activate(upTo, nowMs, outputs);
    }
}
