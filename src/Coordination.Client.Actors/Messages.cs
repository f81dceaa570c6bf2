using Coordination.Protocol;

namespace Coordination.Client.Actors;

/// <summary>
/// A request to the proxy actor. The proxy answers the sender with the request's typed reply, or with
/// <c>Status.Failure(cause, state: request)</c> where cause is a <see cref="KeeperException"/> (so <c>Ask&lt;T&gt;</c> throws it).
/// </summary>
public abstract record CoordinationRequest
{
    internal abstract Task<object> Execute(CoordinationClient client, Action<WatchedEvent>? watcher);
    /// <summary>True when the request sets a one-shot watch (delivered as <see cref="WatchEvent"/>).</summary>
    internal virtual bool Watches => false;
    /// <summary>Where watch events go; null = the sender.</summary>
    public Akka.Actor.IActorRef? WatchSubscriber { get; init; }
}

// ---------------------------------------------------------------- requests and their replies

/// <summary>Replies <see cref="Created"/>.</summary>
public sealed record Create(string Path, byte[]? Data, CreateMode Mode = CreateMode.Persistent, IReadOnlyList<Acl>? Acl = null, long Ttl = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.CreateWithStatAsync(Path, Data, Mode, Acl, Ttl).ConfigureAwait(false);
        return new Created(r.Path, r.Stat);
    }
}
public sealed record Created(string Path, Stat Stat);

/// <summary>Replies <see cref="Deleted"/>.</summary>
public sealed record Delete(string Path, int Version = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        await c.DeleteAsync(Path, Version).ConfigureAwait(false);
        return new Deleted(Path);
    }
}
public sealed record Deleted(string Path);

/// <summary>Replies <see cref="NodeStat"/> (Stat null when the node does not exist).</summary>
public sealed record Exists(string Path, bool Watch = false) : CoordinationRequest
{
    internal override bool Watches => Watch;
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new NodeStat(Path, await c.ExistsAsync(Path, w).ConfigureAwait(false));
}
public sealed record NodeStat(string Path, Stat? Stat);

/// <summary>Replies <see cref="NodeData"/>.</summary>
public sealed record GetData(string Path, bool Watch = false) : CoordinationRequest
{
    internal override bool Watches => Watch;
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.GetDataAsync(Path, w).ConfigureAwait(false);
        return new NodeData(Path, r.Data, r.Stat);
    }
}
public sealed record NodeData(string Path, byte[]? Data, Stat Stat);

/// <summary>Replies <see cref="NodeStat"/>.</summary>
public sealed record SetData(string Path, byte[]? Data, int Version = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new NodeStat(Path, await c.SetDataAsync(Path, Data, Version).ConfigureAwait(false));
}

/// <summary>Replies <see cref="NodeChildren"/>.</summary>
public sealed record GetChildren(string Path, bool Watch = false) : CoordinationRequest
{
    internal override bool Watches => Watch;
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.GetChildrenAsync(Path, w).ConfigureAwait(false);
        return new NodeChildren(Path, r.Children, r.Stat);
    }
}
public sealed record NodeChildren(string Path, IReadOnlyList<string> Children, Stat Stat);

/// <summary>Replies <see cref="NodeAcl"/>.</summary>
public sealed record GetAcl(string Path) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        var r = await c.GetAclAsync(Path).ConfigureAwait(false);
        return new NodeAcl(Path, r.Acl, r.Stat);
    }
}
public sealed record NodeAcl(string Path, IReadOnlyList<Acl> Acl, Stat Stat);

/// <summary>Replies <see cref="NodeStat"/>.</summary>
public sealed record SetAcl(string Path, IReadOnlyList<Acl> Acl, int Version = -1) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new NodeStat(Path, await c.SetAclAsync(Path, Acl, Version).ConfigureAwait(false));
}

/// <summary>Replies <see cref="Synced"/>.</summary>
public sealed record Sync(string Path = "/") : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new Synced(await c.SyncAsync(Path).ConfigureAwait(false));
}
public sealed record Synced(string Path);

/// <summary>Replies <see cref="MultiCompleted"/>; a failed multi replies Status.Failure with a KeeperException carrying Results.</summary>
public sealed record Multi(IReadOnlyList<Op> Ops) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new MultiCompleted(await c.MultiAsync(Ops).ConfigureAwait(false));
}

/// <summary>Replies <see cref="MultiCompleted"/> (per-op errors are Error results).</summary>
public sealed record MultiRead(IReadOnlyList<Op> Ops) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new MultiCompleted(await c.MultiReadAsync(Ops).ConfigureAwait(false));
}
public sealed record MultiCompleted(IReadOnlyList<MultiOpResult> Results);

/// <summary>Replies <see cref="EphemeralNodes"/>.</summary>
public sealed record GetEphemerals(string PrefixPath = "/") : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new EphemeralNodes(await c.GetEphemeralsAsync(PrefixPath).ConfigureAwait(false));
}
public sealed record EphemeralNodes(IReadOnlyList<string> Paths);

/// <summary>Replies <see cref="AllChildrenNumber"/>.</summary>
public sealed record GetAllChildrenNumber(string Path) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new AllChildrenNumber(Path, await c.GetAllChildrenNumberAsync(Path).ConfigureAwait(false));
}
public sealed record AllChildrenNumber(string Path, int Count);

/// <summary>Replies <see cref="Identities"/>.</summary>
public sealed record WhoAmI : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w) =>
        new Identities(await c.WhoAmIAsync().ConfigureAwait(false));
}
public sealed record Identities(IReadOnlyList<ClientInfo> ClientInfo);

/// <summary>Replies <see cref="AuthAdded"/>.</summary>
public sealed record AddAuth(AuthInfo Auth) : CoordinationRequest
{
    internal override async Task<object> Execute(CoordinationClient c, Action<WatchedEvent>? w)
    {
        await c.AddAuthAsync(Auth).ConfigureAwait(false);
        return new AuthAdded(Auth.Scheme);
    }
}
public sealed record AuthAdded(string Scheme);

/// <summary>
/// Adds a persistent (recursive) watch whose events go to <paramref name="Subscriber"/> (or the sender) as
/// <see cref="WatchEvent"/> until <see cref="RemoveWatch"/> or the subscriber terminates. Replies <see cref="WatchAdded"/>.
/// </summary>
public sealed record AddWatch(string Path, AddWatchMode Mode = AddWatchMode.Persistent, Akka.Actor.IActorRef? Subscriber = null);
public sealed record WatchAdded(string Path, AddWatchMode Mode);

/// <summary>Removes the persistent watch of this subscriber (or the sender). Replies <see cref="WatchRemoved"/>.</summary>
public sealed record RemoveWatch(string Path, AddWatchMode Mode = AddWatchMode.Persistent, Akka.Actor.IActorRef? Subscriber = null);
public sealed record WatchRemoved(string Path, AddWatchMode Mode);

// ---------------------------------------------------------------- notifications

/// <summary>A watch notification, sent to the watch's subscriber.</summary>
public sealed record WatchEvent(WatchedEvent Event);

/// <summary>Subscribes an actor to connection state changes; it is sent the current state at once. Terminated subscribers are dropped.</summary>
public sealed record SubscribeConnectionState(Akka.Actor.IActorRef Subscriber);
public sealed record UnsubscribeConnectionState(Akka.Actor.IActorRef Subscriber);

/// <summary>The proxy's client changed state (Connected, Suspended, Reconnected, Expired, ...).</summary>
public sealed record ConnectionStateChanged(ConnectionState State, long SessionId);

/// <summary>Asks the proxy for its state; replies <see cref="ConnectionStateChanged"/>.</summary>
public sealed record GetConnectionState
{
    public static readonly GetConnectionState Instance = new();
}

/// <summary>Asks the proxy for its session id and password (to re-attach from elsewhere); replies <see cref="SessionCredentials"/>.</summary>
public sealed record GetSessionCredentials;
public sealed record SessionCredentials(long SessionId, byte[] Password);

/// <summary>Replied (as Status.Failure's cause) when more than max-in-flight requests are outstanding.</summary>
public sealed class CoordinationProxyOverloadedException(int maxInFlight)
    : Exception($"coordination proxy overloaded: {maxInFlight} requests in flight (coordination.client.proxy.max-in-flight)")
{
    public int MaxInFlight { get; } = maxInFlight;

    // Akka.Remote rebuilds a remote asker's failure through this constructor and GetObjectData.
    private CoordinationProxyOverloadedException(System.Runtime.Serialization.SerializationInfo info, System.Runtime.Serialization.StreamingContext context)
        : this(info.GetInt32(nameof(MaxInFlight))) { }

#pragma warning disable SYSLIB0051, CS0672 // Akka.Remote's exception support still uses ISerializable
    public override void GetObjectData(System.Runtime.Serialization.SerializationInfo info, System.Runtime.Serialization.StreamingContext context)
    {
        base.GetObjectData(info, context);
        info.AddValue(nameof(MaxInFlight), MaxInFlight);
    }
#pragma warning restore SYSLIB0051, CS0672
}

/// <summary>Thrown inside the proxy when its client could not connect at all; its supervisor decides (default: restart).</summary>
public sealed class CoordinationConnectException(string message, Exception inner) : Exception(message, inner)
{
    // Akka.Remote rebuilds a remote asker's failure through this constructor (message and inner exception).
    private CoordinationConnectException(System.Runtime.Serialization.SerializationInfo info, System.Runtime.Serialization.StreamingContext context)
        : this(info.GetString(nameof(Message)) ?? "", (Exception)info.GetValue(nameof(InnerException), typeof(Exception))!) { }
}
