using Coordination.Core;
using Coordination.Protocol;
using static Coordination.Core.Tests.Harness;

namespace Coordination.Core.Tests;

public class DataTreeTests
{
    [Fact]
    public void FreshTreeMatchesZooKeeper38()
    {
        var tree = new DataTree();
        // Observed on Apache ZooKeeper 3.8.0: stat / , stat /zookeeper, stat /zookeeper/config, mntr.
        Assert.Equal(new Stat(0, 0, 0, 0, 0, -1, 0, 0, 0, 1, 0), tree.Find("/")!.Stat);
        Assert.Equal(new Stat(0, 0, 0, 0, 0, -2, 0, 0, 0, 2, 0), tree.Find("/zookeeper")!.Stat);
        Assert.Equal(new Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), tree.Find("/zookeeper/quota")!.Stat);
        Assert.Equal(new Stat(0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0), tree.Find("/zookeeper/config")!.Stat);
        Assert.Equal(["config", "quota"], tree.Find("/zookeeper")!.Children.Order(StringComparer.Ordinal));
        Assert.Equal(["zookeeper"], tree.Find("/")!.Children);
        Assert.Equal(Acl.ReadAclUnsafe, tree.Find("/zookeeper/config")!.Acl);
        Assert.Equal(Acl.OpenAclUnsafe, tree.Find("/")!.Acl);
        Assert.Equal(Acl.OpenAclUnsafe, tree.Find("/zookeeper")!.Acl);
        Assert.Equal(5, tree.NodeCount);           // zk_znode_count
        Assert.Equal(4, tree.DistinctNodeCount);
        Assert.Equal(44, tree.ApproximateDataSize); // zk_approximate_data_size
        Assert.Equal(0, tree.EphemeralCount);
        Assert.Equal(0, tree.LastZxid);
        Assert.Empty(tree.Sessions);
        Assert.Null(tree.Find("/nope"));
        Assert.Equal(3, tree.CountDescendants("/"));
        Assert.Equal(2, tree.CountDescendants("/zookeeper"));
    }

    [Fact]
    public void CreateSetsEveryStatFieldAndUpdatesParent()
    {
        var h = new Harness { Now = 5000 };
        var r = h.Create("/t", B("hello"));
        Assert.Equal(ErrorCode.Ok, r.Err);
        var z = h.Tree.LastZxid;
        Assert.Equal(4, z); // three createSession txns came first
        var expected = new Stat(z, z, 5000, 5000, 0, 0, 0, 0, 5, 0, z);
        Assert.Equal(expected, h.StatOf("/t"));
        Assert.Equal(new Create2Response("/t", expected), r.Response);
        Assert.Equal([new WatchTrigger("/t", EventType.NodeCreated), new WatchTrigger("/", EventType.NodeChildrenChanged)], r.Triggers);

        var root = h.StatOf("/");
        Assert.Equal(2, root.NumChildren);
        Assert.Equal(0, root.Cversion); // stored 1 create * 2 - 2 children
        Assert.Equal(z, root.Pzxid);
        Assert.Equal(0, root.Mzxid); // mzxid and version of the parent do not change
        Assert.Equal(0, root.Version);
    }

    [Fact]
    public void ParentCversionCountsCreatesAndDeletesAsZooKeeperReportsIt()
    {
        // Sequence run against ZooKeeper 3.8.0: create /t, /t/a, /t/b → cversion 2; delete /t/a → cversion 3;
        // sequential creates then get suffixes 2 and 3.
        var h = new Harness();
        h.Create("/t");
        var zt = h.Tree.LastZxid;
        h.Create("/t/a");
        h.Create("/t/b");
        var zb = h.Tree.LastZxid;
        Assert.Equal(new Stat(zt, zt, h.Now, h.Now, 0, 2, 0, 0, 0, 2, zb), h.StatOf("/t"));
        h.Delete("/t/a");
        var zd = h.Tree.LastZxid;
        var afterDelete = h.StatOf("/t");
        Assert.Equal(3, afterDelete.Cversion);
        Assert.Equal(1, afterDelete.NumChildren);
        Assert.Equal(zd, afterDelete.Pzxid);
        Assert.Equal(zt, afterDelete.Mzxid);
        Assert.Equal("/t/s0000000002", ((Create2Response)h.Create("/t/s", mode: CreateMode.PersistentSequential).Response).Path);
        Assert.Equal("/t/0000000003", ((Create2Response)h.Create("/t/", mode: CreateMode.PersistentSequential).Response).Path);
        Assert.Equal(5, h.StatOf("/t").Cversion);
    }

    [Fact]
    public void CreateResponseBodiesDependOnTheRequestOpCode()
    {
        var h = new Harness();
        Assert.Equal(new PathResponse("/a"), h.Create("/a", op: OpCode.Create).Response);
        Assert.IsType<Create2Response>(h.Create("/b", op: OpCode.Create2).Response);
        Assert.IsType<Create2Response>(h.Create("/c", mode: CreateMode.Container, op: OpCode.CreateContainer).Response);
        Assert.IsType<Create2Response>(h.Create("/d", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 100).Response);
    }

    [Fact]
    public void SetDataChangesOnlyDataFields()
    {
        var h = new Harness { Now = 1000 };
        h.Create("/n", B("a"));
        var created = h.StatOf("/n");
        h.Now = 2000;
        var r = h.SetData("/n", B("xyz"));
        var z = h.Tree.LastZxid;
        var expected = created with { Mzxid = z, Mtime = 2000, Version = 1, DataLength = 3 };
        Assert.Equal(expected, h.StatOf("/n"));
        Assert.Equal(new StatResponse(expected), r.Response);
        Assert.Equal([new WatchTrigger("/n", EventType.NodeDataChanged)], r.Triggers);
        Assert.Equal(B("xyz"), h.Tree.Find("/n")!.Data);
        h.SetData("/n", B("q"), version: 1);
        Assert.Equal(2, h.StatOf("/n").Version);
        Assert.Equal(1, h.StatOf("/n").DataLength);
    }

    [Fact]
    public void NullDataIsNotEmptyData()
    {
        // ZooKeeper keeps a null written by create/setData (getData returns it: length -1), with dataLength 0.
        var h = new Harness(); // its txns go through Txns.Serialize/Deserialize, as the journal and the wire do
        Assert.Equal(ErrorCode.Ok, h.Run(OpCode.Create2, new CreateRequest("/null", null, Acl.OpenAclUnsafe, 0)).Err);
        Assert.Equal(ErrorCode.Ok, h.Run(OpCode.Create2, new CreateRequest("/empty", [], Acl.OpenAclUnsafe, 0)).Err);
        Assert.Null(h.Tree.Find("/null")!.Data);
        Assert.Equal(0, h.StatOf("/null").DataLength);
        Assert.Empty(Assert.IsType<byte[]>(h.Tree.Find("/empty")!.Data));

        Assert.Equal(ErrorCode.Ok, h.Run(OpCode.SetData, new SetDataRequest("/empty", null, -1)).Err);
        Assert.Null(h.Tree.Find("/empty")!.Data);
        Assert.Equal(ErrorCode.Ok, h.SetData("/null", []).Err);
        Assert.Empty(Assert.IsType<byte[]>(h.Tree.Find("/null")!.Data));

        Assert.Equal(ErrorCode.Ok, h.Multi(
            new MultiOp(OpCode.Create, new CreateRequest("/m", null, Acl.OpenAclUnsafe, 0)),
            new MultiOp(OpCode.SetData, new SetDataRequest("/null", null, -1))).Err);
        Assert.Null(h.Tree.Find("/m")!.Data);
        Assert.Null(h.Tree.Find("/null")!.Data);

        // Two replicas that differ only in null vs empty data have different digests.
        var withNull = new Harness();
        var withEmpty = new Harness();
        withNull.Run(OpCode.Create2, new CreateRequest("/n", null, Acl.OpenAclUnsafe, 0));
        withEmpty.Run(OpCode.Create2, new CreateRequest("/n", [], Acl.OpenAclUnsafe, 0));
        Assert.Equal(withNull.StatOf("/n"), withEmpty.StatOf("/n"));
        Assert.NotEqual(withNull.Tree.Digest(), withEmpty.Tree.Digest());
    }

    [Fact]
    public void SetAclChangesOnlyAversionAndAcl()
    {
        var h = new Harness();
        h.Create("/n");
        var before = h.StatOf("/n");
        var r = h.SetAcl("/n", Acl.ReadAclUnsafe);
        Assert.Equal(ErrorCode.Ok, r.Err);
        var expected = before with { Aversion = 1 };
        Assert.Equal(expected, h.StatOf("/n"));
        Assert.Equal(new StatResponse(expected), r.Response);
        Assert.Empty(r.Triggers);
        Assert.Equal(Acl.ReadAclUnsafe, h.Tree.Find("/n")!.Acl);
    }

    [Fact]
    public void TriggersCarryTheAclOfTheirZnodeAsItWasWhenTheChangeApplied()
    {
        var h = new Harness();
        IReadOnlyList<Acl> parentAcl = [new(Perms.Read | Perms.Create | Perms.Delete, Id.Anyone)];
        IReadOnlyList<Acl> childAcl = [new(Perms.All, new Id("digest", "u:x"))];
        h.Create("/p", acl: parentAcl);
        var create = h.Create("/p/c", acl: childAcl);
        Assert.Equal(ErrorCode.Ok, create.Err);
        Assert.Equal(childAcl, create.Triggers[0].Acl!);
        Assert.Equal(parentAcl, create.Triggers[1].Acl!);
        var delete = h.Delete("/p/c");
        Assert.Equal(childAcl, delete.Triggers[0].Acl!);   // the deleted node's
        Assert.Equal(parentAcl, delete.Triggers[1].Acl!);
    }

    [Fact]
    public void DeleteUpdatesParentAndTriggers()
    {
        var h = new Harness();
        h.Create("/p");
        h.Create("/p/c", B("1234"));
        var sizeBefore = h.Tree.ApproximateDataSize;
        var r = h.Delete("/p/c");
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Equal(EmptyResponse.Instance, r.Response);
        Assert.Equal([new WatchTrigger("/p/c", EventType.NodeDeleted), new WatchTrigger("/p", EventType.NodeChildrenChanged)], r.Triggers);
        Assert.Null(h.Tree.Find("/p/c"));
        Assert.Empty(h.Tree.Find("/p")!.Children);
        Assert.Equal(sizeBefore - "/p/c".Length - 4, h.Tree.ApproximateDataSize);
        Assert.Equal(h.Tree.LastZxid, h.StatOf("/p").Pzxid);
    }

    [Fact]
    public void TopLevelDeleteReportsRootAsParent()
    {
        var h = new Harness();
        h.Create("/x");
        var r = h.Delete("/x");
        Assert.Equal(new WatchTrigger("/", EventType.NodeChildrenChanged), r.Triggers[1]);
    }

    [Fact]
    public void EphemeralsAreTrackedPerSessionAndVisibleInStat()
    {
        var h = new Harness();
        h.Create("/e1", mode: CreateMode.Ephemeral, session: S1);
        h.Create("/e2", mode: CreateMode.EphemeralSequential, session: S1);
        h.Create("/e3", mode: CreateMode.Ephemeral, session: S2);
        Assert.Equal(S1, h.StatOf("/e1").EphemeralOwner);
        Assert.Equal(3, h.Tree.EphemeralCount);
        Assert.Equal(2, h.Tree.EphemeralsOf(S1).Count);
        Assert.Contains("/e1", h.Tree.EphemeralsOf(S1));
        Assert.Equal([S1, S2], h.Tree.SessionsWithEphemerals.Order());
        Assert.Empty(h.Tree.EphemeralsOf(S3));
        h.Delete("/e1");
        Assert.Equal(2, h.Tree.EphemeralCount);
        Assert.Single(h.Tree.EphemeralsOf(S1));
    }

    [Fact]
    public void ContainerAndTtlNodesShowZeroEphemeralOwnerLikeZooKeeper()
    {
        var h = new Harness();
        h.Create("/c", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/t", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 5000);
        Assert.Equal(0, h.StatOf("/c").EphemeralOwner);
        Assert.Equal(0, h.StatOf("/t").EphemeralOwner);
        Assert.Equal(EphemeralOwner.Container, h.Tree.Find("/c")!.StoredEphemeralOwner);
        Assert.Equal(EphemeralOwner.ForTtl(5000), h.Tree.Find("/t")!.StoredEphemeralOwner);
        Assert.Equal(["/c"], h.Tree.Containers);
        Assert.Equal(["/t"], h.Tree.TtlNodes);
        Assert.Equal(0, h.Tree.EphemeralCount);
    }

    [Fact]
    public void CloseSessionDeletesItsEphemeralsWithTriggersAndRemovesTheSession()
    {
        var h = new Harness();
        h.Create("/p");
        h.Create("/p/e", mode: CreateMode.Ephemeral, session: S1);
        h.Create("/f", mode: CreateMode.Ephemeral, session: S1);
        h.Create("/g", mode: CreateMode.Ephemeral, session: S2);
        Assert.True(h.Tree.Sessions.ContainsKey(S1));
        var r = h.CloseSession(S1);
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Equal(EmptyResponse.Instance, r.Response);
        Assert.Equal(
            [
                new WatchTrigger("/f", EventType.NodeDeleted), new WatchTrigger("/", EventType.NodeChildrenChanged),
                new WatchTrigger("/p/e", EventType.NodeDeleted), new WatchTrigger("/p", EventType.NodeChildrenChanged),
            ], r.Triggers);
        Assert.Null(h.Tree.Find("/f"));
        Assert.Null(h.Tree.Find("/p/e"));
        Assert.NotNull(h.Tree.Find("/g"));
        Assert.False(h.Tree.Sessions.ContainsKey(S1));
        Assert.True(h.Tree.Sessions.ContainsKey(S2));
        Assert.Empty(h.Tree.EphemeralsOf(S1));
        Assert.Equal(1, h.Tree.EphemeralCount);
        Assert.Equal(h.Tree.LastZxid, h.StatOf("/p").Pzxid);
        Assert.Equal(2, h.StatOf("/p").Cversion); // one create + one delete
    }

    [Fact]
    public void CloseSessionTxnAlsoDeletesEphemeralsItDidNotList()
    {
        var tree = new DataTree();
        tree.Apply(new TxnHeader(7, 0, 1, 10, OpCode.CreateSession), new CreateSessionTxn(30000));
        tree.Apply(new TxnHeader(7, 1, 2, 10, OpCode.Create), new CreateTxn("/a", [], Acl.OpenAclUnsafe, 7, 1));
        tree.Apply(new TxnHeader(7, 2, 3, 10, OpCode.Create), new CreateTxn("/b", [], Acl.OpenAclUnsafe, 7, 2));
        var r = tree.Apply(new TxnHeader(7, 3, 4, 10, OpCode.CloseSession), new CloseSessionTxn(["/b", "/missing"]));
        Assert.Null(tree.Find("/a"));
        Assert.Null(tree.Find("/b"));
        Assert.Equal(4, r.Triggers.Count);
        Assert.Equal("/b", r.Triggers[0].Path);
        Assert.Equal("/a", r.Triggers[2].Path);
    }

    [Fact]
    public void CreateSessionTxnRecordsTimeout()
    {
        var tree = new DataTree();
        var r = tree.Apply(new TxnHeader(42, 0, 1, 10, OpCode.CreateSession), new CreateSessionTxn(12000));
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Equal(12000, tree.Sessions[42]);
        Assert.Equal(1, tree.LastZxid);
    }

    [Fact]
    public void ErrorTxnSetsErrAndLastZxidButChangesNothing()
    {
        var tree = new DataTree();
        var digest = tree.Digest();
        var r = tree.Apply(new TxnHeader(1, 1, 77, 10, OpCode.Create), new ErrorTxn(ErrorCode.NodeExists));
        Assert.Equal(ErrorCode.NodeExists, r.Err);
        Assert.Equal(ErrorCode.NodeExists, r.FirstError);
        Assert.Equal(EmptyResponse.Instance, r.Response);
        Assert.Empty(r.Triggers);
        Assert.Equal(77, tree.LastZxid);
        Assert.Equal(digest, tree.Digest());
    }

    [Fact]
    public void CreateTxnParentCversionIsStoredAsCreateCount()
    {
        var tree = new DataTree();
        tree.Apply(new TxnHeader(1, 1, 10, 10, OpCode.Create), new CreateTxn("/p", [], Acl.OpenAclUnsafe, 0, 7));
        // Root stored cversion is now 7 with 2 children: clients see 7*2-2.
        Assert.Equal(12, tree.Find("/")!.Stat.Cversion);
        tree.Apply(new TxnHeader(1, 1, 11, 10, OpCode.Create), new CreateTxn("/p/c", [], Acl.OpenAclUnsafe, 0, 1));
        Assert.Equal(1, tree.Find("/p")!.Stat.Cversion);
        Assert.Equal(11, tree.Find("/p")!.Stat.Pzxid);
    }

    [Fact]
    public void ApplyOfAnInconsistentTxnChangesNothing()
    {
        var tree = new DataTree();
        Assert.Equal(ErrorCode.NoNode, tree.Apply(new TxnHeader(1, 1, 1, 1, OpCode.Create), new CreateTxn("/a/b", [], Acl.OpenAclUnsafe, 0, 1)).Err);
        Assert.Equal(ErrorCode.NodeExists, tree.Apply(new TxnHeader(1, 1, 2, 1, OpCode.Create), new CreateTxn("/zookeeper", [], Acl.OpenAclUnsafe, 0, 1)).Err);
        Assert.Equal(ErrorCode.NoNode, tree.Apply(new TxnHeader(1, 1, 3, 1, OpCode.Delete), new DeleteTxn("/nope")).Err);
        Assert.Equal(ErrorCode.NoNode, tree.Apply(new TxnHeader(1, 1, 4, 1, OpCode.SetData), new SetDataTxn("/nope", [], 1)).Err);
        Assert.Equal(ErrorCode.NoNode, tree.Apply(new TxnHeader(1, 1, 5, 1, OpCode.SetAcl), new SetAclTxn("/nope", Acl.OpenAclUnsafe, 1)).Err);
        Assert.NotEqual(ErrorCode.Ok, tree.Apply(new TxnHeader(1, 1, 6, 1, OpCode.Delete), new DeleteTxn("/zookeeper")).Err);
        tree.Apply(new TxnHeader(1, 1, 7, 1, OpCode.Create), new CreateTxn("/p", [], Acl.OpenAclUnsafe, 0, 1));
        tree.Apply(new TxnHeader(1, 1, 8, 1, OpCode.Create), new CreateTxn("/p/c", [], Acl.OpenAclUnsafe, 0, 1));
        Assert.Equal(ErrorCode.NotEmpty, tree.Apply(new TxnHeader(1, 1, 9, 1, OpCode.Delete), new DeleteTxn("/p")).Err);
        Assert.NotNull(tree.Find("/p/c"));
        Assert.NotNull(tree.Find("/zookeeper"));
        Assert.Equal(7, tree.NodeCount);
        Assert.Equal(9, tree.LastZxid);
    }

    [Fact]
    public void SetDataOnRootCountsRootDataTwiceInApproximateSize()
    {
        var tree = new DataTree();
        tree.Apply(new TxnHeader(1, 1, 1, 1, OpCode.SetData), new SetDataTxn("/", [1, 2, 3], 1));
        Assert.Equal(44 + 6, tree.ApproximateDataSize);
    }

    [Fact]
    public void ApproximateDataSizeTracksPathsAndData()
    {
        var h = new Harness();
        var start = h.Tree.ApproximateDataSize;
        h.Create("/abc", B("12345"));
        Assert.Equal(start + 4 + 5, h.Tree.ApproximateDataSize);
        h.SetData("/abc", B("1"));
        Assert.Equal(start + 4 + 1, h.Tree.ApproximateDataSize);
        h.Delete("/abc");
        Assert.Equal(start, h.Tree.ApproximateDataSize);
    }

    [Fact]
    public void CountDescendantsCountsTheWholeSubtree()
    {
        var h = new Harness();
        h.Create("/a");
        h.Create("/a/b");
        h.Create("/a/b/c");
        h.Create("/a/d");
        h.Create("/ab");
        Assert.Equal(3, h.Tree.CountDescendants("/a"));
        Assert.Equal(1, h.Tree.CountDescendants("/a/b"));
        Assert.Equal(0, h.Tree.CountDescendants("/a/b/c"));
        Assert.Equal(0, h.Tree.CountDescendants("/missing"));
        Assert.Equal(3 + 5, h.Tree.CountDescendants("/"));
        Assert.Equal(4 + 5 + 1, h.Tree.NodeCount);
    }

    [Fact]
    public void FindReapableFollowsContainerManagerRules()
    {
        var h = new Harness { Now = 1000 };
        h.Create("/c-new", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/c-used", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/c-used/x");
        h.Delete("/c-used/x");
        h.Create("/c-full", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/c-full/x");
        h.Create("/ttl", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 500);
        h.Create("/ttl-parent", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 500);
        h.Create("/ttl-parent/x");
        h.Create("/plain");
        Assert.Equal(["/c-used"], h.Tree.FindReapable(1500));       // 1500 - 1000 = 500 is not > 500
        Assert.Equal(["/c-used", "/ttl"], h.Tree.FindReapable(1501));
        h.Now = 1400;
        h.SetData("/ttl", B("touch")); // mtime moves
        Assert.Equal(["/c-used"], h.Tree.FindReapable(1501));
        Assert.Equal(["/c-used", "/ttl"], h.Tree.FindReapable(1901));
    }

    [Fact]
    public void ChildrenViewIsEmptyForLeaves()
    {
        var h = new Harness();
        h.Create("/leaf");
        Assert.Empty(h.Tree.Find("/leaf")!.Children);
        Assert.Empty(h.Tree.Find("/leaf")!.Data!);
    }

    [Fact]
    public void AclListsAreSharedAndReleased()
    {
        var h = new Harness();
        var baseline = h.Tree.AclCount; // open + read-only
        Assert.Equal(2, baseline);
        for (var i = 0; i < 10; i++) h.Create("/n" + i);
        Assert.Equal(baseline, h.Tree.AclCount);
        Assert.Same(h.Tree.Find("/n1")!.Acl, h.Tree.Find("/n2")!.Acl);
        var custom = new[] { new Acl(Perms.Read | Perms.Write, new Id("digest", "u:x")) };
        h.Create("/c1", acl: custom);
        h.Create("/c2", acl: custom);
        Assert.Equal(baseline + 1, h.Tree.AclCount);
        h.Delete("/c1");
        Assert.Equal(baseline + 1, h.Tree.AclCount);
        h.SetAcl("/c2", Acl.OpenAclUnsafe, auth: Digest("u:pw"));
        // /c2's ACL has no ADMIN for anyone but super, so the setACL above fails; use super.
        h.SetAcl("/c2", Acl.OpenAclUnsafe, auth: new AuthContext([new Id("super", "")]));
        Assert.Equal(baseline, h.Tree.AclCount);
    }
}

public class QuotaTests
{
    private static string Text(Harness h, string path) => System.Text.Encoding.UTF8.GetString(h.Tree.Find(path)!.Data!);

    private static Harness WithQuota()
    {
        // What zkCli "setquota -n 5 /q1" does, after create /q1 "" and create /q1/a "xyz".
        var h = new Harness();
        h.Create("/q1");
        h.Create("/q1/a", B("xyz"));
        h.Create("/zookeeper/quota/q1");
        h.Create("/zookeeper/quota/q1/zookeeper_limits", B("count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"));
        h.Create("/zookeeper/quota/q1/zookeeper_stats", B("count=0,bytes=0"));
        return h;
    }

    [Fact]
    public void StatsFollowCreatesSetDataAndDeletesLikeZooKeeper()
    {
        // Sequence and outputs observed on ZooKeeper 3.8.0 with zkCli.
        var h = WithQuota();
        const string stats = "/zookeeper/quota/q1/zookeeper_stats";
        Assert.Equal("count=2,bytes=3", Text(h, stats));
        Assert.Equal(["/q1"], h.Tree.QuotaRoots);
        var created = h.StatOf(stats);
        h.Create("/q1/b", B("abcd"));
        Assert.Equal("count=3,bytes=7", Text(h, stats));
        h.SetData("/q1/a", B("1234567"));
        Assert.Equal("count=3,bytes=11", Text(h, stats));
        h.Delete("/q1/b");
        Assert.Equal("count=2,bytes=7", Text(h, stats));
        // The stats node's data changes, its version and mzxid do not (dataLength does).
        var now = h.StatOf(stats);
        Assert.Equal(created with { DataLength = 15 }, now);
        Assert.Equal(0, now.Version);
        // Nodes outside the quota subtree do not count.
        h.Create("/q10", B("zzzz"));
        h.Create("/other", B("zzzz"));
        Assert.Equal("count=2,bytes=7", Text(h, stats));
    }

    [Fact]
    public void DeepestQuotaWinsAndKeysAreKept()
    {
        var h = WithQuota();
        h.Create("/q1/a/deep");
        h.Create("/zookeeper/quota/q1/a", acl: null);
        h.Create("/zookeeper/quota/q1/a/zookeeper_limits", B("count=-1,bytes=100"));
        h.Create("/zookeeper/quota/q1/a/zookeeper_stats", B(""));
        Assert.Equal("count=2,bytes=3", Text(h, "/zookeeper/quota/q1/a/zookeeper_stats"));
        h.Create("/q1/a/deep/x", B("12"));
        Assert.Equal("count=3,bytes=5", Text(h, "/zookeeper/quota/q1/a/zookeeper_stats"));
        Assert.Equal("count=3,bytes=3", Text(h, "/zookeeper/quota/q1/zookeeper_stats")); // only the deepest root is updated
        h.SetData("/zookeeper/quota/q1/zookeeper_stats", B("count=1,bytes=1=;countHardLimit=9"));
        h.Create("/q1/c", B("abc"));
        Assert.Equal("count=2,bytes=4=;countHardLimit=9", Text(h, "/zookeeper/quota/q1/zookeeper_stats"));
    }

    [Fact]
    public void DeletingTheLimitNodeStopsTracking()
    {
        var h = WithQuota();
        h.Delete("/zookeeper/quota/q1/zookeeper_limits");
        Assert.Empty(h.Tree.QuotaRoots);
        h.Create("/q1/b", B("abcd"));
        Assert.Equal("count=2,bytes=3", Text(h, "/zookeeper/quota/q1/zookeeper_stats"));
    }

    [Fact]
    public void QuotaRootsSurviveASnapshot()
    {
        var h = WithQuota();
        using var ms = new MemoryStream();
        h.Tree.WriteSnapshot(ms);
        ms.Position = 0;
        var copy = DataTree.ReadSnapshot(ms);
        SnapshotTests.AssertSameTree(h.Tree, copy);
        Assert.Equal(["/q1"], copy.QuotaRoots);
        copy.Apply(new TxnHeader(Harness.S1, 1, copy.LastZxid + 1, 5, OpCode.Create), new CreateTxn("/q1/n", B("12345"), Acl.OpenAclUnsafe, 0, 5));
        Assert.Equal("count=3,bytes=8", System.Text.Encoding.UTF8.GetString(copy.Find("/zookeeper/quota/q1/zookeeper_stats")!.Data!));
    }

    [Fact]
    public void ApproximateDataSizeStaysConsistentWithQuotaUpdates()
    {
        var h = WithQuota();
        h.Create("/q1/b", B("abcd"));
        using var ms = new MemoryStream();
        h.Tree.WriteSnapshot(ms);
        ms.Position = 0;
        Assert.Equal(h.Tree.ApproximateDataSize, DataTree.ReadSnapshot(ms).ApproximateDataSize);
    }
}
