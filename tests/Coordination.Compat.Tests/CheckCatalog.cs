namespace Coordination.Compat.Tests;

/// <summary>
/// The check names of tests/compat/kazoo_checks.py and tests/compat/java/ZkChecks.java, hard-coded so
/// that every (check, target) pair is its own test. <see cref="CatalogTests"/> fails when these lists
/// and the scripts' --list output drift apart.
/// </summary>
public static class CheckCatalog
{
    public static readonly string[] Kazoo =
    {
        "create_stat",
        "null_data",
        "set_stat",
        "child_stat",
        "set_acls_stat",
        "delete_semantics",
        "error_codes",
        "invalid_paths",
        "zookeeper_subtree",
        "sequential",
        "sequential_concurrent",
        "ephemeral",
        "ephemeral_cleanup_on_close",
        "session_expiry",
        "get_children",
        "data_watch_once",
        "exists_watch",
        "child_watch",
        "watch_multiple_types_on_delete",
        "watch_before_response",
        "watch_event_order",
        "read_your_writes_pipelined",
        "multi_commit",
        "multi_rollback",
        "multi_check_version",
        "multi_watches",
        "acl_digest",
        "acl_permissions",
        "acl_auth_scheme",
        "acl_invalid",
        "sync",
        "recipe_lock",
        "recipe_semaphore",
        "recipe_election",
        "recipe_barrier",
        "recipe_double_barrier",
        "recipe_counter",
        "recipe_queue",
        "recipe_locking_queue",
        "recipe_watchers_cache",
        "fourlw_basic",
        "fourlw_mntr_conf_envi",
        "fourlw_sessions_watches",
    };

    public static readonly string[] Java =
    {
        "create_modes_stat",
        "null_data",
        "container_nodes",
        "ttl_nodes",
        "all_children_number",
        "get_ephemerals",
        "multi_read",
        "multi_error_results",
        "persistent_watch",
        "persistent_recursive_watch",
        "remove_watches",
        "who_am_i",
        "acl_with_stat",
        "async_pipelined_fifo",
        "watch_before_async_response",
        "session_reattach",
        "set_watches_on_reconnect",
        "close_session_ephemerals",
        "get_children_stat_and_data",
        "zkcli",
    };

    public static TheoryData<string> KazooChecks => ToTheoryData(Kazoo);

    public static TheoryData<string> JavaChecks => ToTheoryData(Java);

    private static TheoryData<string> ToTheoryData(IEnumerable<string> names)
    {
        var data = new TheoryData<string>();
        foreach (var n in names)
        {
            data.Add(n);
        }
        return data;
    }
}
