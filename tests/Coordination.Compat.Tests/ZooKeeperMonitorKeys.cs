using System.Text.RegularExpressions;

namespace Coordination.Compat.Tests;

/// <summary>
/// The keys of Apache ZooKeeper 3.8's mntr and AdminServer monitor (without the zk_ prefix), in the order its mntr
/// prints them: read from Apache 3.8's own mntr on a leader of a 3-member ensemble (a follower prints the same list
/// without <see cref="LeaderOnly"/>, a standalone server also without <see cref="QuorumOnly"/>). The tests run the same
/// checks against Apache 3.8, so a list that drifted from Apache's output fails there.
/// </summary>
public static partial class ZooKeeperMonitorKeys
{
    private const string LeaderList = """
        version server_state peer_state ephemerals_count num_alive_connections avg_latency min_proposal_size
        outstanding_requests znode_count global_sessions non_mtls_remote_conn_count last_client_response_size
        packets_sent packets_received max_proposal_size max_client_response_size synced_followers
        connection_drop_probability watch_count synced_non_voting_followers synced_observers auth_failed_count
        min_latency max_file_descriptor_count approximate_data_size open_file_descriptor_count last_proposal_size
        pending_syncs leader_uptime local_sessions uptime max_latency outstanding_tls_handshake learners
        min_client_response_size non_mtls_local_conn_count quorum_size proposal_count watch_bytes
        outstanding_changes_removed throttled_ops stale_requests_dropped large_requests_rejected insecure_admin_count
        connection_rejected cnxn_closed_without_zk_server_running sessionless_connections_expired looking_count
        dead_watchers_queued stale_requests connection_drop_count learner_proposal_received_count
        digest_mismatches_count dead_watchers_cleared response_packet_cache_hits bytes_received_count
        add_dead_watcher_stall_time request_throttle_wait_count requests_not_forwarded_to_commit_processor
        response_packet_cache_misses ensemble_auth_success prep_processor_request_queued
        learner_commit_received_count stale_replies connection_request_count response_bytes ensemble_auth_fail
        diff_count response_packet_get_children_cache_misses connection_revalidate_count
        quit_leading_due_to_disloyal_voter snap_count unrecoverable_error_count unsuccessful_handshake commit_count
        stale_sessions_expired response_packet_get_children_cache_hits sync_processor_request_queued
        outstanding_changes_queued request_commit_queued ensemble_auth_skip
        skip_learner_request_to_next_processor_count tls_handshake_exceeded revalidate_count avg_socket_closing_time
        min_socket_closing_time max_socket_closing_time cnt_socket_closing_time sum_socket_closing_time
        avg_proposal_process_time min_proposal_process_time max_proposal_process_time cnt_proposal_process_time
        sum_proposal_process_time avg_leader_unavailable_time min_leader_unavailable_time max_leader_unavailable_time
        cnt_leader_unavailable_time sum_leader_unavailable_time avg_node_created_watch_count
        min_node_created_watch_count max_node_created_watch_count cnt_node_created_watch_count
        sum_node_created_watch_count avg_session_queues_drained min_session_queues_drained max_session_queues_drained
        cnt_session_queues_drained sum_session_queues_drained avg_write_commit_proc_req_queued
        min_write_commit_proc_req_queued max_write_commit_proc_req_queued cnt_write_commit_proc_req_queued
        sum_write_commit_proc_req_queued avg_connection_token_deficit min_connection_token_deficit
        max_connection_token_deficit cnt_connection_token_deficit sum_connection_token_deficit
        avg_read_commit_proc_req_queued min_read_commit_proc_req_queued max_read_commit_proc_req_queued
        cnt_read_commit_proc_req_queued sum_read_commit_proc_req_queued avg_node_deleted_watch_count
        min_node_deleted_watch_count max_node_deleted_watch_count cnt_node_deleted_watch_count
        sum_node_deleted_watch_count avg_startup_txns_load_time min_startup_txns_load_time max_startup_txns_load_time
        cnt_startup_txns_load_time sum_startup_txns_load_time avg_sync_processor_queue_size
        min_sync_processor_queue_size max_sync_processor_queue_size cnt_sync_processor_queue_size
        sum_sync_processor_queue_size avg_follower_sync_time min_follower_sync_time max_follower_sync_time
        cnt_follower_sync_time sum_follower_sync_time avg_prep_processor_queue_size min_prep_processor_queue_size
        max_prep_processor_queue_size cnt_prep_processor_queue_size sum_prep_processor_queue_size avg_fsynctime
        min_fsynctime max_fsynctime cnt_fsynctime sum_fsynctime avg_inflight_snap_count min_inflight_snap_count
        max_inflight_snap_count cnt_inflight_snap_count sum_inflight_snap_count avg_reads_issued_from_session_queue
        min_reads_issued_from_session_queue max_reads_issued_from_session_queue cnt_reads_issued_from_session_queue
        sum_reads_issued_from_session_queue avg_learner_request_processor_queue_size
        min_learner_request_processor_queue_size max_learner_request_processor_queue_size
        cnt_learner_request_processor_queue_size sum_learner_request_processor_queue_size avg_snapshottime
        min_snapshottime max_snapshottime cnt_snapshottime sum_snapshottime avg_unavailable_time min_unavailable_time
        max_unavailable_time cnt_unavailable_time sum_unavailable_time avg_startup_txns_loaded
        min_startup_txns_loaded max_startup_txns_loaded cnt_startup_txns_loaded sum_startup_txns_loaded
        avg_reads_after_write_in_session_queue min_reads_after_write_in_session_queue
        max_reads_after_write_in_session_queue cnt_reads_after_write_in_session_queue
        sum_reads_after_write_in_session_queue avg_requests_in_session_queue min_requests_in_session_queue
        max_requests_in_session_queue cnt_requests_in_session_queue sum_requests_in_session_queue
        avg_write_commit_proc_issued min_write_commit_proc_issued max_write_commit_proc_issued
        cnt_write_commit_proc_issued sum_write_commit_proc_issued avg_prep_process_time min_prep_process_time
        max_prep_process_time cnt_prep_process_time sum_prep_process_time avg_pending_session_queue_size
        min_pending_session_queue_size max_pending_session_queue_size cnt_pending_session_queue_size
        sum_pending_session_queue_size avg_time_waiting_empty_pool_in_commit_processor_read_ms
        min_time_waiting_empty_pool_in_commit_processor_read_ms
        max_time_waiting_empty_pool_in_commit_processor_read_ms
        cnt_time_waiting_empty_pool_in_commit_processor_read_ms
        sum_time_waiting_empty_pool_in_commit_processor_read_ms avg_commit_process_time min_commit_process_time
        max_commit_process_time cnt_commit_process_time sum_commit_process_time avg_dbinittime min_dbinittime
        max_dbinittime cnt_dbinittime sum_dbinittime avg_inflight_diff_count min_inflight_diff_count
        max_inflight_diff_count cnt_inflight_diff_count sum_inflight_diff_count avg_netty_queued_buffer_capacity
        min_netty_queued_buffer_capacity max_netty_queued_buffer_capacity cnt_netty_queued_buffer_capacity
        sum_netty_queued_buffer_capacity avg_election_time min_election_time max_election_time cnt_election_time
        sum_election_time avg_commit_commit_proc_req_queued min_commit_commit_proc_req_queued
        max_commit_commit_proc_req_queued cnt_commit_commit_proc_req_queued sum_commit_commit_proc_req_queued
        avg_sync_processor_batch_size min_sync_processor_batch_size max_sync_processor_batch_size
        cnt_sync_processor_batch_size sum_sync_processor_batch_size avg_node_children_watch_count
        min_node_children_watch_count max_node_children_watch_count cnt_node_children_watch_count
        sum_node_children_watch_count avg_write_batch_time_in_commit_processor
        min_write_batch_time_in_commit_processor max_write_batch_time_in_commit_processor
        cnt_write_batch_time_in_commit_processor sum_write_batch_time_in_commit_processor avg_read_commit_proc_issued
        min_read_commit_proc_issued max_read_commit_proc_issued cnt_read_commit_proc_issued
        sum_read_commit_proc_issued avg_concurrent_request_processing_in_commit_processor
        min_concurrent_request_processing_in_commit_processor max_concurrent_request_processing_in_commit_processor
        cnt_concurrent_request_processing_in_commit_processor sum_concurrent_request_processing_in_commit_processor
        avg_observer_sync_time min_observer_sync_time max_observer_sync_time cnt_observer_sync_time
        sum_observer_sync_time avg_node_changed_watch_count min_node_changed_watch_count max_node_changed_watch_count
        cnt_node_changed_watch_count sum_node_changed_watch_count avg_sync_process_time min_sync_process_time
        max_sync_process_time cnt_sync_process_time sum_sync_process_time avg_startup_snap_load_time
        min_startup_snap_load_time max_startup_snap_load_time cnt_startup_snap_load_time sum_startup_snap_load_time
        avg_prep_processor_queue_time_ms min_prep_processor_queue_time_ms max_prep_processor_queue_time_ms
        cnt_prep_processor_queue_time_ms sum_prep_processor_queue_time_ms p50_prep_processor_queue_time_ms
        p95_prep_processor_queue_time_ms p99_prep_processor_queue_time_ms p999_prep_processor_queue_time_ms
        avg_jvm_pause_time_ms min_jvm_pause_time_ms max_jvm_pause_time_ms cnt_jvm_pause_time_ms sum_jvm_pause_time_ms
        p50_jvm_pause_time_ms p95_jvm_pause_time_ms p99_jvm_pause_time_ms p999_jvm_pause_time_ms
        avg_close_session_prep_time min_close_session_prep_time max_close_session_prep_time
        cnt_close_session_prep_time sum_close_session_prep_time p50_close_session_prep_time
        p95_close_session_prep_time p99_close_session_prep_time p999_close_session_prep_time
        avg_read_commitproc_time_ms min_read_commitproc_time_ms max_read_commitproc_time_ms
        cnt_read_commitproc_time_ms sum_read_commitproc_time_ms p50_read_commitproc_time_ms
        p95_read_commitproc_time_ms p99_read_commitproc_time_ms p999_read_commitproc_time_ms avg_updatelatency
        min_updatelatency max_updatelatency cnt_updatelatency sum_updatelatency p50_updatelatency p95_updatelatency
        p99_updatelatency p999_updatelatency avg_local_write_committed_time_ms min_local_write_committed_time_ms
        max_local_write_committed_time_ms cnt_local_write_committed_time_ms sum_local_write_committed_time_ms
        p50_local_write_committed_time_ms p95_local_write_committed_time_ms p99_local_write_committed_time_ms
        p999_local_write_committed_time_ms avg_request_throttle_queue_time_ms min_request_throttle_queue_time_ms
        max_request_throttle_queue_time_ms cnt_request_throttle_queue_time_ms sum_request_throttle_queue_time_ms
        p50_request_throttle_queue_time_ms p95_request_throttle_queue_time_ms p99_request_throttle_queue_time_ms
        p999_request_throttle_queue_time_ms avg_readlatency min_readlatency max_readlatency cnt_readlatency
        sum_readlatency p50_readlatency p95_readlatency p99_readlatency p999_readlatency avg_quorum_ack_latency
        min_quorum_ack_latency max_quorum_ack_latency cnt_quorum_ack_latency sum_quorum_ack_latency
        p50_quorum_ack_latency p95_quorum_ack_latency p99_quorum_ack_latency p999_quorum_ack_latency
        avg_om_commit_process_time_ms min_om_commit_process_time_ms max_om_commit_process_time_ms
        cnt_om_commit_process_time_ms sum_om_commit_process_time_ms p50_om_commit_process_time_ms
        p95_om_commit_process_time_ms p99_om_commit_process_time_ms p999_om_commit_process_time_ms
        avg_read_final_proc_time_ms min_read_final_proc_time_ms max_read_final_proc_time_ms
        cnt_read_final_proc_time_ms sum_read_final_proc_time_ms p50_read_final_proc_time_ms
        p95_read_final_proc_time_ms p99_read_final_proc_time_ms p999_read_final_proc_time_ms
        avg_commit_propagation_latency min_commit_propagation_latency max_commit_propagation_latency
        cnt_commit_propagation_latency sum_commit_propagation_latency p50_commit_propagation_latency
        p95_commit_propagation_latency p99_commit_propagation_latency p999_commit_propagation_latency
        avg_dead_watchers_cleaner_latency min_dead_watchers_cleaner_latency max_dead_watchers_cleaner_latency
        cnt_dead_watchers_cleaner_latency sum_dead_watchers_cleaner_latency p50_dead_watchers_cleaner_latency
        p95_dead_watchers_cleaner_latency p99_dead_watchers_cleaner_latency p999_dead_watchers_cleaner_latency
        avg_write_final_proc_time_ms min_write_final_proc_time_ms max_write_final_proc_time_ms
        cnt_write_final_proc_time_ms sum_write_final_proc_time_ms p50_write_final_proc_time_ms
        p95_write_final_proc_time_ms p99_write_final_proc_time_ms p999_write_final_proc_time_ms
        avg_proposal_ack_creation_latency min_proposal_ack_creation_latency max_proposal_ack_creation_latency
        cnt_proposal_ack_creation_latency sum_proposal_ack_creation_latency p50_proposal_ack_creation_latency
        p95_proposal_ack_creation_latency p99_proposal_ack_creation_latency p999_proposal_ack_creation_latency
        avg_proposal_latency min_proposal_latency max_proposal_latency cnt_proposal_latency sum_proposal_latency
        p50_proposal_latency p95_proposal_latency p99_proposal_latency p999_proposal_latency
        avg_om_proposal_process_time_ms min_om_proposal_process_time_ms max_om_proposal_process_time_ms
        cnt_om_proposal_process_time_ms sum_om_proposal_process_time_ms p50_om_proposal_process_time_ms
        p95_om_proposal_process_time_ms p99_om_proposal_process_time_ms p999_om_proposal_process_time_ms
        avg_sync_processor_queue_and_flush_time_ms min_sync_processor_queue_and_flush_time_ms
        max_sync_processor_queue_and_flush_time_ms cnt_sync_processor_queue_and_flush_time_ms
        sum_sync_processor_queue_and_flush_time_ms p50_sync_processor_queue_and_flush_time_ms
        p95_sync_processor_queue_and_flush_time_ms p99_sync_processor_queue_and_flush_time_ms
        p999_sync_processor_queue_and_flush_time_ms avg_propagation_latency min_propagation_latency
        max_propagation_latency cnt_propagation_latency sum_propagation_latency p50_propagation_latency
        p95_propagation_latency p99_propagation_latency p999_propagation_latency avg_server_write_committed_time_ms
        min_server_write_committed_time_ms max_server_write_committed_time_ms cnt_server_write_committed_time_ms
        sum_server_write_committed_time_ms p50_server_write_committed_time_ms p95_server_write_committed_time_ms
        p99_server_write_committed_time_ms p999_server_write_committed_time_ms avg_sync_processor_queue_time_ms
        min_sync_processor_queue_time_ms max_sync_processor_queue_time_ms cnt_sync_processor_queue_time_ms
        sum_sync_processor_queue_time_ms p50_sync_processor_queue_time_ms p95_sync_processor_queue_time_ms
        p99_sync_processor_queue_time_ms p999_sync_processor_queue_time_ms avg_sync_processor_queue_flush_time_ms
        min_sync_processor_queue_flush_time_ms max_sync_processor_queue_flush_time_ms
        cnt_sync_processor_queue_flush_time_ms sum_sync_processor_queue_flush_time_ms
        p50_sync_processor_queue_flush_time_ms p95_sync_processor_queue_flush_time_ms
        p99_sync_processor_queue_flush_time_ms p999_sync_processor_queue_flush_time_ms avg_write_commitproc_time_ms
        min_write_commitproc_time_ms max_write_commitproc_time_ms cnt_write_commitproc_time_ms
        sum_write_commitproc_time_ms p50_write_commitproc_time_ms p95_write_commitproc_time_ms
        p99_write_commitproc_time_ms p999_write_commitproc_time_ms
        """;

    /// <summary>Every key of a leader's mntr, in order (the run-time <see cref="IsRunTimeKey"/> keys aside).</summary>
    public static readonly string[] Leader = LeaderList.Split([' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);

    public static readonly string[] LeaderOnly = ["min_proposal_size", "max_proposal_size", "synced_followers", "synced_non_voting_followers",
        "synced_observers", "last_proposal_size", "pending_syncs", "leader_uptime", "learners"];
    public static readonly string[] QuorumOnly = ["peer_state", "quorum_size"];

    public static string[] For(string serverState) => serverState switch
    {
        "leader" => Leader,
        "standalone" => [.. Leader.Except(LeaderOnly).Except(QuorumOnly)],
        _ => [.. Leader.Except(LeaderOnly)],
    };

    /// <summary>Keys Apache makes at run time: a summary per learner handler on the leader (named by the learner's
    /// server id) and per top-level namespace read from or written to (bytes per namespace), and, once a quota exists
    /// under a namespace, its quota gauges and exceeded counter (3.8's QuotaMetricsUtils; a server shared with the
    /// quota tests has them). Ours reports the quota ones (AdminCompatTests compares their values with Apache's).</summary>
    public static bool IsRunTimeKey(string key) => RunTimeKey().IsMatch(key);

    [GeneratedRegex(@"^((avg|min|max|cnt|sum|p50|p95|p99|p999)_(\d+_learner_handler_qp_(size|time_ms)|.+_(read|write)_per_namespace)|.+_quota_((count|bytes)_(limit|usage)|exceeded_error)_per_namespace)$")]
    private static partial Regex RunTimeKey();

    /// <summary>
    /// The keys ours does not report, each with its reason; every other key of <see cref="For"/> must be there, and
    /// these must not (so this list stays exact). The decisions per group are in docs/telemetry.md.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> NotReportedByOurs = new Dictionary<string, string>
    {
        // None since ours records each GC pause (jvm_pause_time_ms' min, max and percentiles included). A key added
        // here must have its reason, and docs/telemetry.md the decision.
    };

    /// <summary>
    /// A monitor (or mntr) answer of a <paramref name="serverState"/> server has ZooKeeper's full key set: ours every key
    /// but <see cref="NotReportedByOurs"/> (and none of those; its own keys besides are allowed), Apache exactly the
    /// list and its run-time keys (which keeps the list true to Apache's output).
    /// </summary>
    public static void AssertKeys(IEnumerable<string> reported, string serverState, bool ours, string where)
    {
        var expected = For(serverState);
        var present = reported.ToHashSet(StringComparer.Ordinal);
        var missing = expected.Where(k => !present.Contains(k) && !(ours && NotReportedByOurs.ContainsKey(k))).ToList();
        Assert.True(missing.Count == 0, $"{where} ({serverState}): ZooKeeper's keys missing: {string.Join(", ", missing)}");
        if (ours)
        {
            var excludedButPresent = NotReportedByOurs.Keys.Where(present.Contains).ToList();
            Assert.True(excludedButPresent.Count == 0, $"{where}: listed as not reported but present: {string.Join(", ", excludedButPresent)}");
        }
        else
        {
            var unknown = present.Except(expected).Except(["command", "error"]).Where(k => !IsRunTimeKey(k)).ToList();
            Assert.True(unknown.Count == 0, $"{where} ({serverState}): Apache reports keys the list does not have: {string.Join(", ", unknown)}");
        }
    }

    /// <summary>mntr's lines (zk_ prefix removed) print ZooKeeper's keys in ZooKeeper's order.</summary>
    public static void AssertOrder(string mntr, string serverState, string where)
    {
        var expected = For(serverState);
        var rank = expected.Select((k, i) => (k, i)).ToDictionary(p => p.k, p => p.i);
        var keys = mntr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]).ToList();
        Assert.All(keys, k => Assert.StartsWith("zk_", k));
        var ranks = keys.Select(k => k[3..]).Where(rank.ContainsKey).Select(k => rank[k]).ToList();
        var outOfOrder = ranks.Zip(ranks.Skip(1)).Where(p => p.Item1 > p.Item2).Select(p => expected[p.Item2]).ToList();
        Assert.True(outOfOrder.Count == 0, $"{where}: out of ZooKeeper's order: {string.Join(", ", outOfOrder)}");
    }
}
