namespace Coordination.Protocol;

/// <summary>Base of every response body that follows a <see cref="ReplyHeader"/> with err = 0.</summary>
public abstract record ZkResponse : IJuteRecord
{
    public abstract void Write(ref JuteWriter w);
}

/// <summary>A response without a body (delete, setWatches, ping, auth, check, removeWatches...).</summary>
public sealed record EmptyResponse : ZkResponse
{
    public static readonly EmptyResponse Instance = new();
    public override void Write(ref JuteWriter w) { }
}

/// <summary>An error code as a body; ZooKeeper answers addWatch with ErrorResponse(0).</summary>
public sealed record ErrorCodeResponse(ErrorCode Err) : ZkResponse
{
    public static readonly ErrorCodeResponse Ok = new(ErrorCode.Ok);
    public static ErrorCodeResponse Read(ref JuteReader r) => new((ErrorCode)r.ReadInt());
    public override void Write(ref JuteWriter w) => w.WriteInt((int)Err);
}

/// <summary>exists, setData, setACL.</summary>
public sealed record StatResponse(Stat Stat) : ZkResponse
{
    public static StatResponse Read(ref JuteReader r) => new(Stat.Read(ref r));
    public override void Write(ref JuteWriter w) => Stat.Write(ref w);
}

/// <summary>create and sync: the path.</summary>
public sealed record PathResponse(string Path) : ZkResponse
{
    public static PathResponse Read(ref JuteReader r) => new(r.ReadRequiredString());
    public override void Write(ref JuteWriter w) => w.WriteString(Path);
}

/// <summary>create2, createContainer, createTTL: the path and the new node's Stat.</summary>
public sealed record Create2Response(string Path, Stat Stat) : ZkResponse
{
    public static Create2Response Read(ref JuteReader r) => new(r.ReadRequiredString(), Stat.Read(ref r));
    public override void Write(ref JuteWriter w) { w.WriteString(Path); Stat.Write(ref w); }
}

public sealed record GetDataResponse(byte[]? Data, Stat Stat) : ZkResponse
{
    public static GetDataResponse Read(ref JuteReader r) => new(r.ReadBuffer(), Stat.Read(ref r));
    public override void Write(ref JuteWriter w) { w.WriteBuffer(Data); Stat.Write(ref w); }
}

/// <summary>getChildren; also getChildren2 when <see cref="Stat"/> is present.</summary>
public sealed record GetChildrenResponse(IReadOnlyList<string> Children, Stat? Stat = null) : ZkResponse
{
    public static GetChildrenResponse Read(ref JuteReader r, bool withStat)
    {
        var children = r.ReadStringVector() ?? [];
        return withStat ? new GetChildrenResponse(children, Protocol.Stat.Read(ref r)) : new GetChildrenResponse(children);
    }

    public override void Write(ref JuteWriter w)
    {
        w.WriteInt(Children.Count);
        foreach (var c in Children) w.WriteString(c);
        Stat?.Write(ref w);
    }
}

public sealed record GetAclResponse(IReadOnlyList<Acl> Acl, Stat Stat) : ZkResponse
{
    public static GetAclResponse Read(ref JuteReader r) => new(Protocol.Acl.ReadList(ref r) ?? [], Stat.Read(ref r));
    public override void Write(ref JuteWriter w) { Protocol.Acl.WriteList(ref w, Acl); Stat.Write(ref w); }
}

public sealed record GetAllChildrenNumberResponse(int TotalNumber) : ZkResponse
{
    public static GetAllChildrenNumberResponse Read(ref JuteReader r) => new(r.ReadInt());
    public override void Write(ref JuteWriter w) => w.WriteInt(TotalNumber);
}

/// <summary>getEphemerals: a list of paths.</summary>
/// <summary>The server's SASL token (ZooKeeper's SetSASLResponse); null after a failure.</summary>
public sealed record SaslResponse(byte[]? Token) : ZkResponse
{
    public static SaslResponse Read(ref JuteReader r) => new(r.ReadBuffer());
    public override void Write(ref JuteWriter w) => w.WriteBuffer(Token);
}

public sealed record StringListResponse(IReadOnlyList<string> Values) : ZkResponse
{
    public static StringListResponse Read(ref JuteReader r) => new(r.ReadStringVector() ?? []);
    public override void Write(ref JuteWriter w)
    {
        w.WriteInt(Values.Count);
        foreach (var v in Values) w.WriteString(v);
    }
}

public sealed record WhoAmIResponse(IReadOnlyList<ClientInfo> ClientInfo) : ZkResponse
{
    public static WhoAmIResponse Read(ref JuteReader r)
    {
        var count = r.ReadVectorCount();
        var list = new List<ClientInfo>(Math.Max(count, 0));
        for (var i = 0; i < count; i++) list.Add(Protocol.ClientInfo.Read(ref r));
        return new WhoAmIResponse(list);
    }

    public override void Write(ref JuteWriter w)
    {
        w.WriteInt(ClientInfo.Count);
        foreach (var c in ClientInfo) c.Write(ref w);
    }
}

/// <summary>A watch notification, sent with xid -1 and the zxid of the change.</summary>
public sealed record WatcherEvent(EventType Type, KeeperState State, string Path) : ZkResponse
{
    public static WatcherEvent Read(ref JuteReader r) => new((EventType)r.ReadInt(), (KeeperState)r.ReadInt(), r.ReadString() ?? "");
    public override void Write(ref JuteWriter w) { w.WriteInt((int)Type); w.WriteInt((int)State); w.WriteString(Path); }
}

/// <summary>The result of one op inside multi or multiRead.</summary>
public readonly record struct OpResult(OpCode Type, ErrorCode Err, ZkResponse Body)
{
    public static OpResult Error(ErrorCode err) => new(OpCode.Error, err, EmptyResponse.Instance);
}

public sealed record MultiResponse(IReadOnlyList<OpResult> Results) : ZkResponse
{
    public static MultiResponse Read(ref JuteReader r)
    {
        var results = new List<OpResult>();
        while (true)
        {
            var header = MultiHeader.Read(ref r);
            if (header.Done) break;
            var type = (OpCode)header.Type;
            results.Add(type switch
            {
                OpCode.Error => OpResult.Error((ErrorCode)r.ReadInt()),
                OpCode.Create => new OpResult(type, ErrorCode.Ok, PathResponse.Read(ref r)),
                OpCode.Create2 or OpCode.CreateContainer or OpCode.CreateTtl => new OpResult(type, ErrorCode.Ok, Create2Response.Read(ref r)),
                OpCode.SetData => new OpResult(type, ErrorCode.Ok, StatResponse.Read(ref r)),
                OpCode.GetData => new OpResult(type, ErrorCode.Ok, GetDataResponse.Read(ref r)),
                OpCode.GetChildren => new OpResult(type, ErrorCode.Ok, GetChildrenResponse.Read(ref r, withStat: false)),
                OpCode.Delete or OpCode.Check => new OpResult(type, ErrorCode.Ok, EmptyResponse.Instance),
                _ => throw new UnknownOpException(type),
            });
        }
        return new MultiResponse(results);
    }

    public override void Write(ref JuteWriter w)
    {
        foreach (var result in Results)
        {
            if (result.Type == OpCode.Error)
            {
                new MultiHeader(-1, false, (int)result.Err).Write(ref w);
                w.WriteInt((int)result.Err);   // ErrorResponse body
            }
            else
            {
                new MultiHeader((int)result.Type, false, 0).Write(ref w);
                result.Body.Write(ref w);
            }
        }
        new MultiHeader(-1, true, -1).Write(ref w);
    }
}

public static class Responses
{
    /// <summary>Parses a successful response body for a request of type <paramref name="op"/> (client side).</summary>
    public static ZkResponse Read(OpCode op, ref JuteReader r) => op switch
    {
        OpCode.Create => PathResponse.Read(ref r),
        OpCode.Sync => PathResponse.Read(ref r),
        OpCode.Create2 or OpCode.CreateContainer or OpCode.CreateTtl => Create2Response.Read(ref r),
        OpCode.Exists or OpCode.SetData or OpCode.SetAcl => StatResponse.Read(ref r),
        OpCode.GetData or OpCode.Reconfig => GetDataResponse.Read(ref r),
        OpCode.GetChildren => GetChildrenResponse.Read(ref r, withStat: false),
        OpCode.GetChildren2 => GetChildrenResponse.Read(ref r, withStat: true),
        OpCode.GetAcl => GetAclResponse.Read(ref r),
        OpCode.GetAllChildrenNumber => GetAllChildrenNumberResponse.Read(ref r),
        OpCode.GetEphemerals => StringListResponse.Read(ref r),
        OpCode.WhoAmI => WhoAmIResponse.Read(ref r),
        OpCode.Multi or OpCode.MultiRead => MultiResponse.Read(ref r),
        OpCode.AddWatch => ErrorCodeResponse.Read(ref r),
        OpCode.WatchChanges => ChangeFeedPosition.Read(ref r),
        _ => EmptyResponse.Instance,
    };
}
