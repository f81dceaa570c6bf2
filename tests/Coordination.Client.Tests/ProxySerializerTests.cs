using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.Protocol;
using Newtonsoft.Json;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>
/// Every message of the actor proxy goes through <see cref="ProxyMessageSerializer"/> (never Akka's default JSON)
/// and comes back with every field, both when the system's configuration binds it and when only the extension's
/// defaults do. The samples must cover every message type the serializer lists, so a new message without a sample
/// fails here.
/// </summary>
public sealed class ProxySerializerTests(ITestOutputHelper output) : IDisposable
{
    private readonly ActorSystem _configured = ActorSystem.Create("configured", ConfigurationFactory.ParseString(ProxyMessageSerializer.Config));
    private readonly ActorSystem _plain = ActorSystem.Create("plain");

    public void Dispose()
    {
        _configured.Terminate().Wait(TimeSpan.FromSeconds(10));
        _plain.Terminate().Wait(TimeSpan.FromSeconds(10));
    }

    private static readonly Stat Stat = new(1, 2, 3, 4, 5, 6, 7, 0x1234, 9, 10, 11);
    private static readonly byte[] Bytes = Encoding.UTF8.GetBytes("data");
    private static readonly IReadOnlyList<Acl> Acls = [new(Perms.Read | Perms.Write, new Id("digest", "u:hash")), new(Perms.All, Id.Anyone)];

    private static IEnumerable<object> Samples(IActorRef actor)
    {
        yield return new Create("/a", Bytes, CreateMode.EphemeralSequential, Acls, 5000) { WatchSubscriber = actor };
        yield return new Create("/a", null);
        yield return new Created("/a0000000001", Stat);
        yield return new Delete("/a", 3);
        yield return new Deleted("/a");
        yield return new Exists("/a", true) { WatchSubscriber = actor };
        yield return new NodeStat("/a", Stat);
        yield return new NodeStat("/missing", null);
        yield return new GetData("/a", true);
        yield return new NodeData("/a", Bytes, Stat);
        yield return new NodeData("/a", null, Stat);
        yield return new NodeData("/a", [], Stat);
        yield return new SetData("/a", Bytes, 7);
        yield return new GetChildren("/a", true);
        yield return new NodeChildren("/a", ["x", "y"], Stat);
        yield return new GetAcl("/a");
        yield return new NodeAcl("/a", Acls, Stat);
        yield return new SetAcl("/a", Acls, 2);
        yield return new Sync("/a");
        yield return new Synced("/a");
        IReadOnlyList<Op> ops = [Op.Create("/m", Bytes, CreateMode.Persistent, Acls, -1), Op.Delete("/d", 1), Op.SetData("/s", null, 2), Op.Check("/c", 3)];
        yield return new Multi(ops);
        yield return new MultiRead([Op.GetData("/g"), Op.GetChildren("/l")]);
        yield return new MultiCompleted([
            new MultiOpResult.Create("/m", Stat), new MultiOpResult.Create("/n", null), new MultiOpResult.Delete(), new MultiOpResult.SetData(Stat),
            new MultiOpResult.Check(), new MultiOpResult.GetData(Bytes, Stat), new MultiOpResult.GetChildren(["c"]), new MultiOpResult.Error(ErrorCode.BadVersion)]);
        yield return new GetEphemerals("/e");
        yield return new EphemeralNodes(["/e/1", "/e/2"]);
        yield return new GetAllChildrenNumber("/a");
        yield return new AllChildrenNumber("/a", 42);
        yield return new WhoAmI();
        yield return new Identities([new ClientInfo("digest", "u"), new ClientInfo("ip", "127.0.0.1")]);
        yield return new AddAuth(AuthInfo.Digest("u", "p"));
        yield return new AuthAdded("digest");
        yield return new AddWatch("/w", AddWatchMode.PersistentRecursive, actor);
        yield return new AddWatch("/w");
        yield return new WatchAdded("/w", AddWatchMode.Persistent);
        yield return new RemoveWatch("/w", AddWatchMode.PersistentRecursive, actor);
        yield return new WatchRemoved("/w", AddWatchMode.PersistentRecursive);
        yield return new WatchEvent(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/w"));
        yield return new SubscribeConnectionState(actor);
        yield return new UnsubscribeConnectionState(actor);
        yield return new ConnectionStateChanged(ConnectionState.Reconnected, 0x100000001);
        yield return GetConnectionState.Instance;
        yield return new GetSessionCredentials();
        yield return new SessionCredentials(0x100000001, [1, 2, 3]);
        yield return new GetConfig(true);
        yield return new Reconfig(["server.4=127.0.0.1:2888:3888;2184"], [2, 3], 0x100000000);
        yield return new Reconfig(null, null);
        yield return new ReconfigMembers(["server.1=127.0.0.1:2888:3888;2181"], 5);
        yield return new ConfigData(QuorumConfig.Parse("server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=100000000"), Stat);
        yield return new SubscribeChanges("/p", 0x200000005, 64, actor);
        yield return new ChangesSubscribed(7, "/p");
        yield return new FeedChange(7, new Change(0x200000006, EventType.NodeCreated, "/p/x", Bytes, Stat));
        yield return new RequestChanges(7, 32);
        yield return new ChangesCompacted(7, "/p", 0x200000001);
        yield return new ChangesEnded(7, new CompactedException("/p", 0x200000001));
        yield return new ChangesEnded(8, new NoAuthException("/p"));
        yield return new StopChanges(7);
        yield return new ChangesStopped(7);
    }

    [Fact]
    public void The_samples_cover_every_message_the_serializer_lists()
    {
        var sampled = Samples(ActorRefs.Nobody).Select(m => m.GetType()).ToHashSet();
        var listed = ProxyMessageSerializer.Config.Split('\n').Where(l => l.Contains("\" = ")).Select(l => l.Trim().Split('"')[1].Split(',')[0]).ToHashSet();
        Assert.Empty(listed.Except(sampled.Select(t => t.FullName!)));
        Assert.Equal(listed.Count, sampled.Count);
    }

    [Theory]
    [InlineData("configured")]
    [InlineData("plain")]
    public void Every_message_round_trips_through_the_proxy_serializer(string which)
    {
        var system = which == "configured" ? _configured : _plain;
        if (which == "plain") system.Coordination(); // the extension's defaults bind the serializer
        var actor = system.ActorOf(Props.Empty, "subscriber");
        foreach (var message in Samples(actor))
        {
            var serializer = system.Serialization.FindSerializerFor(message);
            Assert.True(serializer is ProxyMessageSerializer, $"{message.GetType().Name} goes through {serializer.GetType().Name}");
            var bytes = serializer.ToBinary(message);
            var back = ((ProxyMessageSerializer)serializer).FromBinary(bytes, ((ProxyMessageSerializer)serializer).Manifest(message));
            Assert.Equal(message.GetType(), back.GetType());
            Assert.Equal(Describe(message), Describe(back));
        }
    }

    /// <summary>
    /// Why the proxy has a serializer of its own rather than Hyperion (docs/architecture.md §9): for every message type,
    /// what Akka.Remote carries per message (payload and manifest) is smaller. Sizes are deterministic (no timing):
    /// the table goes to the test output.
    /// </summary>
    [Fact]
    public void Every_message_is_smaller_through_the_proxy_serializer_than_through_Hyperion()
    {
        var system = (ExtendedActorSystem)_configured;
        var ours = (ProxyMessageSerializer)system.Serialization.FindSerializerForType(typeof(GetData));
        var hyperion = new HyperionSerializer(system);
        var actor = system.ActorOf(Props.Empty, "sized");
        Assert.False(hyperion.IncludeManifest); // Hyperion names the type inside its payload: no manifest on the wire
        var larger = new List<string>();
        foreach (var message in Samples(actor))
        {
            var mine = ours.ToBinary(message).Length + Encoding.UTF8.GetByteCount(ours.Manifest(message));
            var theirs = hyperion.ToBinary(message).Length;
            output.WriteLine($"{message.GetType().Name,-28} proxy {mine,5} B   hyperion {theirs,5} B");
            if (mine >= theirs) larger.Add($"{message.GetType().Name}: {mine} B >= Hyperion's {theirs} B");
        }
        Assert.Empty(larger);
    }

    [Fact]
    public void An_unknown_manifest_is_refused_without_resolving_any_type()
    {
        var serializer = (ProxyMessageSerializer)_configured.Serialization.FindSerializerForType(typeof(GetData));
        var e = Assert.Throws<System.Runtime.Serialization.SerializationException>(() =>
            serializer.FromBinary([0, 0, 0, 1, 47], "System.Diagnostics.Process, System.Diagnostics.Process"));
        Assert.Contains("unknown coordination proxy message manifest", e.Message);
    }

    /// <summary>Every public field of a message, as JSON of its runtime types (an actor by its path, an exception by
    /// its type, message and code), so that a field lost on the way shows.</summary>
    private static string Describe(object message) => JsonConvert.SerializeObject(message, new JsonSerializerSettings
    {
        Converters = [new ActorRefAsPath(), new ExceptionAsText()],
        ReferenceLoopHandling = ReferenceLoopHandling.Error,
    });

    private sealed class ActorRefAsPath : JsonConverter<IActorRef>
    {
        public override void WriteJson(JsonWriter writer, IActorRef? value, JsonSerializer serializer) => writer.WriteValue(value?.Path.ToStringWithUid());
        public override IActorRef ReadJson(JsonReader reader, Type objectType, IActorRef? existingValue, bool hasExistingValue, JsonSerializer serializer) => throw new NotSupportedException();
    }

    private sealed class ExceptionAsText : JsonConverter<Exception>
    {
        public override void WriteJson(JsonWriter writer, Exception? value, JsonSerializer serializer) =>
            writer.WriteValue(value is KeeperException k ? $"{k.GetType().Name} {k.Code} {k.Path} {k.Message}" : $"{value?.GetType().Name} {value?.Message}");
        public override Exception ReadJson(JsonReader reader, Type objectType, Exception? existingValue, bool hasExistingValue, JsonSerializer serializer) => throw new NotSupportedException();
    }
}
