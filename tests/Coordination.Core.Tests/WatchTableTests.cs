using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

public class WatchTableTests
{
    private static WatchTrigger T(string path, EventType type) => new(path, type);

    [Fact]
    public void DataWatchIsOneShotForCreatedChangedDeleted()
    {
        foreach (var type in new[] { EventType.NodeCreated, EventType.NodeDataChanged, EventType.NodeDeleted })
        {
            var w = new WatchTable();
            w.Add("/a", 1, WatchKind.Data);
            Assert.Equal([1L], w.Trigger(T("/a", type)));
            Assert.Empty(w.Trigger(T("/a", type)));
            Assert.Equal(0, w.WatchCount);
            Assert.Equal(0, w.PathCount);
        }
    }

    [Fact]
    public void DataWatchIgnoresChildEventsAndOtherPaths()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        Assert.Empty(w.Trigger(T("/a", EventType.NodeChildrenChanged)));
        Assert.Empty(w.Trigger(T("/a/b", EventType.NodeCreated)));
        Assert.Empty(w.Trigger(T("/", EventType.NodeDataChanged)));
        Assert.Empty(w.Trigger(T("/ab", EventType.NodeDataChanged)));
        Assert.Empty(w.Trigger(T("/a", EventType.None)));
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeDataChanged)));
    }

    [Fact]
    public void ChildWatchFiresOnChildrenChangedAndOnDeleteOfThePath()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Child);
        Assert.Empty(w.Trigger(T("/a", EventType.NodeDataChanged)));
        Assert.Empty(w.Trigger(T("/a", EventType.NodeCreated)));
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeChildrenChanged)));
        Assert.Empty(w.Trigger(T("/a", EventType.NodeChildrenChanged)));
        w.Add("/a", 1, WatchKind.Child);
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeDeleted)));
        Assert.Empty(w.Trigger(T("/a", EventType.NodeChildrenChanged)));
    }

    [Fact]
    public void NodeDeletedFiresDataAndChildWatchesOncePerSession()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.Child);
        w.Add("/a", 2, WatchKind.Child);
        w.Add("/a", 3, WatchKind.Data);
        Assert.Equal(4, w.WatchCount); // session 1 counts in both managers
        Assert.Equal([1L, 2L, 3L], w.Trigger(T("/a", EventType.NodeDeleted)));
        Assert.Equal(0, w.WatchCount);
        Assert.Equal(0, w.SessionCount);
    }

    [Fact]
    public void DataTriggerKeepsTheChildWatchOfTheSameSession()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.Child);
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeDataChanged)));
        Assert.True(w.Contains("/a", 1, WatchKind.Child));
        Assert.False(w.Contains("/a", 1, WatchKind.Data));
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeChildrenChanged)));
        Assert.Equal(0, w.PathCount);
    }

    [Fact]
    public void PersistentWatchSeesEveryEventAtThePathAndStays()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Persistent);
        Assert.Equal(2, w.WatchCount); // counted in ZooKeeper's data and child managers
        foreach (var type in new[] { EventType.NodeCreated, EventType.NodeDataChanged, EventType.NodeChildrenChanged, EventType.NodeDeleted, EventType.NodeCreated })
            Assert.Equal([1L], w.Trigger(T("/a", type)));
        Assert.Empty(w.Trigger(T("/a/b", EventType.NodeCreated)));   // not recursive
        Assert.Empty(w.Trigger(T("/a/b", EventType.NodeDeleted)));
        Assert.True(w.Contains("/a", 1, WatchKind.Persistent));
    }

    [Fact]
    public void PersistentAndOneShotOnTheSamePathCoexist()
    {
        // ZooKeeper 3.8.0 kept one mode per (session, path): exists() after addWatch made the persistent watch one-shot
        // (ZOOKEEPER-4466). Here both stay, as in 3.9.2+.
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Persistent);
        w.Add("/a", 1, WatchKind.Data);
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeDataChanged))); // one event, not two
        Assert.False(w.Contains("/a", 1, WatchKind.Data));
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeDataChanged)));
        Assert.True(w.Contains("/a", 1, WatchKind.Persistent));
    }

    [Fact]
    public void RecursiveWatchCoversDescendantsButNotChildEvents()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        Assert.Equal(1, w.WatchCount);
        Assert.Equal([1L], w.Trigger(T("/a", EventType.NodeCreated)));
        Assert.Equal([1L], w.Trigger(T("/a/b", EventType.NodeCreated)));
        Assert.Equal([1L], w.Trigger(T("/a/b/c/d", EventType.NodeDataChanged)));
        Assert.Equal([1L], w.Trigger(T("/a/b", EventType.NodeDeleted)));
        Assert.Empty(w.Trigger(T("/a", EventType.NodeChildrenChanged)));
        Assert.Empty(w.Trigger(T("/a/b", EventType.NodeChildrenChanged)));
        Assert.Empty(w.Trigger(T("/ab", EventType.NodeCreated)));      // a sibling with a common prefix
        Assert.Empty(w.Trigger(T("/", EventType.NodeDataChanged)));
        Assert.True(w.Contains("/a", 1, WatchKind.PersistentRecursive));
    }

    [Fact]
    public void RecursiveOnRootSeesEverything()
    {
        var w = new WatchTable();
        w.Add("/", 5, WatchKind.PersistentRecursive);
        Assert.Equal([5L], w.Trigger(T("/", EventType.NodeDataChanged)));
        Assert.Equal([5L], w.Trigger(T("/x", EventType.NodeCreated)));
        Assert.Equal([5L], w.Trigger(T("/x/y/z", EventType.NodeDeleted)));
        Assert.Empty(w.Trigger(T("/", EventType.NodeChildrenChanged)));
    }

    [Fact]
    public void OneEventPerSessionPerTriggerAcrossLevels()
    {
        var w = new WatchTable();
        w.Add("/", 1, WatchKind.PersistentRecursive);
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        w.Add("/a/b", 1, WatchKind.Data);
        w.Add("/a/b", 1, WatchKind.Persistent);
        w.Add("/a/b", 2, WatchKind.Data);
        w.Add("/a", 3, WatchKind.PersistentRecursive);
        Assert.Equal([1L, 2L, 3L], w.Trigger(T("/a/b", EventType.NodeDataChanged)));
        Assert.Equal([1L, 3L], w.Trigger(T("/a/b", EventType.NodeDataChanged)));
    }

    [Fact]
    public void TriggerOrderIsAscendingSessionId()
    {
        var w = new WatchTable();
        foreach (var id in new long[] { 9, -4, 3, long.MaxValue, 0 }) w.Add("/p", id, WatchKind.Data);
        Assert.Equal([-4L, 0L, 3L, 9L, long.MaxValue], w.Trigger(T("/p", EventType.NodeDeleted)));
    }

    [Fact]
    public void RemoveByWatcherType()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.Child);
        w.Add("/a", 1, WatchKind.Persistent);
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        Assert.Equal(2, w.WatchCount);

        Assert.False(w.Remove("/a", 2, WatcherType.Any));
        Assert.False(w.Remove("/b", 1, WatcherType.Any));
        Assert.False(w.Remove("/a", 1, (WatcherType)42));

        Assert.True(w.Remove("/a", 1, WatcherType.Data, remove: false));
        Assert.True(w.Contains("/a", 1, WatchKind.Data)); // check only
        Assert.True(w.Remove("/a", 1, WatcherType.Data));
        Assert.False(w.Remove("/a", 1, WatcherType.Data));
        Assert.False(w.Remove("/a", 1, WatcherType.Data, remove: false));
        Assert.True(w.Contains("/a", 1, WatchKind.Persistent));

        Assert.True(w.Remove("/a", 1, WatcherType.Children));
        Assert.False(w.Remove("/a", 1, WatcherType.Children));
        Assert.True(w.Contains("/a", 1, WatchKind.Persistent));

        Assert.True(w.Remove("/a", 1, WatcherType.Persistent));
        Assert.False(w.Remove("/a", 1, WatcherType.Persistent));
        Assert.Empty(w.Trigger(T("/a", EventType.NodeChildrenChanged))); // persistent gone
        Assert.Equal([1L], w.Trigger(T("/a/x", EventType.NodeCreated))); // recursive still there

        Assert.True(w.Remove("/a", 1, WatcherType.PersistentRecursive));
        Assert.Empty(w.Trigger(T("/a/x", EventType.NodeCreated)));
        Assert.Equal(0, w.PathCount);
        Assert.Equal(0, w.WatchCount);
    }

    [Fact]
    public void RemoveAnyRemovesEverythingAtThePath()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        w.Add("/a", 2, WatchKind.Data);
        Assert.True(w.Remove("/a", 1, WatcherType.Any, remove: false));
        Assert.True(w.Remove("/a", 1, WatcherType.Any));
        Assert.False(w.Remove("/a", 1, WatcherType.Any));
        Assert.Equal([2L], w.Trigger(T("/a/b", EventType.NodeCreated)).Concat(w.Trigger(T("/a", EventType.NodeCreated))));
    }

    [Fact]
    public void OnlyExactPathCountsForRemove()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        Assert.False(w.Remove("/a/b", 1, WatcherType.Any));
        Assert.False(w.Remove("/a/b", 1, WatcherType.PersistentRecursive, remove: false));
    }

    [Fact]
    public void RemoveSessionDropsAllItsRegistrations()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/b", 1, WatchKind.PersistentRecursive);
        w.Add("/b", 2, WatchKind.Child);
        w.RemoveSession(1);
        w.RemoveSession(99);
        Assert.Empty(w.Trigger(T("/a", EventType.NodeDataChanged)));
        Assert.Empty(w.Trigger(T("/b/c", EventType.NodeCreated)));
        Assert.Equal(1, w.WatchCount);
        Assert.Equal(1, w.PathCount);
        Assert.Equal([2L], w.Trigger(T("/b", EventType.NodeChildrenChanged)));
    }

    [Fact]
    public void AddingTheSameWatchTwiceIsOneWatch()
    {
        var w = new WatchTable();
        w.Add("/a", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.Data);
        Assert.Equal(1, w.WatchCount);
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        w.Add("/a", 1, WatchKind.PersistentRecursive);
        Assert.True(w.Remove("/a", 1, WatcherType.PersistentRecursive));
        Assert.Empty(w.Trigger(T("/a/b", EventType.NodeCreated)));
    }

    [Fact]
    public void Reports()
    {
        var w = new WatchTable();
        w.Add("/b", 1, WatchKind.Data);
        w.Add("/a", 1, WatchKind.Child);
        w.Add("/a", 2, WatchKind.Data);
        var bySession = w.BySession();
        Assert.Equal(["/a", "/b"], bySession[1]);
        Assert.Equal(["/a"], bySession[2]);
        var byPath = w.ByPath();
        Assert.Equal([1L, 2L], byPath["/a"]);
        Assert.Equal([1L], byPath["/b"]);
        Assert.Equal(2, w.PathCount);
        Assert.Equal(3, w.WatchCount);
        Assert.Equal(2, w.SessionCount);
    }

    [Fact]
    public void TreeTriggersDriveTheTableAsZooKeeperDoes()
    {
        // Apply real txns and feed their triggers to a table: exists-watch on a missing node, child watch on a parent,
        // recursive watch on a subtree, persistent watch on the parent.
        var h = new Harness();
        var w = new WatchTable();
        w.Add("/app/x", 10, WatchKind.Data);                 // exists("/app/x", watch) before it exists
        w.Add("/app", 11, WatchKind.Child);
        w.Add("/app", 12, WatchKind.PersistentRecursive);
        w.Add("/app", 13, WatchKind.Persistent);
        h.Create("/app");
        var events = new List<(long Session, WatchTrigger Trigger)>();
        void Fire(ApplyResult r)
        {
            foreach (var t in r.Triggers)
                foreach (var s in w.Trigger(t)) events.Add((s, t));
        }
        Fire(h.Create("/app/x"));
        Assert.Equal(
            [
                (10L, T("/app/x", EventType.NodeCreated)), (12L, T("/app/x", EventType.NodeCreated)),
                (11L, T("/app", EventType.NodeChildrenChanged)), (13L, T("/app", EventType.NodeChildrenChanged)),
            ], events);
        events.Clear();
        Fire(h.SetData("/app/x", [1]));
        Assert.Equal([(12L, T("/app/x", EventType.NodeDataChanged))], events);
        events.Clear();
        Fire(h.Delete("/app/x"));
        Assert.Equal([(12L, T("/app/x", EventType.NodeDeleted)), (13L, T("/app", EventType.NodeChildrenChanged))], events);
    }
}
