using System.Collections.Concurrent;
using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>
/// A local copy of the subtree under a path, kept current by the change feed (<see cref="CoordinationClient.WatchChangesAsync"/>):
/// the tree is read once, at the start, and from then on only changes arrive, in zxid order and exactly once, across
/// reconnects and failover, so unlike a watch-based cache (Curator's TreeCache) it never re-reads the tree after a
/// reconnect. Start: a sync fixes a zxid Z; the feed is followed from Z while the subtree is read, and a change is
/// applied only if it is newer than what the read saw of its znode (by mzxid, and czxid for a deletion).
/// A change the server no longer retains ends the cache with <see cref="CompactedException"/> (see <see cref="Completion"/>).
/// A Coordination.Akka extension: it needs our server.
/// </summary>
public sealed class TreeCache : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, DataResult> _nodes = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private long _lastZxid;
    private int _reads;
    /// <summary>Guards <see cref="_early"/>: changes that arrive during the start's read wait for it, so that they
    /// are compared with what it saw; null once the read is done.</summary>
    private readonly object _gate = new();
    private List<Change>? _early = new();

    /// <summary>The cached znodes by path: their data and Stat as of <see cref="LastZxid"/>.</summary>
    public IReadOnlyDictionary<string, DataResult> Nodes => _nodes;
    /// <summary>The zxid of the last change applied (or of the start).</summary>
    public long LastZxid => Interlocked.Read(ref _lastZxid);
    /// <summary>Reads sent to the server: those of the start only.</summary>
    public int Reads => Volatile.Read(ref _reads);
    /// <summary>Completes when the cache stops: disposed, or failed (e.g. <see cref="CompactedException"/>).</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    private TreeCache() { }

    public static async Task<TreeCache> StartAsync(CoordinationClient client, string path, CancellationToken ct = default)
    {
        var cache = new TreeCache();
        await client.SyncAsync(path, ct).ConfigureAwait(false);
        var start = client.LastZxid;
        cache._lastZxid = start;
        cache.Completion = Task.Run(() => cache.FollowAsync(client, path, start), CancellationToken.None);
        await cache.ReadAsync(client, path, ct).ConfigureAwait(false);
        lock (cache._gate)
        {
            foreach (var change in cache._early!) cache.Apply(change);
            cache._early = null;
        }
        return cache;
    }

    private async Task ReadAsync(CoordinationClient client, string path, CancellationToken ct)
    {
        try
        {
            Interlocked.Add(ref _reads, 2);
            var data = await client.GetDataAsync(path, null, ct).ConfigureAwait(false);
            var children = await client.GetChildrenAsync(path, null, ct).ConfigureAwait(false);
            _nodes.AddOrUpdate(path, data, (_, current) => current.Stat.Mzxid >= data.Stat.Mzxid ? current : data);
            foreach (var child in children.Children)
                await ReadAsync(client, path == "/" ? "/" + child : path + "/" + child, ct).ConfigureAwait(false);
        }
        catch (NoNodeException) { }   // deleted meanwhile: its deletion is in the feed
    }

    private async Task FollowAsync(CoordinationClient client, string path, long start)
    {
        await foreach (var change in client.WatchChangesAsync(path, start, ct: _stop.Token).ConfigureAwait(false))
            lock (_gate)
            {
                if (_early is { } early) early.Add(change);
                else Apply(change);
            }
    }

    private void Apply(Change change)
    {
        _nodes.TryGetValue(change.Path, out var current);
        switch (change.Type)
        {
            case EventType.NodeDeleted:
                if (current is not null && current.Stat.Czxid < change.Zxid) _nodes.TryRemove(change.Path, out _);
                break;
            default:
                if (current is null || current.Stat.Mzxid < change.Zxid) _nodes[change.Path] = new DataResult(change.Data, change.Stat);
                break;
        }
        Interlocked.Exchange(ref _lastZxid, change.Zxid);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { await Completion.ConfigureAwait(false); } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
