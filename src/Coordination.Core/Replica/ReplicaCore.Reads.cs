using Coordination.Protocol;

namespace Coordination.Core.Replica;

/// <summary>The host's part in reads (ReplicaCore.Reads.cs).</summary>
public partial interface IReplicaHost<TAddress, TRead, TOutcome>
{
    /// <summary>A watch event for one session, with sequence number <paramref name="seq"/> (setWatches' changes the
    /// client missed); <paramref name="acl"/> is the znode's, checked on delivery like any event's.</summary>
    void Notify(ReplicaSession<TAddress, TRead, TOutcome> session, long seq, WatcherEvent e, long zxid, IReadOnlyList<Acl>? acl);
    /// <summary>A read was refused because its answer would exceed <see cref="ReplicaCore{TAddress,TRead,TOutcome}.MaxResponseSize"/> (a metric).</summary>
    void ResponseTooLarge();
}

// Reads and watch registration: every request answered from local state, against the tree as applied so far (the
// session's queue has made it wait for its own writes and syncs already), with its watches registered here.
public sealed partial class ReplicaCore<TAddress, TRead, TOutcome>
{
    /// <summary>Largest answer a read may have (max-response-size); past it the read is refused before it is built.</summary>
    public int MaxResponseSize { get; init; } = int.MaxValue;

    /// <summary>
    /// Answers a read (any request answered from local state: reads, watch registration, whoAmI) against
    /// <paramref name="tree"/>, the state applied so far, and registers its watches in <see cref="Watches"/>. The
    /// host sends the answer with the session's next sequence number (<see cref="IReplicaHost{TAddress,TRead,TOutcome}.ExecuteRead"/>).
    /// </summary>
    public (ErrorCode Err, ZkResponse Body) AnswerRead(DataTree tree, ReplicaSession<TAddress, TRead, TOutcome> session, OpCode op, ZkRequest body, AuthContext auth)
    {
        var sid = session.Id;
        switch (body)
        {
            case PathWatchRequest r when op == OpCode.Exists:
            {
                // As ZooKeeper 3.9.2 and 3.8.4 (ZOOKEEPER-2590): an existing znode needs READ, and NoAuth registers
                // no watch; a missing one answers NoNode (3.8.0 to 3.8.3 and 3.9.0/3.9.1 checked no ACL at all).
                var node = tree.Find(r.NodePath);
                if (node is not null && !Acls.Check(node.Acl, Perms.Read, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                if (r.Watch && Paths.IsValid(r.NodePath)) Watches.Add(r.NodePath, sid, WatchKind.Data);
                return node is null ? (ErrorCode.NoNode, EmptyResponse.Instance) : (ErrorCode.Ok, new StatResponse(node.Stat));
            }
            case PathWatchRequest r when op == OpCode.GetData:
            {
                var node = tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                if (r.Watch) Watches.Add(r.NodePath, sid, WatchKind.Data);
                return (ErrorCode.Ok, new GetDataResponse(node.Data, node.Stat));
            }
            case PathWatchRequest r:   // getChildren, getChildren2
            {
                var node = tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                if (r.Watch) Watches.Add(r.NodePath, sid, WatchKind.Child);
                if (ResponseSize.OfNames(node.Children, ResponseSize.StatBytes) > MaxResponseSize) return TooLarge();
                var children = node.Children.ToList();
                return (ErrorCode.Ok, op == OpCode.GetChildren2 ? new GetChildrenResponse(children, node.Stat) : new GetChildrenResponse(children));
            }
            case PathRequest r when op == OpCode.GetAcl:
            {
                var node = tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read | Perms.Admin, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                // Without ADMIN, digest hashes are masked, as ZooKeeper does since 3.6.
                var acl = Acls.Check(node.Acl, Perms.Admin, auth) ? node.Acl : MaskDigests(node.Acl);
                return (ErrorCode.Ok, new GetAclResponse(acl, node.Stat));
            }
            case PathRequest r when op == OpCode.GetAllChildrenNumber:
            {
                var node = tree.Find(r.NodePath);
                if (node is null) return (ErrorCode.NoNode, EmptyResponse.Instance);
                if (!Acls.Check(node.Acl, Perms.Read, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                return (ErrorCode.Ok, new GetAllChildrenNumberResponse(tree.CountDescendants(r.NodePath)));
            }
            case PathRequest r when op == OpCode.GetEphemerals:
            {
                var prefix = r.NodePath;
                var matches = tree.EphemeralsOf(sid).Where(p => prefix == "/" || p.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                if (ResponseSize.OfNames(matches, 0) > MaxResponseSize) return TooLarge();
                return (ErrorCode.Ok, new StringListResponse(matches));
            }
            case PathRequest r when op == OpCode.Sync:
                return (ErrorCode.Ok, new PathResponse(r.NodePath));
            case MultiRequest multi when op == OpCode.MultiRead:
                // As ZooKeeper: a multiRead may hold only getData and getChildren ("Mixing different kind of ops").
                foreach (var inner in multi.Ops)
                    if (inner.Type is not (OpCode.GetData or OpCode.GetChildren)) return (ErrorCode.MarshallingError, EmptyResponse.Instance);
                return MultiRead(tree, multi, auth) is { } results ? (ErrorCode.Ok, results) : TooLarge();
            case SetWatchesRequest r:
                SetWatches(tree, r, session, auth);
                return (ErrorCode.Ok, EmptyResponse.Instance);
            case AddWatchRequest r when r.Mode is not (AddWatchMode.Persistent or AddWatchMode.PersistentRecursive):
                return (ErrorCode.MarshallingError, EmptyResponse.Instance);
            case AddWatchRequest r:
                // No path check, as in ZooKeeper (Ok for "" or "x"): a watch on a path no znode can have never fires.
                if (!MayWatchPersistently(tree, r.NodePath, auth)) return (ErrorCode.NoAuth, EmptyResponse.Instance);
                Watches.Add(r.NodePath, sid, r.Mode == AddWatchMode.PersistentRecursive ? WatchKind.PersistentRecursive : WatchKind.Persistent);
                return (ErrorCode.Ok, ErrorCodeResponse.Ok);
            case WatchesRequest r:
            {
                var found = Watches.Remove(r.NodePath, sid, r.Type, remove: op == OpCode.RemoveWatches);
                return (found ? ErrorCode.Ok : ErrorCode.NoWatcher, EmptyResponse.Instance);
            }
            case EmptyRequest when op == OpCode.WhoAmI:
                return (ErrorCode.Ok, new WhoAmIResponse(auth.Ids.Select(ClientInfoOf).ToList()));
            default:
                return (ErrorCode.Unimplemented, EmptyResponse.Instance);
        }
    }

    /// <summary>whoAmI reports a digest identity by its user name only, never the hash.</summary>
    private static ClientInfo ClientInfoOf(Id id)
    {
        var colon = id.Ident.IndexOf(':');
        return new ClientInfo(id.Scheme, id.Scheme == "digest" && colon >= 0 ? id.Ident[..colon] : id.Ident);
    }

    private static IReadOnlyList<Acl> MaskDigests(IReadOnlyList<Acl> acl)
    {
        var masked = new List<Acl>(acl.Count);
        foreach (var entry in acl)
        {
            var colon = entry.Id.Ident.IndexOf(':');
            masked.Add(entry.Id.Scheme == "digest" && colon >= 0 ? entry with { Id = entry.Id with { Ident = entry.Id.Ident[..colon] + ":x" } } : entry);
        }
        return masked;
    }

    /// <summary>A read whose response would exceed max-response-size is refused before it is built (README "Resource bounds").</summary>
    private (ErrorCode, ZkResponse) TooLarge()
    {
        _host.ResponseTooLarge();
        return (ErrorCode.MarshallingError, EmptyResponse.Instance);
    }

    /// <summary>The multiRead's results, or null when their encoding would exceed max-response-size (nothing is built past it).</summary>
    private MultiResponse? MultiRead(DataTree tree, MultiRequest multi, AuthContext auth)
    {
        var results = new List<OpResult>(multi.Ops.Count);
        long size = 0;
        foreach (var op in multi.Ops)
        {
            var path = op.Request.Path ?? "";
            var node = tree.Find(path);
            size += ResponseSize.MultiHeaderBytes;
            if (node is null) { results.Add(OpResult.Error(ErrorCode.NoNode)); size += 4; continue; }
            if (!Acls.Check(node.Acl, Perms.Read, auth)) { results.Add(OpResult.Error(ErrorCode.NoAuth)); size += 4; continue; }
            size += op.Type == OpCode.GetData ? 4 + (node.Data?.Length ?? 0) + ResponseSize.StatBytes : ResponseSize.OfNames(node.Children, 0);
            if (size > MaxResponseSize) return null;
            results.Add(op.Type == OpCode.GetData
                ? new OpResult(OpCode.GetData, ErrorCode.Ok, new GetDataResponse(node.Data, node.Stat))
                : new OpResult(OpCode.GetChildren, ErrorCode.Ok, new GetChildrenResponse(node.Children.ToList())));
        }
        return new MultiResponse(results);
    }

    /// <summary>
    /// A persistent or recursive watch is registered only where the session may read the znode, if it exists
    /// (addWatch answers NoAuth, setWatches leaves it out). Stricter than ZooKeeper, which registers it anyway and
    /// relies on the READ check when an event fires; that check is made here too (see WatchTrigger.Acl).
    /// </summary>
    private static bool MayWatchPersistently(DataTree tree, string path, AuthContext auth) =>
        tree.Find(path) is not { } node || Acls.Check(node.Acl, Perms.Read, auth);

    /// <summary>
    /// Re-registers a reconnecting client's watches. Changes it missed since <c>relativeZxid</c> fire at once,
    /// as ZooKeeper's DataTree.setWatches does; unlike ZooKeeper (which passes no ACL for those), they are subject to
    /// the same READ check as any event, so setWatches cannot probe changes to a znode the client cannot read.
    /// Persistent and recursive watches get addWatch's checks (<see cref="MayWatchPersistently"/>).
    /// </summary>
    private void SetWatches(DataTree tree, SetWatchesRequest r, ReplicaSession<TAddress, TRead, TOutcome> session, AuthContext auth)
    {
        var sid = session.Id;
        var zxid = tree.LastZxid;
        void Fire(EventType type, string path, INodeView? node) =>
            _host.Notify(session, session.NextSeq(), new WatcherEvent(type, KeeperState.SyncConnected, path), zxid, node?.Acl);

        foreach (var path in r.DataWatches)
        {
            var node = tree.Find(path);
            if (node is null) Fire(EventType.NodeDeleted, path, null);
            else if (node.Stat.Mzxid > r.RelativeZxid) Fire(EventType.NodeDataChanged, path, node);
            else Watches.Add(path, sid, WatchKind.Data);
        }
        foreach (var path in r.ExistWatches)
        {
            if (tree.Find(path) is { } node) Fire(EventType.NodeCreated, path, node);
            else Watches.Add(path, sid, WatchKind.Data);
        }
        foreach (var path in r.ChildWatches)
        {
            var node = tree.Find(path);
            if (node is null) Fire(EventType.NodeDeleted, path, null);
            else if (node.Stat.Pzxid > r.RelativeZxid) Fire(EventType.NodeChildrenChanged, path, node);
            else Watches.Add(path, sid, WatchKind.Child);
        }
        foreach (var path in r.PersistentWatches)
            if (MayWatchPersistently(tree, path, auth)) Watches.Add(path, sid, WatchKind.Persistent);
        foreach (var path in r.PersistentRecursiveWatches)
            if (MayWatchPersistently(tree, path, auth)) Watches.Add(path, sid, WatchKind.PersistentRecursive);
    }
}
