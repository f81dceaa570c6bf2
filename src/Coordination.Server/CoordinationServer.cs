using Akka.Actor;
using Akka.Event;
using Akka.Configuration;
using Coordination.Core;
using Coordination.Server.Admin;
using Coordination.Server.Ensemble;
using Coordination.Server.Feed;
using Coordination.Server.Network;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;
using Akka.Actor.Setup;
using Coordination.Server.Sessions;

namespace Coordination.Server;

/// <summary>
/// A running coordination server: an ActorSystem with the request pipeline and the client port listener.
/// A standalone server and an ensemble member share the replica and the session actors; they differ in the log the
/// replica hands txns to (the journal, or the Zab peer) and in who commits them (docs/architecture.md, sections 4 and 5).
/// </summary>
public sealed partial class CoordinationServer : IAsyncDisposable
{
    private readonly ClientListener _listener;

    public ActorSystem System { get; }
    public ServerSettings Settings { get; }
    public IActorRef Replica { get; }
    /// <summary>The plain client port, or -1 when it is off.</summary>
    public int ClientPort => _listener.Port;
    /// <summary>The secure (TLS) client port, or -1 when there is none.</summary>
    public int SecureClientPort => _listener.SecurePort;
    /// <summary>The ensemble peer's state, or null for a standalone server.</summary>
    public EnsembleState? Ensemble { get; }
    /// <summary>As <c>srvr</c> reports it: standalone, leader, follower, observer (or looking, while not serving).</summary>
    public string Mode => Ensemble?.Mode ?? "standalone";
    /// <summary>Readiness (serving, in quorum, leader known, data dir writable): /health/ready and the IHealthCheck.</summary>
    public ServerHealth Health { get; }

    private readonly IReadOnlyList<AdminHttpServer> _http;

    private CoordinationServer(ActorSystem system, ServerSettings settings, IActorRef replica, ClientListener listener, IReadOnlyList<AdminHttpServer> http,
        EnsembleState? ensemble, ServerHealth health)
    {
        Ensemble = ensemble;
        Health = health;
        _http = http;
        System = system;
        Settings = settings;
        Replica = replica;
        _listener = listener;
        // A node that stopped by itself (a failed actor, a failed journal, a quarantine) ended the ActorSystem: the
        // client port closes too, so no client waits on a server that can no longer answer it.
        system.WhenTerminated.ContinueWith(_ => _listener.DisposeAsync().AsTask(), TaskScheduler.Default);
    }

    /// <summary>Wall-clock milliseconds: ctime/mtime of znodes and TTL checks.</summary>
    public static long WallClockMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Monotonic milliseconds: session deadlines must not jump with the wall clock.</summary>
    public static long MonotonicMs() => Environment.TickCount64;

    /// <summary>Starts a server from a config; <see cref="ServerSettings.Reference"/> is added as the fallback.
    /// With persistence on (the default) the tree is first recovered from the data dir (snapshot + journal), and
    /// the server throws <see cref="RecoveryException"/> rather than serve a tree that may lack acknowledged writes.</summary>
    public static CoordinationServer Start(Config config)
    {
        var withReference = config.WithFallback(ServerSettings.Reference);
        var ensemble = MembershipOf(withReference);
        if (ensemble.Enabled)
        {
            // The remoting settings rank below the user's config but above reference.conf (whose provider is local).
            var remoting = ensemble.RemotingConfig(withReference.GetLong("coordination.server-id"));
            return StartEnsembleMember(Logging.ServerLogging.ApplyTo(config.WithFallback(remoting).WithFallback(ServerSettings.Reference)), ensemble);
        }
        var full = Logging.ServerLogging.ApplyTo(withReference);
        var settings = ServerSettings.Create(full);
        Sessions.GssapiServer.Configure(settings.Kerberos);
        Directory.CreateDirectory(settings.DataDir);
        var persistence = PersistenceSettings.Create(full, settings.DataDir);
        var files = new SnapshotFiles(settings.DataDir, persistence.SnapshotsRetained, persistence.Purge);

        var system = CreateSystem(full, persistence);
        try
        {
            DataTree tree;
            IActorRef? log = null;
            SnapshotPolicy? snapshots = null;
            if (persistence.Enabled)
            {
                var restore = full.GetString("coordination.persistence.restore-from", "");
                if (!string.IsNullOrEmpty(restore)) Restore(restore, persistence, files);
                var recovered = Recovery.Run(system, persistence, files, system.Log);
                tree = recovered.Tree;
                log = recovered.Log;
                files.AttachLog(log);
                snapshots = SnapshotPolicy.For(files, persistence, JournalRecords.Of(system, persistence, ensemble: false));
            }
            else
            {
                system.Log.Warning("coordination.persistence.enabled = off: nothing is written to disk");
                tree = new DataTree();
            }
            var (replica, sessions, tracker) = StartNode(system, new NodeActor.Spec(settings, tree, log, snapshots));
            return Listen(system, settings, replica, sessions, null, new AdminContext(tracker, persistence.Enabled ? files : null, null, InitialConfiguration(config)));
        }
        catch
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
            throw;
        }
    }

    /// <summary>Creates the node (the parent of the server's actors) and returns the references the front end needs.</summary>
    private static NodeActor.Children StartNode(ActorSystem system, NodeActor.Spec spec) =>
        NodeActor.ChildrenOf(system.ActorOf(NodeActor.Props(spec), NodeActor.Name));

    /// <summary>What the admin HTTP commands read beyond the four-letter words' sources.</summary>
    private sealed record AdminContext(IActorRef Tracker, SnapshotFiles? Snapshots, EnsembleSettings? Members, string InitialConfiguration);

    /// <summary>The coordination section as configured (ZooKeeper's initial_configuration shows its zoo.cfg), with
    /// secrets (passwords, the ensemble secret, digests) masked.</summary>
    private static string InitialConfiguration(Config config)
    {
        if (!config.HasPath("coordination")) return "";
        var b = new System.Text.StringBuilder();
        foreach (var (key, value) in config.GetConfig("coordination").AsEnumerable().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var secret = key.Contains("password", StringComparison.OrdinalIgnoreCase) || key.Contains("secret", StringComparison.OrdinalIgnoreCase)
                || key.Contains("digest", StringComparison.OrdinalIgnoreCase) || key.StartsWith("sasl.users", StringComparison.Ordinal);
            b.Append(key).Append('=').Append(secret ? "********" : value.ToString()).Append('\n');
        }
        return b.ToString();
    }

    private static CoordinationServer Listen(ActorSystem system, ServerSettings settings, IActorRef replica, IActorRef sessions, EnsembleState? ensemble, AdminContext context)
    {
        var registry = new ConnectionRegistry();
        var metrics = Metrics.ServerMetrics.For(system);
        var admin = new FourLetterWordHandler(settings, replica, registry, () => ensemble?.Mode ?? "standalone", ensemble, metrics.ClientPort, metrics.Stats)
            { Metrics = metrics, QuorumSize = context.Members?.Voters.Count ?? 0 };
        var listener = new ClientListener(settings, system, sessions, admin, registry);
        var commands = new AdminCommands(admin, context.Tracker, context.Snapshots, context.Members, context.InitialConfiguration);
        var health = new ServerHealth(ensemble, settings.DataDir);
        var server = new CoordinationServer(system, settings, replica, listener, StartHttp(settings, admin, commands, metrics, replica, health, m => system.Log.Warning(m)), ensemble, health);
        listener.Start();
        if (listener.Port >= 0) system.Log.Info("Coordination server listening on {0}:{1}, data dir {2}", settings.ClientAddress, listener.Port, Path.GetFullPath(settings.DataDir));
        else system.Log.Info("Coordination server: plain client port off, data dir {0}", Path.GetFullPath(settings.DataDir));
        if (listener.SecurePort >= 0) system.Log.Info("Secure (TLS) client port {0}:{1}", settings.ClientAddress, listener.SecurePort);
        return server;
    }

    /// <summary>
    /// A member of an ensemble: the ActorSystem also speaks Akka.Remote, the tree starts at the newest snapshot, the
    /// Zab log holds the journal's entries after it, and the peer actor decides (through election and
    /// synchronisation) what commits and when this server serves clients.
    /// </summary>
    private static CoordinationServer StartEnsembleMember(Config full, EnsembleSettings ensemble)
    {
        var settings = ServerSettings.Create(full);
        // One keytab for the acceptor: the client port's Kerberos principal and the member port's.
        var (memberAcceptors, memberInitiator) = ensemble.KerberosKeys;
        Sessions.KerberosKeys.Configure([.. memberAcceptors.Prepend(settings.Kerberos.Key).OfType<Sessions.KerberosKey>()], memberInitiator);
        Directory.CreateDirectory(settings.DataDir);
        var persistence = PersistenceSettings.Create(full, settings.DataDir);
        if (!persistence.Enabled) throw new ConfigurationException("an ensemble member needs its durable log: coordination.persistence.enabled must be on");
        var files = new SnapshotFiles(settings.DataDir, persistence.SnapshotsRetained, persistence.Purge);
        // Before the journal is opened (an SQLite journal is moved aside).
        var restore = full.GetString("coordination.persistence.restore-from", "");
        var restored = string.IsNullOrEmpty(restore) ? null : MemberRestore.Run(restore, persistence, files);
        var system = CreateSystem(full, persistence);
        try
        {
            if (restored is not null) system.Log.Warning(restored);
            var snapshots = SnapshotPolicy.For(files, persistence, JournalRecords.Of(system, persistence, ensemble: true));
            var members = ensemble.Members(((ExtendedActorSystem)system).Provider.DefaultAddress.Protocol);
            var (spec, state) = MemberNode(system, settings, persistence, files, snapshots, ensemble, members);
            var (replica, sessions, tracker) = StartNode(system, spec);
            // A quarantined system can never talk to that peer again: end it, and the host starts a fresh incarnation.
            system.ActorOf(Akka.Actor.Props.Create(() => new QuarantineWatcher()), "quarantine-watcher");
            return Listen(system, settings, replica, sessions, state, new AdminContext(tracker, files, ensemble, InitialConfiguration(full)));
        }
        catch
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
            throw;
        }
    }

    /// <summary>A member restarts with the membership it last saw committed (its dynamic config file), not its HOCON's.</summary>
    private static EnsembleSettings MembershipOf(Config withReference) =>
        DynamicConfigFile.Apply(EnsembleSettings.Create(withReference), withReference.GetString("coordination.data-dir"),
            withReference.GetLong("coordination.server-id", 0));

    /// <summary>An ensemble member's node, recovered from its data dir: the tree at the newest snapshot, the Zab log with
    /// the journal's entries after it, and the peer as the replica's child (each needs the other's reference from its
    /// start; its log delivers commits to the replica).</summary>
    private static (NodeActor.Spec Spec, EnsembleState State) MemberNode(ActorSystem system, ServerSettings settings, PersistenceSettings persistence,
        SnapshotFiles files, SnapshotPolicy snapshots, EnsembleSettings ensemble, EnsembleMembers members, bool endsSystem = true)
    {
        var state = new EnsembleState { ServerId = settings.ServerId, Metrics = Metrics.ServerMetrics.For(system).Ensemble };
        var link = new EnsembleLink(settings.ServerId, members) { State = state };
        var recovered = EnsembleRecovery.Run(system, persistence, files, system.Log);
        files.AttachLog(recovered.Journal);
        Props Peer(IActorRef replica) => PeerActor.Props(settings.ServerId, members, new ZabLog(recovered.Tree.LastZxid, recovered.Entries, recovered.Journal, files, replica),
            ensemble.Zab, MonotonicMs, replica, state, settings.ReconfigEnabled);
        return (new NodeActor.Spec(settings, recovered.Tree, recovered.Journal, snapshots, link, Peer, state, endsSystem), state);
    }

    /// <summary>The admin and metrics HTTP endpoints that are enabled (one listener when they share address and port).</summary>
    private static IReadOnlyList<AdminHttpServer> StartHttp(ServerSettings s, FourLetterWordHandler words, AdminCommands commands, Metrics.ServerMetrics metrics, IActorRef replica,
        ServerHealth health, Action<string> warn)
    {
        var servers = new List<AdminHttpServer>();
        var shared = s.Admin.SharesEndpointWith(s.Metrics);
        if (s.Admin.Enabled) servers.Add(new AdminHttpServer(s.Admin, words, serveCommands: true, serveMetrics: shared, warn, metrics, replica, s.SuperDigest, s.X509SuperUser, commands, health));
        if (s.Metrics.Enabled && !shared) servers.Add(new AdminHttpServer(s.Metrics, words, serveCommands: false, serveMetrics: true, warn, metrics));
        foreach (var server in servers) server.Start();
        return servers;
    }

    private static ActorSystem CreateSystem(Config full, PersistenceSettings persistence, bool readOnly = false)
    {
        if (!persistence.Enabled || persistence.UsesFileLog) return ActorSystem.Create("coordination", full);
        if (persistence.UsesEventLog) return ActorSystem.Create("coordination", full.WithFallback(JournalSetup.EventLogConfig(persistence, readOnly)));
        var defaultSynchronous = JournalSetup.PrepareSqlite(persistence);
        var config = full.WithFallback(JournalSetup.AkkaConfig(persistence));
        var bootstrap = BootstrapSetup.Create().WithConfig(config);
        var setup = JournalSetup.DataOptions(persistence, defaultSynchronous) is { } options ? ActorSystemSetup.Create(bootstrap, options) : ActorSystemSetup.Create(bootstrap);
        return ActorSystem.Create("coordination", setup);
    }

    /// <summary>
    /// <c>--restore FILE</c>: seeds an empty data dir with a snapshot written by <see cref="Backup"/> (or any
    /// snapshot file). Refuses a data dir that already holds snapshots or a journal.
    /// </summary>
    private static void Restore(string file, PersistenceSettings persistence, SnapshotFiles files)
    {
        if (files.List().Count > 0 || FileTxnLog.List(persistence.LogDirectory).Count > 0 || FileTxnLog.List(persistence.EventLogDirectory).Count > 0 || (persistence.SqliteFile is { } db && File.Exists(db) && new FileInfo(db).Length > 0 && HasJournalRows(persistence)))
            throw new RecoveryException($"--restore {file}: the data dir {files.Directory} already holds data; restore into an empty data dir");
        DataTree tree;
        try
        {
            using var fs = File.OpenRead(file);
            tree = DataTree.ReadSnapshot(fs);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new RecoveryException($"--restore {file}: not a valid snapshot ({e.Message})", e);
        }
        SnapshotFiles.WriteDurably(Path.Combine(files.Directory, SnapshotFiles.FileName(tree.LastZxid)), tree.WriteSnapshot);
    }

    private static bool HasJournalRows(PersistenceSettings persistence)
    {
        using var c = new Microsoft.Data.Sqlite.SqliteConnection(persistence.EffectiveConnectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='journal'";
        if (Convert.ToInt64(cmd.ExecuteScalar()) == 0) return false;
        cmd.CommandText = "SELECT count(*) FROM journal";
        var rows = Convert.ToInt64(cmd.ExecuteScalar());
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return rows > 0;
    }

    /// <summary>
    /// <c>Coordination.Server backup --out FILE</c>: writes a consistent snapshot of the server whose data dir (and
    /// journal) the config names, without stopping it: the newest snapshot plus every journal row committed so far,
    /// i.e. exactly the state after some acknowledged txn. SQLite in WAL mode lets this reader run beside the server.
    /// Returns the zxid of the backup.
    /// </summary>
    public static long Backup(Config config, string outFile)
    {
        var full = Logging.ServerLogging.ApplyTo(config.WithFallback(ServerSettings.Reference));
        var settings = ServerSettings.Create(full);
        var persistence = PersistenceSettings.Create(full, settings.DataDir) with { Enabled = true };
        var files = new SnapshotFiles(settings.DataDir, persistence.SnapshotsRetained, purge: false);
        var system = CreateSystem(full, persistence, readOnly: true);
        try
        {
            var tree = EnsembleSettings.Create(full).Enabled
                ? EnsembleRecovery.ReadState(system, persistence, files, system.Log)
                : Recovery.Run(system, persistence, files, system.Log, readOnly: true).Tree;
            SnapshotFiles.WriteDurably(Path.GetFullPath(outFile), tree.WriteSnapshot);
            return tree.LastZxid;
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.DisposeAsync().ConfigureAwait(false);
        foreach (var http in _http) await http.DisposeAsync().ConfigureAwait(false);
        // An embedded member stops its node; the application's ActorSystem is the application's.
        if (_embeddedNode is { } node) await StopEmbeddedNodeAsync(node).ConfigureAwait(false);
        else await System.Terminate().ConfigureAwait(false);
    }
}

/// <summary>Terminates the node's ActorSystem when a peer has quarantined it (Akka.Remote's point of no return).</summary>
internal sealed class QuarantineWatcher : ReceiveActor
{
    public QuarantineWatcher()
    {
        Receive<Akka.Remote.ThisActorSystemQuarantinedEvent>(e =>
        {
            Context.GetLogger().Error("Quarantined by {0}; restarting this node", e.RemoteAddress);
            Context.System.Terminate();
        });
    }

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(Akka.Remote.ThisActorSystemQuarantinedEvent));
}
