using Akka.Actor;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.Recipes;

namespace Coordination.Akka.Actors;

// ---------------------------------------------------------------- messages (small and immutable)

/// <summary>The watched node changed: its data now (null when the node does not exist).</summary>
public sealed record NodeChanged(string Path, byte[]? Data);

/// <summary>This participant now leads the election at <see cref="ElectionPath"/>.</summary>
public sealed record LeadershipGranted(string ElectionPath, string ParticipantId);

/// <summary>Leadership ended: connection suspended, session expired, lock node deleted, or the actor stopped.</summary>
public sealed record LeadershipRevoked(string ElectionPath, string ParticipantId);

/// <summary>
/// Recipes for actors: each actor runs one recipe on the system's shared session (the one configured in
/// <c>coordination.client</c>, as for <c>system.Coordination()</c>) and tells its subscriber what happens as
/// messages; stopping the actor closes the recipe. The actors never block: start-up and recipe callbacks come back
/// as messages.
/// </summary>
public static class RecipeActors
{
    /// <summary>The shared client of <paramref name="system"/> for its <c>coordination.client</c> settings.</summary>
    public static Task<CoordinationClient> SharedClientAsync(ActorSystem system)
    {
        var settings = CoordinationClientSettings.Create(system);
        return CoordinationClients.Get(system).GetAsync(new ConnectionSettings(settings.ConnectString, settings.SessionTimeout));
    }

    /// <summary>Tells <paramref name="subscriber"/> a <see cref="NodeChanged"/> at start and after every change of <paramref name="path"/> (a NodeCache).</summary>
    public static Props NodeWatcher(string path, IActorRef subscriber) => Props.Create(() => new NodeWatcherActor(path, subscriber));

    /// <summary>Runs for leadership at <paramref name="electionPath"/>; tells <paramref name="subscriber"/> when it is granted and revoked (a LeaderSelector that requeues).</summary>
    public static Props Leadership(string electionPath, string participantId, IActorRef subscriber) =>
        Props.Create(() => new LeadershipActor(electionPath, participantId, subscriber));
}

/// <summary>Base of the recipe actors: obtains the shared client without blocking, then starts the recipe.</summary>
internal abstract class RecipeActor : ReceiveActor
{
    private sealed record ClientReady(CoordinationClient Client);
    /// <summary>Piped back by a recipe's asynchronous start; nothing more to do.</summary>
    protected sealed record RecipeStarted { public static readonly RecipeStarted Instance = new(); }

    protected RecipeActor()
    {
        Receive<ClientReady>(ready => Started(ready.Client));
        Receive<RecipeStarted>(_ => { });
        Receive<Status.Failure>(f => throw new CoordinationConnectException("could not start the recipe", f.Cause));
    }

    protected override void PreStart() =>
        RecipeActors.SharedClientAsync(Context.System).PipeTo(Self, success: c => new ClientReady(c));

    /// <summary>Starts the recipe on the client (on the actor's thread; long work goes through PipeTo).</summary>
    protected abstract void Started(CoordinationClient client);
}

internal sealed class NodeWatcherActor(string path, IActorRef subscriber) : RecipeActor
{
    private NodeCache? _cache;

    protected override void Started(CoordinationClient client)
    {
        var cache = new NodeCache(client, path);
        _cache = cache;
        // The cache raises on its own loop: hand the change to the subscriber as an immutable message.
        cache.Changed += _ => subscriber.Tell(new NodeChanged(path, cache.Current?.Data));
        cache.StartAsync().PipeTo(Self, success: () => RecipeStarted.Instance);
    }

    protected override void PostStop() { if (_cache is { } c) _ = c.DisposeAsync().AsTask(); }
}

internal sealed class LeadershipActor(string electionPath, string participantId, IActorRef subscriber) : RecipeActor
{
    private LeaderSelector? _selector;

    protected override void Started(CoordinationClient client)
    {
        // The leadership body only holds leadership until it is revoked; the subscriber does the leader's work.
        _selector = new LeaderSelector(client, electionPath, async leading =>
        {
            subscriber.Tell(new LeadershipGranted(electionPath, participantId));
            try { await Task.Delay(Timeout.Infinite, leading).ConfigureAwait(false); }
            finally { subscriber.Tell(new LeadershipRevoked(electionPath, participantId)); }
        }, participantId);
        _selector.Start();
    }

    protected override void PostStop() { if (_selector is { } s) _ = s.CloseAsync(); }
}
