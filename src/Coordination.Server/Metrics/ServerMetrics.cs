using System.Diagnostics;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Coordination.Protocol;

namespace Coordination.Server.Metrics;

/// <summary>
/// The metrics of one server (one ActorSystem) that mntr does not carry: per-op request latency, journal write
/// (fsync) latency and batch size, proposal and commit counts, and the <see cref="EnsembleMetrics"/>. An Akka
/// extension, so actors reach it with <c>ServerMetrics.For(Context.System)</c> and nothing is static. Everything
/// is Interlocked counters in preallocated arrays: recording takes no lock and allocates nothing after an op's
/// first request. /metrics appends <see cref="WritePrometheus"/> to the mntr values.
/// </summary>
public sealed class ServerMetrics : IExtension
{
    private const int OpOffset = 16;                              // op codes run from -11 (closeSession) to 107 (whoAmI)
    private readonly Histogram?[] _requestLatency = new Histogram?[OpOffset + 128];
    private long _proposals;
    private long _commits;

    public static ServerMetrics For(ActorSystem system) => system.WithExtension<ServerMetrics, ServerMetricsProvider>();

    /// <summary>Journal write latency in ms, from handing a batch to the journal to its commit (one fsync in WAL
    /// mode): ZooKeeper's <c>fsynctime</c>.</summary>
    public Histogram FsyncTime { get; } = new(Histogram.MillisecondBuckets);

    /// <summary>Txns per journal write (group commit): ZooKeeper's <c>sync_processor_batch_size</c>.</summary>
    public Histogram JournalBatchSize { get; } = new(Histogram.CountBuckets);

    /// <summary>Each GC pause in ms since this server started (or srst): ZooKeeper's <c>jvm_pause_time_ms</c>, recorded by
    /// <see cref="GcPauseListener"/> while the actor system runs.</summary>
    internal Histogram GcPauses { get; } = new(Histogram.MillisecondBuckets);

    public EnsembleMetrics Ensemble { get; } = new();

    /// <summary>Packets and request latency as srvr, stat and mntr report them.</summary>
    public ServerStats Stats { get; } = new();

    /// <summary>How often the client-port bounds acted (reported by mntr).</summary>
    public ClientPortMetrics ClientPort { get; } = new();

    private long _localSessions;
    /// <summary>Local sessions open on this member (ZooKeeper's local_sessions), as of the last replica stats request.</summary>
    internal long LocalSessions => Interlocked.Read(ref _localSessions);
    internal void SetLocalSessions(int count) => Interlocked.Exchange(ref _localSessions, count);

    private IReadOnlyList<Core.NamespaceQuota> _quotaPerNamespace = [];
    /// <summary>The quota gauges per top-level namespace (ZooKeeper's <c>&lt;ns&gt;_quota_*_per_namespace</c>), as of the
    /// last replica stats request.</summary>
    internal IReadOnlyList<Core.NamespaceQuota> QuotaPerNamespace => Volatile.Read(ref _quotaPerNamespace);
    internal void SetQuotaPerNamespace(IReadOnlyList<Core.NamespaceQuota> quotas) => Volatile.Write(ref _quotaPerNamespace, quotas);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _quotaExceeded = new(StringComparer.Ordinal);
    /// <summary>Writes refused by a hard quota, per top-level namespace of the quota (ZooKeeper's counter set
    /// <c>quota_exceeded_error_per_namespace</c>: a namespace appears with its first refusal).</summary>
    internal IReadOnlyList<(string Namespace, long Count)> QuotaExceeded =>
        [.. _quotaExceeded.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value))];
    internal void AddQuotaExceeded(string ns) => _quotaExceeded.AddOrUpdate(ns, 1, (_, n) => n + 1);

    public long Proposals => Interlocked.Read(ref _proposals);
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Txns handed to the log (ZooKeeper's <c>proposal_count</c>).</summary>
    public void AddProposals(int count) => Interlocked.Add(ref _proposals, count);

    /// <summary>Txns that became durable and so committed (ZooKeeper's <c>commit_count</c>).</summary>
    public void AddCommits(int count) => Interlocked.Add(ref _commits, count);

    /// <summary>srst: ZooKeeper's ServerMetrics.resetAll, every counter and summary mntr reports back to zero (gauges
    /// such as learners or local sessions are current values and stay).</summary>
    internal void ResetCountersAndSummaries()
    {
        foreach (var (_, latency) in RequestLatencies()) latency.Reset();
        FsyncTime.Reset();
        JournalBatchSize.Reset();
        GcPauses.Reset();
        Interlocked.Exchange(ref _proposals, 0);
        Interlocked.Exchange(ref _commits, 0);
        // As ZooKeeper's SimpleCounterSet.reset: every namespace's count to zero, the namespaces stay.
        foreach (var ns in _quotaExceeded.Keys) _quotaExceeded[ns] = 0;
        Ensemble.ResetCountersAndSummaries();
    }

    /// <summary>Records a committed journal write: its latency since <paramref name="startedTicks"/> (a Stopwatch
    /// timestamp), its batch size, and its txns as commits.</summary>
    public void RecordJournalWrite(long startedTicks, int txns)
    {
        FsyncTime.Record(Stopwatch.GetElapsedTime(startedTicks).TotalMilliseconds);
        JournalBatchSize.Record(txns);
        AddCommits(txns);
    }

    /// <summary>Records one request's latency, from its decode (<paramref name="receivedTicks"/>, a Stopwatch timestamp)
    /// until its reply is handed to the connection's writer.</summary>
    public void RecordRequest(OpCode op, long receivedTicks) =>
        RequestLatency(op)?.Record(Stopwatch.GetElapsedTime(receivedTicks).TotalMilliseconds);

    /// <summary>The latency histogram of <paramref name="op"/> (created on its first use), or null for an unknown code.</summary>
    public Histogram? RequestLatency(OpCode op)
    {
        var slot = (int)op + OpOffset;
        if ((uint)slot >= (uint)_requestLatency.Length) return null;
        return Volatile.Read(ref _requestLatency[slot])
            ?? Interlocked.CompareExchange(ref _requestLatency[slot], new Histogram(Histogram.MillisecondBuckets), null)
            ?? _requestLatency[slot];
    }

    /// <summary>The ops that have had a request, with their latency histogram.</summary>
    internal IEnumerable<(OpCode Op, Histogram Latency)> RequestLatencies()
    {
        for (var slot = 0; slot < _requestLatency.Length; slot++)
            if (Volatile.Read(ref _requestLatency[slot]) is { } h) yield return ((OpCode)(slot - OpOffset), h);
    }

    /// <summary>Appends these metrics in Prometheus text format (names as ZooKeeper's Prometheus provider has them
    /// where it has one; latencies in ms as ZooKeeper reports them).</summary>
    public void WritePrometheus(StringBuilder b)
    {
        b.Append("# HELP request_latency_ms Time from request decode to reply hand-off, per op, in ms.\n# TYPE request_latency_ms histogram\n");
        foreach (var (op, h) in RequestLatencies()) h.WriteSamples(b, "request_latency_ms", $"op=\"{OpName(op)}\"");
        b.Append("# HELP fsynctime Journal write (fsync) latency in ms.\n# TYPE fsynctime histogram\n");
        FsyncTime.WriteSamples(b, "fsynctime", "");
        b.Append("# HELP sync_processor_batch_size Txns per journal write (group commit).\n# TYPE sync_processor_batch_size histogram\n");
        JournalBatchSize.WriteSamples(b, "sync_processor_batch_size", "");
        Counter(b, "proposal_count", Proposals);
        Counter(b, "commit_count", Commits);

        var e = Ensemble;
        b.Append("# HELP election_time Leader election duration in ms.\n# TYPE election_time histogram\n");
        e.ElectionTime.WriteSamples(b, "election_time", "");
        Counter(b, "leader_changes", e.LeaderChanges);
        Gauge(b, "learners", e.Learners);
        Gauge(b, "synced_followers", e.SyncedFollowers);
        Counter(b, "member_auth_failures", e.MemberAuthFailures);
        Counter(b, "member_messages_refused", e.MemberMessagesRefused);
        Counter(b, "member_links_silent", e.SilentMemberLinks);
        b.Append("# TYPE follower_sync_count counter\n");
        foreach (var kind in Enum.GetValues<EnsembleMetrics.SyncKind>())
            b.Append("follower_sync_count{kind=\"").Append(kind.ToString().ToUpperInvariant()).Append("\"} ").Append(e.FollowerSyncs(kind)).Append('\n');
        b.Append("# TYPE server_state gauge\nserver_state{state=\"").Append(e.ServerState).Append("\"} 1\n");
    }

    private static void Counter(StringBuilder b, string name, long value) =>
        b.Append("# TYPE ").Append(name).Append(" counter\n").Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private static void Gauge(StringBuilder b, string name, long value) =>
        b.Append("# TYPE ").Append(name).Append(" gauge\n").Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    /// <summary>The op's name as ZooKeeper's client API spells it (the <c>op</c> label).</summary>
    public static string OpName(OpCode op)
    {
        var name = op.ToString();
        return char.ToLowerInvariant(name[0]) + name[1..];
    }
}

public sealed class ServerMetricsProvider : ExtensionIdProvider<ServerMetrics>
{
    public override ServerMetrics CreateExtension(ExtendedActorSystem system)
    {
        var metrics = new ServerMetrics();
        var meter = ServerTelemetry.CreateMeter(metrics, system.Name);
        system.RegisterOnTermination(meter.Dispose);
        GcPauseListener.Register(metrics.GcPauses);
        system.RegisterOnTermination(() => GcPauseListener.Unregister(metrics.GcPauses));
        return metrics;
    }
}
