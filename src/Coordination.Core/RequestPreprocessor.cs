using System.Globalization;
using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// ZooKeeper's PrepRequestProcessor, pure: validates a write against the tree plus the changes of txns that were
/// prepared but not yet applied, checks ACLs, and decides the outcome as a txn (an ErrorTxn when it fails).
/// Runs on the leader only; owns the next-zxid counter.
/// <para>Threading: not thread-safe, and it reads <see cref="DataTree"/> directly, so Prepare*, <see cref="Applied"/>
/// and <see cref="DataTree.Apply"/> must run on one thread (or one actor). Call <see cref="Applied"/> with a txn's
/// zxid after (never before) that txn is applied to the tree.</para>
/// <para>Validation order and codes follow ZooKeeper 3.8 (see each op in the source); notably a create checks, in
/// order: flags and TTL (BadArguments), data size (BadArguments), a '/' in the path (BadArguments), the ACL
/// (InvalidACL), the parent (NoNode), CREATE permission on the parent (NoAuth), the full path with its sequential
/// suffix (BadArguments), the node (NodeExists), an ephemeral parent (NoChildrenForEphemerals).</para>
/// </summary>
public sealed partial class RequestPreprocessor
{
    /// <summary>ZooKeeper's default jute.maxbuffer. ZooKeeper never sees larger data because it closes the
    /// connection of a frame over this size; Core rejects such data with BadArguments as a second line of defence.</summary>
    public const int DefaultMaxDataLength = 0xfffff;

    private readonly DataTree _tree;
    private readonly string? _superDigest;
    private long _nextZxid;

    // Outstanding changes: every change record in zxid order, and the latest record per path.
    private readonly List<ChangeRecord> _queue = new();
    private int _head;
    private readonly Dictionary<string, ChangeRecord> _byPath = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChangeRecord>.AlternateLookup<ReadOnlySpan<char>> _byPathSpan;
    // While a multi is being prepared: the previous record of every path it touched, to roll back.
    private List<(string Path, ChangeRecord? Previous)>? _undo;

    // Count and bytes that prepared but unapplied txns add to (or take from) the tree, in zxid order, for quotas.
    private readonly List<QuotaUse> _pendingUse = new();
    private int _pendingUseHead;

    // Sessions created or closed by prepared but unapplied txns (zxid of that txn, open or closed).
    private readonly Dictionary<long, (long Zxid, bool Open)> _pendingSessions = new();
    private readonly Queue<(long Zxid, long SessionId)> _pendingSessionOrder = new();

    /// <param name="tree">The applied state (read only here).</param>
    /// <param name="superDigest">"super:base64" digest id of the super user, or null.</param>
    /// <param name="lastZxid">The last zxid assigned so far; the next txn gets lastZxid + 1.</param>
    public RequestPreprocessor(DataTree tree, string? superDigest, long lastZxid)
    {
        _tree = tree;
        _superDigest = superDigest;
        _nextZxid = lastZxid + 1;
        _byPathSpan = _byPath.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The zxid the next prepared txn will get.</summary>
    public long NextZxid => _nextZxid;

    /// <summary>
    /// When true (the default), a client write from a session that is neither open in the tree nor being created by
    /// a prepared txn, or that a prepared closeSession is closing, fails with SessionExpired (ZooKeeper's
    /// checkSession). This is what keeps an ephemeral from being created after its session's close txn.
    /// Create sessions with <see cref="PrepareCreateSession"/> first.
    /// </summary>
    public bool CheckSessions { get; set; } = true;

    /// <summary>
    /// Local sessions (ZooKeeper's localSessionsEnabled): true for a session that is not open in the tree but may be
    /// a member's local session. Its writes pass <see cref="CheckSessions"/>; an ephemeral create fails with
    /// EphemeralOnLocalSession. Null: no session is local.
    /// </summary>
    public Func<long, bool>? IsLocalSession { get; init; }

    /// <summary>The x509 and sasl providers this server has: an ACL naming a missing one is InvalidACL.</summary>
    public AclProviders AclProviders { get; init; } = AclProviders.All;

    /// <summary>Largest data accepted in create/setData (BadArguments above it).</summary>
    public int MaxDataLength { get; set; } = DefaultMaxDataLength;

    /// <summary>
    /// ZooKeeper 3.7's zookeeper.enforceQuota: a create or setData that would take a subtree with a quota (a
    /// "/zookeeper/quota{path}/zookeeper_limits" node) past its hard limit (countHardLimit, byteHardLimit) fails with
    /// QuotaExceeded. Past a soft limit (count, bytes) it goes through and is reported to <see cref="QuotaWarning"/>.
    /// The usage counted is the tree's "zookeeper_stats" plus the changes of prepared but unapplied txns (ZooKeeper
    /// counts only the applied tree, so pipelined writes could all pass a limit there).
    /// </summary>
    public bool EnforceQuota { get; init; }

    /// <summary>Told "Quota exceeded: ..." (ZooKeeper's message) for a write past a soft or hard limit.</summary>
    public Action<string>? QuotaWarning { get; init; }

    /// <summary>Told the top-level namespace of the quota a write was refused by (its hard limit): ZooKeeper's
    /// <c>&lt;ns&gt;_quota_exceeded_error_per_namespace</c> counter.</summary>
    public Action<string>? QuotaRefused { get; init; }

    /// <summary>Number of change records of prepared but unapplied txns (ZooKeeper's outstandingChanges size).</summary>
    public int OutstandingChanges => _queue.Count - _head;

    /// <summary>
    /// Prepares a client write: create/create2/createContainer/createTTL/delete/setData/setACL/check/multi.
    /// Returns the header (with a fresh zxid, <paramref name="nowMs"/> as time and the request's op code) and the txn.
    /// Validation failures (bad path, NoNode, NodeExists, BadVersion, NoAuth, InvalidACL, NotEmpty,
    /// NoChildrenForEphemerals, BadArguments for bad flags/TTL/data too large...) become an ErrorTxn (or a MultiTxn of ErrorTxns).
    /// <para>Also accepted: closeSession (same as <see cref="PrepareCloseSession"/>) and deleteContainer (request with
    /// the path; ZooKeeper's rules: NotEmpty with children, BadVersion unless a container or TTL node). A multi holding
    /// anything but create*/delete/setData/check fails as a whole with MarshallingError, as in ZooKeeper. Other op
    /// codes give an ErrorTxn(Unimplemented).</para>
    /// </summary>
    public (TxnHeader Header, Txn Txn) Prepare(long sessionId, int cxid, OpCode op, ZkRequest request, AuthContext auth, long nowMs)
    {
        if (op == OpCode.CloseSession) return PrepareCloseSession(sessionId, cxid, nowMs);
        // The zxid is used up only once the txn is decided: a prepare that throws (a bug, or a host callback such as
        // QuotaWarning) leaves no gap in the zxids and none of its change records.
        var zxid = _nextZxid;
        var queueMark = _queue.Count;
        var useMark = _pendingUse.Count;
        Txn txn;
        try
        {
            if (op == OpCode.Multi)
            {
                txn = request is MultiRequest multi ? PrepareMulti(multi, sessionId, auth, zxid, nowMs) : new ErrorTxn(ErrorCode.MarshallingError);
            }
            else
            {
                var err = PrepareOne(op, request, sessionId, auth, zxid, nowMs, out txn!);
                if (err != ErrorCode.Ok) txn = new ErrorTxn(err);
            }
        }
        catch
        {
            RollBack(queueMark, useMark);
            throw;
        }
        _nextZxid++;
        return (new TxnHeader(sessionId, cxid, zxid, nowMs, op), txn);
    }

    /// <summary>Forgets the change records and quota use added since the marks (a prepare that threw): each path they
    /// touched gets back its newest record left, or none.</summary>
    private void RollBack(int queueMark, int useMark)
    {
        for (var i = _queue.Count - 1; i >= queueMark; i--)
        {
            var path = _queue[i].Path;
            _queue.RemoveAt(i);
            ChangeRecord? previous = null;
            for (var j = i - 1; j >= _head && previous is null; j--)
                if (_queue[j].Path == path) previous = _queue[j];
            if (previous is null) _byPath.Remove(path);
            else _byPath[path] = previous;
        }
        _pendingUse.RemoveRange(useMark, _pendingUse.Count - useMark);
    }

    /// <summary>Prepares session creation (replicated). <paramref name="sessionId"/> was chosen by the server.</summary>
    public (TxnHeader Header, Txn Txn) PrepareCreateSession(long sessionId, int timeoutMs, long nowMs)
    {
        var zxid = _nextZxid++;
        SetPendingSession(sessionId, zxid, open: true);
        return (new TxnHeader(sessionId, 0, zxid, nowMs, OpCode.CreateSession), new CreateSessionTxn(timeoutMs));
    }

    /// <summary>Prepares the deployment's session secret (see <see cref="SessionSecretTxn"/>).</summary>
    public (TxnHeader Header, Txn Txn) PrepareSessionSecret(byte[] secret, long nowMs) =>
        (new TxnHeader(0, 0, _nextZxid++, nowMs, OpCode.SessionSecret), new SessionSecretTxn(secret));

    /// <summary>Prepares closing or expiring a session: deletes its ephemerals, including ones still outstanding
    /// (created by prepared txns), and not ones already being deleted. From then on the session's writes fail with
    /// SessionExpired. The paths are sorted.</summary>
    public (TxnHeader Header, Txn Txn) PrepareCloseSession(long sessionId, int cxid, long nowMs)
    {
        var zxid = _nextZxid++;
        var candidates = new HashSet<string>(_tree.EphemeralsOf(sessionId), StringComparer.Ordinal);
        foreach (var (path, record) in _byPath)
        {
            if (record.Exists && record.State.Owner == sessionId) candidates.Add(path);
        }
        var paths = new List<string>(candidates.Count);
        foreach (var path in candidates)
        {
            if (TryGetState(path, out _, out var state) && state.Owner == sessionId) paths.Add(path);
        }
        paths.Sort(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            var lastSlash = path.LastIndexOf('/');
            if (TryGetState(ParentOf(path, lastSlash), out var parentKey, out var parent))
            {
                parent.ChildCount--;
                parent.Pzxid = zxid;
                AddChange(KeyOf(parentKey, ParentOf(path, lastSlash)), zxid, exists: true, parent);
            }
            if (TryGetState(path, out _, out var ephemeral)) RecordUse(zxid, path, -1, -ephemeral.DataLength);
            AddChange(path, zxid, exists: false, default);
        }
        SetPendingSession(sessionId, zxid, open: false);
        return (new TxnHeader(sessionId, cxid, zxid, nowMs, OpCode.CloseSession), new CloseSessionTxn(paths));
    }

    /// <summary>Prepares the removal of an empty container or expired TTL node, re-checking the condition.
    /// Returns null when it no longer holds. The txn is a DeleteTxn with header type DeleteContainer, session 0.</summary>
    public (TxnHeader Header, Txn Txn)? PrepareReap(string path, long nowMs)
    {
        if (!TryGetState(path, out _, out var node)) return null;
        if (!DataTree.IsReapable(node.Owner, node.Cversion, node.ChildCount, node.Mtime, nowMs)) return null;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0 || DataTree.IsSpecialPath(path)) return null;
        if (!TryGetState(ParentOf(path, lastSlash), out var parentKey, out var parent)) return null;
        var zxid = _nextZxid++;
        parent.ChildCount--;
        parent.Pzxid = zxid;
        AddChange(KeyOf(parentKey, ParentOf(path, lastSlash)), zxid, exists: true, parent);
        RecordUse(zxid, path, -1, -node.DataLength);
        AddChange(path, zxid, exists: false, default);
        return (new TxnHeader(0, 0, zxid, nowMs, OpCode.DeleteContainer), new DeleteTxn(path));
    }

    /// <summary>Forgets outstanding changes up to and including <paramref name="zxid"/> (they are now in the tree).</summary>
    public void Applied(long zxid)
    {
        while (_head < _queue.Count && _queue[_head].Zxid <= zxid)
        {
            var record = _queue[_head];
            _queue[_head] = null!;
            _head++;
            if (_byPath.TryGetValue(record.Path, out var latest) && ReferenceEquals(latest, record)) _byPath.Remove(record.Path);
        }
        if (_head == _queue.Count)
        {
            _queue.Clear();
            _head = 0;
        }
        else if (_head > 4096 && _head > _queue.Count / 2)
        {
            _queue.RemoveRange(0, _head);
            _head = 0;
        }
        while (_pendingUseHead < _pendingUse.Count && _pendingUse[_pendingUseHead].Zxid <= zxid) _pendingUseHead++;
        if (_pendingUseHead == _pendingUse.Count || (_pendingUseHead > 4096 && _pendingUseHead > _pendingUse.Count / 2))
        {
            _pendingUse.RemoveRange(0, _pendingUseHead);
            _pendingUseHead = 0;
        }
        while (_pendingSessionOrder.Count > 0 && _pendingSessionOrder.Peek().Zxid <= zxid)
        {
            var (z, id) = _pendingSessionOrder.Dequeue();
            if (_pendingSessions.TryGetValue(id, out var pending) && pending.Zxid == z) _pendingSessions.Remove(id);
        }
    }

    /// <summary>Drops all outstanding changes (e.g. after a failed journal write, or on a leader change).</summary>
    public void Reset(long lastZxid)
    {
        _queue.Clear();
        _head = 0;
        _byPath.Clear();
        _undo = null;
        _pendingUse.Clear();
        _pendingUseHead = 0;
        _pendingSessions.Clear();
        _pendingSessionOrder.Clear();
        _nextZxid = lastZxid + 1;
    }

    // ------------------------------------------------------------------------------------------------ internals

    private void SetPendingSession(long sessionId, long zxid, bool open)
    {
        _pendingSessions[sessionId] = (zxid, open);
        _pendingSessionOrder.Enqueue((zxid, sessionId));
    }

    /// <summary>The session is open, or its creation is prepared, and no prepared closeSession ends it.</summary>
    public bool IsSessionAlive(long sessionId) =>
        _pendingSessions.TryGetValue(sessionId, out var pending) ? pending.Open : _tree.Sessions.ContainsKey(sessionId);

    private static ReadOnlySpan<char> ParentOf(string path, int lastSlash) =>
        lastSlash == 0 ? DataTree.RootPath.AsSpan() : path.AsSpan(0, lastSlash);

    /// <summary>The state of a path as it will be once every prepared txn is applied. <paramref name="key"/> is a
    /// stored string equal to the path when one is at hand (overlay key, or the tree's path of a node with children),
    /// else null; use <see cref="KeyOf"/> to get one.</summary>
    private bool TryGetState(ReadOnlySpan<char> path, out string? key, out NodeState state)
    {
        if (_byPathSpan.TryGetValue(path, out var storedKey, out var record))
        {
            key = storedKey;
            state = record.State;
            return record.Exists;
        }
        if (_tree.Lookup(path) is { } node)
        {
            key = node.Kids?.Path;
            state = NodeState.From(node);
            return true;
        }
        key = null;
        state = default;
        return false;
    }

    private static string KeyOf(string? key, ReadOnlySpan<char> path) => key ?? path.ToString();

    private void AddChange(string path, long zxid, bool exists, in NodeState state)
    {
        var record = new ChangeRecord(zxid, path, exists, state);
        if (_undo is not null) _undo.Add((path, _byPath.GetValueOrDefault(path)));
        _byPath[path] = record;
        _queue.Add(record);
    }

    private bool CheckAcl(IReadOnlyList<Acl> acl, Perms perm, AuthContext auth)
    {
        if (Acls.Check(acl, perm, auth)) return true;
        if (_superDigest is null) return false;
        var ids = auth.Ids;
        for (var i = 0; i < ids.Count; i++)
            if (ids[i].Scheme == Acls.DigestScheme && ids[i].Ident == _superDigest) return true;
        return false;
    }

    private static bool IsMultiWriteOp(OpCode op) => op is OpCode.Create or OpCode.Create2 or OpCode.CreateContainer
        or OpCode.CreateTtl or OpCode.Delete or OpCode.SetData or OpCode.Check;

    private Txn PrepareMulti(MultiRequest multi, long sessionId, AuthContext auth, long zxid, long nowMs)
    {
        var requests = multi.Ops;
        for (var i = 0; i < requests.Count; i++)
            if (!IsMultiWriteOp(requests[i].Type)) return new ErrorTxn(ErrorCode.MarshallingError);

        var ops = new MultiTxnOp[requests.Count];
        var queueMark = _queue.Count;
        var useMark = _pendingUse.Count;
        _undo = [];
        try
        {
            for (var i = 0; i < requests.Count; i++)
            {
                var err = PrepareOne(requests[i].Type, requests[i].Request, sessionId, auth, zxid, nowMs, out var txn);
                if (err == ErrorCode.Ok)
                {
                    ops[i] = new MultiTxnOp(requests[i].Type, txn!);
                    continue;
                }

                // All or nothing: undo this multi's change records and report every op.
                _queue.RemoveRange(queueMark, _queue.Count - queueMark);
                _pendingUse.RemoveRange(useMark, _pendingUse.Count - useMark);
                for (var u = _undo.Count - 1; u >= 0; u--)
                {
                    var (path, previous) = _undo[u];
                    if (previous is null) _byPath.Remove(path);
                    else _byPath[path] = previous;
                }
                var ok = new ErrorTxn(ErrorCode.Ok);
                var inconsistent = new ErrorTxn(ErrorCode.RuntimeInconsistency);
                for (var j = 0; j < ops.Length; j++)
                    ops[j] = new MultiTxnOp(OpCode.Error, j < i ? ok : j == i ? new ErrorTxn(err) : inconsistent);
                break;
            }
        }
        finally
        {
            _undo = null;
        }
        return new MultiTxn(ops);
    }

    private ErrorCode PrepareOne(OpCode op, ZkRequest request, long sessionId, AuthContext auth, long zxid, long nowMs, out Txn? txn)
    {
        txn = null;
        if (op != OpCode.DeleteContainer && CheckSessions && !IsSessionAlive(sessionId))
        {
            if (IsLocalSession?.Invoke(sessionId) != true) return ErrorCode.SessionExpired;
            // A local session owns no ephemeral: it is upgraded to a global session first.
            if (request is CreateRequest local && ((CreateMode)local.Flags).IsEphemeral()) return ErrorCode.EphemeralOnLocalSession;
        }
        switch (op)
        {
            case OpCode.Create or OpCode.Create2 or OpCode.CreateContainer or OpCode.CreateTtl:
                return request is CreateRequest create
                    ? PrepareCreate(op, create, sessionId, auth, zxid, nowMs, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.Delete:
                return request is PathVersionRequest delete
                    ? PrepareDelete(delete.NodePath, delete.Version, auth, zxid, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.DeleteContainer:
                return request.Path is { } containerPath
                    ? PrepareDeleteContainer(containerPath, zxid, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.SetData:
                return request is SetDataRequest setData
                    ? PrepareSetData(setData, auth, zxid, nowMs, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.SetAcl:
                return request is SetAclRequest setAcl
                    ? PrepareSetAcl(setAcl, auth, zxid, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.Check:
                return request is PathVersionRequest check
                    ? PrepareCheck(check, auth, out txn)
                    : ErrorCode.MarshallingError;
            case OpCode.Reconfig:
                return request is ReconfigRequest reconfig
                    ? PrepareReconfig(reconfig, auth, zxid, nowMs, out txn)
                    : ErrorCode.MarshallingError;
            default:
                return ErrorCode.Unimplemented;
        }
    }

    /// <summary>Java's String.format("%010d", v): ten digits, zero padded, the sign counting in the width.</summary>
    internal static string FormatSequence(int value) => value >= 0
        ? value.ToString("D10", CultureInfo.InvariantCulture)
        : "-" + (-(long)value).ToString("D9", CultureInfo.InvariantCulture);

    private ErrorCode PrepareCreate(OpCode op, CreateRequest request, long sessionId, AuthContext auth, long zxid, long nowMs, out Txn? txn)
    {
        txn = null;
        // CreateMode.fromFlag, then EphemeralType.validateTTL (extended types are always enabled here).
        if (!CreateModes.IsValid(request.Flags)) return ErrorCode.BadArguments;
        var mode = (CreateMode)request.Flags;
        var ttl = op == OpCode.CreateTtl ? request.Ttl : -1;
        if (mode.IsTtl())
        {
            if (ttl <= 0 || ttl > EphemeralOwner.MaxTtl) return ErrorCode.BadArguments;
        }
        else if (ttl >= 0)
        {
            return ErrorCode.BadArguments;
        }
        // createTTL with a non-TTL mode and a negative ttl passes ZooKeeper's check, then fails when applied; reject it.
        if (op == OpCode.CreateTtl && !mode.IsTtl()) return ErrorCode.BadArguments;
        var data = request.Data;
        if (data?.Length > MaxDataLength) return ErrorCode.BadArguments;

        var path = request.NodePath;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0 || path.Contains('\0')) return ErrorCode.BadArguments;
        var acl = Acls.Fixup(request.Acl, auth, AclProviders);
        if (acl is null) return ErrorCode.InvalidAcl;
        if (!TryGetState(ParentOf(path, lastSlash), out var parentKey, out var parent)) return ErrorCode.NoNode;
        if (!CheckAcl(parent.Acl, Perms.Create, auth)) return ErrorCode.NoAuth;
        if (mode.IsSequential()) path += FormatSequence(parent.Cversion);
        if (Paths.Validate(path) is not null) return ErrorCode.BadArguments;
        if (TryGetState(path, out _, out _)) return ErrorCode.NodeExists;
        if (EphemeralOwner.IsSessionOwner(parent.Owner)) return ErrorCode.NoChildrenForEphemerals;
        if (CheckQuota(path, 1, data?.Length ?? 0) is var quota and not ErrorCode.Ok) return quota;

        var newCversion = unchecked(parent.Cversion + 1);
        // The txn decides the node type as ZooKeeper's apply does: createContainer always makes a container (whatever
        // the flags), create/create2 with the container flag make a plain persistent node.
        long owner = op == OpCode.CreateContainer ? EphemeralOwner.Container
            : mode.IsTtl() ? EphemeralOwner.ForTtl(ttl)
            : mode.IsEphemeral() ? sessionId
            : 0;
        txn = new CreateTxn(path, data, acl, owner, newCversion);

        parent.ChildCount++;
        parent.Cversion = newCversion;
        parent.Pzxid = zxid;
        AddChange(KeyOf(parentKey, ParentOf(path, lastSlash)), zxid, exists: true, parent);
        RecordUse(zxid, path, 1, data?.Length ?? 0);
        AddChange(path, zxid, exists: true, new NodeState
        {
            Czxid = zxid, Mzxid = zxid, Pzxid = zxid, Ctime = nowMs, Mtime = nowMs, Owner = owner,
            DataLength = data?.Length ?? 0, Acl = acl,
        });
        return ErrorCode.Ok;
    }

    private ErrorCode PrepareDelete(string path, int version, AuthContext auth, long zxid, out Txn? txn)
    {
        txn = null;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0 || path.Contains('\0') || DataTree.IsSpecialPath(path)) return ErrorCode.BadArguments;
        if (!TryGetState(ParentOf(path, lastSlash), out var parentKey, out var parent)) return ErrorCode.NoNode;
        if (!CheckAcl(parent.Acl, Perms.Delete, auth)) return ErrorCode.NoAuth;
        if (!TryGetState(path, out _, out var node)) return ErrorCode.NoNode;
        if (version != -1 && version != node.Version) return ErrorCode.BadVersion;
        if (node.ChildCount > 0) return ErrorCode.NotEmpty;

        txn = new DeleteTxn(path);
        parent.ChildCount--;
        parent.Pzxid = zxid;
        AddChange(KeyOf(parentKey, ParentOf(path, lastSlash)), zxid, exists: true, parent);
        RecordUse(zxid, path, -1, -node.DataLength);
        AddChange(path, zxid, exists: false, default);
        return ErrorCode.Ok;
    }

    private ErrorCode PrepareDeleteContainer(string path, long zxid, out Txn? txn)
    {
        txn = null;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash < 0 || path.Contains('\0') || DataTree.IsSpecialPath(path)) return ErrorCode.BadArguments;
        if (!TryGetState(path, out _, out var node)) return ErrorCode.NoNode;
        if (node.ChildCount > 0) return ErrorCode.NotEmpty;
        if (!EphemeralOwner.IsContainer(node.Owner) && !EphemeralOwner.IsTtl(node.Owner)) return ErrorCode.BadVersion;
        if (!TryGetState(ParentOf(path, lastSlash), out var parentKey, out var parent)) return ErrorCode.NoNode;

        txn = new DeleteTxn(path);
        parent.ChildCount--;
        parent.Pzxid = zxid;
        AddChange(KeyOf(parentKey, ParentOf(path, lastSlash)), zxid, exists: true, parent);
        RecordUse(zxid, path, -1, -node.DataLength);
        AddChange(path, zxid, exists: false, default);
        return ErrorCode.Ok;
    }

    private ErrorCode PrepareSetData(SetDataRequest request, AuthContext auth, long zxid, long nowMs, out Txn? txn)
    {
        txn = null;
        var path = request.NodePath;
        if (Paths.Validate(path) is not null) return ErrorCode.BadArguments;
        var data = request.Data;
        if (data?.Length > MaxDataLength) return ErrorCode.BadArguments;
        if (!TryGetState(path, out _, out var node)) return ErrorCode.NoNode;
        if (!CheckAcl(node.Acl, Perms.Write, auth)) return ErrorCode.NoAuth;
        var bytesDiff = (data?.Length ?? 0) - node.DataLength;
        if (CheckQuota(path, 0, bytesDiff) is var quota and not ErrorCode.Ok) return quota;
        if (request.Version != -1 && request.Version != node.Version) return ErrorCode.BadVersion;

        var newVersion = unchecked(node.Version + 1);
        txn = new SetDataTxn(path, data, newVersion);
        RecordUse(zxid, path, 0, bytesDiff);
        node.Version = newVersion;
        node.Mtime = nowMs;
        node.Mzxid = zxid;
        node.DataLength = data?.Length ?? 0;
        AddChange(path, zxid, exists: true, node);
        return ErrorCode.Ok;
    }

    private ErrorCode PrepareSetAcl(SetAclRequest request, AuthContext auth, long zxid, out Txn? txn)
    {
        txn = null;
        var path = request.NodePath;
        if (Paths.Validate(path) is not null) return ErrorCode.BadArguments;
        var acl = Acls.Fixup(request.Acl, auth, AclProviders);
        if (acl is null) return ErrorCode.InvalidAcl;
        if (!TryGetState(path, out _, out var node)) return ErrorCode.NoNode;
        if (!CheckAcl(node.Acl, Perms.Admin, auth)) return ErrorCode.NoAuth;
        if (request.Version != -1 && request.Version != node.Aversion) return ErrorCode.BadVersion;

        var newAversion = unchecked(node.Aversion + 1);
        txn = new SetAclTxn(path, acl, newAversion);
        node.Aversion = newAversion;
        node.Acl = acl;
        AddChange(path, zxid, exists: true, node);
        return ErrorCode.Ok;
    }

    private ErrorCode PrepareCheck(PathVersionRequest request, AuthContext auth, out Txn? txn)
    {
        txn = null;
        var path = request.NodePath;
        if (Paths.Validate(path) is not null) return ErrorCode.BadArguments;
        if (!TryGetState(path, out _, out var node)) return ErrorCode.NoNode;
        if (!CheckAcl(node.Acl, Perms.Read, auth)) return ErrorCode.NoAuth;
        if (request.Version != -1 && request.Version != node.Version) return ErrorCode.BadVersion;
        txn = new CheckVersionTxn(path, unchecked(node.Version + 1)); // ZooKeeper records the incremented version
        return ErrorCode.Ok;
    }

    private readonly record struct QuotaUse(long Zxid, string Path, long Count, long Bytes);

    private void RecordUse(long zxid, string path, long count, long bytes)
    {
        if (EnforceQuota) _pendingUse.Add(new QuotaUse(zxid, path, count, bytes));
    }

    /// <summary>ZooKeeperServer.checkQuota: QuotaExceeded when the write would take the deepest quota root above
    /// <paramref name="path"/> past a hard limit; a soft limit passed is only reported.</summary>
    private ErrorCode CheckQuota(string path, long countDiff, long bytesDiff)
    {
        if (!EnforceQuota || _tree.QuotaRootOf(path) is not { } root || root == DataTree.ProcPath) return ErrorCode.Ok;
        var (limits, usage) = _tree.QuotaOf(root);
        if (limits is null) return ErrorCode.Ok;
        var checkCount = countDiff != 0 && (limits.Count > -1 || limits.CountHardLimit > -1);
        var checkBytes = bytesDiff != 0 && (limits.Bytes > -1 || limits.ByteHardLimit > -1);
        if (!checkCount && !checkBytes || usage is null) return ErrorCode.Ok;
        long pendingCount = 0, pendingBytes = 0;
        for (var i = _pendingUseHead; i < _pendingUse.Count; i++)
        {
            var use = _pendingUse[i];
            if (use.Path.StartsWith(root, StringComparison.Ordinal) && _tree.QuotaRootOf(use.Path) == root)
            {
                pendingCount += use.Count;
                pendingBytes += use.Bytes;
            }
        }
        if (checkCount && Exceeds(root, "count", usage.Count + pendingCount + countDiff, limits.Count, limits.CountHardLimit)) return ErrorCode.QuotaExceeded;
        if (checkBytes && Exceeds(root, "bytes", usage.Bytes + pendingBytes + bytesDiff, limits.Bytes, limits.ByteHardLimit)) return ErrorCode.QuotaExceeded;
        return ErrorCode.Ok;
    }

    /// <summary>True when <paramref name="value"/> passes a hard limit (which, when set, replaces the soft one).</summary>
    private bool Exceeds(string root, string what, long value, long softLimit, long hardLimit)
    {
        var hard = hardLimit > -1;
        var limit = hard ? hardLimit : softLimit;
        if (value <= limit) return false;
        var kind = what == "count" ? "Count" : "Byte";
        QuotaWarning?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"Quota exceeded: {root} [current {what}={value}, {(hard ? "hard" : "soft")}{kind}Limit={limit}]"));
        if (hard && DataTree.TopNamespace(root) is { } ns) QuotaRefused?.Invoke(ns);
        return hard;
    }

    /// <summary>What Prep knows of a node: the stored stat fields, child count, data length and ACL.</summary>
    internal struct NodeState
    {
        public long Czxid, Mzxid, Ctime, Mtime, Pzxid, Owner;
        public int Version, Cversion, Aversion, ChildCount, DataLength;
        public IReadOnlyList<Acl> Acl;

        public static NodeState From(Node node) => new()
        {
            Czxid = node.Czxid, Mzxid = node.Mzxid, Ctime = node.Ctime, Mtime = node.Mtime, Pzxid = node.Pzxid,
            Owner = node.Owner, Version = node.Version, Cversion = node.Cversion, Aversion = node.Aversion,
            ChildCount = node.ChildCount, DataLength = node.DataLength, Acl = node.Acl,
        };
    }

    /// <summary>ZooKeeper's ChangeRecord: the state of a path after a prepared txn (Exists false = deleted).</summary>
    internal sealed class ChangeRecord(long zxid, string path, bool exists, NodeState state)
    {
        public readonly long Zxid = zxid;
        public readonly string Path = path;
        public readonly bool Exists = exists;
        public readonly NodeState State = state;
    }
}
