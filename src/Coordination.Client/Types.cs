using System.Security.Cryptography;
using System.Text;
using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>The connection state of a client, as reported by <see cref="CoordinationClient.ConnectionStateChanged"/>.</summary>
public enum ConnectionState
{
    /// <summary>Not started yet, or between <see cref="CoordinationClient.RestartAsync"/> and the first connect.</summary>
    Connecting,
    /// <summary>The first connection of a session (read-write).</summary>
    Connected,
    /// <summary>Connected to a server in read-only mode (only when <see cref="CoordinationClientOptions.CanBeReadOnly"/>).</summary>
    ConnectedReadOnly,
    /// <summary>The connection was lost; the session may still be alive. Requests in flight failed with ConnectionLoss.</summary>
    Suspended,
    /// <summary>Reconnected to the same session after <see cref="Suspended"/>; watches were re-registered.</summary>
    Reconnected,
    /// <summary>The session expired (the server said so, or no server was reached within the session timeout). Terminal until restarted.</summary>
    Expired,
    /// <summary>Authentication failed. Terminal until restarted.</summary>
    AuthFailed,
    /// <summary>Closed by the application.</summary>
    Closed,
}

public static class ConnectionStates
{
    public static bool IsConnected(this ConnectionState s) => s is ConnectionState.Connected or ConnectionState.ConnectedReadOnly or ConnectionState.Reconnected;
    public static bool IsTerminal(this ConnectionState s) => s is ConnectionState.Expired or ConnectionState.AuthFailed or ConnectionState.Closed;
}

/// <summary>A watch notification, with the path as the client sees it (chroot removed).</summary>
public sealed record WatchedEvent(EventType Type, KeeperState State, string Path);

public sealed record CreateResult(string Path, Stat Stat);
/// <summary>A node's data and Stat. <see cref="Data"/> is null when the node holds null data (created or set with
/// null), as ZooKeeper's own client reports it; empty data is an empty array.</summary>
public sealed record DataResult(byte[]? Data, Stat Stat);
public sealed record ChildrenResult(IReadOnlyList<string> Children, Stat Stat);
public sealed record AclResult(IReadOnlyList<Acl> Acl, Stat Stat);

/// <summary>One operation of <see cref="CoordinationClient.MultiAsync"/> or <see cref="CoordinationClient.MultiReadAsync"/>.</summary>
public abstract record Op(string Path)
{
    public static Op Create(string path, byte[]? data, CreateMode mode = CreateMode.Persistent, IReadOnlyList<Acl>? acl = null, long ttl = -1) =>
        new CreateOp(path, data, mode, acl ?? Acl.OpenAclUnsafe, ttl);
    public static Op Delete(string path, int version = -1) => new DeleteOp(path, version);
    public static Op SetData(string path, byte[]? data, int version = -1) => new SetDataOp(path, data, version);
    public static Op Check(string path, int version) => new CheckOp(path, version);
    /// <summary>For multiRead only.</summary>
    public static Op GetData(string path) => new GetDataOp(path);
    /// <summary>For multiRead only.</summary>
    public static Op GetChildren(string path) => new GetChildrenOp(path);
}
public sealed record CreateOp(string NodePath, byte[]? Data, CreateMode Mode, IReadOnlyList<Acl> Acl, long Ttl) : Op(NodePath);
public sealed record DeleteOp(string NodePath, int Version) : Op(NodePath);
public sealed record SetDataOp(string NodePath, byte[]? Data, int Version) : Op(NodePath);
public sealed record CheckOp(string NodePath, int Version) : Op(NodePath);
public sealed record GetDataOp(string NodePath) : Op(NodePath);
public sealed record GetChildrenOp(string NodePath) : Op(NodePath);

/// <summary>The result of one op of a multi or multiRead.</summary>
public abstract record MultiOpResult
{
    public sealed record Create(string Path, Stat? Stat) : MultiOpResult;
    public sealed record Delete : MultiOpResult;
    public sealed record SetData(Stat Stat) : MultiOpResult;
    public sealed record Check : MultiOpResult;
    public sealed record GetData(byte[]? Data, Stat Stat) : MultiOpResult;
    public sealed record GetChildren(IReadOnlyList<string> Children) : MultiOpResult;
    /// <summary>An op that failed (or, in a failed multi, was rolled back: code Ok or RuntimeInconsistency).</summary>
    public sealed record Error(ErrorCode Code) : MultiOpResult;
}

/// <summary>Authentication data sent at connect time and again after every reconnect.</summary>
public sealed record AuthInfo(string Scheme, byte[] Auth)
{
    public static AuthInfo Digest(string user, string password) => new("digest", Encoding.UTF8.GetBytes($"{user}:{password}"));
}

/// <summary>ACL helpers.</summary>
public static class Acls
{
    public static IReadOnlyList<Acl> Open => Acl.OpenAclUnsafe;
    public static IReadOnlyList<Acl> CreatorAll => Acl.CreatorAllAcl;
    public static IReadOnlyList<Acl> ReadUnsafe => Acl.ReadAclUnsafe;

    /// <summary>The digest id of user:password (DigestAuthenticationProvider.generateDigest).</summary>
    public static Id DigestId(string user, string password)
    {
        var hash = SHA1.HashData(Encoding.UTF8.GetBytes($"{user}:{password}"));
        return new Id("digest", $"{user}:{Convert.ToBase64String(hash)}");
    }
}
