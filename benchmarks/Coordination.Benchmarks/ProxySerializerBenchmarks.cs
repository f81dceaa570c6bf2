using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using BenchmarkDotNet.Attributes;
using Coordination.Client.Actors;
using Coordination.Protocol;

namespace Coordination.Benchmarks;

/// <summary>
/// The actor proxy's messages across nodes (issue 21): one request and its reply serialized and read back by Akka's
/// default JSON serializer, by Hyperion (Akka.Serialization.Hyperion) and by <see cref="ProxyMessageSerializer"/>.
/// Prints the encoded sizes once. Run:
/// <c>dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- --filter '*ProxySerializer*' --job short</c>
/// </summary>
[MemoryDiagnoser]
public class ProxySerializerBenchmarks
{
    private ActorSystem _system = null!;
    private Serializer _serializer = null!;
    private object _request = null!;
    private object _reply = null!;

    [Params("json", "hyperion", "proxy")]
    public string Serializer { get; set; } = "proxy";

    [GlobalSetup]
    public void Setup()
    {
        _system = ActorSystem.Create("bench", ConfigurationFactory.ParseString(
            "akka.actor.serializers.hyperion = \"Akka.Serialization.HyperionSerializer, Akka.Serialization.Hyperion\""));
        var extended = (ExtendedActorSystem)_system;
        _serializer = Serializer switch
        {
            "json" => new NewtonSoftJsonSerializer(extended),
            "hyperion" => new HyperionSerializer(extended),
            _ => new ProxyMessageSerializer(extended),
        };
        _request = new SetData("/app/config/service-a", new byte[100], 7);
        _reply = new NodeData("/app/config/service-a", new byte[100], new Stat(0x100000010, 0x100000020, 1733400000000, 1733400001000, 8, 0, 0, 0, 100, 0, 0x100000010));
        Console.WriteLine($"// {Serializer}: SetData {Encode(_request).Length} B, NodeData {Encode(_reply).Length} B");
    }

    [GlobalCleanup]
    public void Cleanup() => _system.Terminate().Wait();

    private byte[] Encode(object message) => _serializer.ToBinary(message);

    private object Decode(byte[] bytes, object like) => _serializer switch
    {
        SerializerWithStringManifest manifest => manifest.FromBinary(bytes, manifest.Manifest(like)),
        var s => s.FromBinary(bytes, like.GetType()),
    };

    /// <summary>A request and its reply, each written and read back: one remote ask's serialization work.</summary>
    [Benchmark]
    public object RequestAndReply() => Decode(Encode(_request), _request) is SetData ? Decode(Encode(_reply), _reply) : throw new InvalidOperationException();
}
