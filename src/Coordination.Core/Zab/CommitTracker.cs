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
    /// <summary>Outstanding proposals and the quorum each needs: a proposal made while a reconfiguration is pending
    /// needs a majority of the old and of the new voters (a joint <see cref="Quorum"/>) even once that commits.</summary>
    private readonly SortedDictionary<long, Quorum> _outstanding = new();

    public CommitTracker(Quorum quorum, long lastCommitted)
    {
        _quorum = quorum;
        LastCommitted = lastCommitted;
    }

    public long LastCommitted { get; private set; }
    public int OutstandingCount => _outstanding.Count;
    public long? LastProposed => _outstanding.Count == 0 ? null : _outstanding.Keys.Last();

    /// <summary>A proposal that also waits for these voters to log it (a reconfig's joining voters), until released.</summary>
    private readonly Dictionary<long, IReadOnlySet<long>> _holds = new();

    /// <summary>Registers a proposal the leader has sent, needing <paramref name="quorum"/> (by default the tracker's). Zxids must increase.
    /// With <paramref name="waitFor"/> it commits only once those voters logged it too, or once <see cref="Release"/>d.</summary>
    public void Proposed(long zxid, Quorum? quorum = null, IReadOnlySet<long>? waitFor = null)
    {
        var last = LastProposed ?? LastCommitted;
        if (zxid <= last) throw new InvalidOperationException($"proposal {Zxids.Format(zxid)} is not after {Zxids.Format(last)}");
        _outstanding.Add(zxid, quorum ?? _quorum);
        if (waitFor is { Count: > 0 }) _holds[zxid] = waitFor;
    }

    /// <summary>True while a proposal waits for voters named in <see cref="Proposed"/>.</summary>
    public bool Holding => _holds.Count > 0;

    /// <summary>Stops waiting for the voters a proposal named: it commits on its quorum alone. Returns what commits now.</summary>
    public IReadOnlyList<long> Release()
    {
        _holds.Clear();
        return CommitReady();
    }

    /// <summary>
    /// Records that <paramref name="peer"/> has durably logged everything up to <paramref name="zxid"/> and returns
    /// the zxids that this makes committed, in order (empty when nothing new commits).
    /// </summary>
    public IReadOnlyList<long> Acked(long peer, long zxid)
    {
        // Observers never count: every quorum ignores non-voters.
        if (_loggedUpTo.TryGetValue(peer, out var previous) && previous >= zxid) return [];
        _loggedUpTo[peer] = zxid;
        return CommitReady();
    }

    private IReadOnlyList<long> CommitReady()
    {
        List<long>? committed = null;
        while (_outstanding.Count > 0)
        {
            var (next, quorum) = _outstanding.First();
            if (!quorum.IsQuorumAt(_loggedUpTo, next)) break;
            if (_holds.TryGetValue(next, out var waitFor) && !waitFor.All(id => _loggedUpTo.TryGetValue(id, out var at) && at >= next)) break;
            _holds.Remove(next);
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
