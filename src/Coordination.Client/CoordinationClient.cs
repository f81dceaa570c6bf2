using System.Text;
using Coordination.Protocol;
using Microsoft.Extensions.Logging;

namespace Coordination.Client;

/// <summary>
/// A ZooKeeper-protocol client with a Task API. Requests are pipelined over one connection and answered in order;
/// on connection loss the client reconnects to another host of the connect string and re-attaches its session,
/// re-registering its watches (setWatches2). Requests in flight when a connection drops fail with
/// <see cref="ConnectionLossException"/> (they may or may not have been applied). When the session expires every
/// pending request fails with <see cref="SessionExpiredException"/>, the state becomes <see cref="ConnectionState.Expired"/>
/// and the client accepts no more requests until <see cref="RestartAsync"/> (a new session) — it never carries on
/// silently with a dead session.
/// </summary>
/// <example>
/// <code>
/// await using var client = new CoordinationClient(new CoordinationClientOptions { ConnectString = "127.0.0.1:2181/app" });
/// await client.StartAsync(ct);
/// await client.CreateAsync("/config", "v1"u8.ToArray(), ct: ct);
/// var (data, stat) = await client.GetDataAsync("/config", e => Console.WriteLine(e), ct);
/// </code>
/// </example>
public sealed partial class CoordinationClient : IAsyncDisposable
{
    private readonly CoordinationClientOptions _options;
    private ConnectString _connect; // its hosts change with UpdateHosts

    public CoordinationClient(CoordinationClientOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _connect = Coordination.Client.ConnectString.Parse(options.ConnectString);
        _authInfo = options.AuthInfo.ToList();
        _hostList = new HostList(_connect.Hosts, new Random()); // shuffled: spreads clients over the hosts, as ZooKeeper's client
        _connect = _connect with { Hosts = _hostList.Hosts.ToList() };
        _configWatcher = OnConfigEvent;
        if (options.SessionId != 0)
        {
            _sessionId = options.SessionId;
            _password = options.SessionPassword ?? throw new ArgumentException("SessionPassword is required with SessionId", nameof(options));
        }
        _eventLoop = Task.Run(EventLoopAsync);
        CoordinationTelemetry.Register(this);
    }

    public CoordinationClient(string connectString, TimeSpan? sessionTimeout = null)
        : this(new CoordinationClientOptions { ConnectString = connectString, SessionTimeout = sessionTimeout ?? TimeSpan.FromSeconds(30) }) { }

    /// <summary>Creates a client and waits for its first connection.</summary>
    public static async Task<CoordinationClient> ConnectAsync(CoordinationClientOptions options, CancellationToken ct = default)
    {
        var client = new CoordinationClient(options);
        try { await client.StartAsync(ct).ConfigureAwait(false); }
        catch { await client.DisposeAsync().ConfigureAwait(false); throw; }
        return client;
    }

    /// <summary>
    /// Raised (in order, on the client's event thread — never on its I/O loop) for every connection state change.
    /// </summary>
    public event Action<ConnectionState>? ConnectionStateChanged;

    public ConnectionState State { get { lock (_lock) return _state; } }
    public long SessionId { get { lock (_lock) return _sessionId; } }
    public byte[] SessionPassword { get { lock (_lock) return (byte[])_password.Clone(); } }
    /// <summary>The session timeout the server granted (0 before the first connect).</summary>
    public TimeSpan SessionTimeout => TimeSpan.FromMilliseconds(Volatile.Read(ref _negotiatedTimeoutMs));
    /// <summary>The zxid of the last reply seen.</summary>
    public long LastZxid => Volatile.Read(ref _lastZxid);
    /// <summary>The connect string; its hosts are the current host list (see <see cref="UpdateHosts"/>).</summary>
    public ConnectString ConnectString { get { lock (_lock) return _connect; } }
    public CoordinationClientOptions Options => _options;
    /// <summary>Number of watcher registrations held by the client.</summary>
    public int WatchCount => _watches.Count;

    /// <summary>Starts connecting and waits for the first connection (bounded by the retry policy).</summary>
    public Task StartAsync(CancellationToken ct = default)
    {
        lock (_lock)
        {
            if (_state.IsTerminal()) throw new InvalidOperationException($"the client is {_state}: use RestartAsync");
            if (_mainLoop is null) StartLoop();
        }
        return _firstConnect.Task.WaitAsync(ct);
    }

    /// <summary>
    /// Abandons the current session (closing it if still connected) and starts a new one: for a client that is
    /// Expired, AuthFailed or Closed. Watches and ephemerals of the old session are gone.
    /// </summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        if (!State.IsTerminal()) await CloseAsync().ConfigureAwait(false);
        if (_mainLoop is { } loop) { try { await loop.ConfigureAwait(false); } catch { } }
        lock (_lock)
        {
            _closing = false;
            _sessionId = 0;
            _password = new byte[16];
            _negotiatedTimeoutMs = 0;
            _everConnected = false;
            Volatile.Write(ref _lastZxid, 0);
            _firstConnect = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _state = ConnectionState.Connecting;
            _watches.Clear();
            StartLoop();
        }
        PostState(ConnectionState.Connecting);
        await _firstConnect.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Closes the session (the server deletes its ephemerals) and the connection.</summary>
    public async Task CloseAsync()
    {
        if (State.IsTerminal()) return;
        _closing = true;
        if (State.IsConnected())
        {
            try
            {
                await SubmitAsync(OpCode.CloseSession, EmptyRequest.Instance, null, null, default)
                    .WaitAsync(CloseTimeout).ConfigureAwait(false);
            }
            catch (Exception e) { Log($"closeSession: {e.Message}", LogLevel.Debug); }
        }
        Terminate(ConnectionState.Closed, new ConnectionLossException(null, "the client is closed"));
        if (_mainLoop is { } loop) { try { await loop.WaitAsync(CloseTimeout).ConfigureAwait(false); } catch { } }
    }

    public async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        _events.Writer.TryComplete();
        try { await _eventLoop.WaitAsync(CloseTimeout).ConfigureAwait(false); } catch { }
        _lifetime?.Dispose();
        CoordinationTelemetry.Unregister(this);
    }

    // ------------------------------------------------------------------ operations

    private string Server(string path, bool sequential = false)
    {
        if (Paths.Validate(path, sequential) is { } reason) throw new ArgumentException($"invalid path '{path}': {reason}", nameof(path));
        return _connect.ToServerPath(path);
    }

    private async Task<T> Call<T>(OpCode op, ZkRequest request, string? path, WatchRegistration? watch, CancellationToken ct) where T : ZkResponse =>
        _options.Reads == ReadConsistency.Linearizable && LinearizableReadRequest.Allows(op)
            ? (T)await SubmitAsync(OpCode.LinearizableRead, new LinearizableReadRequest(op, request), path, watch, ct).ConfigureAwait(false)
            : (T)await SubmitAsync(op, request, path, watch, ct).ConfigureAwait(false);

    /// <summary>Creates a node and returns its path (with the sequence suffix for sequential modes).</summary>
    public async Task<string> CreateAsync(string path, byte[]? data, CreateMode mode = CreateMode.Persistent, IReadOnlyList<Acl>? acl = null,
        long ttl = -1, CancellationToken ct = default) =>
        (await CreateWithStatAsync(path, data, mode, acl, ttl, ct).ConfigureAwait(false)).Path;

    /// <summary>Creates a node (create2) and returns its path and Stat.</summary>
    public async Task<CreateResult> CreateWithStatAsync(string path, byte[]? data, CreateMode mode = CreateMode.Persistent,
        IReadOnlyList<Acl>? acl = null, long ttl = -1, CancellationToken ct = default)
    {
        var (op, request) = CreateRequestFor(new CreateOp(path, data, mode, acl ?? Acls.Open, ttl));
        var response = await Call<Create2Response>(op, request, path, null, ct).ConfigureAwait(false);
        return new CreateResult(_connect.ToClientPath(response.Path), response.Stat);
    }

    private (OpCode, CreateRequest) CreateRequestFor(CreateOp c)
    {
        if (c.Acl.Count == 0) throw new KeeperException(ErrorCode.InvalidAcl, c.NodePath);
        var serverPath = Server(c.NodePath, c.Mode.IsSequential());
        if (c.Mode.IsTtl())
        {
            if (c.Ttl <= 0 || c.Ttl > EphemeralOwner.MaxTtl) throw new ArgumentOutOfRangeException(nameof(c.Ttl), "a TTL mode needs 0 < ttl <= 2^40-1");
            return (OpCode.CreateTtl, new CreateRequest(serverPath, c.Data, c.Acl, (int)c.Mode, c.Ttl, IsTtlRequest: true));
        }
        if (c.Ttl > 0) throw new ArgumentException("ttl is only valid with a TTL create mode");
        return (c.Mode.IsContainer() ? OpCode.CreateContainer : OpCode.Create2, new CreateRequest(serverPath, c.Data, c.Acl, (int)c.Mode));
    }

    public Task DeleteAsync(string path, int version = -1, CancellationToken ct = default)
    {
        if (path == "/") throw new ArgumentException("cannot delete the root", nameof(path));
        return SubmitAsync(OpCode.Delete, new PathVersionRequest(Server(path), version), path, null, ct);
    }

    /// <summary>The node's Stat, or null when it does not exist. A watcher fires on its creation, deletion or data change.</summary>
    public async Task<Stat?> ExistsAsync(string path, Action<WatchedEvent>? watcher = null, CancellationToken ct = default)
    {
        var watch = watcher is null ? null : new WatchRegistration(WatchKind.Exist, path, watcher);
        try
        {
            var response = await Call<StatResponse>(OpCode.Exists, new PathWatchRequest(Server(path), watcher is not null), path, watch, ct).ConfigureAwait(false);
            return response.Stat;
        }
        catch (NoNodeException) { return null; }
    }

    /// <summary>The node's data and Stat. A watcher fires on its deletion or data change.</summary>
    public async Task<DataResult> GetDataAsync(string path, Action<WatchedEvent>? watcher = null, CancellationToken ct = default)
    {
        var watch = watcher is null ? null : new WatchRegistration(WatchKind.Data, path, watcher);
        var response = await Call<GetDataResponse>(OpCode.GetData, new PathWatchRequest(Server(path), watcher is not null), path, watch, ct).ConfigureAwait(false);
        return new DataResult(response.Data, response.Stat);
    }

    public async Task<Stat> SetDataAsync(string path, byte[]? data, int version = -1, CancellationToken ct = default) =>
        (await Call<StatResponse>(OpCode.SetData, new SetDataRequest(Server(path), data, version), path, null, ct).ConfigureAwait(false)).Stat;

    /// <summary>The node's children (names, unsorted) and Stat. A watcher fires on a child change or the node's deletion.</summary>
    public async Task<ChildrenResult> GetChildrenAsync(string path, Action<WatchedEvent>? watcher = null, CancellationToken ct = default)
    {
        var watch = watcher is null ? null : new WatchRegistration(WatchKind.Child, path, watcher);
        var response = await Call<GetChildrenResponse>(OpCode.GetChildren2, new PathWatchRequest(Server(path), watcher is not null), path, watch, ct).ConfigureAwait(false);
        return new ChildrenResult(response.Children, response.Stat ?? default);
    }

    public async Task<AclResult> GetAclAsync(string path, CancellationToken ct = default)
    {
        var response = await Call<GetAclResponse>(OpCode.GetAcl, new PathRequest(Server(path)), path, null, ct).ConfigureAwait(false);
        return new AclResult(response.Acl, response.Stat);
    }

    public async Task<Stat> SetAclAsync(string path, IReadOnlyList<Acl> acl, int version = -1, CancellationToken ct = default) =>
        (await Call<StatResponse>(OpCode.SetAcl, new SetAclRequest(Server(path), acl, version), path, null, ct).ConfigureAwait(false)).Stat;

    /// <summary>Waits until the server this client is connected to has applied every write committed before the call.</summary>
    public async Task<string> SyncAsync(string path = "/", CancellationToken ct = default) =>
        _connect.ToClientPath((await Call<PathResponse>(OpCode.Sync, new PathRequest(Server(path)), path, null, ct).ConfigureAwait(false)).Path);

    /// <summary>Number of all descendants of a node.</summary>
    public async Task<int> GetAllChildrenNumberAsync(string path, CancellationToken ct = default) =>
        (await Call<GetAllChildrenNumberResponse>(OpCode.GetAllChildrenNumber, new PathRequest(Server(path)), path, null, ct).ConfigureAwait(false)).TotalNumber;

    /// <summary>The ephemeral nodes of this session whose path starts with <paramref name="prefixPath"/>.</summary>
    public async Task<IReadOnlyList<string>> GetEphemeralsAsync(string prefixPath = "/", CancellationToken ct = default)
    {
        var response = await Call<StringListResponse>(OpCode.GetEphemerals, new PathRequest(_connect.ToServerPath(prefixPath)), prefixPath, null, ct).ConfigureAwait(false);
        return response.Values.Select(_connect.ToClientPath).ToList();
    }

    /// <summary>The identities this connection is authenticated as.</summary>
    public async Task<IReadOnlyList<ClientInfo>> WhoAmIAsync(CancellationToken ct = default) =>
        (await Call<WhoAmIResponse>(OpCode.WhoAmI, EmptyRequest.Instance, null, null, ct).ConfigureAwait(false)).ClientInfo;

    /// <summary>
    /// Adds authentication to the session (for example <c>AuthInfo.Digest("user", "pw")</c>); it is sent again after
    /// every reconnect. A rejected auth moves the client to <see cref="ConnectionState.AuthFailed"/>.
    /// </summary>
    public async Task AddAuthAsync(AuthInfo auth, CancellationToken ct = default)
    {
        lock (_lock) _authInfo.Add(auth);
        await SubmitAsync(OpCode.Auth, new AuthRequest(0, auth.Scheme, auth.Auth), null, null, ct, Xids.AuthPacket).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a persistent watch (on the node itself) or a persistent recursive watch (on the node and every descendant;
    /// no child events). It stays until removed and is re-registered after reconnects.
    /// </summary>
    public async Task AddWatchAsync(string path, Action<WatchedEvent> watcher, AddWatchMode mode = AddWatchMode.Persistent, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(watcher);
        var kind = mode == AddWatchMode.PersistentRecursive ? WatchKind.PersistentRecursive : WatchKind.Persistent;
        var response = await Call<ErrorCodeResponse>(OpCode.AddWatch, new AddWatchRequest(Server(path), mode), path,
            new WatchRegistration(kind, path, watcher), ct).ConfigureAwait(false);
        if (response.Err != ErrorCode.Ok) throw KeeperException.Create(response.Err, path);
    }

    /// <summary>
    /// Removes every watcher of <paramref name="type"/> on <paramref name="path"/>, on the server and locally; each
    /// removed watcher receives a DataWatchRemoved / ChildWatchRemoved / PersistentWatchRemoved event.
    /// With <paramref name="local"/> the watchers are removed locally even when the server cannot be reached.
    /// </summary>
    public async Task RemoveWatchesAsync(string path, WatcherType type = WatcherType.Any, bool local = false, CancellationToken ct = default)
    {
        if (!_watches.Contains(path, type)) throw new NoWatcherException(path);
        try
        {
            try
            {
                await SubmitAsync(OpCode.RemoveWatches, new WatchesRequest(Server(path), type), path, null, ct).ConfigureAwait(false);
            }
            catch (KeeperException e) when (e.Code == ErrorCode.MarshallingError && type is WatcherType.Persistent or WatcherType.PersistentRecursive)
            {
                // ZooKeeper before 3.9 cannot remove persistent watches by type (ZOOKEEPER-4472) and only knows "any";
                // on those servers this also drops one-shot watches this session holds on the same path.
                await SubmitAsync(OpCode.RemoveWatches, new WatchesRequest(Server(path), WatcherType.Any), path, null, ct).ConfigureAwait(false);
            }
        }
        catch (KeeperException e) when (local && e.Code is ErrorCode.ConnectionLoss or ErrorCode.NoWatcher) { }
        foreach (var (kind, watcher) in _watches.Remove(path, type))
        {
            var eventType = kind switch
            {
                WatchKind.Child => EventType.ChildWatchRemoved,
                WatchKind.Persistent or WatchKind.PersistentRecursive => EventType.PersistentWatchRemoved,
                _ => EventType.DataWatchRemoved,
            };
            var e = new WatchedEvent(eventType, KeeperState.SyncConnected, path);
            Post(() => Invoke(watcher, e));
        }
    }

    /// <summary>
    /// Runs write ops atomically. On failure throws the first op's error as a <see cref="KeeperException"/> whose
    /// <see cref="KeeperException.Results"/> holds every op's result.
    /// </summary>
    public async Task<IReadOnlyList<MultiOpResult>> MultiAsync(IEnumerable<Op> ops, CancellationToken ct = default)
    {
        var list = ops.ToList();
        var multiOps = new List<MultiOp>(list.Count);
        foreach (var op in list)
        {
            multiOps.Add(op switch
            {
                CreateOp c => ToMultiOp(CreateRequestFor(c)),
                DeleteOp d => new MultiOp(OpCode.Delete, new PathVersionRequest(Server(d.NodePath), d.Version)),
                SetDataOp s => new MultiOp(OpCode.SetData, new SetDataRequest(Server(s.NodePath), s.Data, s.Version)),
                CheckOp k => new MultiOp(OpCode.Check, new PathVersionRequest(Server(k.NodePath), k.Version)),
                _ => throw new ArgumentException($"{op.GetType().Name} is not allowed in multi (use MultiReadAsync)"),
            });
        }
        if (multiOps.Count == 0) return [];
        var response = await Call<MultiResponse>(OpCode.Multi, new MultiRequest(multiOps), null, null, ct).ConfigureAwait(false);
        var results = ToResults(response);
        for (var i = 0; i < results.Count; i++)
            if (results[i] is MultiOpResult.Error { Code: not ErrorCode.Ok and not ErrorCode.RuntimeInconsistency } error)
                throw new KeeperException(error.Code, list[i].Path, $"multi failed at op {i}: {KeeperException.Describe(error.Code, list[i].Path)}")
                    { Results = results };
        foreach (var r in results)
            if (r is MultiOpResult.Error e) throw new KeeperException(e.Code, null) { Results = results };
        return results;
    }

    /// <summary>Runs getData / getChildren ops together; each result is either the data or an Error (no exception per op).</summary>
    public async Task<IReadOnlyList<MultiOpResult>> MultiReadAsync(IEnumerable<Op> ops, CancellationToken ct = default)
    {
        var multiOps = ops.Select(op => op switch
        {
            GetDataOp g => new MultiOp(OpCode.GetData, new PathWatchRequest(Server(g.NodePath), false)),
            GetChildrenOp c => new MultiOp(OpCode.GetChildren, new PathWatchRequest(Server(c.NodePath), false)),
            _ => throw new ArgumentException($"{op.GetType().Name} is not allowed in multiRead (use MultiAsync)"),
        }).ToList();
        if (multiOps.Count == 0) return [];
        var response = await Call<MultiResponse>(OpCode.MultiRead, new MultiRequest(multiOps), null, null, ct).ConfigureAwait(false);
        return ToResults(response);
    }

    private static MultiOp ToMultiOp((OpCode Op, CreateRequest Request) c) => new(c.Op, c.Request);

    private List<MultiOpResult> ToResults(MultiResponse response) => response.Results.Select(r => r.Body switch
    {
        _ when r.Type == OpCode.Error => new MultiOpResult.Error(r.Err),
        PathResponse p => new MultiOpResult.Create(_connect.ToClientPath(p.Path), null),
        Create2Response c => new MultiOpResult.Create(_connect.ToClientPath(c.Path), c.Stat),
        StatResponse s => new MultiOpResult.SetData(s.Stat),
        GetDataResponse g => new MultiOpResult.GetData(g.Data, g.Stat),
        GetChildrenResponse c => new MultiOpResult.GetChildren(c.Children),
        _ when r.Type == OpCode.Delete => new MultiOpResult.Delete(),
        _ => (MultiOpResult)new MultiOpResult.Check(),
    }).ToList();

    // ------------------------------------------------------------------ conveniences

    /// <summary>Creates the node and any missing parents (as persistent nodes with open ACLs); existing nodes are left alone.</summary>
    public async Task CreateRecursiveAsync(string path, byte[]? data = null, CancellationToken ct = default)
    {
        if (path == "/") return;
        var parent = Paths.Parent(path);
        if (parent != "/" && await ExistsAsync(parent, ct: ct).ConfigureAwait(false) is null)
            await CreateRecursiveAsync(parent, null, ct).ConfigureAwait(false);
        try { await CreateAsync(path, data, ct: ct).ConfigureAwait(false); }
        catch (NodeExistsException) { }
    }

    /// <summary>Deletes a node and all its descendants (not atomic).</summary>
    public async Task DeleteRecursiveAsync(string path, CancellationToken ct = default)
    {
        ChildrenResult children;
        try { children = await GetChildrenAsync(path, ct: ct).ConfigureAwait(false); }
        catch (NoNodeException) { return; }
        foreach (var child in children.Children) await DeleteRecursiveAsync(Paths.Join(path, child), ct).ConfigureAwait(false);
        try { await DeleteAsync(path, ct: ct).ConfigureAwait(false); }
        catch (NoNodeException) { }
    }

    public Task<string> CreateAsync(string path, string data, CreateMode mode = CreateMode.Persistent, CancellationToken ct = default) =>
        CreateAsync(path, Encoding.UTF8.GetBytes(data), mode, ct: ct);

    public override string ToString() => $"CoordinationClient({_connect}, session 0x{SessionId:x}, {State})";
}
