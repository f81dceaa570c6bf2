using Akka.Actor;
using Akka.Configuration;
using Akka.Remote;
using Coordination.Core;
using Coordination.Server.Ensemble;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;

namespace Coordination.Server;

/// <summary>
/// A member embedded in an application's ActorSystem (docs/architecture.md §10): the node's actor tree is created
/// under that system, the journal is the file journal in the data dir, the client port is off unless configured,
/// and the application's own code reaches the member through <see cref="ConnectInProcess"/>. The member's links
/// to the other members run on the member transport (its handshake authenticates them, invariant 11) added to the
/// host's remoting beside the host's own transport, under its own protocol (<see cref="EmbeddedScheme"/>).
/// </summary>
public sealed partial class CoordinationServer
{
    /// <summary>The member transport's scheme in an application's system: its addresses are akka.coord://app@host:port,
    /// so Akka.Remote routes Zab traffic to it and everything else to the host's transport.</summary>
    public const string EmbeddedScheme = "coord";

    private IActorRef? _embeddedNode;

    /// <summary>
    /// The HOCON an application's ActorSystem needs before it starts to embed the member that
    /// <paramref name="config"/> describes: the member transport beside <paramref name="hostTransports"/>
    /// (default the DotNetty TCP transport of Akka.Remote and Akka.Cluster) and the Zab serializer for the ensemble's
    /// messages only (the application's bindings stay as they are). Empty for a member with no ensemble.
    /// </summary>
    public static Config EmbeddedRemotingConfig(Config config, IReadOnlyList<string>? hostTransports = null)
    {
        var withReference = config.WithFallback(ServerSettings.Reference);
        var ensemble = MembershipOf(withReference);
        if (!ensemble.Enabled) return Config.Empty;
        var transports = (hostTransports ?? ["akka.remote.dot-netty.tcp"]).Append("akka.remote.coordination-socket").Select(t => $"\"{t}\"");
        return ConfigurationFactory.ParseString($$"""
            akka.actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
            akka.actor.serialization-bindings {
              "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
              "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab
            }
            akka.remote.enabled-transports = [{{string.Join(", ", transports)}}]
            {{ensemble.MemberTransport(withReference.GetLong("coordination.server-id"), EmbeddedScheme)}}
            """);
    }

    /// <summary>
    /// Starts a member in <paramref name="system"/> (which was created with <see cref="EmbeddedRemotingConfig"/>
    /// when <paramref name="config"/> names an ensemble; with no voters it is a standalone server). Recovers the data
    /// dir first and throws <see cref="RecoveryException"/> rather than serve a tree that may lack acknowledged
    /// writes. The node's end does not end the system: the server's client port closes and in-process clients lose
    /// their connection.
    /// </summary>
    public static CoordinationServer StartEmbedded(ActorSystem system, Config config)
    {
        var full = config.WithFallback(EmbeddedDefaults).WithFallback(ServerSettings.Reference);
        var settings = ServerSettings.Create(full, inProcessClients: true);
        Directory.CreateDirectory(settings.DataDir);
        // journal = auto: a new data dir gets the file journal.
        var persistence = PersistenceSettings.Create(full, settings.DataDir, newDataDirJournal: "file");
        if (!persistence.Enabled || !persistence.UsesFileLog)
            throw new ConfigurationException("an embedded member needs coordination.persistence.enabled = on and the file journal " +
                $"(journal = file, or auto on a new data dir or one of the file journal; this one is {persistence.Journal}): " +
                "the SQL and persistent-file journals need their plugins in the application's config");
        var files = new SnapshotFiles(settings.DataDir, persistence.SnapshotsRetained, persistence.Purge);
        var snapshots = SnapshotPolicy.For(files, persistence, new Feed.FileJournalRecords(persistence.LogDirectory));
        var ensemble = MembershipOf(full);
        IActorRef node;
        EnsembleState? state = null;
        if (ensemble.Enabled)
        {
            if (!((ExtendedActorSystem)system).Provider.DefaultAddress.HasGlobalScope)
                throw new ConfigurationException("an embedded ensemble member needs a remote or cluster provider in the application's ActorSystem");
            var members = ensemble.Members(MemberProtocol(system), system.Name);
            (var spec, state) = MemberNode(system, settings, persistence, files, snapshots, ensemble, members, endsSystem: false);
            node = system.ActorOf(NodeActor.Props(spec), NodeActor.Name);
        }
        else
        {
            var recovered = Recovery.Run(system, persistence, files, system.Log);
            files.AttachLog(recovered.Log);
            node = system.ActorOf(NodeActor.Props(new NodeActor.Spec(settings, recovered.Tree, recovered.Log, snapshots, EndsSystem: false)), NodeActor.Name);
        }
        try
        {
            var (replica, sessions, tracker) = NodeActor.ChildrenOf(node);
            var server = Listen(system, settings, replica, sessions, state,
                new AdminContext(tracker, files, ensemble.Enabled ? ensemble : null, InitialConfiguration(full)));
            server._embeddedNode = node;
            // A node that stopped by itself (fail fast) closes the client port as a terminated system would.
            node.WatchAsync().ContinueWith(_ => server._listener.DisposeAsync().AsTask(), TaskScheduler.Default);
            return server;
        }
        catch
        {
            system.Stop(node);
            throw;
        }
    }

    /// <summary>
    /// The member transport's protocol as this system spells it: akka.coord, or with adapters applied to it (the tests'
    /// throttler, akka.trttl.coord) the adapted one, as the standalone member takes its system's default address's.
    /// Addressing peers as akka.coord there would find no transport.
    /// </summary>
    private static string MemberProtocol(ActorSystem system) =>
        ((IRemoteActorRefProvider)((ExtendedActorSystem)system).Provider).Transport.Addresses
            .Select(a => a.Protocol).FirstOrDefault(p => p.EndsWith("." + EmbeddedScheme, StringComparison.Ordinal)) ?? "akka." + EmbeddedScheme;

    /// <summary>Embedded defaults: no client port unless the application asks for one.</summary>
    private static readonly Config EmbeddedDefaults = ConfigurationFactory.ParseString("coordination.client-port = off");

    /// <summary>
    /// A connection to this server from the same process, with no socket: give it to
    /// <c>CoordinationClientOptions.Connector</c> (<c>_ => ValueTask.FromResult(server.ConnectInProcess())</c>). The
    /// session is a client port session in every respect (ephemerals, watches, FIFO order, expiry when its owner
    /// stops pinging).
    /// </summary>
    public Stream ConnectInProcess() => _listener.ConnectInProcess();

    /// <summary>An in-process connection whose session is the super user: for the member's own host only (the cluster
    /// membership proposes reconfigs through it, which need WRITE on /zookeeper/config). Not public: the
    /// application's connections never get it.</summary>
    internal Stream ConnectInProcessAsMemberHost() => _listener.ConnectInProcess(memberHost: true);

    private static async Task StopEmbeddedNodeAsync(IActorRef node)
    {
        try { await node.GracefulStop(TimeSpan.FromSeconds(10)).ConfigureAwait(false); }
        catch (TaskCanceledException) { /* stopping; the system's end takes it */ }
    }
}
