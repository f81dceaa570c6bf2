namespace Coordination.Server.Metrics;

/// <summary>
/// Ensemble (Zab) metrics, under ZooKeeper's Prometheus names. Instance counters, one set per server (per
/// ActorSystem), so that several servers in one test process keep separate figures. Reach them from an actor with
/// <c>ServerMetrics.For(Context.System).Ensemble</c>. A standalone server leaves them at zero, except
/// <see cref="SetServerState"/>, which reports "standalone".
/// <list type="bullet">
/// <item><see cref="RecordElection"/>: once per finished leader election, with its duration (<c>election_time</c>,
///   ms histogram), and counts a leader change when the elected leader differs from the previous one
///   (<c>leader_changes</c>).</item>
/// <item><see cref="SetLearners"/> / <see cref="SetSyncedFollowers"/>: the leader's current learner handlers and the
///   followers that finished synchronisation (<c>learners</c>, <c>synced_followers</c>; gauges).</item>
/// <item><see cref="RecordFollowerSync"/>: once per follower synchronisation, by kind (DIFF, TRUNC or SNAP)
///   (<c>follower_sync_count{kind}</c>; ZooKeeper has <c>diff_count</c>, <c>snap_count</c> and counts them the same way).</item>
/// </list>
/// Proposals and commits are counted in <see cref="ServerMetrics"/> (<c>proposal_count</c>, <c>commit_count</c>).
/// </summary>
public sealed class EnsembleMetrics
{
    private long _leaderChanges;
    private long _lastLeader = -1;
    private long _learners;
    private long _syncedFollowers;
    private long _diffSyncs, _truncSyncs, _snapSyncs;
    private volatile string _state = "standalone";
    private long _memberAuthFailures, _memberMessagesRefused, _silentMemberLinks;

    /// <summary>Member links refused: a failed or timed-out handshake, or a PDU naming another address (<c>member_auth_failures</c>).</summary>
    public long MemberAuthFailures => Interlocked.Read(ref _memberAuthFailures);
    public void MemberAuthFailed() => Interlocked.Increment(ref _memberAuthFailures);
    /// <summary>Messages dropped because their sender is not the member they name, or not a member (<c>member_messages_refused</c>).</summary>
    public long MemberMessagesRefused => Interlocked.Read(ref _memberMessagesRefused);
    public void MemberMessageRefused() => Interlocked.Increment(ref _memberMessagesRefused);
    /// <summary>Member links closed because nothing arrived on them for the silence timeout (<c>member_links_silent</c>).</summary>
    public long SilentMemberLinks => Interlocked.Read(ref _silentMemberLinks);
    public void SilentMemberLinkClosed() => Interlocked.Increment(ref _silentMemberLinks);

    public Histogram ElectionTime { get; } = new(Histogram.MillisecondBuckets);
    public long LeaderChanges => Interlocked.Read(ref _leaderChanges);
    public long Learners => Interlocked.Read(ref _learners);
    public long SyncedFollowers => Interlocked.Read(ref _syncedFollowers);
    public string ServerState => _state;

    public void RecordElection(TimeSpan duration, long electedLeaderId)
    {
        ElectionTime.Record(duration.TotalMilliseconds);
        if (Interlocked.Exchange(ref _lastLeader, electedLeaderId) != electedLeaderId) Interlocked.Increment(ref _leaderChanges);
    }

    public void SetLearners(int count) => Interlocked.Exchange(ref _learners, count);
    public void SetSyncedFollowers(int count) => Interlocked.Exchange(ref _syncedFollowers, count);

    /// <summary>"leading", "following", "observing", "looking" or "standalone".</summary>
    public void SetServerState(string state) => _state = state;

    public enum SyncKind { Diff, Trunc, Snap }

    public void RecordFollowerSync(SyncKind kind)
    {
        switch (kind)
        {
            case SyncKind.Diff: Interlocked.Increment(ref _diffSyncs); break;
            case SyncKind.Trunc: Interlocked.Increment(ref _truncSyncs); break;
            default: Interlocked.Increment(ref _snapSyncs); break;
        }
    }

    /// <summary>srst (see <see cref="ServerMetrics"/>): the election summary and the sync counts.</summary>
    internal void ResetCountersAndSummaries()
    {
        ElectionTime.Reset();
        Interlocked.Exchange(ref _diffSyncs, 0);
        Interlocked.Exchange(ref _truncSyncs, 0);
        Interlocked.Exchange(ref _snapSyncs, 0);
    }

    public long FollowerSyncs(SyncKind kind) => kind switch
    {
        SyncKind.Diff => Interlocked.Read(ref _diffSyncs),
        SyncKind.Trunc => Interlocked.Read(ref _truncSyncs),
        _ => Interlocked.Read(ref _snapSyncs),
    };
}
