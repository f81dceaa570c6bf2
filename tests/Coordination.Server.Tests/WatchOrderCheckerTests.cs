using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Server.Tests;

/// <summary>The ordering test's checker must flag each kind of violation (so a pass means something).</summary>
public sealed class WatchOrderCheckerTests
{
    private const string Root = "/r";
    private const string A = "/r/a";
    private const string B = "/r/b";

    private sealed class Log
    {
        private readonly List<Arrival> _items = new();
        private int _xid;

        public Log GetData(string path, long mzxid, bool watch = true, long headerZxid = 0) =>
            Add(OpCode.GetData, new PathWatchRequest(path, watch), ErrorCode.Ok, new GetDataResponse([], Stat(mzxid)), headerZxid);

        public Log GetDataMissing(string path, bool watch = true) =>
            Add(OpCode.GetData, new PathWatchRequest(path, watch), ErrorCode.NoNode, null, 0);

        public Log ExistsMissing(string path, long headerZxid, bool watch = true) =>
            Add(OpCode.Exists, new PathWatchRequest(path, watch), ErrorCode.NoNode, null, headerZxid);

        public Log Exists(string path, long mzxid, bool watch = true) =>
            Add(OpCode.Exists, new PathWatchRequest(path, watch), ErrorCode.Ok, new StatResponse(Stat(mzxid)), 0);

        public Log Children(long pzxid, bool watch = true) =>
            Add(OpCode.GetChildren2, new PathWatchRequest(Root, watch), ErrorCode.Ok, new GetChildrenResponse([], Stat(0) with { Pzxid = pzxid }), 0);

        public Log Event(EventType type, string path, long zxid = -1)
        {
            _items.Add(new Arrival(_items.Count, ArrivalKind.Event, new ReplyHeader(-1, zxid, ErrorCode.Ok), OpCode.Notification, null, null,
                new WatcherEvent(type, KeeperState.SyncConnected, path), 0, 0));
            return this;
        }

        private Log Add(OpCode op, ZkRequest request, ErrorCode err, ZkResponse? response, long headerZxid)
        {
            _items.Add(new Arrival(_items.Count, ArrivalKind.Response, new ReplyHeader(++_xid, headerZxid, err), op, request, response, null, 0, 0));
            return this;
        }

        public List<string> Check(params Change[] changes) =>
            new WatchOrder.SessionChecker(new WatchOrder.History(changes.ToList(), Root), Root, [A, B]).Check(_items);

        private static Stat Stat(long mzxid) => new(1, mzxid, 0, 0, 0, 0, 0, 0, 0, 0, 1);
    }

    private static Change Set(string path, long zxid) => new(zxid, path, ChangeKind.DataChanged);

    [Fact]
    public void A_correct_history_has_no_violation()
    {
        var v = new Log().GetData(A, 5).Event(EventType.NodeDataChanged, A).GetData(A, 6)
            .ExistsMissing(B, 6).Event(EventType.NodeCreated, B).Exists(B, 7)
            .Children(1).Event(EventType.NodeChildrenChanged, Root).Children(7, watch: false)
            .Check(Set(A, 6), new Change(7, B, ChangeKind.Created));
        Assert.Empty(v);
    }

    [Fact]
    public void A_response_showing_the_change_before_its_event_is_flagged()
    {
        var v = new Log().GetData(A, 5).GetData(A, 6, watch: false).Event(EventType.NodeDataChanged, A).Check(Set(A, 6));
        Assert.Contains(v, m => m.Contains("has not fired"));
    }

    [Fact]
    public void A_lost_event_is_flagged_by_a_later_read()
    {
        var v = new Log().GetData(A, 5).GetData(A, 9, watch: false).Check(Set(A, 6), Set(A, 9));
        Assert.Contains(v, m => m.Contains("has not fired"));
    }

    [Fact]
    public void A_second_event_for_one_arming_is_flagged()
    {
        var v = new Log().GetData(A, 5).Event(EventType.NodeDataChanged, A).Event(EventType.NodeDataChanged, A).Check(Set(A, 6), Set(A, 7));
        Assert.Contains(v, m => m.Contains("no data watch armed"));
    }

    [Fact]
    public void An_event_before_the_arming_response_is_flagged()
    {
        var v = new Log().Event(EventType.NodeDataChanged, A).GetData(A, 5).Check(Set(A, 6));
        Assert.Contains(v, m => m.Contains("no data watch armed"));
    }

    [Fact]
    public void Events_out_of_zxid_order_are_flagged()
    {
        var v = new Log().GetData(A, 5).GetData(B, 5)
            .Event(EventType.NodeDataChanged, B).Event(EventType.NodeDataChanged, A)
            .Check(Set(A, 6), Set(B, 7));
        Assert.Contains(v, m => m.Contains("out of zxid order"));
    }

    [Fact]
    public void A_wrong_event_type_or_header_zxid_is_flagged()
    {
        Assert.Contains(new Log().GetData(A, 5).Event(EventType.NodeDeleted, A).Check(Set(A, 6)), m => m.Contains("first change after"));
        Assert.Contains(new Log().GetData(A, 5).Event(EventType.NodeDataChanged, A, zxid: 9).Check(Set(A, 6)), m => m.Contains("header zxid"));
        Assert.Empty(new Log().GetData(A, 5).Event(EventType.NodeDataChanged, A, zxid: 6).Check(Set(A, 6)));
    }

    [Fact]
    public void Getdata_on_a_missing_node_arms_nothing_but_exists_does()
    {
        // getData NoNode leaves no watch in ZooKeeper: a NodeCreated afterwards is unsolicited.
        var v = new Log().GetDataMissing(B).Event(EventType.NodeCreated, B).Check(new Change(7, B, ChangeKind.Created));
        Assert.Contains(v, m => m.Contains("no data watch armed"));
        Assert.Empty(new Log().ExistsMissing(B, 5).Event(EventType.NodeCreated, B).Check(new Change(7, B, ChangeKind.Created)));
    }
}
