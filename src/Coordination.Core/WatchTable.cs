using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>What a registration watches.</summary>
public enum WatchKind
{
    /// <summary>One-shot, from getData/exists: NodeCreated, NodeDeleted, NodeDataChanged at the path.</summary>
    Data,
    /// <summary>One-shot, from getChildren: NodeChildrenChanged at the path, and NodeDeleted of the path.</summary>
    Child,
    /// <summary>addWatch PERSISTENT: every event at the path, including NodeChildrenChanged; never removed by firing.</summary>
    Persistent,
    /// <summary>addWatch PERSISTENT_RECURSIVE: NodeCreated/Deleted/DataChanged at the path and every descendant.</summary>
    PersistentRecursive,
}

/// <summary>
/// Watch registrations (path → session → kinds) with ZooKeeper's WatchManager semantics: one-shot watches are
/// removed when they fire, each session gets at most one event per trigger, persistent ones stay until removed.
/// Pure; the server shards one table per subtree.
/// <para>
/// Semantics are those of ZooKeeper 3.6+ with ZOOKEEPER-4466/4471 (3.9.2+): the kinds a session registers on a path
/// coexist (3.8.0 kept only the last mode per path and manager, so exists() after addWatch turned a persistent watch
/// into a one-shot one), and removeWatches/checkWatches with Children/Data touch only the one-shot watches, with
/// Persistent/PersistentRecursive only those, with Any everything at the path.
/// </para>
/// <para>Per trigger: NodeCreated and NodeDataChanged fire Data, Persistent and PersistentRecursive watches at the path
/// and PersistentRecursive watches on ancestors; NodeDeleted fires every kind at the path and PersistentRecursive on
/// ancestors; NodeChildrenChanged (reported at the parent) fires Child and Persistent watches at that path only.
/// Fired Data and Child watches are removed. Ancestors are visited only while some recursive watch exists.</para>
/// </summary>
public sealed class WatchTable
{
    [Flags]
    private enum Bits : byte
    {
        None = 0,
        Data = 1,
        Child = 2,
        Persistent = 4,
        Recursive = 8,
        All = Data | Child | Persistent | Recursive,
    }

    private readonly Dictionary<string, Dictionary<long, Bits>> _byPath = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<long, Bits>>.AlternateLookup<ReadOnlySpan<char>> _byPathSpan;
    private readonly Dictionary<long, HashSet<string>> _bySession = new();
    /// <summary>Paths holding at least one recursive watch, with how many sessions hold one there.</summary>
    private readonly Dictionary<string, int> _recursive = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _recursiveSpan;
    private int _watchCount;

    public WatchTable()
    {
        _byPathSpan = _byPath.GetAlternateLookup<ReadOnlySpan<char>>();
        _recursiveSpan = _recursive.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    private static Bits BitOf(WatchKind kind) => kind switch
    {
        WatchKind.Data => Bits.Data,
        WatchKind.Child => Bits.Child,
        WatchKind.Persistent => Bits.Persistent,
        WatchKind.PersistentRecursive => Bits.Recursive,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>ZooKeeper counts a registration once in its data-watch manager (Data, Persistent, Recursive) and once
    /// in its child-watch manager (Child, Persistent): zk_watch_count is the sum.</summary>
    private static int Weight(Bits bits) =>
        ((bits & (Bits.Data | Bits.Persistent | Bits.Recursive)) != 0 ? 1 : 0) + ((bits & (Bits.Child | Bits.Persistent)) != 0 ? 1 : 0);

    public void Add(string path, long sessionId, WatchKind kind)
    {
        var bit = BitOf(kind);
        if (!_byPath.TryGetValue(path, out var sessions))
        {
            sessions = new Dictionary<long, Bits>(1);
            _byPath.Add(path, sessions);
        }
        sessions.TryGetValue(sessionId, out var old);
        var updated = old | bit;
        if (updated == old) return;
        sessions[sessionId] = updated;
        OnChanged(path, sessionId, old, updated);
    }

    private void OnChanged(string path, long sessionId, Bits old, Bits updated)
    {
        _watchCount += Weight(updated) - Weight(old);
        if (old == Bits.None)
        {
            if (!_bySession.TryGetValue(sessionId, out var paths))
            {
                paths = new HashSet<string>(StringComparer.Ordinal);
                _bySession.Add(sessionId, paths);
            }
            paths.Add(path);
        }
        else if (updated == Bits.None && _bySession.TryGetValue(sessionId, out var paths))
        {
            paths.Remove(path);
            if (paths.Count == 0) _bySession.Remove(sessionId);
        }
        var wasRecursive = (old & Bits.Recursive) != 0;
        var isRecursive = (updated & Bits.Recursive) != 0;
        if (wasRecursive == isRecursive) return;
        if (isRecursive)
        {
            _recursive[path] = _recursive.GetValueOrDefault(path) + 1;
        }
        else if (--System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(_recursive, path) <= 0)
        {
            _recursive.Remove(path);
        }
    }

    /// <summary>The sessions to notify for a trigger, in a deterministic order (ascending session id), each once.
    /// Removes fired one-shot watches.</summary>
    public IReadOnlyList<long> Trigger(WatchTrigger trigger)
    {
        Bits fire, consume;
        bool ancestors;
        switch (trigger.Type)
        {
            case EventType.NodeCreated or EventType.NodeDataChanged:
                fire = Bits.Data | Bits.Persistent | Bits.Recursive;
                consume = Bits.Data;
                ancestors = true;
                break;
            case EventType.NodeDeleted:
                fire = Bits.All;
                consume = Bits.Data | Bits.Child;
                ancestors = true;
                break;
            case EventType.NodeChildrenChanged:
                fire = Bits.Child | Bits.Persistent;
                consume = Bits.Child;
                ancestors = false;
                break;
            default:
                return Array.Empty<long>();
        }

        var path = trigger.Path;
        List<long>? result = null;
        if (_byPath.TryGetValue(path, out var sessions))
        {
            List<(long Session, Bits Old)>? consumed = null;
            foreach (var (session, bits) in sessions)
            {
                if ((bits & fire) == 0) continue;
                (result ??= new List<long>(sessions.Count)).Add(session);
                if ((bits & consume) != 0) (consumed ??= []).Add((session, bits));
            }
            if (consumed is not null)
            {
                foreach (var (session, old) in consumed)
                {
                    var updated = old & ~consume;
                    if (updated == Bits.None) sessions.Remove(session);
                    else sessions[session] = updated;
                    OnChanged(path, session, old, updated);
                }
                if (sessions.Count == 0) _byPath.Remove(path);
            }
        }

        var fromAncestors = false;
        if (ancestors && _recursive.Count > 0 && path.Length > 1)
        {
            var end = path.LastIndexOf('/');
            while (end >= 0)
            {
                var ancestor = end == 0 ? "/".AsSpan() : path.AsSpan(0, end);
                if (_recursiveSpan.ContainsKey(ancestor) && _byPathSpan.TryGetValue(ancestor, out var watchers))
                {
                    foreach (var (session, bits) in watchers)
                    {
                        if ((bits & Bits.Recursive) == 0) continue;
                        (result ??= []).Add(session);
                        fromAncestors = true;
                    }
                }
                if (end == 0) break;
                end = path.LastIndexOf('/', end - 1);
            }
        }

        if (result is null) return Array.Empty<long>();
        if (result.Count > 1)
        {
            result.Sort();
            if (fromAncestors)
            {
                var write = 1;
                for (var read = 1; read < result.Count; read++)
                    if (result[read] != result[write - 1]) result[write++] = result[read];
                result.RemoveRange(write, result.Count - write);
            }
        }
        return result;
    }

    private static Bits MaskOf(WatcherType type) => type switch
    {
        WatcherType.Children => Bits.Child,
        WatcherType.Data => Bits.Data,
        WatcherType.Persistent => Bits.Persistent,
        WatcherType.PersistentRecursive => Bits.Recursive,
        WatcherType.Any => Bits.All,
        _ => Bits.None,
    };

    /// <summary>removeWatches/checkWatches: returns false (NoWatcher) when the session has no watch of that type there.
    /// With <paramref name="remove"/> false it only checks.</summary>
    public bool Remove(string path, long sessionId, WatcherType type, bool remove = true)
    {
        var mask = MaskOf(type);
        if (mask == Bits.None) return false;
        if (!_byPath.TryGetValue(path, out var sessions) || !sessions.TryGetValue(sessionId, out var bits)) return false;
        if ((bits & mask) == 0) return false;
        if (!remove) return true;
        var updated = bits & ~mask;
        if (updated == Bits.None)
        {
            sessions.Remove(sessionId);
            if (sessions.Count == 0) _byPath.Remove(path);
        }
        else
        {
            sessions[sessionId] = updated;
        }
        OnChanged(path, sessionId, bits, updated);
        return true;
    }

    /// <summary>True when the session has a watch of <paramref name="kind"/> at exactly <paramref name="path"/>.</summary>
    public bool Contains(string path, long sessionId, WatchKind kind) =>
        _byPath.TryGetValue(path, out var sessions) && sessions.TryGetValue(sessionId, out var bits) && (bits & BitOf(kind)) != 0;

    /// <summary>Drops every registration of a closed session.</summary>
    public void RemoveSession(long sessionId)
    {
        if (!_bySession.Remove(sessionId, out var paths)) return;
        foreach (var path in paths)
        {
            if (!_byPath.TryGetValue(path, out var sessions) || !sessions.Remove(sessionId, out var bits)) continue;
            if (sessions.Count == 0) _byPath.Remove(path);
            _watchCount -= Weight(bits);
            if ((bits & Bits.Recursive) != 0 && --System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(_recursive, path) <= 0)
                _recursive.Remove(path);
        }
    }

    /// <summary>zk_watch_count: registrations counted per ZooKeeper watch manager (a persistent watch counts twice,
    /// once in the data and once in the child manager, as in ZooKeeper).</summary>
    public int WatchCount => _watchCount;

    /// <summary>Number of distinct watched paths.</summary>
    public int PathCount => _byPath.Count;

    /// <summary>Number of sessions with at least one watch.</summary>
    public int SessionCount => _bySession.Count;

    /// <summary>For wchc: session → paths; for wchp: path → sessions. Lists are sorted.</summary>
    public IReadOnlyDictionary<long, IReadOnlyList<string>> BySession()
    {
        var result = new Dictionary<long, IReadOnlyList<string>>(_bySession.Count);
        foreach (var (session, paths) in _bySession)
        {
            var list = new List<string>(paths);
            list.Sort(StringComparer.Ordinal);
            result[session] = list;
        }
        return result;
    }

    public IReadOnlyDictionary<string, IReadOnlyList<long>> ByPath()
    {
        var result = new Dictionary<string, IReadOnlyList<long>>(_byPath.Count, StringComparer.Ordinal);
        foreach (var (path, sessions) in _byPath)
        {
            var list = new List<long>(sessions.Keys);
            list.Sort();
            result[path] = list;
        }
        return result;
    }
}
