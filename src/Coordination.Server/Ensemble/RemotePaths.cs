using Akka.Actor;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Actor references to other members' actors by path. The remote provider builds one without a network round
/// trip; unlike an actor selection, a message to it travels without a selection envelope and is not matched
/// against the path on arrival, which matters for the per-txn messages. A path without a uid addresses whatever
/// incarnation of the actor lives there, so a restarted member is reached as before.
/// </summary>
public static class RemotePaths
{
    public static IActorRef Resolve(ActorSystem system, string path) =>
        ((ExtendedActorSystem)system).Provider.ResolveActorRef(path);
}
