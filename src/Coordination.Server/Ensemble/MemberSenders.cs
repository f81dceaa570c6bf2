using Akka.Actor;
using Akka.Event;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Who sent an ensemble message, taken from its sender's address, never from a field of the message (docs/architecture.md
/// invariant 11). On the member port the transport lets a link carry only senders at the address of the member
/// it authenticated (<see cref="MemberLink"/>), so a remote sender's address names exactly one member. A local
/// actor is this server itself. A message with no sender, or from any other address, comes from no member.
/// </summary>
public sealed class MemberSenders
{
    private readonly Dictionary<Address, long> _byAddress = new();

    public MemberSenders(EnsembleMembers members)
    {
        foreach (var (id, address) in members.Voters.Concat(members.Observers)) _byAddress[Address.Parse(address)] = id;
    }

    /// <summary>The member whose node has this address, if any.</summary>
    public long? MemberAt(Address address) => _byAddress.TryGetValue(address, out var id) ? id : null;

    /// <summary>True when <paramref name="sender"/> is the member <paramref name="claimedId"/> (or a local actor).</summary>
    public bool Vouches(IActorRef sender, long claimedId) => Classify(sender) is var who && (who == Local || who == claimedId);

    /// <summary>True when <paramref name="sender"/> is a configured member (or a local actor).</summary>
    public bool IsMember(IActorRef sender) => Classify(sender) != Nobody;

    private const long Local = -1, Nobody = -2;

    private long Classify(IActorRef? sender)
    {
        if (sender is null || sender.IsNobody() || sender is DeadLetterActorRef) return Nobody;
        var address = sender.Path.Address;
        if (!address.HasGlobalScope) return Local;
        return MemberAt(address) ?? Nobody;
    }

    /// <summary>Drops a message whose sender is not who it claims: logs it and counts it.</summary>
    public static void Refuse(ActorSystem system, ILoggingAdapter log, object message, IActorRef sender) =>
        Refuse(system, log, message.GetType().Name, sender);

    /// <summary>As <see cref="Refuse(ActorSystem, ILoggingAdapter, object, IActorRef)"/>, for a message described by <paramref name="what"/>.</summary>
    public static void Refuse(ActorSystem system, ILoggingAdapter log, string what, IActorRef sender)
    {
        Metrics.ServerMetrics.For(system).Ensemble.MemberMessageRefused();
        log.Warning("Dropped {0} from {1}: the sender is not the member it names", what, sender.Path);
    }
}
