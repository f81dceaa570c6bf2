using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Server.Tests;

internal enum ChangeKind { Created, Deleted, DataChanged }

/// <summary>A change made by the ordering test's writer, with the zxid from its reply.</summary>
internal readonly record struct Change(long Zxid, string Path, ChangeKind Kind);

/// <summary>Checks one session's arrival log (see <see cref="OrderingTests"/>) against the writer's history.</summary>
internal static class WatchOrder
{
    /// <summary>The writer's changes, indexed for "first change on P after zxid z" queries.</summary>
    internal sealed class History(List<Change> changes, string root)
    {
        private readonly Dictionary<string, List<Change>> _byPath = changes.GroupBy(c => c.Path).ToDictionary(g => g.Key, g => g.ToList());
        private readonly List<Change> _childChanges = changes.Where(c => c.Kind != ChangeKind.DataChanged && Paths.Parent(c.Path) == root).ToList();

        public Change? FirstAfter(string path, long zxid, ChangeKind? kind = null)
        {
            if (!_byPath.TryGetValue(path, out var list)) return null;
            foreach (var c in list)
                if (c.Zxid > zxid && (kind is null || c.Kind == kind)) return c;
            return null;
        }

        public Change? FirstChildChangeAfter(long zxid)
        {
            foreach (var c in _childChanges)
                if (c.Zxid > zxid) return c;
            return null;
        }
    }

    /// <summary>Replays one session's arrival log against the writer's history.</summary>
    internal sealed class SessionChecker(History history, string root, HashSet<string> keys)
    {
        private sealed record DataArm(bool Exists, long Mzxid, long HeaderZxid, long Sequence);

        private readonly Dictionary<string, DataArm> _data = new();
        private (long Pzxid, long Sequence)? _child;
        private readonly Dictionary<string, long> _lastMzxid = new();
        private long _lastPzxid = -1;
        private readonly List<string> _violations = new();
        public int Responses { get; private set; }
        public int Events { get; private set; }
        public long MaxEventHeaderZxid { get; private set; } = -1;

        public List<string> Check(IReadOnlyList<Arrival> log)
        {
            var lastXid = 0;
            var lastInferred = long.MinValue;
            var lastHeaderZxid = long.MinValue;
            foreach (var a in log)
            {
                if (a.Kind == ArrivalKind.Response)
                {
                    Responses++;
                    if (a.Header.Xid <= lastXid) Violation(a, $"response xid {a.Header.Xid} after xid {lastXid}");
                    lastXid = a.Header.Xid;
                    if (a.Request is PathWatchRequest req) OnRead(a, req);
                    continue;
                }

                Events++;
                var ev = a.Event!;
                if (a.Header.Zxid != -1)
                {
                    MaxEventHeaderZxid = Math.Max(MaxEventHeaderZxid, a.Header.Zxid);
                    if (a.Header.Zxid < lastHeaderZxid)
                        Violation(a, $"event header zxid 0x{a.Header.Zxid:x} after 0x{lastHeaderZxid:x}");
                    lastHeaderZxid = a.Header.Zxid;
                }
                long? inferred = null;
                if (ev.Path == root && ev.Type == EventType.NodeChildrenChanged)
                {
                    if (_child is not { } arm) Violation(a, "NodeChildrenChanged with no child watch armed (fired twice, or before the arming response)");
                    else
                    {
                        var c = history.FirstChildChangeAfter(arm.Pzxid);
                        if (c is null) Violation(a, $"NodeChildrenChanged but no child change after pzxid 0x{arm.Pzxid:x}");
                        else inferred = c.Value.Zxid;
                    }
                    _child = null;
                }
                else if (keys.Contains(ev.Path) && ev.Type is EventType.NodeCreated or EventType.NodeDeleted or EventType.NodeDataChanged)
                {
                    if (!_data.Remove(ev.Path, out var arm))
                        Violation(a, $"{ev.Type} {ev.Path} with no data watch armed (fired twice, or before the arming response)");
                    else if (arm.Exists)
                    {
                        var c = history.FirstAfter(ev.Path, arm.Mzxid);
                        if (c is null) Violation(a, $"{ev.Type} {ev.Path} but no change after the armed mzxid 0x{arm.Mzxid:x}");
                        else
                        {
                            var expected = c.Value.Kind == ChangeKind.Deleted ? EventType.NodeDeleted : EventType.NodeDataChanged;
                            if (ev.Type != expected) Violation(a, $"{ev.Type} {ev.Path}, but the first change after mzxid 0x{arm.Mzxid:x} is {c.Value.Kind} at 0x{c.Value.Zxid:x}");
                            inferred = c.Value.Zxid;
                        }
                    }
                    else
                    {
                        if (ev.Type != EventType.NodeCreated) Violation(a, $"{ev.Type} {ev.Path} for an exists watch armed on a missing node");
                        if (arm.HeaderZxid > 0)
                        {
                            var c = history.FirstAfter(ev.Path, arm.HeaderZxid, ChangeKind.Created);
                            if (c is null) Violation(a, $"NodeCreated {ev.Path} but no create after zxid 0x{arm.HeaderZxid:x}");
                            else inferred = c.Value.Zxid;
                        }
                    }
                }
                else Violation(a, $"unexpected event {ev.Type} {ev.Path} (state {ev.State})");

                if (inferred is { } z)
                {
                    if (z < lastInferred) Violation(a, $"{ev.Type} {ev.Path} is for zxid 0x{z:x}, after an event for 0x{lastInferred:x}: events out of zxid order");
                    lastInferred = Math.Max(lastInferred, z);
                    if (a.Header.Zxid != -1 && a.Header.Zxid != z)
                        Violation(a, $"{ev.Type} {ev.Path} header zxid 0x{a.Header.Zxid:x}, but the change is 0x{z:x}");
                }
            }
            return _violations;
        }

        private void OnRead(Arrival a, PathWatchRequest req)
        {
            var path = req.NodePath;
            if (a.Op == OpCode.GetChildren2 && path == root)
            {
                if (a.Header.Err != ErrorCode.Ok || a.Response is not GetChildrenResponse { Stat: { } stat })
                {
                    Violation(a, $"getChildren2 {root} -> {a.Header.Err}");
                    return;
                }
                var p = stat.Pzxid;
                if (p < _lastPzxid) Violation(a, $"getChildren2 shows pzxid 0x{p:x}, older than 0x{_lastPzxid:x} seen before");
                _lastPzxid = Math.Max(_lastPzxid, p);
                if (_child is { } arm && p != arm.Pzxid)
                    Violation(a, $"getChildren2 shows pzxid 0x{p:x} while the child watch armed at 0x{arm.Pzxid:x} (seq {arm.Sequence}) has not fired");
                if (req.Watch && _child is null) _child = (p, a.Sequence);
                return;
            }
            if (a.Op is not (OpCode.GetData or OpCode.Exists) || !keys.Contains(path)) return;

            bool exists;
            long mzxid = 0;
            if (a.Header.Err == ErrorCode.Ok)
            {
                exists = true;
                mzxid = a.Response switch
                {
                    GetDataResponse g => g.Stat.Mzxid,
                    StatResponse s => s.Stat.Mzxid,
                    _ => -1,
                };
            }
            else if (a.Header.Err == ErrorCode.NoNode) exists = false;
            else
            {
                Violation(a, $"{a.Op} {path} -> {a.Header.Err}");
                return;
            }

            if (exists)
            {
                if (_lastMzxid.TryGetValue(path, out var last) && mzxid < last)
                    Violation(a, $"{a.Op} {path} shows mzxid 0x{mzxid:x}, older than 0x{last:x} seen before");
                _lastMzxid[path] = Math.Max(last, mzxid);
            }

            if (_data.TryGetValue(path, out var armed))
            {
                if (armed.Exists && !exists)
                    Violation(a, $"{a.Op} {path} shows the node deleted while the watch armed at mzxid 0x{armed.Mzxid:x} (seq {armed.Sequence}) has not fired");
                else if (armed.Exists && mzxid != armed.Mzxid)
                    Violation(a, $"{a.Op} {path} shows mzxid 0x{mzxid:x} while the watch armed at mzxid 0x{armed.Mzxid:x} (seq {armed.Sequence}) has not fired");
                else if (!armed.Exists && exists)
                    Violation(a, $"{a.Op} {path} shows the node (mzxid 0x{mzxid:x}) while the exists watch armed on the missing node (seq {armed.Sequence}) has not fired");
            }
            // exists registers a watch whether or not the node exists; getData only when it exists (as in ZooKeeper).
            var registers = req.Watch && (a.Op == OpCode.Exists || exists);
            if (registers && !_data.ContainsKey(path)) _data[path] = new DataArm(exists, mzxid, a.Header.Zxid, a.Sequence);
        }

        private void Violation(Arrival a, string message)
        {
            if (_violations.Count < 200) _violations.Add($"seq {a.Sequence}: {message}");
        }
    }
}
