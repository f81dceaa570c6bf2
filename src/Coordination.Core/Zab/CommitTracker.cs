namespace Coordination.Core.Zab;

/// <summary>
/// The leader's view of its pipeline of proposals: who has durably logged what, and which zxids are committed.
/// Acks are cumulative (an ack of Z says the sender logged everything up to Z), so proposals can be pipelined
/// and a follower may acknowledge a whole batch with one message. A proposal commits when a quorum of voters
/// (the leader counts once its own journal has it) has logged it; commits happen strictly in zxid order.
/// </summary>
public sealed class CommitTracker
{
    private readonly Quorum _quorum;
    private readonly Dictionary<long, long> _loggedUpTo = new();
    private readonly SortedSet<long> _outstanding = new();

    public CommitTracker(Quorum quorum, long lastCommitted)
    {
        _quorum = quorum;
        LastCommitted = lastCommitted;
    }

    public long LastCommitted { get; private set; }
    public int OutstandingCount => _outstanding.Count;
    public long? LastProposed => _outstanding.Count == 0 ? null : _outstanding.Max;

    /// <summary>Registers a proposal the leader has sent. Zxids must increase.</summary>
    public void Proposed(long zxid)
    {
        if (zxid <= LastCommitted || (_outstanding.Count > 0 && zxid <= _outstanding.Max))
            throw new InvalidOperationException($"proposal {Zxids.Format(zxid)} is not after {Zxids.Format(Math.Max(LastCommitted, _outstanding.Count > 0 ? _outstanding.Max : 0))}");
        _outstanding.Add(zxid);
    }

    /// <summary>
    /// Records that <paramref name="peer"/> has durably logged everything up to <paramref name="zxid"/> and returns
    /// the zxids that this makes committed, in order (empty when nothing new commits).
    /// </summary>
    public IReadOnlyList<long> Acked(long peer, long zxid)
    {
        if (!_quorum.IsVoter(peer)) return [];   // observers never count
        if (_loggedUpTo.TryGetValue(peer, out var previous) && previous >= zxid) return [];
        _loggedUpTo[peer] = zxid;

        List<long>? committed = null;
        while (_outstanding.Count > 0)
        {
            var next = _outstanding.Min;
            if (!_quorum.IsQuorum(_loggedUpTo.Where(kv => kv.Value >= next).Select(kv => kv.Key))) break;
            _outstanding.Remove(next);
            LastCommitted = next;
            (committed ??= []).Add(next);
        }
        return committed ?? (IReadOnlyList<long>)[];
    }

    /// <summary>Forgets a peer's progress (it disconnected; it re-syncs before it acks again).</summary>
    public void Forget(long peer) => _loggedUpTo.Remove(peer);

    /// <summary>Voters whose logs are within the committed prefix, i.e. the synced followers (plus the leader).</summary>
    public int SyncedVoters => _loggedUpTo.Count(kv => kv.Value >= LastCommitted);
}
