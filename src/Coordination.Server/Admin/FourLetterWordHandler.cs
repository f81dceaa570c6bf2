using System.Globalization;
using System.Text;
using Akka.Actor;
using Coordination.Server.Network;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Admin;

/// <summary>
/// ZooKeeper's four-letter words on the client port, in ZooKeeper 3.8's output formats so that existing
/// monitoring scripts parse them. Only words in the <c>four-letter-words</c> whitelist run.
/// </summary>
public sealed class FourLetterWordHandler(ServerSettings settings, IActorRef replica, ConnectionRegistry connections, Func<string> mode,
    Ensemble.EnsembleState? ensemble = null, Metrics.ClientPortMetrics? bounds = null, ServerStats? stats = null)
{
    private readonly ServerStats _stats = stats ?? new ServerStats();
    /// <summary>This server's packet and latency counters (also read by the AdminServer's server_stats).</summary>
    public ServerStats Counters => _stats;
    /// <summary>The ZooKeeper release whose client API and ACL rules this server implements (tests check them against
    /// ZooKeeper's: exists needing READ and the READ check on every watch event came in 3.9.2 and 3.8.4).</summary>
    public const string ZooKeeperLevel = "3.9.2";

    /// <summary>
    /// What srvr, stat, mntr and envi report, in ZooKeeper's shape ("3.8.0-&lt;commit&gt;, built on &lt;date&gt;"):
    /// the ZooKeeper level first, because clients parse the leading digits (kazoo's server_version() reads
    /// "zookeeper.version" from envi and returns (3, 9, 2) for a feature check), then this server's name and release
    /// with its commit, and the time the server assembly was built.
    /// </summary>
    public static readonly string Version = DescribeVersion();

    private static string DescribeVersion()
    {
        var assembly = typeof(FourLetterWordHandler).Assembly;
        var release = assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
        var built = string.IsNullOrEmpty(assembly.Location) ? "unknown" : File.GetLastWriteTimeUtc(assembly.Location).ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
        return $"{ZooKeeperLevel}-coordination-akka-{release}, built on {built}";
    }
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);
    private readonly DateTime _started = DateTime.UtcNow;

    /// <summary>Runs a four-letter word from the client port, subject to the whitelist.</summary>
    public Task<string> RunAsync(string word) =>
        settings.FourLetterWords.Contains(word) ? ExecuteAsync(word) : Task.FromResult($"{word} is not executed because it is not in the whitelist.\n");

    /// <summary>Runs a command without the whitelist (the admin HTTP endpoint has its own switch and binding).</summary>
    public async Task<string> ExecuteAsync(string word)
    {
        // As ZooKeeper: a member without an established leader (and not read-only) answers only the words that need no state.
        if (ensemble is { Serving: false, ReadOnly: false } && word is "srvr" or "stat" or "mntr" or "cons" or "wchs" or "wchc" or "wchp" or "dump" or "hash")
            return "This ZooKeeper instance is not currently serving requests\n";
        return word switch
        {
            "ruok" => "imok",
            // As ZooKeeper's IsroCommand: "null" while not serving at all.
            "isro" => ensemble is null || ensemble.Serving ? "rw" : ensemble.ReadOnly ? "ro" : "null",
            "srvr" => Srvr(await Stats(GetReplicaStats.Basic), withClients: false),
            "stat" => Srvr(await Stats(GetReplicaStats.Basic), withClients: true),
            "mntr" => Mntr(await Stats(GetReplicaStats.Basic)),
            "cons" => Cons(),
            "crst" => ResetConnections(),
            "srst" => ResetStats(),
            "envi" => Envi(),
            "conf" => Conf(),
            "wchs" => Wchs(await Stats(GetReplicaStats.Basic)),
            "wchc" => Wchc(await Stats(new GetReplicaStats(true, false))),
            "wchp" => Wchp(await Stats(new GetReplicaStats(true, false))),
            "dump" => Dump(await Stats(new GetReplicaStats(false, true))),
            "dirs" => $"datadir_size: {DirSize(settings.DataDir)}\nlogdir_size: 0\n",
            "hash" => Hash(await Stats(new GetReplicaStats(false, false, WithDigest: true))),
            _ => $"{word} is not supported by this server.\n",
        };
    }

    internal Task<ReplicaStats> Stats(GetReplicaStats request) => replica.Ask<ReplicaStats>(request, AskTimeout);

    // What the admin HTTP commands (AdminCommands) read besides the words' outputs.
    internal ServerSettings Settings => settings;
    internal IActorRef Replica => replica;
    internal ConnectionRegistry Connections => connections;
    internal Ensemble.EnsembleState? Ensemble => ensemble;
    internal string Mode => mode();
    internal long UptimeMs => (long)(DateTime.UtcNow - _started).TotalMilliseconds;

    internal static string Hex(long v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private string Srvr(ReplicaStats s, bool withClients)
    {
        var b = new StringBuilder();
        b.Append("Zookeeper version: ").Append(Version).Append('\n');
        if (withClients)
        {
            b.Append("Clients:\n");
            foreach (var c in connections.All)
                b.Append(CultureInfo.InvariantCulture, $" /{c.RemoteAddress}:{c.Remote.Port}[{(c.SessionId == 0 ? 0 : 1)}](queued={c.Outstanding},recved={c.PacketsReceived},sent={c.PacketsSent})\n");
            b.Append('\n');
        }
        var (min, avg, max, _) = _stats.Latency();
        b.Append(CultureInfo.InvariantCulture, $"Latency min/avg/max: {min:0.###}/{avg:0.0###}/{max:0.###}\n");
        b.Append("Received: ").Append(_stats.PacketsReceived).Append('\n');
        b.Append("Sent: ").Append(_stats.PacketsSent).Append('\n');
        b.Append("Connections: ").Append(connections.Count).Append('\n');
        b.Append("Outstanding: ").Append(s.OutstandingRequests).Append('\n');
        b.Append("Zxid: ").Append(Hex(s.LastZxid)).Append('\n');
        b.Append("Mode: ").Append(mode()).Append('\n');
        b.Append("Node count: ").Append(s.NodeCount).Append('\n');
        return b.ToString();
    }

    /// <summary>This server's metrics registry (mntr's summaries and counters); null in handlers built without a server.</summary>
    internal Server.Metrics.ServerMetrics? Metrics { get; init; }

    /// <summary>Voting members in the configuration this server started with (mntr's quorum_size on an ensemble).</summary>
    internal int QuorumSize { get; init; }

    private string Mntr(ReplicaStats s)
    {
        var (min, avg, max, count) = _stats.Latency();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var state = mode();
        var lines = new List<(string, object)>
        {
            ("version", Version),
            ("server_state", state),
            ("ephemerals_count", s.EphemeralCount),
            ("num_alive_connections", connections.Count),
            ("avg_latency", avg),
            ("outstanding_requests", s.OutstandingRequests),
            ("znode_count", s.NodeCount),
            ("global_sessions", s.SessionCount),
            ("last_client_response_size", -1),  // response sizes are not recorded (as server_stats' client_response)
            ("packets_sent", _stats.PacketsSent),
            ("packets_received", _stats.PacketsReceived),
            ("max_client_response_size", -1),
            ("connection_drop_probability", 0.0),
            ("watch_count", s.WatchCount),
            ("min_latency", (long)Math.Round(min)),
            ("max_file_descriptor_count", MaxFileDescriptors()),
            ("approximate_data_size", s.DataSize),
            ("open_file_descriptor_count", OpenFileDescriptors()),
            ("uptime", UptimeMs),
            ("max_latency", (long)Math.Round(max)),
            ("min_client_response_size", -1),
        };
        var summaries = new Dictionary<string, Server.Metrics.Summary>(StringComparer.Ordinal);
        if (Metrics is { } m)
        {
            lines.Add(("local_sessions", m.LocalSessions));
            lines.Add(("proposal_count", m.Proposals));
            lines.Add(("commit_count", m.Commits));
            lines.Add(("diff_count", m.Ensemble.FollowerSyncs(Server.Metrics.EnsembleMetrics.SyncKind.Diff)));
            lines.Add(("snap_count", m.Ensemble.FollowerSyncs(Server.Metrics.EnsembleMetrics.SyncKind.Snap)));
            lines.Add(("looking_count", m.Ensemble.ElectionTime.Count));
            summaries["fsynctime"] = Server.Metrics.Summary.Of(m.FsyncTime);
            summaries["sync_processor_batch_size"] = Server.Metrics.Summary.Of(m.JournalBatchSize);
            summaries["election_time"] = Server.Metrics.Summary.Of(m.Ensemble.ElectionTime);
            var latencies = m.RequestLatencies().Where(r => r.Op is not Protocol.OpCode.Ping).ToList();
            summaries["readlatency"] = Server.Metrics.Summary.Of(latencies.Where(r => !Protocol.Requests.IsWrite(r.Op)).Select(r => r.Latency));
            summaries["updatelatency"] = Server.Metrics.Summary.Of(latencies.Where(r => Protocol.Requests.IsWrite(r.Op)).Select(r => r.Latency));
        }
        // The nearest .NET equivalent of the JVM's pauses: each GC pause of the runtime.
        summaries["jvm_pause_time_ms"] = Metrics is { } metrics ? Server.Metrics.Summary.Of(metrics.GcPauses) : Server.Metrics.Summary.Empty;
        if (ensemble is { } e)
        {
            lines.Add(("peer_state", e.Mode switch { "leader" => "leading", "observer" => "observing", _ => "following" } + " - broadcast"));
            lines.Add(("quorum_size", QuorumSize));
            if (e.Mode == "leader")
            {
                lines.Add(("min_proposal_size", e.MinProposalSize));
                lines.Add(("max_proposal_size", e.MaxProposalSize));
                lines.Add(("synced_followers", e.SyncedLearners));
                lines.Add(("last_proposal_size", e.LastProposalSize));
                lines.Add(("pending_syncs", e.Learners - e.SyncedLearners));
                lines.Add(("leader_uptime", e.LeaderUptimeMs));
                lines.Add(("learners", e.Learners));
                lines.Add(("followers", e.Learners));
            }
            lines.Add(("server_id", e.ServerId));
            lines.Add(("leader_id", e.Leader));
            lines.Add(("epoch", e.Epoch));
            lines.Add(("election_time", e.LastElectionMs));
            lines.Add(("leader_changes", e.LeaderChanges));
        }
        // This server's own keys, after ZooKeeper's.
        lines.Add(("request_count", count));
        lines.Add(("last_zxid", Hex(s.LastZxid)));
        lines.Add(("resident_memory_bytes", process.WorkingSet64));
        lines.Add(("heap_used_bytes", GC.GetTotalMemory(false)));
        // What the GC holds, as of its last collection: committed (part of the RSS) against the heap it found then, of
        // which fragmented is free space between live objects. Committed minus heap is memory kept for allocation, not
        // held by the server's data.
        var gc = GC.GetGCMemoryInfo();
        lines.Add(("gc_committed_bytes", gc.TotalCommittedBytes));
        lines.Add(("gc_heap_size_bytes", gc.HeapSizeBytes));
        lines.Add(("gc_fragmented_bytes", gc.FragmentedBytes));
        lines.Add(("gc_loh_threshold_bytes", LargeObjectThreshold));
        lines.Add(("memory_trims", MemoryTrimActor.Trims));
        lines.Add(("memory_trimmed_bytes", MemoryTrimActor.TrimmedBytes));
        lines.Add(("memory_trims_refused", MemoryTrimActor.Refused));
        if (bounds is not null) foreach (var (name, value) in bounds.Values()) lines.Add((name, value));
        var b = new StringBuilder();
        var sets = Metrics is { } withSets ? Server.Metrics.ZooKeeperMonitor.QuotaSets(withSets.QuotaPerNamespace, withSets.QuotaExceeded) : null;
        Server.Metrics.ZooKeeperMonitor.Write(b, Server.Metrics.ZooKeeperMonitor.RoleOf(state), lines, summaries, sets);
        return b.ToString();
    }

    /// <summary>The size from which arrays go to the large-object heap (the runtime's configuration: the server sets it,
    /// a host embedding the server sets its own).</summary>
    private static readonly long LargeObjectThreshold =
        GC.GetConfigurationVariables().TryGetValue("LOHThreshold", out var value) ? Convert.ToInt64(value, CultureInfo.InvariantCulture) : 85_000;

    /// <summary>The tree's order-independent digest at the last applied zxid: equal on servers that applied the same
    /// txns (ZooKeeper's admin 'hash' command serves the same purpose).</summary>
    private static string Hash(ReplicaStats s) => $"zxid: {Hex(s.LastZxid)}\ndigest: {Hex(s.Digest)}\n";

    private string Cons()
    {
        var b = new StringBuilder();
        foreach (var c in connections.All)
        {
            b.Append(CultureInfo.InvariantCulture,
                $" /{c.RemoteAddress}:{c.Remote.Port}[{(c.SessionId == 0 ? 0 : 1)}](queued={c.Outstanding},recved={c.PacketsReceived},sent={c.PacketsSent}");
            if (c.SessionId != 0)
                b.Append(CultureInfo.InvariantCulture,
                    $",sid={Hex(c.SessionId)},lop={c.LastOp},est={new DateTimeOffset(c.EstablishedUtc).ToUnixTimeMilliseconds()},to={c.SessionTimeoutMs},lcxid={Hex(c.LastCxid)},lzxid={Hex(c.LastZxid)},lresp={c.LastResponseMs},llat={c.LastLatencyMs},minlat=0,avglat=0.0,maxlat=0");
            b.Append(")\n");
        }
        return b.Append('\n').ToString();
    }

    // As ZooKeeper's ServerStats.reset: the latency and packet counters, and every ServerMetrics counter and summary.
    private string ResetStats()
    {
        _stats.Reset();
        Metrics?.ResetCountersAndSummaries();
        return "Server stats reset.\n";
    }
    private string ResetConnections() => "Connection stats reset.\n";

    private string Envi()
    {
        var b = new StringBuilder("Environment:\n");
        b.Append("zookeeper.version=").Append(Version).Append('\n');
        b.Append("host.name=").Append(Environment.MachineName).Append('\n');
        b.Append("dotnet.version=").Append(Environment.Version).Append('\n');
        b.Append("os.name=").Append(System.Runtime.InteropServices.RuntimeInformation.OSDescription).Append('\n');
        b.Append("os.arch=").Append(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture).Append('\n');
        b.Append("user.dir=").Append(Environment.CurrentDirectory).Append('\n');
        b.Append("os.memory.free=").Append(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1024 / 1024).Append("MB\n");
        b.Append("processors=").Append(Environment.ProcessorCount).Append('\n');
        return b.ToString();
    }

    private string Conf()
    {
        var b = new StringBuilder();
        b.Append("clientPort=").Append(settings.ClientPort).Append('\n');
        b.Append("secureClientPort=").Append(settings.SecureClientPort).Append('\n');
        b.Append("dataDir=").Append(Path.GetFullPath(settings.DataDir)).Append('\n');
        b.Append("dataDirSize=").Append(DirSize(settings.DataDir)).Append('\n');
        b.Append("dataLogDir=").Append(Path.GetFullPath(settings.DataDir)).Append('\n');
        b.Append("dataLogSize=0\n");
        b.Append("tickTime=").Append((long)settings.TickTime.TotalMilliseconds).Append('\n');
        b.Append("maxClientCnxns=").Append(settings.MaxClientConnections).Append('\n');
        b.Append("minSessionTimeout=").Append(settings.MinSessionTimeoutMs).Append('\n');
        b.Append("maxSessionTimeout=").Append(settings.MaxSessionTimeoutMs).Append('\n');
        b.Append("clientPortListenBacklog=1024\n");
        b.Append("serverId=").Append(settings.ServerId).Append('\n');
        // A member's active configuration, as ZooKeeper's QuorumZooKeeperServer adds it.
        if (ensemble?.ConfigText is { } membership) b.Append("membership: \n").Append(membership).Append('\n');
        return b.ToString();
    }

    private static string Wchs(ReplicaStats s) =>
        $"{s.SessionCount} connections watching {s.WatchPathCount} paths\nTotal watches:{s.WatchCount}\n";

    private static string Wchc(ReplicaStats s)
    {
        var b = new StringBuilder();
        foreach (var (session, paths) in s.WatchesBySession!.OrderBy(p => p.Key))
        {
            b.Append(Hex(session)).Append('\n');
            foreach (var p in paths) b.Append('\t').Append(p).Append('\n');
        }
        return b.Append('\n').ToString();
    }

    private static string Wchp(ReplicaStats s)
    {
        var b = new StringBuilder();
        foreach (var (path, sessions) in s.WatchesByPath!.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            b.Append(path).Append('\n');
            foreach (var session in sessions) b.Append('\t').Append(Hex(session)).Append('\n');
        }
        return b.ToString();
    }

    private static string Dump(ReplicaStats s)
    {
        var b = new StringBuilder("SessionTracker dump:\n");
        b.Append("Global Sessions(").Append(s.SessionCount).Append("):\n");
        b.Append("ephemeral nodes dump:\n");
        b.Append("Sessions with Ephemerals (").Append(s.EphemeralsBySession!.Count).Append("):\n");
        foreach (var (session, paths) in s.EphemeralsBySession.OrderBy(p => p.Key))
        {
            b.Append(Hex(session)).Append(":\n");
            foreach (var p in paths.OrderBy(p => p, StringComparer.Ordinal)) b.Append('\t').Append(p).Append('\n');
        }
        return b.ToString();
    }

    internal static long DirSize(string dir)
    {
        try { return Directory.Exists(dir) ? new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0; }
        catch (IOException) { return 0; }
    }

    private static int OpenFileDescriptors()
    {
        try { return Directory.GetFiles("/proc/self/fd").Length; } catch { return -1; }
    }

    private static long MaxFileDescriptors()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3], CultureInfo.InvariantCulture);
        }
        catch { /* not Linux */ }
        return -1;
    }
}
