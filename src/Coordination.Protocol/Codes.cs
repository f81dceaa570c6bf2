namespace Coordination.Protocol;

/// <summary>ZooKeeper request op codes (ZooDefs.OpCode).</summary>
public enum OpCode
{
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    /// <summary>Not a ZooKeeper op code and never accepted from a client: the txn that sets the deployment's session
    /// secret (Coordination.Core.SessionSecretTxn), proposed once by the first leader.</summary>
    SessionSecret = -20,
    Error = -1,
    /// <summary>
    /// Coordination.Akka extension: a read that is linearizable on any member (<see cref="LinearizableReadRequest"/>).
    /// Extensions use 1000 and up: ZooKeeper's client op codes run from -11 to 107 and grow one at a time, and
    /// ZooKeeper answers a code it does not know with Unimplemented and closes the connection, so an unmodified
    /// ZooKeeper client never sends it and an unmodified ZooKeeper server refuses it cleanly.
    /// </summary>
    LinearizableRead = 1001,
    /// <summary>Coordination.Akka extension: subscribe to every committed change under a path prefix after a zxid
    /// (<see cref="WatchChangesRequest"/>; events come as <see cref="Xids.Change"/> frames).</summary>
    WatchChanges = 1002,
    /// <summary>Coordination.Akka extension: end a <see cref="WatchChanges"/> subscription (<see cref="StopChangesRequest"/>).</summary>
    StopChanges = 1003,
}

/// <summary>ZooKeeper result codes (KeeperException.Code).</summary>
public enum ErrorCode
{
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    ThrottledOp = -127,
    /// <summary>
    /// Coordination.Akka extension, answered only to <see cref="OpCode.WatchChanges"/>: the changes asked for are no
    /// longer retained; the body (<see cref="ChangeFeedPosition"/>) says from where they are. ZooKeeper's codes run
    /// from -1 to -127, so a code of -1002 (the op code's number) never means anything else.
    /// </summary>
    Compacted = -1002,
}

/// <summary>Watch event types (Watcher.Event.EventType).</summary>
public enum EventType
{
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

/// <summary>Session states carried in watch events (Watcher.Event.KeeperState).</summary>
public enum KeeperState
{
    Disconnected = 0,
    SyncConnected = 3,
    AuthFailed = 4,
    ConnectedReadOnly = 5,
    SaslAuthenticated = 6,
    Closed = 7,
    Expired = -112,
}

/// <summary>Create flags on the wire (CreateMode.toFlag).</summary>
public enum CreateMode
{
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

public static class CreateModes
{
    public static bool IsValid(int flags) => flags is >= 0 and <= 6;
    public static bool IsEphemeral(this CreateMode mode) => mode is CreateMode.Ephemeral or CreateMode.EphemeralSequential;
    public static bool IsSequential(this CreateMode mode) =>
        mode is CreateMode.PersistentSequential or CreateMode.EphemeralSequential or CreateMode.PersistentSequentialWithTtl;
    public static bool IsContainer(this CreateMode mode) => mode == CreateMode.Container;
    public static bool IsTtl(this CreateMode mode) => mode is CreateMode.PersistentWithTtl or CreateMode.PersistentSequentialWithTtl;
}

/// <summary>ACL permission bits (ZooDefs.Perms).</summary>
[Flags]
public enum Perms
{
    None = 0,
    Read = 1,
    Write = 2,
    Create = 4,
    Delete = 8,
    Admin = 16,
    All = Read | Write | Create | Delete | Admin,
}

/// <summary>Watcher kinds for removeWatches and checkWatches (Watcher.WatcherType).</summary>
public enum WatcherType
{
    Children = 1,
    Data = 2,
    Any = 3,
    Persistent = 4,
    PersistentRecursive = 5,
}

/// <summary>Modes of addWatch (AddWatchMode).</summary>
public enum AddWatchMode
{
    Persistent = 0,
    PersistentRecursive = 1,
}

/// <summary>Reserved xids of the client protocol.</summary>
public static class Xids
{
    public const int Notification = -1;
    public const int Ping = -2;
    public const int AuthPacket = -4;
    public const int SetWatches = -8;
    /// <summary>A change of a <see cref="OpCode.WatchChanges"/> subscription (Coordination.Akka extension): a frame
    /// no ZooKeeper server sends, and sent only to a client that subscribed.</summary>
    public const int Change = -1002;
}

/// <summary>How a node's ephemeralOwner field encodes container and TTL nodes (EphemeralType).</summary>
public static class EphemeralOwner
{
    public const long Container = long.MinValue;
    private const long ExtendedMask = unchecked((long)0xff00000000000000UL);
    private const long ReservedBitsMask = 0x00ffff0000000000L;
    public const long MaxTtl = 0x000000ffffffffffL;

    public static long ForTtl(long ttl) => ExtendedMask | ttl;
    public static bool IsTtl(long owner) => owner != Container && (owner & ExtendedMask) == ExtendedMask && (owner & ReservedBitsMask) == 0;
    public static long TtlOf(long owner) => owner & MaxTtl;
    public static bool IsContainer(long owner) => owner == Container;
    /// <summary>True for a node owned by a session (a real ephemeral).</summary>
    public static bool IsSessionOwner(long owner) => owner != 0 && !IsContainer(owner) && !IsTtl(owner);
}
