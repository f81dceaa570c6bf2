using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Server.Ensemble;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;
using Coordination.Server.Sessions;

namespace Coordination.Server;

/// <summary>
/// The parent of one server's actors (docs/architecture.md §3). It creates them in the order their references are
/// needed, each with the references it uses at construction: the session tracker, the watch dispatchers, the
/// in-memory log (persistence off), the replica (which, in an ensemble, spawns its log, the Zab peer, as its own
/// child: the two need each other's reference, and a parent and its child have both at construction), and the
/// session manager.
/// <para>
/// Supervision is fail fast: a child that throws is stopped, and any child that stops ends the node, which
/// terminates the ActorSystem (the client port closes, and with it every client's connection); the host
/// (<see cref="CoordinationNode"/>) starts a fresh incarnation of an ensemble member, or the process ends. No child
/// is restarted alone, because each restart would lose what the others rely on: the replica its sessions' queues
/// and sequence numbers (requests never answered), its watch table (watches are not replicated) and its proposals
/// in flight; the peer its Zab state while the log it shares holds entries it no longer accounts for; the tracker
/// every session's deadline (sessions, and their ephemerals, would never expire); the session manager its
/// sessions; a dispatcher the events it was delivering (invariant 4). A fresh incarnation recovers all of it from
/// the data dir and, in an ensemble, from the leader.
/// </para>
/// </summary>
public sealed class NodeActor : ReceiveActor
{
    public const string Name = "node";
    /// <summary>Where each member's actors live: members address each other's replica and tracker by these paths.</summary>
    public const string ReplicaPath = "/user/" + Name + "/" + ReplicaName;
    public const string TrackerPath = "/user/" + Name + "/" + TrackerName;
    public const string PeerPath = ReplicaPath + "/" + PeerActor.Name;
    private const string ReplicaName = "replica";
    private const string TrackerName = "session-tracker";

    /// <summary>What the node builds its children from.</summary>
    /// <param name="Log">The standalone journal recovery opened (null: persistence is off, the node creates an in-memory log).</param>
    /// <param name="Peer">In an ensemble, the Zab peer's props for a given replica (the replica spawns it).</param>
    /// <param name="EndsSystem">The node's end terminates its ActorSystem (its own server's); off for a member embedded
    /// in an application's system, whose end is the application's to decide.</param>
    public sealed record Spec(ServerSettings Settings, DataTree Tree, IActorRef? Log, SnapshotPolicy? Snapshots,
        EnsembleLink? Ensemble = null, Func<IActorRef, Props>? Peer = null, EnsembleState? State = null, bool EndsSystem = true);

    /// <summary>Asks for the references the server's front end needs; answered with <see cref="Children"/>.</summary>
    public sealed class GetChildren { public static readonly GetChildren Instance = new(); }
    public sealed record Children(IActorRef Replica, IActorRef Sessions, IActorRef Tracker);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Children _children;
    private readonly bool _endsSystem;

    public NodeActor(Spec spec)
    {
        var settings = spec.Settings;
        _endsSystem = spec.EndsSystem;
        var tracker = Child(SessionTrackerActor.Props(settings.TickTime, CoordinationServer.MonotonicMs, spec.Ensemble), TrackerName);
        var dispatchers = Enumerable.Range(0, settings.WatchDispatchers).Select(i => Child(WatchDispatcherActor.Props(), $"watches-{i}")).ToArray();
        var log = spec.Log ?? Child(InMemoryTxnLogActor.Props(), "txnlog");
        // A journal that recovery started is an actor outside this node (recovery runs before it, and the tree it
        // recovers is the replica's): its end ends the node too. The file journal is no actor (FileJournalRef); the
        // persistent-actor journals' ref has none behind it either, but its supervisor is one.
        if (spec.Log is ActorRefWithCell) Context.Watch(spec.Log);
        else if (spec.Log is JournalTxnLogRef journal) Context.Watch(journal.Supervisor);
        var replica = Child(ReplicaActor.Props(settings, spec.Tree, log, tracker, dispatchers, CoordinationServer.WallClockMs, spec.Snapshots,
            spec.Ensemble, peer: spec.Peer), ReplicaName);
        var sessions = Child(SessionManagerActor.Props(settings, replica, tracker, CoordinationServer.WallClockMs(), spec.State), "sessions");
        _children = new Children(replica, sessions, tracker);
        if (settings.MemoryTrim.Enabled) Child(MemoryTrimActor.Props(settings.MemoryTrim), "memory-trim");

        Receive<GetChildren>(_ => Sender.Tell(_children));
        // The tracker is created before the replica (which tells it about sessions from its first message on), so
        // its expirations come here and go on to the replica.
        Receive<ExpireSession>(m => replica.Forward(m));
        Receive<ExpireLocalSession>(m => replica.Forward(m));
        Receive<Terminated>(t =>
        {
            _log.Error("{0} stopped: stopping the node", t.ActorRef.Path);
            Context.Stop(Self);
        });
    }

    public static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new NodeActor(spec));

    /// <summary>The references of a node just created (it answers once its constructor has created them).</summary>
    public static Children ChildrenOf(IActorRef node) =>
        node.Ask<Children>(GetChildren.Instance, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();

    private IActorRef Child(Props props, string name) => Context.Watch(Context.ActorOf(props, name));

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _log.Error(e, "A child of the node failed; stopping the node (fail fast: see NodeActor)");
        return Directive.Stop;
    });

    /// <summary>A node that ends, for whatever reason, ends its ActorSystem: nothing of the server works without it.</summary>
    protected override void PostStop()
    {
        if (_endsSystem) Context.System.Terminate();
    }
}
