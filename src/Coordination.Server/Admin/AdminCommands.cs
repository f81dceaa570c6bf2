using System.Globalization;
using System.Runtime.InteropServices;
using Akka.Actor;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;
using Coordination.Server.Sessions;

namespace Coordination.Server.Admin;

/// <summary>What one admin command answers: the HTTP status, the JSON fields (ZooKeeper's CommandResponse: the
/// command's keys, then "command" and "error"), and for snapshot a file to stream with its headers.</summary>
public sealed record AdminResult(int Status, Dictionary<string, object?> Fields, string? StreamFile = null, IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>
/// ZooKeeper 3.9's AdminServer commands (org.apache.zookeeper.server.admin.Commands), under their primary names and
/// aliases, with the same JSON keys, so that scrapers and runbooks written for ZooKeeper work. Values this server
/// does not measure carry ZooKeeper's "nothing recorded" value (-1 for buffer sizes, 0 for counters); the JVM keys of
/// environment and system_properties carry the .NET runtime's equivalents.
/// </summary>
public sealed class AdminCommands
{
    /// <summary>One command. <paramref name="ServerRequired"/>: refused while the member serves no clients (ZooKeeper's
    /// isServerRequired); <paramref name="AuthRequired"/>: ZooKeeper 3.9 asks for ALL on the root (snapshot, restore).</summary>
    public sealed record Command(string[] Names, bool ServerRequired, bool AuthRequired, Func<IReadOnlyDictionary<string, string>, Task<AdminResult>> Run)
    {
        public string PrimaryName => Names[0];
        /// <summary>A command that takes a POST body (ZooKeeper's PostCommand: restore); GET answers 405.</summary>
        public Func<Stream, Task<AdminResult>>? Post { get; init; }
    }

    private static readonly TimeSpan SnapshotTimeout = TimeSpan.FromSeconds(60);
    private readonly FourLetterWordHandler _words;
    private readonly IActorRef? _tracker;
    private readonly SnapshotFiles? _snapshots;
    private readonly Ensemble.EnsembleSettings? _members;
    private readonly string _initialConfiguration;
    private readonly Dictionary<string, Command> _byName = new(StringComparer.Ordinal);
    private long _traceMask = 306; // ZooTrace's default mask; stored only, as this server has no trace log
    private readonly AdminRateLimiter _snapshotLimiter;
    private readonly AdminRateLimiter _restoreLimiter;
    private static readonly TimeSpan RestoreTimeout = TimeSpan.FromSeconds(120);

    public AdminCommands(FourLetterWordHandler words, IActorRef? tracker, SnapshotFiles? snapshots, Ensemble.EnsembleSettings? members, string initialConfiguration)
    {
        _words = words;
        _tracker = tracker;
        _snapshots = snapshots;
        _members = members;
        _initialConfiguration = initialConfiguration;
        var admin = words.Settings.Admin;
        _snapshotLimiter = new AdminRateLimiter(admin.RateLimiterInterval / 1000, CoordinationServer.MonotonicMs);
        _restoreLimiter = new AdminRateLimiter(admin.RateLimiterInterval, CoordinationServer.MonotonicMs);
        foreach (var command in Build())
            foreach (var name in command.Names) _byName.Add(name, command);
    }

    /// <summary>Every name a command answers to (primary names and aliases).</summary>
    public IReadOnlyCollection<string> Names => _byName.Keys;

    public Command? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Runs a command; a member not serving clients answers only the commands that need no state.</summary>
    public async Task<AdminResult> RunAsync(Command command, IReadOnlyDictionary<string, string> arguments, Stream? body = null)
    {
        if (command.ServerRequired && _words.Ensemble is { Serving: false })
            return Error(command.PrimaryName, "This ZooKeeper instance is not currently serving requests");
        var result = await (body is not null && command.Post is { } post ? post(body) : command.Run(arguments)).ConfigureAwait(false);
        result.Fields["command"] = command.PrimaryName;
        result.Fields.TryAdd("error", null);
        return result;
    }

    public static AdminResult Error(string command, string error, int status = 200) =>
        new(status, new Dictionary<string, object?> { ["command"] = command, ["error"] = error });

    private static Task<AdminResult> Ok(Dictionary<string, object?> fields) => Task.FromResult(new AdminResult(200, fields));

    private IEnumerable<Command> Build()
    {
        Command Get(string[] names, Func<IReadOnlyDictionary<string, string>, Task<AdminResult>> run, bool serverRequired = true) =>
            new(names, serverRequired, AuthRequired: false, run);
        yield return Get(["connection_stat_reset", "crst"], _ => Ok(new()));
        yield return Get(["configuration", "conf", "config"], _ => Ok(Configuration()));
        yield return Get(["connections", "cons"], _ => Ok(new() { ["connections"] = ConnectionInfos(brief: false), ["secure_connections"] = Array.Empty<object>() }));
        yield return Get(["dirs"], _ => Ok(new() { ["datadir_size"] = DataDirSize(), ["logdir_size"] = DataDirSize() }));
        yield return Get(["dump"], async _ => new AdminResult(200, await Dump()));
        yield return Get(["environment", "env", "envi"], _ => Ok(Environment()), serverRequired: false);
        yield return Get(["hash"], async _ => new AdminResult(200, await Digests()));
        yield return Get(["get_trace_mask", "gtmk"], _ => Ok(new() { ["tracemask"] = Interlocked.Read(ref _traceMask) }), serverRequired: false);
        yield return Get(["initial_configuration", "icfg"], _ => Ok(new() { ["initial_configuration"] = _initialConfiguration }));
        yield return Get(["is_read_only", "isro"], async _ => new AdminResult(200, new() { ["read_only"] = await _words.ExecuteAsync("isro") == "ro" }));
        yield return Get(["last_snapshot", "lsnp"], _ => Ok(LastSnapshot()));
        yield return Get(["leader", "lead"], _ => Ok(Leader()));
        yield return Get(["monitor", "mntr"], async _ => new AdminResult(200, Monitor(await _words.ExecuteAsync("mntr"))), serverRequired: false);
        yield return Get(["observer_connection_stat_reset", "orst"], _ => Ok(new()));
        yield return Get(["ruok"], _ => Ok(new()));
        yield return Get(["set_trace_mask", "stmk"], SetTraceMask, serverRequired: false);
        yield return new Command(["snapshot", "snap"], ServerRequired: true, AuthRequired: true, Snapshot);
        yield return new Command(["restore", "rest"], ServerRequired: true, AuthRequired: true,
            _ => Task.FromResult(new AdminResult(405, new() { ["error"] = "restore takes a POST whose body is the snapshot" }))) { Post = Restore };
        yield return Get(["server_stats", "srvr"], async _ => new AdminResult(200, await ServerStatsFields()));
        yield return Get(["stats", "stat"], async _ =>
        {
            var fields = await ServerStatsFields();
            fields["connections"] = ConnectionInfos(brief: true);
            fields["secure_connections"] = Array.Empty<object>();
            return new AdminResult(200, fields);
        });
        yield return Get(["stat_reset", "srst"], async _ => { await _words.ExecuteAsync("srst"); return new AdminResult(200, new()); });
        yield return Get(["observers", "obsr"], _ => Ok(new() { ["synced_observers"] = 0, ["observers"] = Array.Empty<object>() }));
        yield return Get(["system_properties", "sysp"], _ => Ok(SystemProperties()), serverRequired: false);
        yield return Get(["voting_view"], _ => Ok(new() { ["current_config"] = VotingView() }));
        yield return Get(["watches", "wchc"], async _ =>
        {
            var s = await _words.Stats(new GetReplicaStats(true, false));
            return new AdminResult(200, new() { ["session_id_to_watched_paths"] = s.WatchesBySession!.ToDictionary(p => p.Key.ToString(CultureInfo.InvariantCulture), p => p.Value) });
        });
        yield return Get(["watches_by_path", "wchp"], async _ =>
        {
            var s = await _words.Stats(new GetReplicaStats(true, false));
            return new AdminResult(200, new() { ["path_to_session_ids"] = s.WatchesByPath!.ToDictionary(p => p.Key, p => p.Value) });
        });
        yield return Get(["watch_summary", "wchs"], async _ =>
        {
            var s = await _words.Stats(new GetReplicaStats(true, false));
            return new AdminResult(200, new() { ["num_connections"] = s.WatchesBySession!.Count, ["num_paths"] = s.WatchPathCount, ["num_total_watches"] = s.WatchCount });
        });
        yield return Get(["zabstate"], async _ => new AdminResult(200, await ZabState()), serverRequired: false);
    }

    private long DataDirSize() => FourLetterWordHandler.DirSize(_words.Settings.DataDir);

    private Dictionary<string, object?> Configuration()
    {
        var s = _words.Settings;
        var tick = (long)s.TickTime.TotalMilliseconds;
        var dataDir = Path.GetFullPath(s.DataDir);
        return new()
        {
            ["client_port"] = s.ClientPort,
            ["data_dir"] = dataDir,
            ["data_log_dir"] = dataDir,
            ["tick_time"] = tick,
            ["max_client_cnxns"] = s.MaxClientConnections,
            ["min_session_timeout"] = s.MinSessionTimeoutMs > 0 ? s.MinSessionTimeoutMs : 2 * tick,
            ["max_session_timeout"] = s.MaxSessionTimeoutMs > 0 ? s.MaxSessionTimeoutMs : 20 * tick,
            ["server_id"] = s.ServerId,
            ["client_port_listen_backlog"] = -1,
        };
    }

    /// <summary>ServerCnxn.getConnectionInfo: brief for stats, with the session's fields for connections.</summary>
    private List<Dictionary<string, object?>> ConnectionInfos(bool brief)
    {
        var result = new List<Dictionary<string, object?>>();
        foreach (var c in _words.Connections.All)
        {
            var info = new Dictionary<string, object?>
            {
                ["remote_socket_address"] = $"{c.RemoteAddress}:{c.Remote.Port}",
                ["interest_ops"] = 1,
                ["outstanding_requests"] = c.Outstanding,
                ["packets_received"] = Interlocked.Read(ref c.PacketsReceived),
                ["packets_sent"] = Interlocked.Read(ref c.PacketsSent),
            };
            if (!brief)
            {
                info["session_id"] = c.SessionId;
                info["last_operation"] = c.LastOp;
                info["established"] = c.EstablishedUtc.ToString("ddd MMM dd HH:mm:ss 'UTC' yyyy", CultureInfo.InvariantCulture);
                info["session_timeout"] = c.SessionTimeoutMs;
                info["last_cxid"] = c.LastCxid;
                info["last_zxid"] = c.LastZxid;
                info["last_response_time"] = c.LastResponseMs;
                info["last_latency"] = c.LastLatencyMs;
                info["min_latency"] = 0;
                info["avg_latency"] = 0.0;
                info["max_latency"] = 0;
            }
            result.Add(info);
        }
        return result;
    }

    private async Task<Dictionary<string, object?>> Dump()
    {
        var s = await _words.Stats(new GetReplicaStats(false, true));
        var expiry = _tracker is null ? new SessionTrackerActor.ExpiryMap(new Dictionary<long, long[]>())
            : await _tracker.Ask<SessionTrackerActor.ExpiryMap>(SessionTrackerActor.GetExpiryMap.Instance, TimeSpan.FromSeconds(10));
        return new()
        {
            ["expiry_time_to_session_ids"] = expiry.SessionsByDeadline.ToDictionary(b => b.Key.ToString(CultureInfo.InvariantCulture), b => b.Value),
            ["session_id_to_ephemeral_paths"] = s.EphemeralsBySession!.ToDictionary(p => p.Key.ToString(CultureInfo.InvariantCulture), p => p.Value.Order(StringComparer.Ordinal).ToArray()),
        };
    }

    /// <summary>ZooKeeper lists the recent (zxid, digest) pairs of its digest log; this server has the digest at the last applied zxid.</summary>
    private async Task<Dictionary<string, object?>> Digests()
    {
        var s = await _words.Stats(new GetReplicaStats(false, false, WithDigest: true));
        return new() { ["digests"] = new[] { new Dictionary<string, object?> { ["zxid"] = s.LastZxid, ["digest"] = s.Digest, ["digest_version"] = 2 } } };
    }

    private static Dictionary<string, object?> Environment()
    {
        var memory = GC.GetGCMemoryInfo();
        var runtime = RuntimeEnvironment.GetRuntimeDirectory();
        return new()
        {
            ["zookeeper.version"] = FourLetterWordHandler.Version,
            ["host.name"] = System.Environment.MachineName,
            ["java.version"] = System.Environment.Version.ToString(),
            ["java.vendor"] = RuntimeInformation.FrameworkDescription,
            ["java.home"] = runtime,
            ["java.class.path"] = AppContext.BaseDirectory,
            ["java.library.path"] = runtime,
            ["java.io.tmpdir"] = Path.GetTempPath(),
            ["java.compiler"] = "<NA>",
            ["os.name"] = RuntimeInformation.OSDescription,
            ["os.arch"] = RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
            ["os.version"] = System.Environment.OSVersion.Version.ToString(),
            ["user.name"] = System.Environment.UserName,
            ["user.home"] = System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile),
            ["user.dir"] = System.Environment.CurrentDirectory,
            ["os.memory.free"] = $"{Math.Max(0, memory.TotalAvailableMemoryBytes - memory.HeapSizeBytes) / (1024 * 1024)}MB",
            ["os.memory.max"] = $"{memory.TotalAvailableMemoryBytes / (1024 * 1024)}MB",
            ["os.memory.total"] = $"{memory.HeapSizeBytes / (1024 * 1024)}MB",
        };
    }

    /// <summary>The process properties under Java's system property names where .NET has the same thing, sorted.</summary>
    private static Dictionary<string, object?> SystemProperties()
    {
        var env = Environment();
        var properties = new SortedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["file.encoding"] = "UTF-8",
            ["file.separator"] = Path.DirectorySeparatorChar.ToString(),
            ["line.separator"] = System.Environment.NewLine,
            ["path.separator"] = Path.PathSeparator.ToString(),
            ["native.encoding"] = "UTF-8",
        };
        foreach (var key in (string[])["java.class.path", "java.home", "java.io.tmpdir", "java.library.path", "java.vendor", "java.version",
                     "os.arch", "os.name", "os.version", "user.dir", "user.home", "user.name"])
            properties[key] = env[key];
        return new Dictionary<string, object?>(properties);
    }

    private Dictionary<string, object?> LastSnapshot()
    {
        var newest = _snapshots?.List() is { Count: > 0 } list ? list[0] : ((long Zxid, string Path)?)null;
        return new()
        {
            ["zxid"] = (newest?.Zxid ?? -1L).ToString("x", CultureInfo.InvariantCulture),
            ["timestamp"] = newest is { } n ? new DateTimeOffset(File.GetLastWriteTimeUtc(n.Path)).ToUnixTimeSeconds() : -1L,
        };
    }

    private Dictionary<string, object?> Leader()
    {
        if (_words.Ensemble is not { } e) return new() { ["error"] = "server is not initialized" };
        var leaderAddress = _members?.Voters.GetValueOrDefault(e.Leader) ?? "";
        return new()
        {
            ["is_leader"] = e.Mode == "leader",
            ["leader_id"] = e.Leader,
            ["leader_ip"] = leaderAddress.Contains(':') ? leaderAddress[..leaderAddress.LastIndexOf(':')] : leaderAddress,
        };
    }

    /// <summary>mntr's values, without the "zk_" prefix, numbers as numbers (ZooKeeper's dumpMonitorValues).</summary>
    private static Dictionary<string, object?> Monitor(string mntr)
    {
        var fields = new Dictionary<string, object?>();
        foreach (var line in mntr.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var at = line.IndexOf('\t');
            if (at <= 0) continue;
            var key = line[..at];
            if (key.StartsWith("zk_", StringComparison.Ordinal)) key = key[3..];
            fields[key] = Number(line[(at + 1)..]);
        }
        return fields;
    }

    private static object Number(string value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n
        : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : value;

    private Task<AdminResult> SetTraceMask(IReadOnlyDictionary<string, string> arguments)
    {
        if (!arguments.TryGetValue("traceMask", out var text))
            return Ok(new() { ["error"] = "setTraceMask requires long traceMask argument" });
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var mask))
            return Ok(new() { ["error"] = "setTraceMask requires long traceMask argument, got " + text });
        Interlocked.Exchange(ref _traceMask, mask);
        return Ok(new() { ["tracemask"] = mask });
    }

    /// <summary>ZooKeeper's server_stats (srvr): ServerStats as JSON, the client response sizes and the node count.</summary>
    private async Task<Dictionary<string, object?>> ServerStatsFields()
    {
        var s = await _words.Stats(GetReplicaStats.Basic);
        var (min, avg, max, _) = _words.Counters.Latency();
        var bufferSizes = new Dictionary<string, object?> { ["last_buffer_size"] = -1, ["min_buffer_size"] = -1, ["max_buffer_size"] = -1 };
        var dataDirSize = DataDirSize();
        var fields = new Dictionary<string, object?>
        {
            ["version"] = FourLetterWordHandler.Version,
            ["read_only"] = await _words.ExecuteAsync("isro") == "ro",
            ["server_stats"] = new Dictionary<string, object?>
            {
                ["packets_sent"] = _words.Counters.PacketsSent,
                ["packets_received"] = _words.Counters.PacketsReceived,
                ["fsync_threshold_exceed_count"] = 0,
                ["client_response_stats"] = bufferSizes,
                ["provider_null"] = false,
                ["data_dir_size"] = dataDirSize,
                ["log_dir_size"] = dataDirSize,
                ["server_state"] = _words.Mode,
                ["last_processed_zxid"] = s.LastZxid,
                ["outstanding_requests"] = s.OutstandingRequests,
                ["avg_latency"] = Math.Round(avg, 4),
                ["max_latency"] = (long)max,
                ["min_latency"] = (long)min,
                ["num_alive_client_connections"] = _words.Connections.Count,
                ["uptime"] = _words.UptimeMs,
                ["auth_failed_count"] = 0,
                ["non_mtlsremote_conn_count"] = 0,
                ["non_mtlslocal_conn_count"] = 0,
            },
            ["client_response"] = bufferSizes,
            ["node_count"] = s.NodeCount,
        };
        if (_words.Ensemble is { Mode: "leader" } leader)
            fields["proposal_stats"] = new Dictionary<string, object?> { ["last_buffer_size"] = leader.LastProposalSize, ["min_buffer_size"] = -1, ["max_buffer_size"] = -1 };
        return fields;
    }

    /// <summary>voting_view: each voter and observer with its member address (used for both quorum and election,
    /// as one link carries both here).</summary>
    private Dictionary<string, object?> VotingView()
    {
        var view = new Dictionary<string, object?>();
        if (_words.Ensemble is null || _members is null) return view;
        void Add(long id, string address, string type) => view[id.ToString(CultureInfo.InvariantCulture)] = new Dictionary<string, object?>
        {
            ["server_addresses"] = new[] { address },
            ["election_addresses"] = new[] { address },
            ["client_address"] = "",
            ["learner_type"] = type,
        };
        foreach (var (id, address) in _members.Voters) Add(id, address, "participant");
        foreach (var (id, address) in _members.Observers) Add(id, address, "observer");
        return view;
    }

    private async Task<Dictionary<string, object?>> ZabState()
    {
        if (_words.Ensemble is not { } e) return new() { ["voting"] = false, ["zabstate"] = "" };
        var address = _members?.Voters.GetValueOrDefault(e.ServerId) ?? _members?.Observers.GetValueOrDefault(e.ServerId) ?? "";
        var lastZxid = (await _words.Stats(GetReplicaStats.Basic)).LastZxid;
        return new()
        {
            ["myid"] = e.ServerId,
            ["is_leader"] = e.Mode == "leader",
            ["quorum_address"] = address,
            ["election_address"] = address,
            ["client_address"] = $"{_words.Settings.ClientAddress}:{_words.Settings.ClientPort}",
            ["voting"] = _members?.Voters.ContainsKey(e.ServerId) ?? false,
            ["last_zxid"] = FourLetterWordHandler.Hex(lastZxid),
            ["zab_epoch"] = lastZxid >> 32,
            ["zab_counter"] = lastZxid & 0xffffffffL,
            ["zabstate"] = e.Serving ? "broadcast" : "election",
        };
    }

    /// <summary>ZooKeeper 3.9's snapshot command: takes a snapshot now and streams the file (streaming=false: only the
    /// headers last_zxid and snapshot_size). At most one a second, as ZooKeeper's rate limiter.</summary>
    private async Task<AdminResult> Snapshot(IReadOnlyDictionary<string, string> arguments)
    {
        if (!_words.Settings.Admin.SnapshotEnabled) return new AdminResult(503, new());
        if (_snapshots is null) return new AdminResult(500, new() { ["error"] = "snapshots are off (coordination.persistence.enabled = off)" });
        if (!_snapshotLimiter.Allow()) return new AdminResult(429, new());
        var streaming = !arguments.TryGetValue("streaming", out var flag) || !bool.TryParse(flag, out var parsed) || parsed;
        var startZxid = await _words.Replica.Ask<long>(TakeSnapshot.Instance, TimeSpan.FromSeconds(10));
        if (startZxid < 0) return new AdminResult(429, new() { ["error"] = "a snapshot is already being written" });
        // The replica writes the file in the background and renames it when complete: wait for the final name.
        var file = Path.Combine(_snapshots.Directory, SnapshotFiles.FileName(startZxid));
        var deadline = DateTime.UtcNow + SnapshotTimeout;
        while (!File.Exists(file))
        {
            if (DateTime.UtcNow > deadline) return new AdminResult(500, new() { ["error"] = "the snapshot did not complete in time" });
            await Task.Delay(50).ConfigureAwait(false);
        }
        var headers = new Dictionary<string, string>
        {
            ["last_zxid"] = FourLetterWordHandler.Hex(startZxid),
            ["snapshot_size"] = new FileInfo(file).Length.ToString(CultureInfo.InvariantCulture),
        };
        return new AdminResult(200, new(), streaming ? file : null, headers);
    }

    /// <summary>
    /// ZooKeeper 3.9's restore command (Commands.RestoreCommand): the POST body is a snapshot (as the snapshot command
    /// streams it); the tree is replaced by it and the answer is its last_zxid. One per rate-limiter-interval; an unreadable
    /// snapshot or a refusal (an ensemble member, a fuzzy snapshot) is a 500 with the reason, as ZooKeeper answers a
    /// failed restore. See ReplicaActor.Restore.cs.
    /// </summary>
    private async Task<AdminResult> Restore(Stream body)
    {
        if (!_words.Settings.Admin.RestoreEnabled) return new AdminResult(503, new());
        if (!_restoreLimiter.Allow()) return new AdminResult(429, new());
        Core.DataTree tree;
        try
        {
            using var buffer = new MemoryStream();
            await body.CopyToAsync(buffer).ConfigureAwait(false);
            buffer.Position = 0;
            tree = Core.DataTree.ReadSnapshot(buffer);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
        {
            return new AdminResult(e.StatusCode, new() { ["error"] = e.Message });
        }
        catch (InvalidDataException e)
        {
            return new AdminResult(500, new() { ["error"] = "not a readable snapshot: " + e.Message });
        }
        var restored = await _words.Replica.Ask<TreeRestored>(new RestoreTree(tree), RestoreTimeout).ConfigureAwait(false);
        return restored.Error is { } error
            ? new AdminResult(500, new() { ["error"] = error })
            : new AdminResult(200, new() { ["last_zxid"] = restored.LastZxid });
    }
}
