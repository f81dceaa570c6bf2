using System.Runtime.Serialization;
using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>
/// A ZooKeeper error (KeeperException). <see cref="Code"/> is the server's or the client's error code; common codes
/// have their own subclasses so that callers can catch them by type.
/// </summary>
public class KeeperException : Exception
{
    public ErrorCode Code { get; }
    /// <summary>The client path of the failed request, if any.</summary>
    public string? Path { get; }
    /// <summary>For a failed multi: the result of every op (the failing one and those rolled back).</summary>
    public IReadOnlyList<MultiOpResult>? Results { get; init; }

    public KeeperException(ErrorCode code, string? path = null, string? message = null, Exception? inner = null)
        : base(message ?? Describe(code, path), inner)
    {
        Code = code;
        Path = path;
    }

    /// <summary>
    /// Rebuilds an exception that crossed nodes (Akka.Remote carries a Status.Failure's cause as the fields
    /// <see cref="GetObjectData"/> gives and rebuilds it through this constructor; without it the asker of a remote
    /// proxy got no cause at all, only a cancelled task).
    /// </summary>
    protected KeeperException(SerializationInfo info, StreamingContext context)
        : this((ErrorCode)info.GetInt32(nameof(Code)), PathOf(info), MessageOf(info)) { }

    protected static string? PathOf(SerializationInfo info) => info.GetString(nameof(Path));
    protected static string? MessageOf(SerializationInfo info) => info.GetString(nameof(Message));

#pragma warning disable SYSLIB0051, CS0672 // Akka.Remote's exception support still uses ISerializable (see the constructor above)
    public override void GetObjectData(SerializationInfo info, StreamingContext context)
    {
        base.GetObjectData(info, context);
        info.AddValue(nameof(Code), (int)Code);
        info.AddValue(nameof(Path), Path);
    }
#pragma warning restore SYSLIB0051, CS0672

    public static string Describe(ErrorCode code, string? path) => path is null ? $"KeeperErrorCode = {code}" : $"KeeperErrorCode = {code} for {path}";

    /// <summary>True for errors after which the operation may be retried on the same session (the Curator rule).</summary>
    public bool IsRetriable => Code is ErrorCode.ConnectionLoss or ErrorCode.OperationTimeout or ErrorCode.SessionMoved or ErrorCode.RequestTimeout;

    public static KeeperException Create(ErrorCode code, string? path = null, string? message = null) => code switch
    {
        ErrorCode.NoNode => new NoNodeException(path, message),
        ErrorCode.NodeExists => new NodeExistsException(path, message),
        ErrorCode.BadVersion => new BadVersionException(path, message),
        ErrorCode.NotEmpty => new NotEmptyException(path, message),
        ErrorCode.NoAuth => new NoAuthException(path, message),
        ErrorCode.ConnectionLoss => new ConnectionLossException(path, message),
        ErrorCode.SessionExpired => new SessionExpiredException(path, message),
        ErrorCode.AuthFailed => new AuthFailedException(path, message),
        ErrorCode.NoChildrenForEphemerals => new NoChildrenForEphemeralsException(path, message),
        ErrorCode.NoWatcher => new NoWatcherException(path, message),
        _ => new KeeperException(code, path, message),
    };
}

public sealed class NoNodeException(string? path = null, string? message = null) : KeeperException(ErrorCode.NoNode, path, message)
{
    private NoNodeException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class NodeExistsException(string? path = null, string? message = null) : KeeperException(ErrorCode.NodeExists, path, message)
{
    private NodeExistsException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class BadVersionException(string? path = null, string? message = null) : KeeperException(ErrorCode.BadVersion, path, message)
{
    private BadVersionException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class NotEmptyException(string? path = null, string? message = null) : KeeperException(ErrorCode.NotEmpty, path, message)
{
    private NotEmptyException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class NoAuthException(string? path = null, string? message = null) : KeeperException(ErrorCode.NoAuth, path, message)
{
    private NoAuthException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class NoChildrenForEphemeralsException(string? path = null, string? message = null) : KeeperException(ErrorCode.NoChildrenForEphemerals, path, message)
{
    private NoChildrenForEphemeralsException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class NoWatcherException(string? path = null, string? message = null) : KeeperException(ErrorCode.NoWatcher, path, message)
{
    private NoWatcherException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
/// <summary>The connection dropped before the reply arrived: the operation may or may not have been applied.</summary>
public sealed class ConnectionLossException(string? path = null, string? message = null) : KeeperException(ErrorCode.ConnectionLoss, path, message)
{
    private ConnectionLossException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
/// <summary>The session is gone: its ephemerals are deleted and its watches lost. Create a new client or restart this one.</summary>
public sealed class SessionExpiredException(string? path = null, string? message = null) : KeeperException(ErrorCode.SessionExpired, path, message)
{
    private SessionExpiredException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
public sealed class AuthFailedException(string? path = null, string? message = null) : KeeperException(ErrorCode.AuthFailed, path, message)
{
    private AuthFailedException(SerializationInfo info, StreamingContext context) : this(PathOf(info), MessageOf(info)) { }
}
