using System.Buffers;
using System.Collections.Frozen;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Coordination.Protocol;

namespace Coordination.Client.Actors;

/// <summary>
/// The serializer of the proxy's messages when they cross nodes (an actor on one node asking the proxy on another):
/// jute, as on ZooKeeper's wire, under a short manifest per message. The set of types is closed: a manifest this
/// table does not know is refused, so no type named by the sender is ever resolved (Akka's default JSON serializer
/// builds whatever type a payload names, and is 10-30x slower; Hyperion names types too: see docs/architecture.md
/// §10 for the figures). Bound by <see cref="Config"/>, which the extension's defaults include (Akka reads the bindings
/// injected by an extension when it first serializes a type).
/// </summary>
public sealed class ProxyMessageSerializer : SerializerWithStringManifest
{
    private readonly ExtendedActorSystem _system;

    public ProxyMessageSerializer(ExtendedActorSystem system) : base(system) => _system = system;

    /// <summary>Akka reserves 0-40 for its own serializers; this is ours on every node.</summary>
    public const int SerializerId = 4811;
    public const string Name = "coordination-proxy";

    public override int Identifier => SerializerId;

    /// <summary>The HOCON that binds every proxy message to this serializer; a node that talks to a remote proxy
    /// needs it as well (Akka.Hosting's WithCoordinationClient adds it).</summary>
    public static string Config =>
        $"akka.actor.serializers.{Name} = \"{TypeName(typeof(ProxyMessageSerializer))}\"\n" +
        "akka.actor.serialization-bindings {\n" +
        string.Concat(Codes.Keys.Select(t => $"  \"{TypeName(t)}\" = {Name}\n")) +
        "}\n";

    private static string TypeName(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";

    /// <summary>Every message type the proxy sends or accepts across nodes, and its manifest.</summary>
    internal static FrozenDictionary<Type, string> Codes { get; } = new Dictionary<Type, string>
    {
        [typeof(Create)] = "c", [typeof(Created)] = "C", [typeof(Delete)] = "d", [typeof(Deleted)] = "D",
        [typeof(Exists)] = "e", [typeof(NodeStat)] = "E", [typeof(GetData)] = "g", [typeof(NodeData)] = "G",
        [typeof(SetData)] = "s", [typeof(GetChildren)] = "l", [typeof(NodeChildren)] = "L", [typeof(GetAcl)] = "a",
        [typeof(NodeAcl)] = "A", [typeof(SetAcl)] = "sa", [typeof(Sync)] = "y", [typeof(Synced)] = "Y",
        [typeof(Multi)] = "m", [typeof(MultiRead)] = "mr", [typeof(MultiCompleted)] = "M", [typeof(GetEphemerals)] = "eph",
        [typeof(EphemeralNodes)] = "EPH", [typeof(GetAllChildrenNumber)] = "n", [typeof(AllChildrenNumber)] = "N",
        [typeof(WhoAmI)] = "w", [typeof(Identities)] = "W", [typeof(AddAuth)] = "au", [typeof(AuthAdded)] = "AU",
        [typeof(AddWatch)] = "aw", [typeof(WatchAdded)] = "AW", [typeof(RemoveWatch)] = "rw", [typeof(WatchRemoved)] = "RW",
        [typeof(WatchEvent)] = "we", [typeof(SubscribeConnectionState)] = "sc", [typeof(UnsubscribeConnectionState)] = "uc",
        [typeof(ConnectionStateChanged)] = "CS", [typeof(GetConnectionState)] = "gc", [typeof(GetSessionCredentials)] = "gs",
        [typeof(SessionCredentials)] = "GS", [typeof(GetConfig)] = "cfg", [typeof(Reconfig)] = "rc",
        [typeof(ReconfigMembers)] = "rm", [typeof(ConfigData)] = "CFG", [typeof(SubscribeChanges)] = "fs",
        [typeof(ChangesSubscribed)] = "FS", [typeof(FeedChange)] = "F", [typeof(RequestChanges)] = "fr",
        [typeof(ChangesCompacted)] = "FC", [typeof(ChangesEnded)] = "FE", [typeof(StopChanges)] = "fx",
        [typeof(ChangesStopped)] = "FX",
    }.ToFrozenDictionary();

    /// <summary>The requests among them: each carries the watch subscriber of its base record first.</summary>
    private static readonly FrozenSet<string> RequestCodes =
        Codes.Where(c => typeof(CoordinationRequest).IsAssignableFrom(c.Key)).Select(c => c.Value).ToFrozenSet();

    public override string Manifest(object o) =>
        Codes.TryGetValue(o.GetType(), out var code) ? code : throw new ArgumentException($"{o.GetType()} is not a coordination proxy message", nameof(o));

    public override byte[] ToBinary(object obj)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        var w = new JuteWriter(buffer);
        if (obj is CoordinationRequest request) WriteRef(ref w, request.WatchSubscriber);
        switch (obj)
        {
            case Create m: w.WriteString(m.Path); w.WriteBuffer(m.Data); w.WriteInt((int)m.Mode); Acl.WriteList(ref w, m.Acl); w.WriteLong(m.Ttl); break;
            case Created m: w.WriteString(m.Path); m.Stat.Write(ref w); break;
            case Delete m: w.WriteString(m.Path); w.WriteInt(m.Version); break;
            case Deleted m: w.WriteString(m.Path); break;
            case Exists m: w.WriteString(m.Path); w.WriteBool(m.Watch); break;
            case NodeStat m: w.WriteString(m.Path); WriteStat(ref w, m.Stat); break;
            case GetData m: w.WriteString(m.Path); w.WriteBool(m.Watch); break;
            case NodeData m: w.WriteString(m.Path); w.WriteBuffer(m.Data); m.Stat.Write(ref w); break;
            case SetData m: w.WriteString(m.Path); w.WriteBuffer(m.Data); w.WriteInt(m.Version); break;
            case GetChildren m: w.WriteString(m.Path); w.WriteBool(m.Watch); break;
            case NodeChildren m: w.WriteString(m.Path); w.WriteStringVector(m.Children); m.Stat.Write(ref w); break;
            case GetAcl m: w.WriteString(m.Path); break;
            case NodeAcl m: w.WriteString(m.Path); Acl.WriteList(ref w, m.Acl); m.Stat.Write(ref w); break;
            case SetAcl m: w.WriteString(m.Path); Acl.WriteList(ref w, m.Acl); w.WriteInt(m.Version); break;
            case Sync m: w.WriteString(m.Path); break;
            case Synced m: w.WriteString(m.Path); break;
            case Multi m: WriteOps(ref w, m.Ops); break;
            case MultiRead m: WriteOps(ref w, m.Ops); break;
            case MultiCompleted m: WriteResults(ref w, m.Results); break;
            case GetEphemerals m: w.WriteString(m.PrefixPath); break;
            case EphemeralNodes m: w.WriteStringVector(m.Paths); break;
            case GetAllChildrenNumber m: w.WriteString(m.Path); break;
            case AllChildrenNumber m: w.WriteString(m.Path); w.WriteInt(m.Count); break;
            case WhoAmI: break;
            case Identities m:
                w.WriteInt(m.ClientInfo.Count);
                foreach (var info in m.ClientInfo) info.Write(ref w);
                break;
            case AddAuth m: w.WriteString(m.Auth.Scheme); w.WriteBuffer(m.Auth.Auth); break;
            case AuthAdded m: w.WriteString(m.Scheme); break;
            case AddWatch m: w.WriteString(m.Path); w.WriteInt((int)m.Mode); WriteRef(ref w, m.Subscriber); break;
            case WatchAdded m: w.WriteString(m.Path); w.WriteInt((int)m.Mode); break;
            case RemoveWatch m: w.WriteString(m.Path); w.WriteInt((int)m.Mode); WriteRef(ref w, m.Subscriber); break;
            case WatchRemoved m: w.WriteString(m.Path); w.WriteInt((int)m.Mode); break;
            case WatchEvent m: w.WriteInt((int)m.Event.Type); w.WriteInt((int)m.Event.State); w.WriteString(m.Event.Path); break;
            case SubscribeConnectionState m: WriteRef(ref w, m.Subscriber); break;
            case UnsubscribeConnectionState m: WriteRef(ref w, m.Subscriber); break;
            case ConnectionStateChanged m: w.WriteInt((int)m.State); w.WriteLong(m.SessionId); break;
            case GetConnectionState or GetSessionCredentials: break;
            case SessionCredentials m: w.WriteLong(m.SessionId); w.WriteBuffer(m.Password); break;
            case GetConfig m: w.WriteBool(m.Watch); break;
            case Reconfig m:
                w.WriteStringVector(m.Joining);
                WriteLongs(ref w, m.Leaving);
                w.WriteLong(m.FromConfigVersion);
                break;
            case ReconfigMembers m: w.WriteStringVector(m.Members); w.WriteLong(m.FromConfigVersion); break;
            case ConfigData m: w.WriteString(m.Config.Text); w.WriteLong(m.Config.Version); m.Stat.Write(ref w); break;
            case SubscribeChanges m: w.WriteString(m.Prefix); w.WriteLong(m.AfterZxid); w.WriteInt(m.Demand); WriteRef(ref w, m.Subscriber); break;
            case ChangesSubscribed m: w.WriteLong(m.SubscriptionId); w.WriteString(m.Prefix); break;
            case FeedChange m:
                w.WriteLong(m.SubscriptionId);
                w.WriteLong(m.Change.Zxid); w.WriteInt((int)m.Change.Type); w.WriteString(m.Change.Path); w.WriteBuffer(m.Change.Data);
                m.Change.Stat.Write(ref w);
                break;
            case RequestChanges m: w.WriteLong(m.SubscriptionId); w.WriteInt(m.Count); break;
            case ChangesCompacted m: w.WriteLong(m.SubscriptionId); w.WriteString(m.Prefix); w.WriteLong(m.RetainedAfter); break;
            case ChangesEnded m: w.WriteLong(m.SubscriptionId); WriteCause(ref w, m.Cause); break;
            case StopChanges m: w.WriteLong(m.SubscriptionId); break;
            case ChangesStopped m: w.WriteLong(m.SubscriptionId); break;
            default: throw new ArgumentException($"{obj.GetType()} is not a coordination proxy message", nameof(obj));
        }
        return buffer.WrittenSpan.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new JuteReader(bytes);
        CoordinationRequest Req(CoordinationRequest request, IActorRef? subscriber) => request with { WatchSubscriber = subscriber };
        var sub = RequestCodes.Contains(manifest) ? ReadRef(ref r) : null;
        object message = manifest switch
        {
            "c" => Req(new Create(Text(ref r), r.ReadBuffer(), (CreateMode)r.ReadInt(), Acl.ReadList(ref r), r.ReadLong()), sub),
            "C" => new Created(Text(ref r), Stat.Read(ref r)),
            "d" => Req(new Delete(Text(ref r), r.ReadInt()), sub),
            "D" => new Deleted(Text(ref r)),
            "e" => Req(new Exists(Text(ref r), r.ReadBool()), sub),
            "E" => new NodeStat(Text(ref r), ReadStat(ref r)),
            "g" => Req(new GetData(Text(ref r), r.ReadBool()), sub),
            "G" => new NodeData(Text(ref r), r.ReadBuffer(), Stat.Read(ref r)),
            "s" => Req(new SetData(Text(ref r), r.ReadBuffer(), r.ReadInt()), sub),
            "l" => Req(new GetChildren(Text(ref r), r.ReadBool()), sub),
            "L" => new NodeChildren(Text(ref r), r.ReadStringVector() ?? [], Stat.Read(ref r)),
            "a" => Req(new GetAcl(Text(ref r)), sub),
            "A" => new NodeAcl(Text(ref r), Acl.ReadList(ref r) ?? [], Stat.Read(ref r)),
            "sa" => Req(new SetAcl(Text(ref r), Acl.ReadList(ref r) ?? [], r.ReadInt()), sub),
            "y" => Req(new Sync(Text(ref r)), sub),
            "Y" => new Synced(Text(ref r)),
            "m" => Req(new Multi(ReadList(ref r, ReadOp)), sub),
            "mr" => Req(new MultiRead(ReadList(ref r, ReadOp)), sub),
            "M" => new MultiCompleted(ReadList(ref r, ReadResult)),
            "eph" => Req(new GetEphemerals(Text(ref r)), sub),
            "EPH" => new EphemeralNodes(r.ReadStringVector() ?? []),
            "n" => Req(new GetAllChildrenNumber(Text(ref r)), sub),
            "N" => new AllChildrenNumber(Text(ref r), r.ReadInt()),
            "w" => Req(new WhoAmI(), sub),
            "W" => new Identities(ReadList(ref r, ClientInfo.Read)),
            "au" => Req(new AddAuth(new AuthInfo(Text(ref r), r.ReadBuffer() ?? [])), sub),
            "AU" => new AuthAdded(Text(ref r)),
            "aw" => new AddWatch(Text(ref r), (AddWatchMode)r.ReadInt(), ReadRef(ref r)),
            "AW" => new WatchAdded(Text(ref r), (AddWatchMode)r.ReadInt()),
            "rw" => new RemoveWatch(Text(ref r), (AddWatchMode)r.ReadInt(), ReadRef(ref r)),
            "RW" => new WatchRemoved(Text(ref r), (AddWatchMode)r.ReadInt()),
            "we" => new WatchEvent(new WatchedEvent((EventType)r.ReadInt(), (KeeperState)r.ReadInt(), Text(ref r))),
            "sc" => new SubscribeConnectionState(ReadRef(ref r) ?? throw Malformed(manifest)),
            "uc" => new UnsubscribeConnectionState(ReadRef(ref r) ?? throw Malformed(manifest)),
            "CS" => new ConnectionStateChanged((ConnectionState)r.ReadInt(), r.ReadLong()),
            "gc" => GetConnectionState.Instance,
            "gs" => new GetSessionCredentials(),
            "GS" => new SessionCredentials(r.ReadLong(), r.ReadBuffer() ?? []),
            "cfg" => Req(new GetConfig(r.ReadBool()), sub),
            "rc" => Req(new Reconfig(r.ReadStringVector(), ReadLongs(ref r), r.ReadLong()), sub),
            "rm" => Req(new ReconfigMembers(r.ReadStringVector() ?? [], r.ReadLong()), sub),
            "CFG" => new ConfigData(QuorumConfig.Parse(Text(ref r)) with { Version = r.ReadLong() }, Stat.Read(ref r)),
            "fs" => new SubscribeChanges(Text(ref r), r.ReadLong(), r.ReadInt(), ReadRef(ref r)),
            "FS" => new ChangesSubscribed(r.ReadLong(), Text(ref r)),
            "F" => new FeedChange(r.ReadLong(), new Change(r.ReadLong(), (EventType)r.ReadInt(), Text(ref r), r.ReadBuffer(), Stat.Read(ref r))),
            "fr" => new RequestChanges(r.ReadLong(), r.ReadInt()),
            "FC" => new ChangesCompacted(r.ReadLong(), Text(ref r), r.ReadLong()),
            "FE" => new ChangesEnded(r.ReadLong(), ReadCause(ref r)),
            "fx" => new StopChanges(r.ReadLong()),
            "FX" => new ChangesStopped(r.ReadLong()),
            _ => throw new SerializationException($"unknown coordination proxy message manifest '{manifest}'"),
        };
        return message;
    }

    private static string Text(ref JuteReader r) => r.ReadString() ?? "";

    private static SerializationException Malformed(string manifest) => new($"coordination proxy message '{manifest}' without its actor");

    private static void WriteStat(ref JuteWriter w, Stat? stat)
    {
        w.WriteBool(stat is not null);
        stat?.Write(ref w);
    }

    private static Stat? ReadStat(ref JuteReader r) => r.ReadBool() ? Stat.Read(ref r) : null;

    private static void WriteRef(ref JuteWriter w, IActorRef? actor) =>
        w.WriteString(actor is null ? null : Akka.Serialization.Serialization.SerializedActorPath(actor));

    private IActorRef? ReadRef(ref JuteReader r) => r.ReadString() is { } path ? _system.Provider.ResolveActorRef(path) : null;

    private static void WriteLongs(ref JuteWriter w, IReadOnlyList<long>? values)
    {
        if (values is null) { w.WriteInt(-1); return; }
        w.WriteInt(values.Count);
        foreach (var v in values) w.WriteLong(v);
    }

    private static List<long>? ReadLongs(ref JuteReader r)
    {
        var count = r.ReadVectorCount();
        if (count < 0) return null;
        var values = new List<long>(count);
        for (var i = 0; i < count; i++) values.Add(r.ReadLong());
        return values;
    }

    private delegate T ItemReader<T>(ref JuteReader r);

    /// <summary>A vector written as its count and its items (a negative count reads as empty).</summary>
    private static List<T> ReadList<T>(ref JuteReader r, ItemReader<T> item)
    {
        var count = Math.Max(0, r.ReadVectorCount());
        var items = new List<T>(count);
        for (var i = 0; i < count; i++) items.Add(item(ref r));
        return items;
    }

    private static void WriteOps(ref JuteWriter w, IReadOnlyList<Op> ops)
    {
        w.WriteInt(ops.Count);
        foreach (var op in ops)
        {
            switch (op)
            {
                case CreateOp o: w.WriteInt(0); w.WriteString(o.NodePath); w.WriteBuffer(o.Data); w.WriteInt((int)o.Mode); Acl.WriteList(ref w, o.Acl); w.WriteLong(o.Ttl); break;
                case DeleteOp o: w.WriteInt(1); w.WriteString(o.NodePath); w.WriteInt(o.Version); break;
                case SetDataOp o: w.WriteInt(2); w.WriteString(o.NodePath); w.WriteBuffer(o.Data); w.WriteInt(o.Version); break;
                case CheckOp o: w.WriteInt(3); w.WriteString(o.NodePath); w.WriteInt(o.Version); break;
                case GetDataOp o: w.WriteInt(4); w.WriteString(o.NodePath); break;
                case GetChildrenOp o: w.WriteInt(5); w.WriteString(o.NodePath); break;
                default: throw new ArgumentException($"unknown op {op.GetType()}", nameof(ops));
            }
        }
    }

    private static Op ReadOp(ref JuteReader r) => r.ReadInt() switch
    {
        0 => new CreateOp(Text(ref r), r.ReadBuffer(), (CreateMode)r.ReadInt(), Acl.ReadList(ref r) ?? Acl.OpenAclUnsafe, r.ReadLong()),
        1 => new DeleteOp(Text(ref r), r.ReadInt()),
        2 => new SetDataOp(Text(ref r), r.ReadBuffer(), r.ReadInt()),
        3 => new CheckOp(Text(ref r), r.ReadInt()),
        4 => new GetDataOp(Text(ref r)),
        5 => new GetChildrenOp(Text(ref r)),
        var kind => throw new SerializationException($"unknown multi op kind {kind}"),
    };

    private static void WriteResults(ref JuteWriter w, IReadOnlyList<MultiOpResult> results)
    {
        w.WriteInt(results.Count);
        foreach (var result in results)
        {
            switch (result)
            {
                case MultiOpResult.Create c: w.WriteInt(0); w.WriteString(c.Path); WriteStat(ref w, c.Stat); break;
                case MultiOpResult.Delete: w.WriteInt(1); break;
                case MultiOpResult.SetData s: w.WriteInt(2); s.Stat.Write(ref w); break;
                case MultiOpResult.Check: w.WriteInt(3); break;
                case MultiOpResult.GetData g: w.WriteInt(4); w.WriteBuffer(g.Data); g.Stat.Write(ref w); break;
                case MultiOpResult.GetChildren g: w.WriteInt(5); w.WriteStringVector(g.Children); break;
                case MultiOpResult.Error e: w.WriteInt(6); w.WriteInt((int)e.Code); break;
                default: throw new ArgumentException($"unknown multi result {result.GetType()}", nameof(results));
            }
        }
    }

    private static MultiOpResult ReadResult(ref JuteReader r) => r.ReadInt() switch
    {
        0 => new MultiOpResult.Create(Text(ref r), ReadStat(ref r)),
        1 => new MultiOpResult.Delete(),
        2 => new MultiOpResult.SetData(Stat.Read(ref r)),
        3 => new MultiOpResult.Check(),
        4 => new MultiOpResult.GetData(r.ReadBuffer(), Stat.Read(ref r)),
        5 => new MultiOpResult.GetChildren(r.ReadStringVector() ?? []),
        6 => new MultiOpResult.Error((ErrorCode)r.ReadInt()),
        var kind => throw new SerializationException($"unknown multi result kind {kind}"),
    };

    /// <summary>
    /// Why a feed ended: a KeeperException keeps its type, code, path and message (and a CompactedException where the
    /// retained history starts); any other exception arrives as a plain Exception whose message names its type.
    /// </summary>
    private static void WriteCause(ref JuteWriter w, Exception cause)
    {
        w.WriteInt(cause switch { CompactedException => 2, KeeperException => 1, _ => 0 });
        w.WriteString(cause.Message);
        switch (cause)
        {
            case CompactedException c: w.WriteString(c.Path); w.WriteLong(c.RetainedAfter); break;
            case KeeperException k: w.WriteInt((int)k.Code); w.WriteString(k.Path); break;
            default: w.WriteString(cause.GetType().FullName); break;
        }
    }

    private static Exception ReadCause(ref JuteReader r)
    {
        var kind = r.ReadInt();
        var message = r.ReadString();
        return kind switch
        {
            2 => new CompactedException(r.ReadString(), r.ReadLong()),
            1 => KeeperException.Create((ErrorCode)r.ReadInt(), r.ReadString(), message),
            _ => new Exception($"{r.ReadString()}: {message}"),
        };
    }
}
