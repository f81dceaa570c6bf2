// CONTRACT between Coordination.Core and Coordination.Server. The Core helper implements these bodies and may add
// members, but must keep these signatures (the server is being written against them in parallel).
using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>A change that may fire watches: an event type at a path (NodeChildrenChanged is reported at the parent).</summary>
public readonly record struct WatchTrigger(string Path, EventType Type)
{
    /// <summary>
    /// The ACL of the znode at <see cref="Path"/> when the change was applied (of the deleted node for NodeDeleted,
    /// of the parent for NodeChildrenChanged); null = no check. A watcher without READ on it is not told (ZooKeeper
    /// 3.9.2 / 3.8.4, the CVE-2024-23944 fix: DataTree passes the same ACLs to WatchManager.triggerWatch). Metadata of
    /// the event, not part of its identity: two triggers are equal when path and type are.
    /// </summary>
    public IReadOnlyList<Acl>? Acl { get; init; }

    public bool Equals(WatchTrigger other) => Path == other.Path && Type == other.Type;
    public override int GetHashCode() => HashCode.Combine(Path, Type);
}

/// <summary>The outcome of applying one txn: the client's result and the watch triggers, in order.</summary>
public sealed class ApplyResult
{
    public required ErrorCode Err { get; init; }
    /// <summary>The response body for the originating request (EmptyResponse when Err != Ok or no body).</summary>
    public required ZkResponse Response { get; init; }
    public required IReadOnlyList<WatchTrigger> Triggers { get; init; }

    /// <summary>
    /// The first non-Ok code of the txn. Equal to <see cref="Err"/> except for a failed multi: ZooKeeper replies to a
    /// failed multi with err = 0 in the reply header and a <see cref="MultiResponse"/> whose results carry the codes,
    /// so <see cref="Err"/> is Ok there (the server sends it as is) while this property holds the failing op's code.
    /// </summary>
    public ErrorCode FirstError { get; init; }
}

/// <summary>A read-only view of a node for the server's read path and for 4lw/dump.</summary>
public interface INodeView
{
    /// <summary>The data; null when the node was created or set with null data (ZooKeeper keeps null apart from empty).</summary>
    byte[]? Data { get; }
    IReadOnlyList<Acl> Acl { get; }
    Stat Stat { get; }
    /// <summary>Child names (not full paths), in no particular order.</summary>
    IReadOnlyCollection<string> Children { get; }
    /// <summary>The stored ephemeralOwner: a session id, <see cref="Protocol.EphemeralOwner.Container"/>, a TTL owner or 0.
    /// (<see cref="Stat"/> shows 0 for containers and TTL nodes, as ZooKeeper does.)</summary>
    long StoredEphemeralOwner { get; }
}

/// <summary>Session authentication: the ids a session has proven (ip always, digest after addauth, super).</summary>
public sealed record AuthContext(IReadOnlyList<Id> Ids)
{
    public bool IsSuper
    {
        get
        {
            for (var i = 0; i < Ids.Count; i++)
                if (Ids[i].Scheme == "super") return true;
            return false;
        }
    }

    /// <summary>No ids at all (tests, internal requests). The server always adds the connection's ip id.</summary>
    public static readonly AuthContext Anonymous = new(Array.Empty<Id>());
}
