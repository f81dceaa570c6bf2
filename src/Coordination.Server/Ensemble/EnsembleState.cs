using Coordination.Core.Zab;

namespace Coordination.Server.Ensemble;

/// <summary>
/// The peer's state as the rest of the server reads it (four-letter words, metrics, the session layer): written by
/// the peer actor after every step, read from any thread. Each field is a plain snapshot value; readers tolerate
/// seeing one field a step ahead of another.
/// </summary>
public sealed class EnsembleState
{
    private volatile string _mode = "looking";
    private long _leader = -1;
    private long _epoch;
    private volatile bool _serving;
    private int _learners;
    private int _syncedLearners;
    private long _leaderChanges;
    private long _lastProposalSize;
    private long _lastElectionMs;
    private long _lookingSinceMs = Environment.TickCount64;
    private long _snapshotsInstalled;

    public long ServerId { get; init; }
    /// <summary>Where the same facts go as Prometheus series (election_time, leader_changes, learners, ...).</summary>
    public Metrics.EnsembleMetrics? Metrics { get; init; }
    /// <summary>ZooKeeper's words: leader, follower, observer, read-only, or looking while there is no established leader.</summary>
    public string Mode => _readOnly ? "read-only" : _mode;
    public long Leader => Interlocked.Read(ref _leader);
    public long Epoch => Interlocked.Read(ref _epoch);
    public bool Serving => _serving;
    /// <summary>Cut off from the quorum and serving read-only clients (read-only mode; isro answers "ro").</summary>
    public bool ReadOnly { get => _readOnly; internal set => _readOnly = value; }
    private volatile bool _readOnly;
    public int Learners => Volatile.Read(ref _learners);
    public int SyncedLearners => Volatile.Read(ref _syncedLearners);
    public long LeaderChanges => Interlocked.Read(ref _leaderChanges);
    public long LastProposalSize => Interlocked.Read(ref _lastProposalSize);
    /// <summary>How long the last election took, from losing the leader to serving again (ZooKeeper's election_time).</summary>
    public long LastElectionMs => Interlocked.Read(ref _lastElectionMs);

    /// <summary>Where the Zab peer is, in words, also while it does not serve ("looking" covers electing and a follower
    /// still synchronising with its leader): for logs and a test's "did not settle" message.</summary>
    public string Phase => (PeerState)Volatile.Read(ref _peerRole) switch
    {
        PeerState.Looking => "electing",
        PeerState.Leading => $"leading epoch {Epoch}, {SyncedLearners} of {Learners} learners synchronised",
        var role => $"{(role == PeerState.Observing ? "observing" : "following")} {Interlocked.Read(ref _peerLeader)}{(_serving ? "" : ", not synchronised yet")}",
    };
    private int _peerRole;
    private long _peerLeader = -1;

    /// <summary>Leader: the voters synchronised with it, itself included (for a reconfig's NewConfigNoQuorum check).</summary>
    public IReadOnlyList<long> SyncedVoters => _syncedVoters;
    private volatile IReadOnlyList<long> _syncedVoters = [];

    /// <summary>The active configuration as this member last made it durable, in ZooKeeper's text (what <c>conf</c> shows
    /// under "membership:"); null before the peer started.</summary>
    public string? ConfigText => _configText;
    private volatile string? _configText;

    internal void ConfigChanged(ZabConfig config) =>
        _configText = config.Text is { } text ? DynamicConfig.Parse(text, out _)?.WithVersion(config.Version).ToString() : null;

    internal void Update(ZabPeer peer)
    {
        var serving = peer.ServesClients;
        // Rebuilt only when the count of synchronised learners or the leader changes: this runs after every step.
        if (peer.SyncedLearnerCount != SyncedLearners || peer.Leader != Leader || peer.Role == PeerState.Leading != (_mode == "leader"))
            _syncedVoters = peer.SyncedVoters;
        var wasLeading = _mode == "leader";
        _mode = !serving ? "looking" : peer.Role switch
        {
            PeerState.Leading => "leader",
            PeerState.Observing => "observer",
            _ => "follower",
        };
        if (!wasLeading && _mode == "leader") Interlocked.Exchange(ref _leadingSinceMs, Environment.TickCount64);
        if (Interlocked.Exchange(ref _leader, serving ? peer.Leader : -1) != (serving ? peer.Leader : -1) && serving)
        {
            Interlocked.Increment(ref _leaderChanges);
            var electionMs = Environment.TickCount64 - Interlocked.Read(ref _lookingSinceMs);
            Interlocked.Exchange(ref _lastElectionMs, electionMs);
            Metrics?.RecordElection(TimeSpan.FromMilliseconds(electionMs), peer.Leader);
        }
        if (_serving && !serving) Interlocked.Exchange(ref _lookingSinceMs, Environment.TickCount64);
        _serving = serving;
        Volatile.Write(ref _peerRole, (int)peer.Role);
        Interlocked.Exchange(ref _peerLeader, peer.Leader);
        Interlocked.Exchange(ref _epoch, peer.CurrentEpoch);
        Volatile.Write(ref _learners, peer.Role == PeerState.Leading ? peer.LearnerCount : 0);
        Volatile.Write(ref _syncedLearners, peer.Role == PeerState.Leading ? peer.SyncedLearnerCount : 0);
        if (Metrics is { } m)
        {
            m.SetServerState(_mode switch { "leader" => "leading", "follower" => "following", "observer" => "observing", _ => "looking" });
            m.SetLearners(Learners);
            m.SetSyncedFollowers(SyncedLearners);
        }
    }

    /// <summary>How many snapshots this server installed from a leader (SNAP synchronisation) since it started.</summary>
    public long SnapshotsInstalled => Interlocked.Read(ref _snapshotsInstalled);

    internal void SnapshotInstalled() => Interlocked.Increment(ref _snapshotsInstalled);

    /// <summary>The zxid this member's Zab log starts after (its newest snapshot, once the log was trimmed to it): a
    /// learner whose last txn is older is synchronised by SNAP, any other by DIFF or TRUNC.</summary>
    public long LogStartZxid => Interlocked.Read(ref _logStartZxid);
    private long _logStartZxid;

    internal void LogStarts(long zxid) => Interlocked.Exchange(ref _logStartZxid, zxid);

    internal void Proposed(int bytes)
    {
        Interlocked.Exchange(ref _lastProposalSize, bytes);
        // Only the leader proposes, so min and max have one writer.
        if (Interlocked.Read(ref _minProposalSize) is var min && (min < 0 || bytes < min)) Interlocked.Exchange(ref _minProposalSize, bytes);
        if (bytes > Interlocked.Read(ref _maxProposalSize)) Interlocked.Exchange(ref _maxProposalSize, bytes);
    }

    private long _minProposalSize = -1, _maxProposalSize = -1, _leadingSinceMs = -1;
    /// <summary>The smallest and largest proposal (bytes) this member made as leader; -1 before the first, as ZooKeeper's
    /// min_proposal_size and max_proposal_size.</summary>
    internal long MinProposalSize => Interlocked.Read(ref _minProposalSize);
    internal long MaxProposalSize => Interlocked.Read(ref _maxProposalSize);
    /// <summary>Milliseconds since this member started leading (ZooKeeper's leader_uptime), 0 when it does not lead.</summary>
    internal long LeaderUptimeMs => _mode == "leader" && Interlocked.Read(ref _leadingSinceMs) is >= 0 and var since ? Environment.TickCount64 - since : 0;
}
