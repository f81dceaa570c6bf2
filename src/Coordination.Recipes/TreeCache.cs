using System.Collections.Concurrent;
using System.Threading.Channels;
using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>A cached node: its path, data and stat.</summary>
public sealed record ChildData(string Path, byte[] Data, Stat Stat);

public enum CacheEventType { NodeAdded, NodeUpdated, NodeRemoved, Initialized }

/// <summary>A change seen by a cache. <see cref="Data"/> is the new state (the last known state for NodeRemoved; null for Initialized).</summary>
public sealed record CacheEvent(CacheEventType Type, string Path, ChildData? Data);

/// <summary>
/// A local copy of a subtree (Curator's TreeCache, built on one persistent recursive watch — ZooKeeper 3.6+),
/// kept up to date and reporting every change through <see cref="Changed"/>. Changes are applied one at a time on
/// the cache's own loop, each by reading the node's current state, so a burst of events or an event for a state
/// already replaced converges on what the server holds. After a reconnect the whole subtree is read again (events
/// may have been missed while disconnected) and the differences reported; after the session expired and the client
/// was restarted the watch is added again on the new session. <c>maxDepth</c> 0 caches the root only,
/// 1 the root and its children, and so on.
/// </summary>
public class TreeCache : IAsyncDisposable
{
    private readonly CoordinationClient _client;
    private readonly string _root;
    private readonly int _maxDepth;
    private readonly AddWatchMode _mode;
    private readonly IRetryPolicy _retry;
    private readonly ConcurrentDictionary<string, ChildData> _nodes = new(StringComparer.Ordinal);
    private readonly Channel<Work> _work = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _initialized = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _closing = new();
    private Task _loop = Task.CompletedTask;

    private abstract record Work;
    private sealed record Resync(bool AddWatch) : Work;
    private sealed record Refresh(string Path) : Work;

    public TreeCache(CoordinationClient client, string rootPath, int maxDepth = int.MaxValue, IRetryPolicy? retry = null)
        : this(client, rootPath, maxDepth, maxDepth == 0 ? AddWatchMode.Persistent : AddWatchMode.PersistentRecursive, retry) { }

    private protected TreeCache(CoordinationClient client, string rootPath, int maxDepth, AddWatchMode mode, IRetryPolicy? retry)
    {
        _client = client;
        _root = rootPath;
        _maxDepth = maxDepth;
        _mode = mode;
        _retry = retry ?? Waits.DefaultRetry();
    }

    public string RootPath => _root;

    /// <summary>Raised on the cache's loop, in order, for every change (and once with Initialized after the first load).</summary>
    public event Action<CacheEvent>? Changed;

    /// <summary>Every cached node by path.</summary>
    public IReadOnlyDictionary<string, ChildData> Nodes => _nodes;

    /// <summary>The cached node at <paramref name="path"/>, or null.</summary>
    public ChildData? Get(string path) => _nodes.TryGetValue(path, out var d) ? d : null;

    /// <summary>The cached children (names) of <paramref name="path"/>.</summary>
    public IReadOnlyList<string> GetChildren(string path) =>
        _nodes.Keys.Where(p => p != path && Paths.Parent(p) == path).Select(Paths.Name).Order(StringComparer.Ordinal).ToList();

    /// <summary>Starts the cache and waits for the first full load.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        _client.ConnectionStateChanged += OnState;
        _loop = Task.Run(LoopAsync);
        _work.Writer.TryWrite(new Resync(AddWatch: true));
        await _initialized.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    private void OnState(ConnectionState state)
    {
        if (state == ConnectionState.Reconnected) _work.Writer.TryWrite(new Resync(AddWatch: false)); // watch re-registered by the client
        else if (state == ConnectionState.Connected) _work.Writer.TryWrite(new Resync(AddWatch: true)); // a new session: no watches yet
    }

    private void OnWatch(WatchedEvent e)
    {
        if (e.Type is EventType.NodeCreated or EventType.NodeDeleted or EventType.NodeDataChanged) _work.Writer.TryWrite(new Refresh(e.Path));
    }

    private async Task LoopAsync()
    {
        var ct = _closing.Token;
        try
        {
            await foreach (var work in _work.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    if (work is Resync resync) await ResyncAsync(resync.AddWatch, ct).ConfigureAwait(false);
                    else if (work is Refresh refresh) await RefreshAsync(refresh.Path, ct).ConfigureAwait(false);
                }
                catch (KeeperException) when (!_client.State.IsConnected())
                {
                    // Disconnected or expired mid-way: the Reconnected/Connected state queues a full resync.
                }
                catch (KeeperException)
                {
                    _work.Writer.TryWrite(work is Resync ? work : new Resync(AddWatch: false));
                    await Task.Delay(100, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task ResyncAsync(bool addWatch, CancellationToken ct)
    {
        if (!_client.State.IsConnected()) return;
        if (addWatch) await Waits.Retry(_retry, c => _client.AddWatchAsync(_root, OnWatch, _mode, c), ct).ConfigureAwait(false);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await LoadSubtreeAsync(_root, 0, seen, ct).ConfigureAwait(false);
        foreach (var gone in _nodes.Keys.Where(p => !seen.Contains(p)).OrderByDescending(p => p.Length).ToList()) Remove(gone);
        if (_initialized.TrySetResult()) Raise(new CacheEvent(CacheEventType.Initialized, _root, null));
    }

    private async Task RefreshAsync(string path, CancellationToken ct)
    {
        if (Depth(path) > _maxDepth) return;
        var isNew = !_nodes.ContainsKey(path);
        if (!await LoadNodeAsync(path, ct).ConfigureAwait(false))
        {
            foreach (var gone in _nodes.Keys.Where(p => Paths.IsAtOrBelow(p, path)).OrderByDescending(p => p.Length).ToList()) Remove(gone);
            return;
        }
        // A node we did not know may have children created before we looked: read them too.
        if (isNew) await LoadSubtreeAsync(path, Depth(path), new HashSet<string>(StringComparer.Ordinal), ct).ConfigureAwait(false);
    }

    private async Task LoadSubtreeAsync(string path, int depth, HashSet<string> seen, CancellationToken ct)
    {
        if (!await LoadNodeAsync(path, ct).ConfigureAwait(false)) return;
        seen.Add(path);
        if (depth >= _maxDepth) return;
        IReadOnlyList<string> children;
        try { children = (await Waits.Retry(_retry, c => _client.GetChildrenAsync(path, ct: c), ct).ConfigureAwait(false)).Children; }
        catch (NoNodeException) { return; }
        foreach (var child in children) await LoadSubtreeAsync(Paths.Join(path, child), depth + 1, seen, ct).ConfigureAwait(false);
    }

    /// <summary>Reads one node into the cache, reporting Added/Updated; false when it does not exist.</summary>
    private async Task<bool> LoadNodeAsync(string path, CancellationToken ct)
    {
        DataResult data;
        try { data = await Waits.Retry(_retry, c => _client.GetDataAsync(path, ct: c), ct).ConfigureAwait(false); }
        catch (NoNodeException) { return false; }
        var fresh = new ChildData(path, data.Data ?? [], data.Stat); // the cache shows null data as empty
        var old = _nodes.TryGetValue(path, out var o) ? o : null;
        _nodes[path] = fresh;
        if (old is null) Raise(new CacheEvent(CacheEventType.NodeAdded, path, fresh));
        else if (old.Stat.Mzxid != fresh.Stat.Mzxid || old.Stat.Version != fresh.Stat.Version) Raise(new CacheEvent(CacheEventType.NodeUpdated, path, fresh));
        return true;
    }

    private void Remove(string path)
    {
        if (_nodes.TryRemove(path, out var old)) Raise(new CacheEvent(CacheEventType.NodeRemoved, path, old));
    }

    private int Depth(string path)
    {
        if (path == _root) return 0;
        var relative = _root == "/" ? path : path[_root.Length..];
        return relative.Count(ch => ch == '/');
    }

    private void Raise(CacheEvent e)
    {
        try { Changed?.Invoke(e); } catch { /* a listener's failure must not stop the cache */ }
    }

    public async ValueTask DisposeAsync()
    {
        if (_closing.IsCancellationRequested) return;
        _client.ConnectionStateChanged -= OnState;
        _closing.Cancel();
        _work.Writer.TryComplete();
        try { await _loop.ConfigureAwait(false); } catch { }
        try
        {
            if (_client.State.IsConnected())
                await _client.RemoveWatchesAsync(_root, _mode == AddWatchMode.Persistent ? WatcherType.Persistent : WatcherType.PersistentRecursive, local: true).ConfigureAwait(false);
        }
        catch (KeeperException) { }
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// A local copy of one node (Curator's NodeCache / CuratorCache on a single node), for configuration that must
/// reach every process without a restart: <see cref="Current"/> is the latest data (null while the node does not
/// exist) and <see cref="TreeCache.Changed"/> reports each change. Built on a persistent watch, re-read after reconnects.
/// </summary>
public sealed class NodeCache(CoordinationClient client, string path, IRetryPolicy? retry = null)
    : TreeCache(client, path, 0, AddWatchMode.Persistent, retry)
{
    public ChildData? Current => Get(RootPath);
}
