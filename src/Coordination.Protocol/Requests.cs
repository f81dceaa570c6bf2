namespace Coordination.Protocol;

public readonly record struct RequestHeader(int Xid, OpCode Type) : IJuteRecord
{
    public static RequestHeader Read(ref JuteReader r) => new(r.ReadInt(), (OpCode)r.ReadInt());
    public void Write(ref JuteWriter w) { w.WriteInt(Xid); w.WriteInt((int)Type); }
}

public readonly record struct ReplyHeader(int Xid, long Zxid, ErrorCode Err) : IJuteRecord
{
    public const int Size = 16;
    public static ReplyHeader Read(ref JuteReader r) => new(r.ReadInt(), r.ReadLong(), (ErrorCode)r.ReadInt());
    public void Write(ref JuteWriter w) { w.WriteInt(Xid); w.WriteLong(Zxid); w.WriteInt((int)Err); }
}

/// <summary>The first frame a client sends. <c>readOnly</c> is absent in clients older than 3.4.</summary>
public sealed record ConnectRequest(int ProtocolVersion, long LastZxidSeen, int Timeout, long SessionId, byte[] Password, bool ReadOnly, bool HasReadOnlyFlag = true) : IJuteRecord
{
    public static ConnectRequest Read(ref JuteReader r)
    {
        var version = r.ReadInt();
        var lastZxid = r.ReadLong();
        var timeout = r.ReadInt();
        var sessionId = r.ReadLong();
        var password = r.ReadBuffer() ?? [];
        var hasFlag = !r.AtEnd;
        var readOnly = hasFlag && r.ReadBool();
        return new ConnectRequest(version, lastZxid, timeout, sessionId, password, readOnly, hasFlag);
    }

    public void Write(ref JuteWriter w)
    {
        w.WriteInt(ProtocolVersion); w.WriteLong(LastZxidSeen); w.WriteInt(Timeout); w.WriteLong(SessionId);
        w.WriteBuffer(Password);
        if (HasReadOnlyFlag) w.WriteBool(ReadOnly);
    }
}

public sealed record ConnectResponse(int ProtocolVersion, int Timeout, long SessionId, byte[] Password, bool ReadOnly, bool HasReadOnlyFlag = true) : IJuteRecord
{
    public static ConnectResponse Read(ref JuteReader r)
    {
        var version = r.ReadInt();
        var timeout = r.ReadInt();
        var sessionId = r.ReadLong();
        var password = r.ReadBuffer() ?? [];
        var hasFlag = !r.AtEnd;
        return new ConnectResponse(version, timeout, sessionId, password, hasFlag && r.ReadBool(), hasFlag);
    }

    public void Write(ref JuteWriter w)
    {
        w.WriteInt(ProtocolVersion); w.WriteInt(Timeout); w.WriteLong(SessionId); w.WriteBuffer(Password);
        if (HasReadOnlyFlag) w.WriteBool(ReadOnly);
    }
}

/// <summary>Base of every operation body that follows a <see cref="RequestHeader"/>.</summary>
public abstract record ZkRequest : IJuteRecord
{
    public abstract void Write(ref JuteWriter w);
    /// <summary>The znode path the request is about, if any.</summary>
    public virtual string? Path => null;
}

/// <summary>A request with no body (ping, closeSession, whoAmI).</summary>
public sealed record EmptyRequest : ZkRequest
{
    public static readonly EmptyRequest Instance = new();
    public override void Write(ref JuteWriter w) { }
}

/// <summary>create, create2, createContainer (and createTTL when <see cref="Ttl"/> is set).</summary>
public sealed record CreateRequest(string NodePath, byte[]? Data, IReadOnlyList<Acl>? Acl, int Flags, long Ttl = -1, bool IsTtlRequest = false) : ZkRequest
{
    public override string Path => NodePath;
    public static CreateRequest Read(ref JuteReader r, bool withTtl)
    {
        var path = r.ReadPath();
        var data = r.ReadBuffer();
        var acl = Acl_ReadList(ref r);
        var flags = r.ReadInt();
        return withTtl ? new CreateRequest(path, data, acl, flags, r.ReadLong(), true) : new CreateRequest(path, data, acl, flags);
    }

    private static IReadOnlyList<Acl>? Acl_ReadList(ref JuteReader r) => Protocol.Acl.ReadList(ref r);

    public override void Write(ref JuteWriter w)
    {
        w.WriteString(NodePath); w.WriteBuffer(Data); Protocol.Acl.WriteList(ref w, Acl); w.WriteInt(Flags);
        if (IsTtlRequest) w.WriteLong(Ttl);
    }
}

/// <summary>
/// reconfig (ZooKeeper 3.5's ReconfigRequest): incremental (<see cref="JoiningServers"/> "server.N=spec" lines and
/// <see cref="LeavingServers"/> ids, comma separated) or non-incremental (<see cref="NewMembers"/>, the whole new
/// membership), applied only if the active configuration's version is <see cref="CurConfigId"/> (-1 = any).
/// </summary>
public sealed record ReconfigRequest(string? JoiningServers, string? LeavingServers, string? NewMembers, long CurConfigId) : ZkRequest
{
    public override string Path => "/zookeeper/config";
    public static ReconfigRequest Read(ref JuteReader r) => new(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadLong());
    public override void Write(ref JuteWriter w) { w.WriteString(JoiningServers); w.WriteString(LeavingServers); w.WriteString(NewMembers); w.WriteLong(CurConfigId); }
}

/// <summary>delete and check: a path and an expected version (-1 = any).</summary>
public sealed record PathVersionRequest(string NodePath, int Version) : ZkRequest
{
    public override string Path => NodePath;
    public static PathVersionRequest Read(ref JuteReader r) => new(r.ReadPath(), r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); w.WriteInt(Version); }
}

/// <summary>exists, getData, getChildren, getChildren2: a path and a watch flag.</summary>
public sealed record PathWatchRequest(string NodePath, bool Watch) : ZkRequest
{
    public override string Path => NodePath;
    public static PathWatchRequest Read(ref JuteReader r)
    {
        var path = r.ReadPath(out var held);
        var watch = r.ReadBool();
        if (held is null) return new(path, watch);
        var reads = ReadRequests.Of(held);
        return watch ? reads.Watching : reads.NotWatching;
    }

    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); w.WriteBool(Watch); }
}

/// <summary>
/// The read requests of one held path. Requests are immutable values, so the same instance can stand for every
/// getData/exists/getChildren of that path, as the path string itself does: decoding them allocates nothing.
/// </summary>
internal sealed class ReadRequests(string path)
{
    public readonly PathWatchRequest NotWatching = new(path, false);
    public readonly PathWatchRequest Watching = new(path, true);
    public readonly PathRequest Plain = new(path);

    public static ReadRequests Of(PathInterner.Held held)
    {
        if (held.Attached is ReadRequests reads) return reads;
        var made = new ReadRequests(held.Path);
        return Interlocked.CompareExchange(ref held.Attached, made, null) as ReadRequests ?? made;
    }
}

/// <summary>getACL, sync, getAllChildrenNumber, getEphemerals (prefix): a single path.</summary>
public sealed record PathRequest(string NodePath) : ZkRequest
{
    public override string Path => NodePath;
    /// <param name="nullAsEmpty">sync and getEphemerals: see <see cref="JuteReader.ReadPathOrEmpty()"/>.</param>
    public static PathRequest Read(ref JuteReader r, bool nullAsEmpty = false)
    {
        PathInterner.Held? held;
        var path = nullAsEmpty ? r.ReadPathOrEmpty(out held) : r.ReadPath(out held);
        return held is null ? new(path) : ReadRequests.Of(held).Plain;
    }

    public override void Write(ref JuteWriter w) => w.WriteString(NodePath);
}

public sealed record SetDataRequest(string NodePath, byte[]? Data, int Version) : ZkRequest
{
    public override string Path => NodePath;
    public static SetDataRequest Read(ref JuteReader r) => new(r.ReadPathOrEmpty(), r.ReadBuffer(), r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); w.WriteBuffer(Data); w.WriteInt(Version); }
}

public sealed record SetAclRequest(string NodePath, IReadOnlyList<Acl>? Acl, int Version) : ZkRequest
{
    public override string Path => NodePath;
    public static SetAclRequest Read(ref JuteReader r)
    {
        var path = r.ReadPathOrEmpty();
        var acl = Protocol.Acl.ReadList(ref r);
        return new SetAclRequest(path, acl, r.ReadInt());
    }
    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); Protocol.Acl.WriteList(ref w, Acl); w.WriteInt(Version); }
}

/// <summary>A SASL token from the client (ZooKeeper's GetSASLRequest, op sasl = 102).</summary>
public sealed record SaslRequest(byte[]? Token) : ZkRequest
{
    public static SaslRequest Read(ref JuteReader r) => new(r.ReadBuffer());
    public override void Write(ref JuteWriter w) => w.WriteBuffer(Token);
}

/// <summary>addauth. A null scheme or null auth bytes fail authentication (AuthFailed, then a close), as in ZooKeeper.</summary>
public sealed record AuthRequest(int Type, string? Scheme, byte[]? Auth) : ZkRequest
{
    public static AuthRequest Read(ref JuteReader r) => new(r.ReadInt(), r.ReadString(), r.ReadBuffer());
    public override void Write(ref JuteWriter w) { w.WriteInt(Type); w.WriteString(Scheme); w.WriteBuffer(Auth); }
}

/// <summary>setWatches (3 lists) and setWatches2 (5 lists), sent after a reconnect.</summary>
public sealed record SetWatchesRequest(
    long RelativeZxid, IReadOnlyList<string> DataWatches, IReadOnlyList<string> ExistWatches, IReadOnlyList<string> ChildWatches,
    IReadOnlyList<string> PersistentWatches, IReadOnlyList<string> PersistentRecursiveWatches, bool IsVersion2) : ZkRequest
{
    public static SetWatchesRequest Read(ref JuteReader r, bool version2)
    {
        var zxid = r.ReadLong();
        var data = ReadList(ref r);
        var exist = ReadList(ref r);
        var child = ReadList(ref r);
        if (!version2) return new SetWatchesRequest(zxid, data, exist, child, [], [], false);
        var persistent = ReadList(ref r);
        var recursive = ReadList(ref r);
        return new SetWatchesRequest(zxid, data, exist, child, persistent, recursive, true);
    }

    /// <summary>
    /// A null list fails the request with MarshallingError, as in ZooKeeper 3.8 (which registers the lists before the
    /// null one first; here nothing is registered: a request is applied whole or not at all).
    /// </summary>
    private static List<string> ReadList(ref JuteReader r) => r.ReadPathVector() ?? throw new JuteException("null watch list in setWatches");

    public override void Write(ref JuteWriter w)
    {
        w.WriteLong(RelativeZxid);
        w.WriteStringVector((IReadOnlyCollection<string>)DataWatches);
        w.WriteStringVector((IReadOnlyCollection<string>)ExistWatches);
        w.WriteStringVector((IReadOnlyCollection<string>)ChildWatches);
        if (!IsVersion2) return;
        w.WriteStringVector((IReadOnlyCollection<string>)PersistentWatches);
        w.WriteStringVector((IReadOnlyCollection<string>)PersistentRecursiveWatches);
    }
}

public sealed record AddWatchRequest(string NodePath, AddWatchMode Mode) : ZkRequest
{
    public override string Path => NodePath;
    public static AddWatchRequest Read(ref JuteReader r) => new(r.ReadPathOrEmpty(), (AddWatchMode)r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); w.WriteInt((int)Mode); }
}

/// <summary>checkWatches and removeWatches: a path and a <see cref="WatcherType"/>.</summary>
public sealed record WatchesRequest(string NodePath, WatcherType Type) : ZkRequest
{
    public override string Path => NodePath;
    /// <param name="nullAsEmpty">removeWatches: see <see cref="JuteReader.ReadPathOrEmpty()"/>.</param>
    public static WatchesRequest Read(ref JuteReader r, bool nullAsEmpty = false) =>
        new(nullAsEmpty ? r.ReadPathOrEmpty() : r.ReadPath(), (WatcherType)r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(NodePath); w.WriteInt((int)Type); }
}

/// <summary>One operation inside multi or multiRead.</summary>
public readonly record struct MultiOp(OpCode Type, ZkRequest Request);

public readonly record struct MultiHeader(int Type, bool Done, int Err) : IJuteRecord
{
    public static MultiHeader Read(ref JuteReader r) => new(r.ReadInt(), r.ReadBool(), r.ReadInt());
    public void Write(ref JuteWriter w) { w.WriteInt(Type); w.WriteBool(Done); w.WriteInt(Err); }
}

/// <summary>multi (write ops) and multiRead (getData/getChildren ops).</summary>
public sealed record MultiRequest(IReadOnlyList<MultiOp> Ops) : ZkRequest
{
    public const int MaxOps = 1 << 20;

    public static MultiRequest Read(ref JuteReader r)
    {
        var ops = new List<MultiOp>();
        while (true)
        {
            var header = MultiHeader.Read(ref r);
            if (header.Done) break;
            if (ops.Count >= MaxOps) throw new JuteException("too many ops in multi");
            var type = (OpCode)header.Type;
            ops.Add(new MultiOp(type, type switch
            {
                OpCode.Create or OpCode.Create2 or OpCode.CreateContainer => CreateRequest.Read(ref r, withTtl: false),
                OpCode.CreateTtl => CreateRequest.Read(ref r, withTtl: true),
                OpCode.Delete or OpCode.Check => PathVersionRequest.Read(ref r),
                OpCode.SetData => SetDataRequest.Read(ref r),
                OpCode.GetData or OpCode.GetChildren => PathWatchRequest.Read(ref r),
                _ => throw new UnknownOpException(type),
            }));
        }
        return new MultiRequest(ops);
    }

    public override void Write(ref JuteWriter w)
    {
        foreach (var op in Ops)
        {
            new MultiHeader((int)op.Type, false, -1).Write(ref w);
            op.Request.Write(ref w);
        }
        new MultiHeader(-1, true, -1).Write(ref w);
    }
}

/// <summary>
/// <see cref="OpCode.LinearizableRead"/>: the inner read's op code (an int) and then its usual body. The server answers
/// with the inner read's response, computed on a state that includes every write acknowledged before the request
/// arrived (a leader confirmation, etcd's ReadIndex, shared by the reads waiting at the same time).
/// </summary>
public sealed record LinearizableReadRequest(OpCode Op, ZkRequest Inner) : ZkRequest
{
    public override string? Path => Inner.Path;

    /// <summary>The reads that can be made linearizable: those that change nothing and register at most a watch.</summary>
    public static bool Allows(OpCode op) => op is OpCode.Exists or OpCode.GetData or OpCode.GetChildren or OpCode.GetChildren2
        or OpCode.GetAcl or OpCode.GetAllChildrenNumber or OpCode.GetEphemerals or OpCode.MultiRead;

    public static LinearizableReadRequest Read(ref JuteReader r)
    {
        var op = (OpCode)r.ReadInt();
        if (!Allows(op)) throw new JuteException($"op code {(int)op} cannot be read linearizably");
        try { return new LinearizableReadRequest(op, Requests.Read(op, ref r)); }
        catch (UnknownOpException e) { throw new JuteException(e.Message); }   // a multiRead holding a write: MarshallingError, as for a plain one
    }

    public override void Write(ref JuteWriter w)
    {
        w.WriteInt((int)Op);
        Inner.Write(ref w);
    }
}

/// <summary>An op code the server does not know, or one not allowed where it appeared.</summary>
public sealed class UnknownOpException(OpCode op) : Exception($"unknown or misplaced op code {(int)op}")
{
    public OpCode Op { get; } = op;
}

public static class Requests
{
    /// <summary>Parses the body of a request whose header has already been read.</summary>
    public static ZkRequest Read(OpCode op, ref JuteReader r) => op switch
    {
        OpCode.Create or OpCode.Create2 or OpCode.CreateContainer => CreateRequest.Read(ref r, withTtl: false),
        OpCode.CreateTtl => CreateRequest.Read(ref r, withTtl: true),
        OpCode.Delete or OpCode.Check => PathVersionRequest.Read(ref r),
        OpCode.Exists or OpCode.GetData or OpCode.GetChildren or OpCode.GetChildren2 => PathWatchRequest.Read(ref r),
        OpCode.GetAcl or OpCode.GetAllChildrenNumber => PathRequest.Read(ref r),
        OpCode.Sync or OpCode.GetEphemerals => PathRequest.Read(ref r, nullAsEmpty: true),
        OpCode.SetData => SetDataRequest.Read(ref r),
        OpCode.SetAcl => SetAclRequest.Read(ref r),
        OpCode.Multi or OpCode.MultiRead => MultiRequest.Read(ref r),
        OpCode.Auth => AuthRequest.Read(ref r),
        OpCode.Sasl => SaslRequest.Read(ref r),
        OpCode.SetWatches => SetWatchesRequest.Read(ref r, version2: false),
        OpCode.SetWatches2 => SetWatchesRequest.Read(ref r, version2: true),
        OpCode.AddWatch => AddWatchRequest.Read(ref r),
        OpCode.CheckWatches => WatchesRequest.Read(ref r),
        OpCode.RemoveWatches => WatchesRequest.Read(ref r, nullAsEmpty: true),
        OpCode.Ping or OpCode.CloseSession or OpCode.WhoAmI => EmptyRequest.Instance,
        OpCode.LinearizableRead => LinearizableReadRequest.Read(ref r),
        OpCode.WatchChanges => WatchChangesRequest.Read(ref r),
        OpCode.StopChanges => StopChangesRequest.Read(ref r),
        OpCode.Reconfig => ReconfigRequest.Read(ref r),
        _ => throw new UnknownOpException(op),
    };

    /// <summary>Ops that change state and therefore go through the leader as transactions.</summary>
    public static bool IsWrite(OpCode op) => op is OpCode.Create or OpCode.Create2 or OpCode.CreateContainer or OpCode.CreateTtl
        or OpCode.Delete or OpCode.DeleteContainer or OpCode.SetData or OpCode.SetAcl or OpCode.Check or OpCode.Multi
        or OpCode.CloseSession or OpCode.CreateSession or OpCode.Reconfig;
}
