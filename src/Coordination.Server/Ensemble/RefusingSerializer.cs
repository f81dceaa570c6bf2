using Akka.Actor;
using Akka.Serialization;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Stands in for Akka's JSON serializer on a member (<see cref="EnsembleSettings.RemotingConfig"/>): the member port
/// carries Zab and ensemble messages (<see cref="ZabSerializer"/>) and Akka's own system messages (its protobuf
/// serializers), nothing else. A JSON serializer would let whoever writes to the port name a type to build; with
/// this one bound to System.Object, an unexpected message is refused on both ends instead.
/// </summary>
public sealed class RefusingSerializer(ExtendedActorSystem system) : Serializer(system)
{
    /// <summary>Akka passes the settings section of the serializer this one replaces (serialization-settings.json).</summary>
    public RefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system)
    {
    }

    public override int Identifier => 4712;
    public override bool IncludeManifest => false;

    public override byte[] ToBinary(object obj) =>
        throw new System.Runtime.Serialization.SerializationException($"{obj.GetType()} is not a message between ensemble members");

    public override object FromBinary(byte[] bytes, Type type) =>
        throw new System.Runtime.Serialization.SerializationException("the member port accepts no messages of this serializer");
}
