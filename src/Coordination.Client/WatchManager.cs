using Coordination.Protocol;

namespace Coordination.Client;

internal enum WatchKind { Data, Exist, Child, Persistent, PersistentRecursive }

/// <summary>A watcher to register when the reply of its request arrives (ZooKeeper's WatchRegistration).</summary>
internal sealed record WatchRegistration(WatchKind Kind, string ClientPath, Action<WatchedEvent> Watcher)
{
    /// <summary>Registers on success; an exists watch also registers when the node does not exist.</summary>
    public WatchKind? KindFor(ErrorCode err) => Kind switch
    {
        WatchKind.Exist when err == ErrorCode.Ok => WatchKind.Data,
        WatchKind.Exist when err == ErrorCode.NoNode => WatchKind.Exist,
        _ when err == ErrorCode.Ok => Kind,
        _ => null,
    };
}

/// <summary>
/// The client-side watch table (ZKWatchManager): which callbacks a notification reaches, by client path. One-shot
/// watches are removed when they fire; persistent ones stay until removed. Thread-safe.
/// </summary>
internal sealed class WatchManager
{
    private readonly object _lock = new();
    private readonly Dictionary<string, HashSet<Action<WatchedEvent>>>[] _tables =
        Enumerable.Range(0, 5).Select(_ => new Dictionary<string, HashSet<Action<WatchedEvent>>>(StringComparer.Ordinal)).ToArray();

    private Dictionary<string, HashSet<Action<WatchedEvent>>> Table(WatchKind kind) => _tables[(int)kind];

    public void Add(WatchKind kind, string path, Action<WatchedEvent> watcher)
    {
        lock (_lock)
        {
            var table = Table(kind);
            if (!table.TryGetValue(path, out var set)) table[path] = set = [];
            set.Add(watcher);
        }
    }

    public bool IsEmpty
    {
        get { lock (_lock) return _tables.All(t => t.Count == 0); }
    }

    public int Count
    {
        get { lock (_lock) return _tables.Sum(t => t.Values.Sum(s => s.Count)); }
    }

    /// <summary>The callbacks a notification reaches; one-shot watches involved are removed.</summary>
    public List<Action<WatchedEvent>> Materialize(EventType type, string path)
    {
        var result = new List<Action<WatchedEvent>>();
        lock (_lock)
        {
            void Take(WatchKind kind)
            {
                if (Table(kind).Remove(path, out var set)) result.AddRange(set);
            }
            void AddPersistent(bool recursiveToo)
            {
                if (Table(WatchKind.Persistent).TryGetValue(path, out var set)) result.AddRange(set);
                if (!recursiveToo) return;
                var recursive = Table(WatchKind.PersistentRecursive);
                if (recursive.Count == 0) return;
                for (var p = path; ; p = Paths.Parent(p))
                {
                    if (recursive.TryGetValue(p, out var rs)) result.AddRange(rs);
                    if (p == "/") break;
                }
            }
            switch (type)
            {
                case EventType.NodeCreated:
                case EventType.NodeDataChanged:
                    Take(WatchKind.Data);
                    Take(WatchKind.Exist);
                    AddPersistent(recursiveToo: true);
                    break;
                case EventType.NodeChildrenChanged:
                    Take(WatchKind.Child);
                    AddPersistent(recursiveToo: false);
                    break;
                case EventType.NodeDeleted:
                    Take(WatchKind.Data);
                    Take(WatchKind.Exist);
                    Take(WatchKind.Child);
                    AddPersistent(recursiveToo: true);
                    break;
            }
        }
        return result.Count > 1 ? result.Distinct().ToList() : result;
    }

    /// <summary>Removes every watcher of a kind on a path (removeWatches with the "any watcher" form).</summary>
    public List<(WatchKind Kind, Action<WatchedEvent> Watcher)> Remove(string path, WatcherType type)
    {
        var kinds = type switch
        {
            WatcherType.Data => new[] { WatchKind.Data, WatchKind.Exist },
            WatcherType.Children => new[] { WatchKind.Child },
            WatcherType.Persistent => new[] { WatchKind.Persistent },
            WatcherType.PersistentRecursive => new[] { WatchKind.PersistentRecursive },
            _ => Enum.GetValues<WatchKind>(),
        };
        var removed = new List<(WatchKind, Action<WatchedEvent>)>();
        lock (_lock)
            foreach (var kind in kinds)
                if (Table(kind).Remove(path, out var set))
                    foreach (var w in set) removed.Add((kind, w));
        return removed;
    }

    public bool Contains(string path, WatcherType type)
    {
        lock (_lock)
            return type switch
            {
                WatcherType.Data => Table(WatchKind.Data).ContainsKey(path) || Table(WatchKind.Exist).ContainsKey(path),
                WatcherType.Children => Table(WatchKind.Child).ContainsKey(path),
                WatcherType.Persistent => Table(WatchKind.Persistent).ContainsKey(path),
                WatcherType.PersistentRecursive => Table(WatchKind.PersistentRecursive).ContainsKey(path),
                _ => _tables.Any(t => t.ContainsKey(path)),
            };
    }

    /// <summary>The paths of each kind (client paths), for setWatches2 after a reconnect.</summary>
    public List<string>[] Snapshot()
    {
        lock (_lock) return _tables.Select(t => t.Keys.ToList()).ToArray();
    }

    public void Clear()
    {
        lock (_lock) foreach (var t in _tables) t.Clear();
    }
}
