namespace Coordination.Core.Zab;

public enum PeerState { Looking, Following, Leading, Observing }

/// <summary>A vote: who should lead, judged by the epoch and last zxid the candidate has.</summary>
public readonly record struct Vote(long Leader, long Zxid, long Epoch)
{
    /// <summary>
    /// ZooKeeper's total order on votes: a higher epoch wins, then a higher zxid, then a higher server id. So the
    /// server with the most recent history leads, and ties between equally recent servers break by id.
    /// </summary>
    public bool IsBetterThan(Vote other) =>
        Epoch > other.Epoch || (Epoch == other.Epoch && (Zxid > other.Zxid || (Zxid == other.Zxid && Leader > other.Leader)));
}

/// <summary>A notification exchanged during election: the sender's current vote, its election round and state.</summary>
public sealed record Notification(long From, Vote Vote, long Round, PeerState State);

/// <summary>What the election asks its host to do.</summary>
public abstract record ElectionOutput;
/// <summary>Send this notification to every other member (voters and observers).</summary>
public sealed record BroadcastNotification(Notification Notification) : ElectionOutput;
/// <summary>Answer one member (a looking peer in an older round, or one asking while we are settled).</summary>
public sealed record SendNotification(long To, Notification Notification) : ElectionOutput;
/// <summary>The election is over: follow or lead <see cref="Vote.Leader"/>.</summary>
public sealed record ElectionDecided(PeerState State, Vote Vote, long Round) : ElectionOutput;

/// <summary>
/// Fast leader election as a deterministic state machine, in the style of ZooKeeper's FastLeaderElection: no threads,
/// sockets or clocks. The host feeds notifications and ticks, and carries out the outputs. A voter proposes itself,
/// adopts any better vote it hears in its round, and decides once a quorum agrees on its vote and no better vote
/// arrives within <c>finalizeWaitMs</c>; an observer does the same without ever proposing itself. A peer that joins a
/// settled ensemble follows the leader that a quorum of settled peers report, provided the leader itself reports that
/// it leads.
/// </summary>
public sealed class FastLeaderElection
{
    private readonly long _myId;
    private Quorum _quorum;
    private bool _isObserver;
    private readonly long _finalizeWaitMs;
    private readonly Dictionary<long, Vote> _received = new();                 // this round's votes of looking voters
    private readonly Dictionary<long, Notification> _settled = new();         // votes of peers that left the election
    private long? _quorumSinceMs;
    private long _lastSentMs;

    public long Round { get; private set; }
    public Vote Proposal { get; private set; }
    public PeerState State { get; private set; } = PeerState.Looking;
    private Vote _initial;

    public FastLeaderElection(long myId, Quorum quorum, long finalizeWaitMs = 200)
    {
        _myId = myId;
        _quorum = quorum;
        _isObserver = !quorum.IsVoter(myId);
        _finalizeWaitMs = finalizeWaitMs;
    }

    /// <summary>
    /// The peer's configuration changed (a reconfiguration committed, or one it logged is pending: then the quorum is
    /// joint, as ZooKeeper's election counts the last seen configuration too). Whether this peer votes itself changes
    /// with the next <see cref="Start"/>.
    /// </summary>
    public void UseQuorum(Quorum quorum)
    {
        _quorum = quorum;
        _isObserver = !quorum.IsVoter(_myId);
    }

    /// <summary>Starts a new round with this server's history (its last logged zxid and its current epoch); also used to
    /// re-enter the election when the leader or the quorum is lost.</summary>
    public IReadOnlyList<ElectionOutput> Start(long lastZxid, long currentEpoch, long nowMs)
    {
        IsElecting = true;
        Round++;
        // An observer looks too while it elects (ZooKeeper's LOOKING): a voter whose configuration names this observer
        // as a voter (a joiner started as an observer, before it logged the reconfig that names it) counts its vote.
        State = PeerState.Looking;
        _received.Clear();
        _settled.Clear();
        _quorumSinceMs = null;
        // An observer never proposes itself: its vote is for no one until it learns the leader.
        _initial = _isObserver ? new Vote(long.MinValue, long.MinValue, long.MinValue) : new Vote(_myId, lastZxid, currentEpoch);
        Proposal = _initial;
        if (!_isObserver) _received[_myId] = Proposal;
        var outputs = new List<ElectionOutput>();
        Broadcast(nowMs, outputs);
        Evaluate(nowMs, outputs);
        return outputs;
    }

    private void Broadcast(long nowMs, List<ElectionOutput> outputs)
    {
        _lastSentMs = nowMs;
        outputs.Add(new BroadcastNotification(Current()));
    }

    private Notification Current() => new(_myId, Proposal, Round, State);

    /// <summary>True while this peer is still electing (observers included).</summary>
    public bool IsElecting { get; private set; } = true;

    public IReadOnlyList<ElectionOutput> Receive(Notification n, long nowMs)
    {
        var outputs = new List<ElectionOutput>();
        if (!_quorum.IsVoter(n.From) || n.State == PeerState.Observing)
        {
            // A non-voter by our configuration (an observer, or a server only heard of), or an observer that has
            // settled, only learns: a voter always answers it with its current vote, as ZooKeeper does. An observer
            // leaves it to the voters (ZooKeeper sends notifications to voters only): two observers answering each
            // other never stopped. A peer that still observes by its own configuration while ours has it vote (a
            // joiner) and is looking is counted below, as ZooKeeper's election counts the votes of its current and
            // next configurations' voters.
            if (!_isObserver) outputs.Add(new SendNotification(n.From, Current()));
            return outputs;
        }
        if (!IsElecting)
        {
            // Settled: tell a peer that is still looking who leads, so it can join without a new round.
            if (n.State == PeerState.Looking) outputs.Add(new SendNotification(n.From, Current()));
            return outputs;
        }

        if (n.State == PeerState.Looking)
        {
            if (n.Round > Round)
            {
                Round = n.Round;
                _received.Clear();
                _quorumSinceMs = null;
                Proposal = n.Vote.IsBetterThan(_initial) ? n.Vote : _initial;
                if (!_isObserver) _received[_myId] = Proposal;
                Broadcast(nowMs, outputs);
            }
            else if (n.Round < Round)
            {
                outputs.Add(new SendNotification(n.From, Current()));   // bring the laggard into our round
                return outputs;
            }
            else if (n.Vote.IsBetterThan(Proposal))
            {
                // An observer never votes for itself, but it passes on the best vote it heard (a voter may count it).
                Proposal = n.Vote;
                if (!_isObserver) _received[_myId] = Proposal;
                _quorumSinceMs = null;
                Broadcast(nowMs, outputs);
            }
            _received[n.From] = n.Vote;
        }
        else
        {
            // The sender has settled (following or leading). Its vote names the current leader.
            _settled[n.From] = n;
            if (n.Round == Round) _received[n.From] = n.Vote;
            if (JoinSettled(n, outputs)) return outputs;
        }

        Evaluate(nowMs, outputs);
        return outputs;
    }

    /// <summary>
    /// Decides once the finalize wait has passed without a better vote. A peer that has heard nothing decisive for a
    /// while sends its vote again (ZooKeeper's notification timeout), which also makes settled peers tell it the leader.
    /// </summary>
    public IReadOnlyList<ElectionOutput> Tick(long nowMs)
    {
        var outputs = new List<ElectionOutput>();
        if (!IsElecting) return outputs;
        Evaluate(nowMs, outputs);
        if (IsElecting && nowMs - _lastSentMs >= 4 * _finalizeWaitMs) Broadcast(nowMs, outputs);
        return outputs;
    }

    private void Evaluate(long nowMs, List<ElectionOutput> outputs)
    {
        // An observer decides as ZooKeeper's does: once a quorum of voters agrees on the vote it passed on (never its own).
        var agreeing = _received.Where(kv => kv.Value == Proposal).Select(kv => kv.Key);
        if (!_quorum.IsQuorum(agreeing))
        {
            _quorumSinceMs = null;
            return;
        }
        _quorumSinceMs ??= nowMs;
        if (nowMs - _quorumSinceMs.Value < _finalizeWaitMs) return;
        Decide(_isObserver ? PeerState.Observing : Proposal.Leader == _myId ? PeerState.Leading : PeerState.Following, Proposal, outputs);
    }

    /// <summary>
    /// Follows an already-established leader: a quorum of settled peers name it, and the leader itself says it leads
    /// (ZooKeeper's checkLeader), so a stale report about a dead leader cannot capture us.
    /// </summary>
    private bool JoinSettled(Notification n, List<ElectionOutput> outputs)
    {
        var leader = n.Vote.Leader;
        var backers = _settled.Values.Where(s => s.Vote == n.Vote).Select(s => s.From).ToList();
        if (!_isObserver && n.Vote.Leader != _myId) backers.Add(_myId);
        var leaderSaysSo = _settled.TryGetValue(leader, out var fromLeader) && fromLeader.State == PeerState.Leading && fromLeader.Vote == n.Vote;
        if (!leaderSaysSo || !_quorum.IsQuorum(backers)) return false;
        Round = n.Round;
        Decide(_isObserver ? PeerState.Observing : leader == _myId ? PeerState.Leading : PeerState.Following, n.Vote, outputs);
        return true;
    }

    private void Decide(PeerState state, Vote vote, List<ElectionOutput> outputs)
    {
        IsElecting = false;
        State = state;
        Proposal = vote;
        outputs.Add(new ElectionDecided(state, vote, Round));
    }
}
