using System.Runtime.CompilerServices;
using Akka.Actor;

namespace Coordination.Server.Ensemble;

/// <summary>
/// The members a node's transport authenticates links with, and their endpoints: who may link to this node, and
/// where it dials. It starts as the start-up configuration and follows the Zab core (<see cref="PeerActor"/>
/// replaces it): the committed configuration and a reconfiguration logged but not yet committed, so that a server
/// that reconfiguration adds (a joiner) can link and synchronise. An id in neither is refused in the handshake,
/// however good its credentials: a server becomes a member only by a reconfig an authorised client asked for.
/// One per ActorSystem, since Akka builds the transport itself from config.
/// </summary>
public sealed class MemberRegistry(IReadOnlyDictionary<long, (string Host, int Port)> members)
{
    private static readonly ConditionalWeakTable<ActorSystem, MemberRegistry> BySystem = new();

    private volatile IReadOnlyDictionary<long, (string Host, int Port)> _members = members;

    public IReadOnlyDictionary<long, (string Host, int Port)> Members => _members;

    /// <summary>From now on these are the members (links already open stay; the peer actor drops what a removed member sends).</summary>
    public void Replace(IReadOnlyDictionary<long, (string Host, int Port)> members) => _members = members;

    /// <summary>The registry of <paramref name="system"/>'s member transport; null when links are not authenticated.</summary>
    public static MemberRegistry? Of(ActorSystem system) => BySystem.TryGetValue(system, out var registry) ? registry : null;

    internal void AttachTo(ActorSystem system) => BySystem.AddOrUpdate(system, this);
}
