using Akka.Actor;
using Akka.Event;
using Akka.Configuration;
using Coordination.Core;
using Coordination.Server.Admin;
using Coordination.Server.Network;
using Coordination.Server.Pipeline;
using Coordination.Server.Sessions;

namespace Coordination.Server;

/// <summary>
/// A running coordination server: an ActorSystem with the request pipeline and the client port listener.
/// A standalone server is an ensemble of one: the same pipeline with a quorum of one.
/// </summary>
public sealed class CoordinationServer : IAsyncDisposable
{
    private readonly ClientListener _listener;

    public ActorSystem System { get; }
    public ServerSettings Settings { get; }
    public IActorRef Replica { get; }
    public int ClientPort => _listener.Port;
    public string Mode => "standalone";

    private CoordinationServer(ActorSystem system, ServerSettings settings, IActorRef replica, ClientListener listener)
    {
        System = system;
        Settings = settings;
        Replica = replica;
        _listener = listener;
    }

    /// <summary>Wall-clock milliseconds: ctime/mtime of znodes and TTL checks.</summary>
    public static long WallClockMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Monotonic milliseconds: session deadlines must not jump with the wall clock.</summary>
    public static long MonotonicMs() => Environment.TickCount64;

    /// <summary>Starts a server from a config; <see cref="ServerSettings.Reference"/> is added as the fallback.</summary>
    public static CoordinationServer Start(Config config)
    {
        var full = config.WithFallback(ServerSettings.Reference);
        var settings = ServerSettings.Create(full);
        Directory.CreateDirectory(settings.DataDir);

        var system = ActorSystem.Create("coordination", full);
        try
        {
            var tree = new DataTree();
            var log = system.ActorOf(InMemoryTxnLogActor.Props(), "txnlog");
            var tracker = system.ActorOf(SessionTrackerActor.Props(settings.TickTime, MonotonicMs), "session-tracker");
            var replica = system.ActorOf(ReplicaActor.Props(settings, tree, log, tracker, WallClockMs), "replica");
            tracker.Tell(new SessionTrackerActor.SetReplica(replica));
            var sessions = system.ActorOf(SessionManagerActor.Props(settings, replica, tracker, WallClockMs()), "sessions");
            var registry = new ConnectionRegistry();
            CoordinationServer? server = null;
            var admin = new FourLetterWordHandler(settings, replica, registry, () => server?.Mode ?? "standalone");
            var listener = new ClientListener(settings, system, sessions, admin, registry);
            server = new CoordinationServer(system, settings, replica, listener);
            listener.Start();
            system.Log.Info("Coordination server listening on {0}:{1}, data dir {2}", settings.ClientAddress, listener.Port, Path.GetFullPath(settings.DataDir));
            return server;
        }
        catch
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.DisposeAsync().ConfigureAwait(false);
        await System.Terminate().ConfigureAwait(false);
    }
}
