using System.Text;
using Coordination.Protocol;
using Microsoft.Extensions.Logging;

namespace Coordination.Client;

/// <summary>The ensemble's configuration and the Stat of <c>/zookeeper/config</c> (a reconfig answers data version -1, as ZooKeeper).</summary>
public sealed record ConfigResult(QuorumConfig Config, Stat Stat);

/// <summary>Dynamic reconfiguration (ZooKeeper 3.5's getConfig and ZooKeeperAdmin.reconfigure) and host-list updates.</summary>
public sealed partial class CoordinationClient
{
    /// <summary>
    /// The ensemble's configuration: <c>/zookeeper/config</c> parsed (ZooKeeper's getConfig; the node is outside any
    /// chroot). A watcher fires when a reconfiguration commits. Needs READ on the node (world-readable by default).
    /// </summary>
    public async Task<ConfigResult> GetConfigAsync(Action<WatchedEvent>? watcher = null, CancellationToken ct = default)
    {
        var watch = watcher is null ? null : new WatchRegistration(WatchKind.Data, QuorumConfig.ZnodePath, watcher);
        var response = await Call<GetDataResponse>(OpCode.GetData, new PathWatchRequest(QuorumConfig.ZnodePath, watcher is not null),
            QuorumConfig.ZnodePath, watch, ct).ConfigureAwait(false);
        return ToConfigResult(response);
    }

    /// <summary>
    /// Incremental reconfiguration (zkCli <c>reconfig -add/-remove</c>): adds or changes the members of
    /// <paramref name="joining"/> (<c>server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]</c> lines,
    /// see <see cref="QuorumServer.ToConfigLine"/>; a known id with another role changes its role) and removes the
    /// ids of <paramref name="leaving"/>. <paramref name="fromConfigVersion"/> (-1: any) makes it a compare-and-set on
    /// the current configuration's version (<see cref="BadVersionException"/> otherwise). Returns the committed
    /// configuration. Needs reconfiguration enabled on the servers (<see cref="KeeperException"/> with
    /// <see cref="ErrorCode.ReconfigDisabled"/>) and the super user or WRITE on <c>/zookeeper/config</c>
    /// (<see cref="NoAuthException"/>); other refusals: BadArguments, NewConfigNoQuorum, ReconfigInProgress.
    /// </summary>
    public Task<ConfigResult> ReconfigAsync(IEnumerable<string>? joining, IEnumerable<long>? leaving, long fromConfigVersion = -1, CancellationToken ct = default)
    {
        var join = JoinOrNull(joining);
        var leave = JoinOrNull(leaving?.Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (join is null && leave is null) throw new ArgumentException("an incremental reconfig needs servers joining or leaving");
        return ReconfigAsync(new ReconfigRequest(join, leave, null, fromConfigVersion), ct);
    }

    /// <summary>
    /// Non-incremental reconfiguration (zkCli <c>reconfig -members</c>): the ensemble becomes exactly
    /// <paramref name="members"/> (<c>server.N=...</c> lines). Same checks and errors as the incremental form.
    /// </summary>
    public Task<ConfigResult> ReconfigMembersAsync(IEnumerable<string> members, long fromConfigVersion = -1, CancellationToken ct = default)
    {
        var all = JoinOrNull(members) ?? throw new ArgumentException("a non-incremental reconfig needs the new members", nameof(members));
        return ReconfigAsync(new ReconfigRequest(null, null, all, fromConfigVersion), ct);
    }

    private async Task<ConfigResult> ReconfigAsync(ReconfigRequest request, CancellationToken ct) =>
        ToConfigResult((GetDataResponse)await SubmitAsync(OpCode.Reconfig, request, QuorumConfig.ZnodePath, null, ct).ConfigureAwait(false));

    private static string? JoinOrNull(IEnumerable<string>? items) =>
        items?.Select(s => s.Trim()).Where(s => s.Length > 0).ToList() is { Count: > 0 } list ? string.Join(',', list) : null;

    private static ConfigResult ToConfigResult(GetDataResponse response)
    {
        var text = response.Data is null ? "" : Encoding.UTF8.GetString(response.Data);
        if (!QuorumConfig.TryParse(text, out var config, out var error))
            throw new KeeperException(ErrorCode.MarshallingError, QuorumConfig.ZnodePath, $"unreadable configuration: {error}");
        return new ConfigResult(config, response.Stat);
    }

    /// <summary>The hosts the client connects to, in the order it tries them (shuffled, as ZooKeeper's client).</summary>
    public IReadOnlyList<HostAndPort> Hosts { get { lock (_lock) return _hostList.Hosts.ToList(); } }

    /// <summary>The host of the live connection; null while disconnected.</summary>
    public HostAndPort? ConnectedHost { get { lock (_lock) return _connectedHost; } }

    /// <summary>Raised (on the event thread) with the new list after the host list changed.</summary>
    public event Action<IReadOnlyList<HostAndPort>>? HostsChanged;

    /// <summary>
    /// Replaces the hosts (ZooKeeper's updateServerList): the client rebalances as ZooKeeper 3.5's does, moving with
    /// the probability that spreads clients evenly over the new list while moving as few as possible; a client whose
    /// server is not in the list always moves. Returns true when this client drops its connection to move (requests
    /// in flight then fail with <see cref="ConnectionLossException"/>; the session and its watches stay).
    /// </summary>
    public bool UpdateHosts(IEnumerable<HostAndPort> hosts)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        var list = hosts.ToList();
        if (list.Count == 0) throw new ArgumentException("the host list may not be empty", nameof(hosts));
        bool move;
        CancellationTokenSource? connection;
        IReadOnlyList<HostAndPort> now;
        lock (_lock)
        {
            if (list.ToHashSet().SetEquals(_hostList.Hosts)) return false;
            move = _hostList.Update(list, _connectedHost);
            _connect = _connect with { Hosts = _hostList.Hosts.ToList() };
            now = _connect.Hosts;
            connection = move ? _connection : null;
        }
        Log($"host list updated to {string.Join(',', now)}{(move ? $": leaving {_connectedHost} to rebalance" : "")}", LogLevel.Information);
        Post(() => HostsChanged?.Invoke(now));
        if (connection is not null) { try { connection.Cancel(); } catch (ObjectDisposedException) { } }
        return move;
    }

    /// <summary>The (read-write) session's first connection with <see cref="CoordinationClientOptions.UpdateHostsFromConfig"/>:
    /// read the configuration with a watch; each change re-reads it (the watch is re-registered across reconnects).</summary>
    private void FollowConfig()
    {
        _ = Task.Run(async () =>
        {
            try { ApplyConfig((await GetConfigAsync(_configWatcher).ConfigureAwait(false)).Config); }
            catch (Exception e) when (e is KeeperException or InvalidOperationException)
            {
                // Expired, closed or lost: the next session's first connect follows again; a lost connection
                // re-registers nothing (the watch was not set), so try again after the reconnect.
                if (e is ConnectionLossException && !State.IsTerminal()) _configRetryPending = true;
                else Log($"reading {QuorumConfig.ZnodePath}: {e.Message}", LogLevel.Debug);
            }
        });
    }

    private void OnConfigEvent(WatchedEvent e)
    {
        if (e.Type is EventType.NodeDataChanged or EventType.NodeCreated) FollowConfig();
    }

    private void ApplyConfig(QuorumConfig config)
    {
        var endpoints = config.ClientEndpoints;
        if (endpoints.Count == 0) return; // a standalone server, or members without client addresses: nothing to learn
        UpdateHosts(endpoints);
    }
}
