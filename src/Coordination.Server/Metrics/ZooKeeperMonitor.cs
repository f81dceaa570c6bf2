using System.Globalization;
using System.Text;

namespace Coordination.Server.Metrics;

internal enum MonitorKind
{
    /// <summary>One key, the name itself.</summary>
    Value,
    /// <summary>ZooKeeper's AvgMinMaxCounter: avg_, min_, max_, cnt_, sum_.</summary>
    Summary,
    /// <summary>ZooKeeper's AvgMinMaxPercentileCounter: the summary's keys and p50_, p95_, p99_, p999_.</summary>
    Percentiles,
    /// <summary>ZooKeeper's GaugeSet or CounterSet: one key per member, "&lt;member&gt;_" + the name, made at run time
    /// (none while the set is empty).</summary>
    Set,
}

/// <summary>Which servers report a metric: every server, members of an ensemble, or the leader only.</summary>
internal enum MonitorRole { All, Quorum, Leader }

internal readonly record struct MonitorMetric(string Name, MonitorKind Kind, MonitorRole Role = MonitorRole.All);

/// <summary>
/// mntr and the AdminServer's monitor in ZooKeeper 3.8's names, order and formats (docs/telemetry.md, "mntr and
/// monitor"): ZooKeeperServer's gauges, then ServerMetrics' counters, summaries and summary sets, as Apache 3.8's mntr
/// prints them on a leader (a follower's and a standalone server's are the same list without the keys of the other
/// roles). A metric this server measures gets its value from the caller; one that names a ZooKeeper internal this
/// server does not have is reported as 0 (a count of events that do not happen here, an empty summary), with the
/// decision per group in docs/telemetry.md. The per-namespace quota gauges and refusal counter
/// (<c>&lt;ns&gt;_quota_*_per_namespace</c>) are sets of keys made at run time, one per quota'd namespace. The
/// per-learner (<c>&lt;sid&gt;_learner_handler_qp_*</c>) and per-namespace traffic (<c>*_write_per_namespace</c>)
/// summaries are not reported: their keys come from ZooKeeper's LearnerHandler queue and its namespace byte
/// accounting, neither of which exists here.
/// </summary>
internal static class ZooKeeperMonitor
{
    public static readonly MonitorMetric[] Catalog =
    [
        new("version", MonitorKind.Value),
        new("server_state", MonitorKind.Value),
        new("peer_state", MonitorKind.Value, MonitorRole.Quorum),
        new("ephemerals_count", MonitorKind.Value),
        new("num_alive_connections", MonitorKind.Value),
        new("avg_latency", MonitorKind.Value),
        new("min_proposal_size", MonitorKind.Value, MonitorRole.Leader),
        new("outstanding_requests", MonitorKind.Value),
        new("znode_count", MonitorKind.Value),
        new("global_sessions", MonitorKind.Value),
        new("non_mtls_remote_conn_count", MonitorKind.Value),
        new("last_client_response_size", MonitorKind.Value),
        new("packets_sent", MonitorKind.Value),
        new("packets_received", MonitorKind.Value),
        new("max_proposal_size", MonitorKind.Value, MonitorRole.Leader),
        new("max_client_response_size", MonitorKind.Value),
        new("synced_followers", MonitorKind.Value, MonitorRole.Leader),
        new("connection_drop_probability", MonitorKind.Value),
        new("watch_count", MonitorKind.Value),
        new("synced_non_voting_followers", MonitorKind.Value, MonitorRole.Leader),
        new("synced_observers", MonitorKind.Value, MonitorRole.Leader),
        new("auth_failed_count", MonitorKind.Value),
        new("min_latency", MonitorKind.Value),
        new("max_file_descriptor_count", MonitorKind.Value),
        new("approximate_data_size", MonitorKind.Value),
        new("open_file_descriptor_count", MonitorKind.Value),
        new("last_proposal_size", MonitorKind.Value, MonitorRole.Leader),
        new("pending_syncs", MonitorKind.Value, MonitorRole.Leader),
        new("leader_uptime", MonitorKind.Value, MonitorRole.Leader),
        new("local_sessions", MonitorKind.Value),
        new("uptime", MonitorKind.Value),
        new("max_latency", MonitorKind.Value),
        new("outstanding_tls_handshake", MonitorKind.Value),
        new("learners", MonitorKind.Value, MonitorRole.Leader),
        new("min_client_response_size", MonitorKind.Value),
        new("non_mtls_local_conn_count", MonitorKind.Value),
        new("quorum_size", MonitorKind.Value, MonitorRole.Quorum),
        // Apache 3.8 prints its gauge sets here, in this order (its hash map's).
        new(QuotaBytesLimit, MonitorKind.Set),
        new(QuotaCountUsage, MonitorKind.Set),
        new(QuotaCountLimit, MonitorKind.Set),
        new(QuotaBytesUsage, MonitorKind.Set),
        new("proposal_count", MonitorKind.Value),
        new("watch_bytes", MonitorKind.Value),
        new("outstanding_changes_removed", MonitorKind.Value),
        new("throttled_ops", MonitorKind.Value),
        new("stale_requests_dropped", MonitorKind.Value),
        new("large_requests_rejected", MonitorKind.Value),
        new("insecure_admin_count", MonitorKind.Value),
        new("connection_rejected", MonitorKind.Value),
        new("cnxn_closed_without_zk_server_running", MonitorKind.Value),
        new("sessionless_connections_expired", MonitorKind.Value),
        new("looking_count", MonitorKind.Value),
        new("dead_watchers_queued", MonitorKind.Value),
        new("stale_requests", MonitorKind.Value),
        new("connection_drop_count", MonitorKind.Value),
        new("learner_proposal_received_count", MonitorKind.Value),
        new("digest_mismatches_count", MonitorKind.Value),
        new("dead_watchers_cleared", MonitorKind.Value),
        new("response_packet_cache_hits", MonitorKind.Value),
        new("bytes_received_count", MonitorKind.Value),
        new("add_dead_watcher_stall_time", MonitorKind.Value),
        new("request_throttle_wait_count", MonitorKind.Value),
        new("requests_not_forwarded_to_commit_processor", MonitorKind.Value),
        new("response_packet_cache_misses", MonitorKind.Value),
        new("ensemble_auth_success", MonitorKind.Value),
        new("prep_processor_request_queued", MonitorKind.Value),
        new("learner_commit_received_count", MonitorKind.Value),
        new("stale_replies", MonitorKind.Value),
        new("connection_request_count", MonitorKind.Value),
        new("response_bytes", MonitorKind.Value),
        new("ensemble_auth_fail", MonitorKind.Value),
        new("diff_count", MonitorKind.Value),
        new("response_packet_get_children_cache_misses", MonitorKind.Value),
        new("connection_revalidate_count", MonitorKind.Value),
        new("quit_leading_due_to_disloyal_voter", MonitorKind.Value),
        new("snap_count", MonitorKind.Value),
        new("unrecoverable_error_count", MonitorKind.Value),
        new("unsuccessful_handshake", MonitorKind.Value),
        new("commit_count", MonitorKind.Value),
        new("stale_sessions_expired", MonitorKind.Value),
        new("response_packet_get_children_cache_hits", MonitorKind.Value),
        new("sync_processor_request_queued", MonitorKind.Value),
        new("outstanding_changes_queued", MonitorKind.Value),
        new("request_commit_queued", MonitorKind.Value),
        new("ensemble_auth_skip", MonitorKind.Value),
        new("skip_learner_request_to_next_processor_count", MonitorKind.Value),
        new("tls_handshake_exceeded", MonitorKind.Value),
        new("revalidate_count", MonitorKind.Value),
        new(QuotaExceededError, MonitorKind.Set),
        new("socket_closing_time", MonitorKind.Summary),
        new("proposal_process_time", MonitorKind.Summary),
        new("leader_unavailable_time", MonitorKind.Summary),
        new("node_created_watch_count", MonitorKind.Summary),
        new("session_queues_drained", MonitorKind.Summary),
        new("write_commit_proc_req_queued", MonitorKind.Summary),
        new("connection_token_deficit", MonitorKind.Summary),
        new("read_commit_proc_req_queued", MonitorKind.Summary),
        new("node_deleted_watch_count", MonitorKind.Summary),
        new("startup_txns_load_time", MonitorKind.Summary),
        new("sync_processor_queue_size", MonitorKind.Summary),
        new("follower_sync_time", MonitorKind.Summary),
        new("prep_processor_queue_size", MonitorKind.Summary),
        new("fsynctime", MonitorKind.Summary),
        new("inflight_snap_count", MonitorKind.Summary),
        new("reads_issued_from_session_queue", MonitorKind.Summary),
        new("learner_request_processor_queue_size", MonitorKind.Summary),
        new("snapshottime", MonitorKind.Summary),
        new("unavailable_time", MonitorKind.Summary),
        new("startup_txns_loaded", MonitorKind.Summary),
        new("reads_after_write_in_session_queue", MonitorKind.Summary),
        new("requests_in_session_queue", MonitorKind.Summary),
        new("write_commit_proc_issued", MonitorKind.Summary),
        new("prep_process_time", MonitorKind.Summary),
        new("pending_session_queue_size", MonitorKind.Summary),
        new("time_waiting_empty_pool_in_commit_processor_read_ms", MonitorKind.Summary),
        new("commit_process_time", MonitorKind.Summary),
        new("dbinittime", MonitorKind.Summary),
        new("inflight_diff_count", MonitorKind.Summary),
        new("netty_queued_buffer_capacity", MonitorKind.Summary),
        new("election_time", MonitorKind.Summary),
        new("commit_commit_proc_req_queued", MonitorKind.Summary),
        new("sync_processor_batch_size", MonitorKind.Summary),
        new("node_children_watch_count", MonitorKind.Summary),
        new("write_batch_time_in_commit_processor", MonitorKind.Summary),
        new("read_commit_proc_issued", MonitorKind.Summary),
        new("concurrent_request_processing_in_commit_processor", MonitorKind.Summary),
        new("observer_sync_time", MonitorKind.Summary),
        new("node_changed_watch_count", MonitorKind.Summary),
        new("sync_process_time", MonitorKind.Summary),
        new("startup_snap_load_time", MonitorKind.Summary),
        new("prep_processor_queue_time_ms", MonitorKind.Percentiles),
        new("jvm_pause_time_ms", MonitorKind.Percentiles),
        new("close_session_prep_time", MonitorKind.Percentiles),
        new("read_commitproc_time_ms", MonitorKind.Percentiles),
        new("updatelatency", MonitorKind.Percentiles),
        new("local_write_committed_time_ms", MonitorKind.Percentiles),
        new("request_throttle_queue_time_ms", MonitorKind.Percentiles),
        new("readlatency", MonitorKind.Percentiles),
        new("quorum_ack_latency", MonitorKind.Percentiles),
        new("om_commit_process_time_ms", MonitorKind.Percentiles),
        new("read_final_proc_time_ms", MonitorKind.Percentiles),
        new("commit_propagation_latency", MonitorKind.Percentiles),
        new("dead_watchers_cleaner_latency", MonitorKind.Percentiles),
        new("write_final_proc_time_ms", MonitorKind.Percentiles),
        new("proposal_ack_creation_latency", MonitorKind.Percentiles),
        new("proposal_latency", MonitorKind.Percentiles),
        new("om_proposal_process_time_ms", MonitorKind.Percentiles),
        new("sync_processor_queue_and_flush_time_ms", MonitorKind.Percentiles),
        new("propagation_latency", MonitorKind.Percentiles),
        new("server_write_committed_time_ms", MonitorKind.Percentiles),
        new("sync_processor_queue_time_ms", MonitorKind.Percentiles),
        new("sync_processor_queue_flush_time_ms", MonitorKind.Percentiles),
        new("write_commitproc_time_ms", MonitorKind.Percentiles),
    ];

    // ZooKeeper 3.8's QuotaMetricsUtils: gauges per quota'd namespace, and the refusals of its hard limits.
    public const string QuotaCountLimit = "quota_count_limit_per_namespace";
    public const string QuotaBytesLimit = "quota_bytes_limit_per_namespace";
    public const string QuotaCountUsage = "quota_count_usage_per_namespace";
    public const string QuotaBytesUsage = "quota_bytes_usage_per_namespace";
    public const string QuotaExceededError = "quota_exceeded_error_per_namespace";

    /// <summary>The names of the sets (<see cref="MonitorKind.Set"/>), which /metrics writes as one family with a
    /// <c>key</c> label per member, as ZooKeeper's Prometheus provider does.</summary>
    public static readonly IReadOnlySet<string> SetNames = Catalog.Where(m => m.Kind == MonitorKind.Set).Select(m => m.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>The per-namespace quota sets of mntr, from the quota gauges and the refusal counts.</summary>
    public static Dictionary<string, IReadOnlyList<(string Member, long Value)>> QuotaSets(IReadOnlyList<Core.NamespaceQuota> quotas,
        IReadOnlyList<(string Namespace, long Count)> refused)
    {
        IReadOnlyList<(string, long)> Of(Func<Core.NamespaceQuota, long?> value) =>
            [.. quotas.Where(q => value(q) is not null).Select(q => (q.Namespace, value(q)!.Value))];
        return new(StringComparer.Ordinal)
        {
            [QuotaCountLimit] = Of(q => q.CountLimit),
            [QuotaBytesLimit] = Of(q => q.BytesLimit),
            [QuotaCountUsage] = Of(q => q.CountUsage),
            [QuotaBytesUsage] = Of(q => q.BytesUsage),
            [QuotaExceededError] = refused,
        };
    }

    private static readonly string[] SummaryPrefixes = ["avg_", "min_", "max_", "cnt_", "sum_"];
    private static readonly (string Prefix, double Quantile)[] PercentilePrefixes = [("p50_", 0.5), ("p95_", 0.95), ("p99_", 0.99), ("p999_", 0.999)];

    /// <summary>The role of a server in mntr's server_state ("standalone", "leader", "follower", "observer", "read-only").</summary>
    public static MonitorRole RoleOf(string serverState) => serverState switch
    {
        "standalone" => MonitorRole.All,
        "leader" => MonitorRole.Leader,
        _ => MonitorRole.Quorum,
    };

    /// <summary>
    /// Writes mntr's lines: every catalog metric of <paramref name="role"/> in ZooKeeper's order, then this server's
    /// own keys (those of <paramref name="values"/> that ZooKeeper does not have) in their given order.
    /// </summary>
    public static void Write(StringBuilder b, MonitorRole role, IReadOnlyList<(string Name, object Value)> values, IReadOnlyDictionary<string, Summary> summaries,
        IReadOnlyDictionary<string, IReadOnlyList<(string Member, long Value)>>? sets = null)
    {
        var byName = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (name, value) in values) byName.TryAdd(name, value);
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var metric in Catalog)
        {
            if (metric.Role > role) continue;
            if (metric.Kind == MonitorKind.Value)
            {
                Line(b, metric.Name, byName.GetValueOrDefault(metric.Name, 0L));
                written.Add(metric.Name);
                continue;
            }
            if (metric.Kind == MonitorKind.Set)
            {
                foreach (var (member, value) in sets?.GetValueOrDefault(metric.Name) ?? []) Line(b, member + "_" + metric.Name, value);
                continue;
            }
            var s = summaries.GetValueOrDefault(metric.Name, Summary.Empty);
            object[] figures = [s.Average, Whole(s.Count == 0 ? 0 : s.Min), Whole(s.Max), s.Count, Whole(s.Sum)];
            for (var i = 0; i < SummaryPrefixes.Length; i++) Line(b, SummaryPrefixes[i] + metric.Name, figures[i]);
            if (metric.Kind == MonitorKind.Percentiles)
                foreach (var (prefix, quantile) in PercentilePrefixes) Line(b, prefix + metric.Name, Whole(s.Percentile(quantile)));
        }
        foreach (var (name, value) in values)
            if (written.Add(name)) Line(b, name, value);
    }

    // ZooKeeper's summaries hold whole numbers (ms, counts, bytes); only avg_ has a fraction.
    private static long Whole(double value) => (long)Math.Round(value, MidpointRounding.AwayFromZero);

    private static void Line(StringBuilder b, string name, object value)
    {
        b.Append("zk_").Append(name).Append('\t');
        if (value is double d) b.Append(d.ToString("0.0###", CultureInfo.InvariantCulture));
        else b.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
        b.Append('\n');
    }
}
