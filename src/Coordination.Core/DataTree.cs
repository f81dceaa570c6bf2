using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// One znode. Stat fields are stored directly on the node (no separate Stat object), the ACL is a shared,
/// reference-counted list, and the node does not store its path: the tree is a trie of child maps keyed by name, so a
/// path string exists only once, as the child's name in its parent's map. Leaf nodes that never had children carry no
/// child map at all (their pzxid is their czxid and their cversion 0).
/// <para>Cversion is stored as ZooKeeper stores it: the number of child creations. Clients see
/// <c>cversion * 2 - numChildren</c> (creations plus deletions), exactly as ZooKeeper's DataNode.copyStat reports it.</para>
/// <para>The owner (an ephemeral's session, or a container's or TTL node's marker) is on <see cref="OwnedNode"/> only:
/// most znodes are persistent, and without it a node is 80 bytes instead of 88 (issue 23).</para>
/// </summary>
internal class Node : INodeView
{
    /// <summary>Null when created or set with null data: ZooKeeper returns that null (length -1), not zero bytes.</summary>
    internal byte[]? Data;
    internal AclList Acl;
    internal Kids? Kids;
    internal long Czxid, Mzxid, Ctime, Mtime;
    internal int Version, Aversion;

    internal Node(byte[]? data, AclList acl)
    {
        Data = data;
        Acl = acl;
    }

    /// <summary>A node with <paramref name="owner"/> as its stored ephemeral owner (0: a plain persistent node).</summary>
    internal static Node Create(byte[]? data, AclList acl, long owner) =>
        owner == 0 ? new Node(data, acl) : new OwnedNode(data, acl, owner);

    /// <summary>The stored ephemeral owner: a session id, a container's or TTL node's marker, or 0.</summary>
    internal long Owner => this is OwnedNode owned ? owned.StoredOwner : 0;

    internal int ChildCount => Kids?.Map.Count ?? 0;
    internal int DataLength => Data?.Length ?? 0;
    internal long Pzxid => Kids?.Pzxid ?? Czxid;
    internal int Cversion => Kids?.Cversion ?? 0;

    internal bool TryGetChild(ReadOnlySpan<char> name, out Node child)
    {
        if (Kids is { } kids) return kids.Map.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out child!);
        child = null!;
        return false;
    }

    /// <summary>The Stat as clients see it.</summary>
    internal Stat ToStat()
    {
        var n = ChildCount;
        return new Stat(Czxid, Mzxid, Ctime, Mtime, Version, unchecked(Cversion * 2 - n), Aversion,
            EphemeralOwner.IsSessionOwner(Owner) ? Owner : 0, DataLength, n, Pzxid);
    }

    byte[]? INodeView.Data => Data;
    IReadOnlyList<Acl> INodeView.Acl => Acl;
    Stat INodeView.Stat => ToStat();
    IReadOnlyCollection<string> INodeView.Children => (IReadOnlyCollection<string>?)Kids?.Map.Keys ?? Array.Empty<string>();
    long INodeView.StoredEphemeralOwner => Owner;
}

/// <summary>A node whose stored ephemeral owner is not 0. The owner is fixed at creation (only a fuzzy replay that
/// re-creates a node changes it, by replacing the node).</summary>
internal sealed class OwnedNode(byte[]? data, AclList acl, long owner) : Node(data, acl)
{
    internal readonly long StoredOwner = owner;
}

/// <summary>The children of a node that has (or had) any, with the fields that only change with children.</summary>
internal sealed class Kids(string path, long pzxid, int cversion)
{
    /// <summary>Filled through <see cref="Add"/> or <see cref="TryAdd"/> only, so that it grows in small steps.</summary>
    internal readonly Dictionary<string, Node> Map = new(StringComparer.Ordinal);
    /// <summary>The full path of the owning node (kept only for nodes with children: parents are few).</summary>
    internal readonly string Path = path;
    internal long Pzxid = pzxid;
    internal int Cversion = cversion;

    internal void Add(string name, Node node)
    {
        GrowIfFull();
        Map.Add(name, node);
    }

    internal bool TryAdd(string name, Node node)
    {
        GrowIfFull();
        return Map.TryAdd(name, node);
    }

    /// <summary>A full map would double (every slot costs 28 B: a 1,000-child directory held 1,931, issue 23); the
    /// next size of the runtime's prime table is about 1.2 times the last, so a directory ends 83-100 % full. A big
    /// directory doubles as before: each growth copies the whole map on the replica's thread, and growing a
    /// million-child one in 1.2x steps made four such stalls of tens of ms where doubling makes one (create p999).</summary>
    private void GrowIfFull()
    {
        if (Map.Count == Map.Capacity && Map.Count < SmallStepsUpTo) Map.EnsureCapacity(Map.Count + Map.Count / 8 + 1);
    }

    /// <summary>Children up to which the map grows in small steps (a copy of this many entries takes well under a ms).</summary>
    internal const int SmallStepsUpTo = 1 << 16;
}

/// <summary>
/// The replicated state: the znode tree plus the table of open sessions (id → timeout). Deterministic and free of I/O,
/// clocks and threads: time arrives in txn headers. Not thread-safe; one owner applies and reads.
/// Stat semantics follow Apache ZooKeeper's DataTree exactly.
/// <para>Layout: a trie of per-node child maps keyed by name (no full-path strings are stored), so a lookup costs one
/// hash probe per path segment and a node costs about 190 bytes (plus its data) — ZooKeeper 3.8 needs about 335.</para>
/// </summary>
public sealed partial class DataTree
{
    internal const string RootPath = "/";
    internal const string ProcPath = "/zookeeper";
    internal const string QuotaPath = "/zookeeper/quota";
    public const string ConfigPath = "/zookeeper/config";

    private static readonly WatchTrigger[] NoTriggers = [];

    private readonly Node _root;
    private int _count;
    private readonly Dictionary<long, HashSet<string>> _ephemerals = new();
    private readonly HashSet<string> _containers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _ttls = new(StringComparer.Ordinal);
    private readonly Dictionary<long, int> _sessions = new();
    private readonly AclCache _acls = new();
    private long _lastZxid;
    private long _dataSize;
    private int _ephemeralCount;
    /// <summary>Paths with a quota (a "/zookeeper/quota{path}/zookeeper_limits" node): ZooKeeper's pTrie.</summary>
    private HashSet<string>? _quotaRoots;

    /// <summary>A fresh tree: "/", "/zookeeper", "/zookeeper/quota" and "/zookeeper/config" (world-readable only,
    /// aversion -1), every Stat field 0, exactly as a new ZooKeeper 3.8 server shows them.</summary>
    public DataTree() : this(empty: true)
    {
        var proc = AddInitialChild(_root, RootPath, "zookeeper", Acl.OpenAclUnsafe);
        AddInitialChild(proc, ProcPath, "quota", Acl.OpenAclUnsafe);
        AddInitialChild(proc, ProcPath, "config", Acl.ReadAclUnsafe).Aversion = -1; // ZooKeeper: setACL(config, READ_ACL_UNSAFE, -1)
        _dataSize = RootPath.Length + ProcPath.Length + QuotaPath.Length + ConfigPath.Length;
    }

    private DataTree(bool empty)
    {
        _root = new Node([], _acls.AddRef(Acl.OpenAclUnsafe));
        _count = 1;
    }

    private Node AddInitialChild(Node parent, string parentPath, string name, IReadOnlyList<Acl> acl)
    {
        var node = new Node([], _acls.AddRef(acl));
        (parent.Kids ??= new Kids(parentPath, parent.Czxid, 0)).Add(name, node);
        _count++;
        return node;
    }

    /// <summary>The zxid of the last applied txn.</summary>
    public long LastZxid => _lastZxid;

    /// <summary>
    /// ZooKeeper's zk_znode_count. ZooKeeper's node map holds the root twice (as "" and as "/"), so its count is
    /// one more than the number of distinct znodes (a fresh server reports 5); this property reports the same number.
    /// Use <see cref="DistinctNodeCount"/> for the real number of znodes.
    /// </summary>
    public int NodeCount => _count + 1;

    /// <summary>The number of distinct znodes, "/" and the three /zookeeper nodes included.</summary>
    public int DistinctNodeCount => _count;

    /// <summary>Sum of path lengths + data lengths (ZooKeeper's zk_approximate_data_size; the root's data is counted
    /// twice because ZooKeeper's map holds the root under "" and "/"; a fresh tree reports 44 as ZooKeeper does).</summary>
    public long ApproximateDataSize => _dataSize;

    public int EphemeralCount => _ephemeralCount;

    /// <summary>Open sessions and their negotiated timeouts (replicated via CreateSession/CloseSession txns).</summary>
    public IReadOnlyDictionary<long, int> Sessions => _sessions;

    /// <summary>The deployment's session secret (<see cref="SessionSecretTxn"/>), or null before it is committed.</summary>
    public byte[]? SessionSecret { get; private set; }

    /// <summary>Number of distinct ACL lists in use (ZooKeeper's aclCacheSize).</summary>
    public int AclCount => _acls.Count;

    /// <summary>Paths of all container nodes.</summary>
    public IReadOnlyCollection<string> Containers => _containers;

    /// <summary>Paths of all TTL nodes.</summary>
    public IReadOnlyCollection<string> TtlNodes => _ttls;

    /// <summary>The node at an absolute path, or null. O(depth) hash lookups of the path's segments, no allocation.</summary>
    public INodeView? Find(string path) => Lookup(path);

    /// <summary>Walks the trie. Null for a missing node or a malformed path (relative, empty segment, trailing slash).</summary>
    internal Node? Lookup(ReadOnlySpan<char> path)
    {
        if (path.Length == 0 || path[0] != '/') return null;
        var node = _root;
        var rest = path[1..];
        if (rest.Length == 0) return node;
        while (true)
        {
            var slash = rest.IndexOf('/');
            var name = slash < 0 ? rest : rest[..slash];
            if (!node.TryGetChild(name, out node)) return null;
            if (slash < 0) return node;
            rest = rest[(slash + 1)..];
        }
    }

    internal static bool IsSpecialPath(string path) => path is RootPath or ProcPath or QuotaPath or ConfigPath;

    /// <summary>Number of all descendants of a node (getAllChildrenNumber), not counting the node itself.</summary>
    public int CountDescendants(string path)
    {
        if (path == RootPath) return _count - 1;
        var node = Lookup(path);
        if (node?.Kids is null) return 0;
        var count = 0;
        var stack = new Stack<Node>();
        stack.Push(node);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n.Kids is null) continue;
            count += n.Kids.Map.Count;
            foreach (var child in n.Kids.Map.Values)
                if (child.Kids is { Map.Count: > 0 }) stack.Push(child);
        }
        return count;
    }

    /// <summary>Paths of the ephemerals a session owns.</summary>
    public IReadOnlyCollection<string> EphemeralsOf(long sessionId) =>
        _ephemerals.TryGetValue(sessionId, out var set) ? set : Array.Empty<string>();

    /// <summary>Sessions that own at least one ephemeral (for the dump 4lw).</summary>
    public IEnumerable<long> SessionsWithEphemerals
    {
        get
        {
            foreach (var (session, set) in _ephemerals)
                if (set.Count > 0) yield return session;
        }
    }

    /// <summary>
    /// Containers with no children that have had children (cversion &gt; 0), and TTL nodes without children whose
    /// mtime + ttl &lt; now. The server turns these into deleteContainer / delete requests (ZooKeeper's ContainerManager).
    /// Sorted by path.
    /// </summary>
    public IReadOnlyList<string> FindReapable(long nowMs)
    {
        List<string>? result = null;
        foreach (var path in _containers)
        {
            if (Lookup(path) is { } n && IsReapable(n, nowMs)) (result ??= []).Add(path);
        }
        foreach (var path in _ttls)
        {
            if (Lookup(path) is { } n && IsReapable(n, nowMs)) (result ??= []).Add(path);
        }
        if (result is null) return Array.Empty<string>();
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    /// <summary>The reaping rule of ZooKeeper's ContainerManager, on stored fields.</summary>
    internal static bool IsReapable(long owner, int storedCversion, int childCount, long mtime, long nowMs)
    {
        if (childCount > 0) return false;
        if (EphemeralOwner.IsContainer(owner)) return storedCversion > 0;
        if (EphemeralOwner.IsTtl(owner))
        {
            var ttl = EphemeralOwner.TtlOf(owner);
            return ttl != 0 && nowMs - mtime > ttl;
        }
        return false;
    }

    private static bool IsReapable(Node n, long nowMs) => IsReapable(n.Owner, n.Cversion, n.ChildCount, n.Mtime, nowMs);

    // ------------------------------------------------------------------------------------------------ apply

    /// <summary>Applies a committed txn. Never fails for a txn produced by <see cref="RequestPreprocessor"/>.
    /// (A txn that does not fit the tree, e.g. replayed twice, changes nothing and reports NoNode/NodeExists.)</summary>
    public ApplyResult Apply(in TxnHeader header, Txn txn)
    {
        ApplyResult result;
        switch (txn)
        {
            case CreateTxn create:
            {
                var err = CreateNode(create, header.Zxid, header.Time, out var node, out var parentPath);
                result = err != ErrorCode.Ok
                    ? Failure(err)
                    : Success(CreateResponse(header.Type, create.Path, node), [Trigger(create.Path, EventType.NodeCreated), Trigger(parentPath, EventType.NodeChildrenChanged)]);
                break;
            }
            case DeleteTxn delete:
            {
                var deletedAcl = Lookup(delete.Path)?.Acl;
                var err = DeleteNode(delete.Path, header.Zxid, out var parentPath);
                result = err != ErrorCode.Ok
                    ? Failure(err)
                    : Success(EmptyResponse.Instance, [new(delete.Path, EventType.NodeDeleted) { Acl = deletedAcl }, Trigger(parentPath, EventType.NodeChildrenChanged)]);
                break;
            }
            case SetDataTxn setData:
            {
                var err = SetData(setData, header.Zxid, header.Time, out var stat);
                result = err != ErrorCode.Ok
                    ? Failure(err)
                    : Success(header.Type == OpCode.Reconfig ? new GetDataResponse(setData.Data, stat) : new StatResponse(stat),
                        [Trigger(setData.Path, EventType.NodeDataChanged)]);
                break;
            }
            case SetAclTxn setAcl:
            {
                var err = SetAcl(setAcl, out var stat);
                result = err != ErrorCode.Ok ? Failure(err) : Success(new StatResponse(stat), NoTriggers);
                break;
            }
            case CheckVersionTxn:
                result = Success(EmptyResponse.Instance, NoTriggers);
                break;
            case CreateSessionTxn createSession:
                _sessions[header.SessionId] = createSession.TimeoutMs;
                result = Success(EmptyResponse.Instance, NoTriggers);
                break;
            case SessionSecretTxn secret:
                SessionSecret ??= secret.Secret;   // the first one wins, on every member alike
                result = Success(EmptyResponse.Instance, NoTriggers);
                break;
            case CloseSessionTxn closeSession:
                result = Success(EmptyResponse.Instance, KillSession(header.SessionId, header.Zxid, closeSession.EphemeralPaths));
                break;
            case ErrorTxn error:
                result = Failure(error.Err);
                break;
            case MultiTxn multi:
                result = ApplyMulti(header, multi);
                break;
            default:
                throw new ArgumentException($"unknown txn type {txn.GetType().Name}", nameof(txn));
        }
        _lastZxid = header.Zxid;
        return result;
    }

    /// <summary>A trigger for a znode that exists now, with its ACL as it is now (see <see cref="WatchTrigger.Acl"/>).</summary>
    private WatchTrigger Trigger(string path, EventType type) => new(path, type) { Acl = Lookup(path)?.Acl };

    private static ApplyResult Success(ZkResponse response, IReadOnlyList<WatchTrigger> triggers) =>
        new() { Err = ErrorCode.Ok, FirstError = ErrorCode.Ok, Response = response, Triggers = triggers };

    private static ApplyResult Failure(ErrorCode err) =>
        new() { Err = err, FirstError = err, Response = EmptyResponse.Instance, Triggers = NoTriggers };

    private static ZkResponse CreateResponse(OpCode type, string path, Node node) =>
        type == OpCode.Create ? new PathResponse(path) : new Create2Response(path, node.ToStat());

    private ApplyResult ApplyMulti(in TxnHeader header, MultiTxn multi)
    {
        var ops = multi.Ops;
        var results = new OpResult[ops.Count];
        var failed = false;
        for (var i = 0; i < ops.Count; i++)
        {
            if (ops[i].Txn is ErrorTxn) { failed = true; break; }
        }

        var first = ErrorCode.Ok;
        if (failed)
        {
            // A multi rejected in prep: nothing changes; every op reports its code (Ok before the failing op,
            // the failure, RuntimeInconsistency after it). ZooKeeper converts non-error ops the same way.
            var postFailure = false;
            for (var i = 0; i < ops.Count; i++)
            {
                ErrorCode code;
                if (ops[i].Txn is ErrorTxn e) { code = e.Err; postFailure = true; }
                else code = postFailure ? ErrorCode.RuntimeInconsistency : ErrorCode.Ok;
                results[i] = OpResult.Error(code);
                if (code != ErrorCode.Ok && first == ErrorCode.Ok) first = code;
            }
            return new ApplyResult { Err = ErrorCode.Ok, FirstError = first, Response = new MultiResponse(results), Triggers = NoTriggers };
        }

        List<WatchTrigger>? triggers = null;
        for (var i = 0; i < ops.Count; i++)
        {
            var op = ops[i];
            ErrorCode err;
            switch (op.Txn)
            {
                case CreateTxn create:
                    err = CreateNode(create, header.Zxid, header.Time, out var node, out var parentPath);
                    if (err == ErrorCode.Ok)
                    {
                        results[i] = op.Type == OpCode.Create
                            ? new OpResult(OpCode.Create, ErrorCode.Ok, new PathResponse(create.Path))
                            // ZooKeeper's CreateResult(path, stat) is typed create2 for create2, createContainer and createTTL.
                            : new OpResult(OpCode.Create2, ErrorCode.Ok, new Create2Response(create.Path, node.ToStat()));
                        triggers ??= new List<WatchTrigger>(ops.Count * 2);
                        triggers.Add(Trigger(create.Path, EventType.NodeCreated));
                        triggers.Add(Trigger(parentPath, EventType.NodeChildrenChanged));
                    }
                    break;
                case DeleteTxn delete:
                    var deletedAcl = Lookup(delete.Path)?.Acl;
                    err = DeleteNode(delete.Path, header.Zxid, out var deletedParent);
                    if (err == ErrorCode.Ok)
                    {
                        results[i] = new OpResult(OpCode.Delete, ErrorCode.Ok, EmptyResponse.Instance);
                        triggers ??= new List<WatchTrigger>(ops.Count * 2);
                        triggers.Add(new(delete.Path, EventType.NodeDeleted) { Acl = deletedAcl });
                        triggers.Add(Trigger(deletedParent, EventType.NodeChildrenChanged));
                    }
                    break;
                case SetDataTxn setData:
                    err = SetData(setData, header.Zxid, header.Time, out var stat);
                    if (err == ErrorCode.Ok)
                    {
                        results[i] = new OpResult(OpCode.SetData, ErrorCode.Ok, new StatResponse(stat));
                        triggers ??= new List<WatchTrigger>(ops.Count * 2);
                        triggers.Add(Trigger(setData.Path, EventType.NodeDataChanged));
                    }
                    break;
                case CheckVersionTxn:
                    err = ErrorCode.Ok;
                    results[i] = new OpResult(OpCode.Check, ErrorCode.Ok, EmptyResponse.Instance);
                    break;
                default:
                    err = ErrorCode.MarshallingError;
                    break;
            }
            if (err != ErrorCode.Ok)
            {
                results[i] = OpResult.Error(err);
                if (first == ErrorCode.Ok) first = err;
            }
        }
        return new ApplyResult
        {
            Err = ErrorCode.Ok, FirstError = first, Response = new MultiResponse(results),
            Triggers = (IReadOnlyList<WatchTrigger>?)triggers ?? NoTriggers,
        };
    }

    /// <summary>Shares one empty array for empty data; null stays null.</summary>
    private static byte[]? Normalize(byte[]? data) => data is { Length: 0 } ? [] : data;

    private static ReadOnlySpan<char> ParentSpan(string path, int lastSlash) =>
        lastSlash == 0 ? RootPath.AsSpan() : path.AsSpan(0, lastSlash);

    private ErrorCode CreateNode(CreateTxn txn, long zxid, long time, out Node node, out string parentPath)
    {
        node = null!;
        parentPath = null!;
        var path = txn.Path;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0) return ErrorCode.NoNode;
        var parent = Lookup(ParentSpan(path, lastSlash));
        if (parent is null) return ErrorCode.NoNode;
        var nameSpan = path.AsSpan(lastSlash + 1);
        if (nameSpan.IsEmpty) return ErrorCode.NodeExists; // "/" exists
        if (parent.TryGetChild(nameSpan, out var existing))
        {
            if (!ReplayMode) return ErrorCode.NodeExists;
            node = ReplaceNode(existing, txn, path, zxid, time);
            var parentKids = parent.Kids!;
            if (!ReferenceEquals(node, existing)) parentKids.Map[nameSpan.ToString()] = node;
            parentKids.Cversion = txn.ParentCversion;
            parentKids.Pzxid = zxid;
            parentPath = parentKids.Path;
            return ErrorCode.Ok;
        }

        var data = Normalize(txn.Data);
        var length = data?.Length ?? 0;
        node = Node.Create(data, _acls.AddRef(txn.Acl), txn.EphemeralOwner);
        (node.Czxid, node.Mzxid, node.Ctime, node.Mtime) = (zxid, zxid, time, time);
        var kids = parent.Kids ??= new Kids(ParentSpan(path, lastSlash).ToString(), parent.Czxid, 0);
        kids.Add(nameSpan.ToString(), node);
        kids.Cversion = txn.ParentCversion;
        kids.Pzxid = zxid;
        parentPath = kids.Path;
        _count++;
        _dataSize += path.Length + length;
        TrackOwner(path, txn.EphemeralOwner);
        if (parentPath.StartsWith(QuotaPath, StringComparison.Ordinal)) OnQuotaNodeCreated(parentPath, path.AsSpan(lastSlash + 1));
        if (_quotaRoots is { Count: > 0 }) UpdateQuotaStat(path, length, 1);
        return ErrorCode.Ok;
    }

    private void TrackOwner(string path, long owner)
    {
        if (owner == 0) return;
        if (EphemeralOwner.IsContainer(owner)) _containers.Add(path);
        else if (EphemeralOwner.IsTtl(owner)) _ttls.Add(path);
        else
        {
            if (!_ephemerals.TryGetValue(owner, out var set))
            {
                set = new HashSet<string>(StringComparer.Ordinal);
                _ephemerals.Add(owner, set);
            }
            if (set.Add(path)) _ephemeralCount++;
        }
    }

    private void UntrackOwner(string path, long owner)
    {
        if (owner == 0) return;
        if (EphemeralOwner.IsContainer(owner)) _containers.Remove(path);
        else if (EphemeralOwner.IsTtl(owner)) _ttls.Remove(path);
        else if (_ephemerals.TryGetValue(owner, out var set))
        {
            if (set.Remove(path)) _ephemeralCount--;
            if (set.Count == 0) _ephemerals.Remove(owner);
        }
    }

    private ErrorCode DeleteNode(string path, long zxid, out string parentPath)
    {
        parentPath = null!;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0 || IsSpecialPath(path)) return ErrorCode.NoNode;
        var parent = Lookup(ParentSpan(path, lastSlash));
        if (parent?.Kids is not { } kids) return ErrorCode.NoNode;
        var lookup = kids.Map.GetAlternateLookup<ReadOnlySpan<char>>();
        var name = path.AsSpan(lastSlash + 1);
        if (!lookup.TryGetValue(name, out var node))
        {
            // Replay over a fuzzy snapshot: the node is already gone, but the parent may have been captured before
            // this delete, so its pzxid (an absolute value in the txn) is set as the original apply set it.
            if (ReplayMode) kids.Pzxid = zxid;
            return ErrorCode.NoNode;
        }
        if (node.ChildCount > 0)
        {
            if (!ReplayMode) return ErrorCode.NotEmpty; // prep never lets this through; refuse rather than orphan
            // Replay: children captured by a fuzzy snapshot that were deleted before this txn originally ran.
            DeleteChildrenForReplay(path, node, zxid);
        }

        lookup.Remove(name);
        kids.Pzxid = zxid;
        parentPath = kids.Path;
        _count--;
        _acls.Release(node.Acl);
        _dataSize -= path.Length + node.DataLength;
        UntrackOwner(path, node.Owner);
        if (_quotaRoots is { Count: > 0 })
        {
            if (name.SequenceEqual(QuotaLimitNode) && parentPath.StartsWith(QuotaPath, StringComparison.Ordinal))
                _quotaRoots.Remove(parentPath.Substring(QuotaPath.Length));
            UpdateQuotaStat(path, -node.DataLength, -1);
        }
        return ErrorCode.Ok;
    }

    private ErrorCode SetData(SetDataTxn txn, long zxid, long time, out Stat stat)
    {
        stat = default;
        var node = Lookup(txn.Path);
        if (node is null) return ErrorCode.NoNode;
        var data = Normalize(txn.Data);
        var bytesDiff = (data?.Length ?? 0) - node.DataLength;
        _dataSize += bytesDiff;
        if (txn.Path.Length == 1) _dataSize += bytesDiff; // ZooKeeper counts the root twice
        node.Data = data;
        if (_quotaRoots is { Count: > 0 }) UpdateQuotaStat(txn.Path, bytesDiff, 0);
        node.Mtime = time;
        node.Mzxid = zxid;
        node.Version = txn.Version;
        stat = node.ToStat();
        return ErrorCode.Ok;
    }

    private ErrorCode SetAcl(SetAclTxn txn, out Stat stat)
    {
        stat = default;
        var node = Lookup(txn.Path);
        if (node is null) return ErrorCode.NoNode;
        var old = node.Acl;
        node.Acl = _acls.AddRef(txn.Acl);
        _acls.Release(old);
        node.Aversion = txn.Version;
        stat = node.ToStat();
        return ErrorCode.Ok;
    }

    private IReadOnlyList<WatchTrigger> KillSession(long sessionId, long zxid, IReadOnlyList<string> paths)
    {
        _sessions.Remove(sessionId);
        List<WatchTrigger>? triggers = null;
        foreach (var path in paths)
        {
            // Replay over a fuzzy snapshot: the listed ephemerals existed when the txn first ran; whatever the
            // snapshot holds at those paths (nothing, or a later incarnation) is deleted as the original apply did.
            var node = Lookup(path);
            if ((ReplayMode || node is not null && node.Owner == sessionId) && DeleteNode(path, zxid, out var parent) == ErrorCode.Ok)
            {
                triggers ??= new List<WatchTrigger>(paths.Count * 2);
                triggers.Add(new(path, EventType.NodeDeleted) { Acl = node?.Acl });
                triggers.Add(Trigger(parent, EventType.NodeChildrenChanged));
            }
        }
        // Ephemerals the txn did not list (ZooKeeper deletes those too, with a warning).
        if (_ephemerals.TryGetValue(sessionId, out var rest) && rest.Count > 0)
        {
            var remaining = new string[rest.Count];
            rest.CopyTo(remaining);
            Array.Sort(remaining, StringComparer.Ordinal);
            foreach (var path in remaining)
            {
                var acl = Lookup(path)?.Acl;
                if (DeleteNode(path, zxid, out var parent) == ErrorCode.Ok)
                {
                    triggers ??= [];
                    triggers.Add(new(path, EventType.NodeDeleted) { Acl = acl });
                    triggers.Add(Trigger(parent, EventType.NodeChildrenChanged));
                }
            }
        }
        return (IReadOnlyList<WatchTrigger>?)triggers ?? NoTriggers;
    }

    // ------------------------------------------------------------------------------------------------ quotas

    internal const string QuotaLimitNode = "zookeeper_limits";
    internal const string QuotaStatNode = "zookeeper_stats";

    /// <summary>ZooKeeper's createNode quota hooks: a zookeeper_limits node registers its path as a quota root, a
    /// zookeeper_stats node gets the current count and bytes of the subtree as its data.</summary>
    private void OnQuotaNodeCreated(string parentPath, ReadOnlySpan<char> name)
    {
        var quotaRoot = parentPath.Substring(QuotaPath.Length);
        if (quotaRoot.Length == 0) return; // a limit directly under /zookeeper/quota names no path
        if (name.SequenceEqual(QuotaLimitNode)) (_quotaRoots ??= new HashSet<string>(StringComparer.Ordinal)).Add(quotaRoot);
        else if (name.SequenceEqual(QuotaStatNode)) RecountQuota(quotaRoot);
    }

    /// <summary>ZooKeeper's updateQuotaForPath: count and bytes of a subtree (the node included) into its stats node.</summary>
    private void RecountQuota(string quotaRoot)
    {
        var statNode = Lookup(QuotaPath + quotaRoot + "/" + QuotaStatNode);
        if (statNode is null) return;
        long count = 0, bytes = 0;
        if (Lookup(quotaRoot) is { } root)
        {
            var stack = new Stack<Node>();
            stack.Push(root);
            while (stack.Count > 0)
            {
                var n = stack.Pop();
                count++;
                bytes += n.DataLength;
                if (n.Kids is { } kids) foreach (var child in kids.Map.Values) stack.Push(child);
            }
        }
        SetQuotaData(statNode, QuotaStats.Format(count, bytes, null));
    }

    /// <summary>ZooKeeper's getMaxPrefixWithQuota + updateQuotaStat: adjusts the stats node of the deepest quota root at
    /// or above <paramref name="path"/> (never "/"). The stats node's data changes; its version and mzxid do not.</summary>
    private void UpdateQuotaStat(string path, long bytesDiff, int countDiff)
    {
        if (QuotaRootOf(path) is not { } root) return;
        var statNode = Lookup(QuotaPath + root + "/" + QuotaStatNode);
        if (statNode is null) return;
        var stats = QuotaStats.Parse(statNode.Data);
        stats.Count += countDiff;
        stats.Bytes += bytesDiff;
        SetQuotaData(statNode, QuotaStats.Format(stats.Count, stats.Bytes, stats.Extra));
    }

    /// <summary>ZooKeeper's pTrie.findMaxPrefix: the deepest path with a quota at or above <paramref name="path"/>
    /// (never "/"), or null.</summary>
    internal string? QuotaRootOf(ReadOnlySpan<char> path)
    {
        if (_quotaRoots is not { Count: > 0 }) return null;
        var quotaRoots = _quotaRoots.GetAlternateLookup<ReadOnlySpan<char>>();
        while (path.Length > 1)
        {
            if (quotaRoots.TryGetValue(path, out var root)) return root;
            path = path[..Math.Max(path.LastIndexOf('/'), 1)];
        }
        return null;
    }

    /// <summary>The limits ("zookeeper_limits") and usage ("zookeeper_stats") of a quota root, null where a node is missing.</summary>
    internal (QuotaStats.Values? Limits, QuotaStats.Values? Usage) QuotaOf(string quotaRoot) =>
        (Lookup(QuotaPath + quotaRoot + "/" + QuotaLimitNode) is { } limits ? QuotaStats.Parse(limits.Data) : null,
         Lookup(QuotaPath + quotaRoot + "/" + QuotaStatNode) is { } usage ? QuotaStats.Parse(usage.Data) : null);

    private void SetQuotaData(Node statNode, byte[] data)
    {
        _dataSize += data.Length - statNode.DataLength;
        statNode.Data = data;
    }

    private void RebuildQuotaRoots()
    {
        _quotaRoots = null;
        var quota = Lookup(QuotaPath);
        if (quota?.Kids is null) return;
        Walk(sorted: false, (path, node) =>
        {
            if (path.Length > QuotaPath.Length + 1 + QuotaLimitNode.Length && path.StartsWith(QuotaPath + "/", StringComparison.Ordinal)
                && path.EndsWith("/" + QuotaLimitNode, StringComparison.Ordinal))
            {
                var root = path[QuotaPath.Length..^(QuotaLimitNode.Length + 1)];
                (_quotaRoots ??= new HashSet<string>(StringComparer.Ordinal)).Add(root.ToString());
            }
        });
    }

    /// <summary>Paths that have a quota (for listquota-style reporting and tests).</summary>
    public IReadOnlyCollection<string> QuotaRoots => (IReadOnlyCollection<string>?)_quotaRoots ?? Array.Empty<string>();

    /// <summary>
    /// ZooKeeper 3.8's per-namespace quota gauges (QuotaMetricsUtils, mntr's <c>&lt;ns&gt;_quota_*_per_namespace</c>),
    /// by top-level namespace in ordinal order: every leaf of /zookeeper/quota named zookeeper_limits adds its limits
    /// (the hard limit where one is set, else the soft one) and every leaf named zookeeper_stats its usage to the
    /// namespace of the path it sits under. Walks the quota subtree only.
    /// </summary>
    public IReadOnlyList<NamespaceQuota> QuotaPerNamespace()
    {
        if (Lookup(QuotaPath) is not { Kids.Map.Count: > 0 } quota) return [];
        var byNamespace = new SortedDictionary<string, NamespaceQuota>(StringComparer.Ordinal);
        var buffer = new char[256];
        QuotaPath.CopyTo(buffer);
        WalkFrom(quota, QuotaPath.Length, ref buffer, sorted: false, (path, node) =>
        {
            if (node.Kids is { Map.Count: > 0 } || node.Data is null) return;
            var name = path[(path.LastIndexOf('/') + 1)..];
            var limits = name.SequenceEqual(QuotaLimitNode);
            if (!limits && !name.SequenceEqual(QuotaStatNode) || TopNamespace(path[QuotaPath.Length..]) is not { } ns) return;
            var values = QuotaStats.Parse(node.Data);
            var sum = byNamespace.GetValueOrDefault(ns) ?? new NamespaceQuota(ns, null, null, null, null);
            byNamespace[ns] = limits
                ? sum with
                {
                    CountLimit = (sum.CountLimit ?? 0) + (values.CountHardLimit > -1 ? values.CountHardLimit : values.Count),
                    BytesLimit = (sum.BytesLimit ?? 0) + (values.ByteHardLimit > -1 ? values.ByteHardLimit : values.Bytes),
                }
                : sum with { CountUsage = (sum.CountUsage ?? 0) + values.Count, BytesUsage = (sum.BytesUsage ?? 0) + values.Bytes };
        });
        return [.. byNamespace.Values];
    }

    /// <summary>ZooKeeper's PathUtils.getTopNamespace: the first component of <paramref name="path"/> ("/a/b" gives
    /// "a"), null for "/".</summary>
    internal static string? TopNamespace(ReadOnlySpan<char> path)
    {
        var rest = path.Length > 0 && path[0] == '/' ? path[1..] : path;
        var end = rest.IndexOf('/');
        var first = end < 0 ? rest : rest[..end];
        return first.IsEmpty && end < 0 ? null : first.ToString();
    }

    /// <summary>Visits every node depth-first with its path (children in ordinal order when <paramref name="sorted"/>),
    /// parents before children. The path span is only valid during the callback.</summary>
    internal void Walk(bool sorted, WalkVisitor visitor)
    {
        var buffer = new char[256];
        buffer[0] = '/';
        WalkFrom(_root, 1, ref buffer, sorted, visitor);
    }

    internal delegate void WalkVisitor(ReadOnlySpan<char> path, Node node);

    private static void WalkFrom(Node root, int rootLength, ref char[] buffer, bool sorted, WalkVisitor visitor)
    {
        // Explicit stack: (node, length of its path in the buffer). The buffer holds the current path prefix.
        visitor(buffer.AsSpan(0, rootLength), root);
        var stack = new Stack<(Node Node, string Name, int ParentLength)>();
        PushChildren(stack, root, rootLength, sorted);
        while (stack.Count > 0)
        {
            var (node, name, parentLength) = stack.Pop();
            var start = parentLength == 1 ? 1 : parentLength + 1; // the root's path is "/", others need a separator
            var length = start + name.Length;
            if (length > buffer.Length) Array.Resize(ref buffer, Math.Max(length, buffer.Length * 2));
            if (parentLength != 1) buffer[parentLength] = '/';
            name.CopyTo(buffer.AsSpan(start));
            visitor(buffer.AsSpan(0, length), node);
            PushChildren(stack, node, length, sorted);
        }
    }

    private static void PushChildren(Stack<(Node, string, int)> stack, Node node, int length, bool sorted)
    {
        if (node.Kids is not { Map.Count: > 0 } kids) return;
        if (!sorted)
        {
            foreach (var (name, child) in kids.Map) stack.Push((child, name, length));
            return;
        }
        var names = new string[kids.Map.Count];
        kids.Map.Keys.CopyTo(names, 0);
        Array.Sort(names, StringComparer.Ordinal);
        for (var i = names.Length - 1; i >= 0; i--) stack.Push((kids.Map[names[i]], names[i], length)); // pop in order
    }
}

/// <summary>
/// One top-level namespace's quota figures as ZooKeeper 3.8 reports them per namespace: the limits summed over the
/// quotas under it (hard limits where set, else soft; -1 for a limit not set) and the usage summed over their stats
/// nodes; null where the namespace has no such node.
/// </summary>
public sealed record NamespaceQuota(string Namespace, long? CountLimit, long? BytesLimit, long? CountUsage, long? BytesUsage);

/// <summary>ZooKeeper's StatsTrack text: "count=N,bytes=M", then (when present) "=;key=value;..." with the other keys
/// sorted, e.g. "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1". Pairs are separated by ',' or ';'.</summary>
internal static class QuotaStats
{
    internal sealed class Values
    {
        public long Count = -1, Bytes = -1;
        public SortedDictionary<string, long>? Extra;

        /// <summary>ZooKeeper 3.7's hard limits (StatsTrack's countHardLimit and byteHardLimit), -1 when unset.</summary>
        public long CountHardLimit => Extra?.GetValueOrDefault("countHardLimit", -1) ?? -1;
        public long ByteHardLimit => Extra?.GetValueOrDefault("byteHardLimit", -1) ?? -1;
    }

    public static Values Parse(byte[]? data)
    {
        var result = new Values();
        var text = data is null ? "" : System.Text.Encoding.UTF8.GetString(data);
        foreach (var pair in text.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = pair.Split('=');
            if (parts.Length < 1 || parts[0].Length == 0) continue;
            var value = -1L;
            if (parts.Length > 1 && parts[1].Length > 0 && !long.TryParse(parts[1], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out value))
                continue;
            switch (parts[0])
            {
                case "count": result.Count = value; break;
                case "bytes": result.Bytes = value; break;
                default: (result.Extra ??= new SortedDictionary<string, long>(StringComparer.Ordinal))[parts[0]] = value; break;
            }
        }
        return result;
    }

    public static byte[] Format(long count, long bytes, SortedDictionary<string, long>? extra)
    {
        var sb = new System.Text.StringBuilder();
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        sb.Append("count=").Append(count.ToString(inv)).Append(",bytes=").Append(bytes.ToString(inv));
        if (extra is { Count: > 0 })
        {
            sb.Append('=');
            foreach (var (key, value) in extra) sb.Append(';').Append(key).Append('=').Append(value.ToString(inv));
        }
        return System.Text.Encoding.UTF8.GetBytes(sb.ToString());
    }
}
