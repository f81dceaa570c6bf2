using Coordination.Core;
using Coordination.Protocol;
using static Coordination.Core.Tests.Harness;

namespace Coordination.Core.Tests;

/// <summary>Validation order and error codes of PrepRequestProcessor. Cases marked "ZK" were run against
/// Apache ZooKeeper 3.8.0 and the codes copied from its replies.</summary>
public class PrepTests
{
    private static ErrorCode ErrOf((TxnHeader Header, Txn Txn) prepared) => prepared.Txn is ErrorTxn e ? e.Err : ErrorCode.Ok;

    private static readonly IReadOnlyList<Acl> NoCreate = [new(Perms.All & ~Perms.Create, Id.Anyone)];
    private static readonly IReadOnlyList<Acl> NoDelete = [new(Perms.All & ~Perms.Delete, Id.Anyone)];

    [Theory]
    [InlineData(7)]
    [InlineData(-1)]
    [InlineData(100)]
    public void CreateWithInvalidFlagsIsBadArguments(int flags)
    {
        var h = new Harness();
        Assert.Equal(ErrorCode.BadArguments, h.Run(OpCode.Create, new CreateRequest("/x", [], Acl.OpenAclUnsafe, flags)).Err);
    }

    [Fact]
    public void TtlValidation()
    {
        var h = new Harness();
        // ZK: create (op 1) with a TTL mode has no ttl field → BadArguments.
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.PersistentWithTtl, op: OpCode.Create).Err);
        // ZK: createTTL ttl 0, ttl too big, persistent mode with ttl ≥ 0 → BadArguments.
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 0).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: -5).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: EphemeralOwner.MaxTtl + 1).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.Persistent, op: OpCode.CreateTtl, ttl: 100).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.Persistent, op: OpCode.CreateTtl, ttl: -1).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", mode: CreateMode.Ephemeral, op: OpCode.CreateTtl, ttl: 100).Err);
        Assert.Null(h.Tree.Find("/x"));

        Assert.Equal(ErrorCode.Ok, h.Create("/max", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: EphemeralOwner.MaxTtl).Err);
        Assert.Equal(EphemeralOwner.ForTtl(EphemeralOwner.MaxTtl), h.Tree.Find("/max")!.StoredEphemeralOwner);
        var seq = h.Create("/ttlseq", mode: CreateMode.PersistentSequentialWithTtl, op: OpCode.CreateTtl, ttl: 1000);
        Assert.Equal(ErrorCode.Ok, seq.Err);
        Assert.Matches("^/ttlseq\\d{10}$", ((Create2Response)seq.Response).Path);
    }

    [Fact]
    public void DataTooLargeIsBadArguments()
    {
        var h = new Harness();
        h.Prep.MaxDataLength = 10;
        Assert.Equal(ErrorCode.BadArguments, h.Create("/x", new byte[11]).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/x", new byte[10]).Err);
        Assert.Equal(ErrorCode.BadArguments, h.SetData("/x", new byte[11]).Err);
        Assert.Equal(ErrorCode.Ok, h.SetData("/x", new byte[10]).Err);
        Assert.Equal(RequestPreprocessor.DefaultMaxDataLength, new RequestPreprocessor(new DataTree(), null, 0).MaxDataLength);
    }

    [Fact]
    public void CreatePathErrorsInZooKeeperOrder()
    {
        var h = new Harness();
        h.Create("/t");
        Assert.Equal(ErrorCode.BadArguments, h.Create("abc").Err);          // ZK: no slash
        Assert.Equal(ErrorCode.BadArguments, h.Create("/a\0b").Err);
        Assert.Equal(ErrorCode.NoNode, h.Create("a/b").Err);               // ZK: parent "a" does not exist
        Assert.Equal(ErrorCode.NoNode, h.Create("/nonexist/").Err);        // ZK: parent lookup precedes path validation
        Assert.Equal(ErrorCode.BadArguments, h.Create("/t/").Err);         // ZK
        Assert.Equal(ErrorCode.BadArguments, h.Create("/t/.").Err);
        Assert.Equal(ErrorCode.NodeExists, h.Create("/").Err);             // ZK
        Assert.Equal(ErrorCode.NodeExists, h.Create("/zookeeper").Err);    // ZK
        Assert.Equal(ErrorCode.NodeExists, h.Create("/t").Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/zookeeper/x").Err);          // ZK: allowed
    }

    [Fact]
    public void InvalidAclIsCheckedBeforeTheParent()
    {
        var h = new Harness();
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: []).Err);            // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/nonexist/x", acl: []).Err);   // ZK: before NoNode
        Assert.Equal(ErrorCode.InvalidAcl, h.Run(OpCode.Create, new CreateRequest("/x", [], null, 0)).Err);
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, Id.AuthIds)]).Err); // ZK: no auth ids
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("digest", "user"))]).Err);  // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("digest", "user:"))]).Err); // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("ip", "1.2.3"))]).Err);     // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("ip", "1.2.3.4/33"))]).Err); // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("world", "foo"))]).Err);    // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("super", ""))]).Err);       // ZK
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/x", acl: [new(Perms.All, new Id("foo", "bar"))]).Err);      // ZK
        Assert.Equal(ErrorCode.Ok, h.Create("/d", acl: [new(Perms.All, new Id("digest", ":hash"))]).Err);        // ZK: valid
        Assert.Equal(ErrorCode.Ok, h.Create("/i", acl: [new(Perms.All, new Id("ip", "10.0.0.0/8"))]).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/z", acl: [new((Perms)0, Id.Anyone)]).Err);                         // ZK: perms 0 allowed
        Assert.Equal(ErrorCode.Ok, h.Create("/f", acl: [new((Perms)255, Id.Anyone)]).Err);                       // ZK: stored as is
        Assert.Equal((Perms)255, h.Tree.Find("/f")!.Acl[0].Perms);
    }

    [Fact]
    public void DuplicateAclEntriesAreRemoved()
    {
        var h = new Harness();
        h.Create("/x", acl: [new(Perms.All, Id.Anyone), new(Perms.All, Id.Anyone), new(Perms.Read, Id.Anyone)]);
        Assert.Equal([new Acl(Perms.All, Id.Anyone), new Acl(Perms.Read, Id.Anyone)], h.Tree.Find("/x")!.Acl);
    }

    [Fact]
    public void AuthAclExpandsToDigestIds()
    {
        var h = new Harness();
        var alice = new AuthContext([new Id("ip", "127.0.0.1"), new Id("digest", Acls.Digest("alice:secret"))]);
        // ZK: digest auth alice:secret, create with CREATOR_ALL_ACL → [digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=, 31].
        Assert.Equal(ErrorCode.Ok, h.Create("/auth", acl: Acl.CreatorAllAcl, auth: alice).Err);
        Assert.Equal([new Acl(Perms.All, new Id("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="))], h.Tree.Find("/auth")!.Acl);
        // ZK: [auth:ignored, world:anyone READ] → [digest alice ALL, world READ].
        Assert.Equal(ErrorCode.Ok, h.Create("/auth2", acl: [new(Perms.All, new Id("auth", "ignored")), new(Perms.Read, Id.Anyone)], auth: alice).Err);
        Assert.Equal([new Acl(Perms.All, new Id("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")), new Acl(Perms.Read, Id.Anyone)], h.Tree.Find("/auth2")!.Acl);
        // An ip id alone is not an "authenticated" id.
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/auth3", acl: Acl.CreatorAllAcl, auth: Ip("127.0.0.1")).Err);
    }

    [Fact]
    public void NoAuthOnParentComesBeforePathValidationAndExistence()
    {
        var h = new Harness();
        h.Create("/locked", acl: NoCreate);
        Assert.Equal(ErrorCode.NoAuth, h.Create("/locked/x").Err);
        Assert.Equal(ErrorCode.NoAuth, h.Create("/locked/").Err); // ACL check precedes validatePath
        Assert.Equal(ErrorCode.Ok, h.Create("/locked/x", auth: new AuthContext([new Id("super", "")])).Err);
        Assert.Equal(ErrorCode.NoAuth, h.Create("/locked/x").Err); // NoAuth even though it exists
    }

    [Fact]
    public void EphemeralParentRules()
    {
        var h = new Harness();
        h.Create("/eph", mode: CreateMode.Ephemeral);
        Assert.Equal(ErrorCode.NoChildrenForEphemerals, h.Create("/eph/c").Err);  // ZK
        Assert.Equal(ErrorCode.NodeExists, h.Create("/eph").Err);                 // ZK
        h.Create("/cont", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/ttl", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 100000);
        Assert.Equal(ErrorCode.Ok, h.Create("/cont/c").Err);   // ZK
        Assert.Equal(ErrorCode.Ok, h.Create("/ttl/c").Err);    // ZK
    }

    [Fact]
    public void NodeTypeFollowsTheOpCodeAsZooKeeperApplyDoes()
    {
        var h = new Harness();
        h.Create("/e", mode: CreateMode.Ephemeral, session: S2);
        Assert.Equal(S2, h.Tree.Find("/e")!.StoredEphemeralOwner);
        h.Create("/c0", mode: CreateMode.Persistent, op: OpCode.CreateContainer);
        Assert.Equal(EphemeralOwner.Container, h.Tree.Find("/c0")!.StoredEphemeralOwner);
        h.Create("/c2", mode: CreateMode.Container, op: OpCode.Create2);
        Assert.Equal(0, h.Tree.Find("/c2")!.StoredEphemeralOwner);
    }

    [Theory]
    [InlineData(0, "0000000000")]
    [InlineData(42, "0000000042")]
    [InlineData(int.MaxValue, "2147483647")]
    [InlineData(-1, "-000000001")]
    [InlineData(int.MinValue, "-2147483648")]
    public void SequenceSuffixIsJavaPercent010d(int cversion, string expected) =>
        Assert.Equal(expected, RequestPreprocessor.FormatSequence(cversion));

    [Fact]
    public void SequentialNamesUseTheParentsCreateCount()
    {
        var h = new Harness();
        h.Create("/q");
        string Seq(string prefix, CreateMode mode = CreateMode.PersistentSequential) => ((Create2Response)h.Create(prefix, mode: mode).Response).Path;
        Assert.Equal("/q/n0000000000", Seq("/q/n"));
        Assert.Equal("/q/n0000000001", Seq("/q/n"));
        h.Create("/q/plain");
        Assert.Equal("/q/m0000000003", Seq("/q/m", CreateMode.EphemeralSequential));
        h.Delete("/q/n0000000000");
        h.Delete("/q/n0000000001");
        Assert.Equal("/q/n0000000004", Seq("/q/n")); // deletes do not reuse numbers
        Assert.Equal("/q/0000000005", Seq("/q/"));
        // A failed create does not consume a number.
        Assert.Equal(ErrorCode.InvalidAcl, h.Create("/q/x", mode: CreateMode.PersistentSequential, acl: []).Err);
        Assert.Equal("/q/n0000000006", Seq("/q/n"));
    }

    [Fact]
    public void SequentialNameThatExistsIsNodeExists()
    {
        var h = new Harness();
        h.Create("/q");
        h.Create("/q/n0000000001"); // the parent's create count is now 1
        Assert.Equal(ErrorCode.NodeExists, h.Create("/q/n", mode: CreateMode.PersistentSequential).Err);
        Assert.Equal(ErrorCode.NodeExists, h.Create("/q/n", mode: CreateMode.PersistentSequential).Err); // stuck, as in ZooKeeper
        Assert.Equal("/q/m0000000001", ((Create2Response)h.Create("/q/m", mode: CreateMode.PersistentSequential).Response).Path);
        Assert.Equal("/q/n0000000002", ((Create2Response)h.Create("/q/n", mode: CreateMode.PersistentSequential).Response).Path);
    }

    [Fact]
    public void DeleteErrorsInZooKeeperOrder()
    {
        var h = new Harness();
        h.Create("/t");
        h.Create("/t/a");
        foreach (var special in new[] { "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config" })
            Assert.Equal(ErrorCode.BadArguments, h.Delete(special).Err);     // ZK
        Assert.Equal(ErrorCode.BadArguments, h.Delete("abc").Err);           // ZK
        Assert.Equal(ErrorCode.NoNode, h.Delete("/nonexist").Err);           // ZK
        Assert.Equal(ErrorCode.NoNode, h.Delete("/nonexist/a").Err);         // ZK
        Assert.Equal(ErrorCode.NoNode, h.Delete("/t/").Err);                 // ZK: no path validation on delete
        Assert.Equal(ErrorCode.BadVersion, h.Delete("/t", 5).Err);           // ZK: version before NotEmpty
        Assert.Equal(ErrorCode.NotEmpty, h.Delete("/t").Err);                // ZK
        Assert.Equal(ErrorCode.BadVersion, h.Delete("/t/a", 1).Err);
        Assert.Equal(ErrorCode.Ok, h.Delete("/t/a", 0).Err);
        Assert.Equal(ErrorCode.Ok, h.Delete("/t").Err);
    }

    [Fact]
    public void DeleteNeedsDeleteOnTheParentAndChecksItBeforeTheNode()
    {
        var h = new Harness();
        h.Create("/p", acl: NoDelete);
        h.Create("/p/c");
        Assert.Equal(ErrorCode.NoAuth, h.Delete("/p/c").Err);
        Assert.Equal(ErrorCode.NoAuth, h.Delete("/p/missing").Err);
        // The node's own ACL does not matter for delete.
        h.Create("/q");
        h.Create("/q/c", acl: [new(Perms.Read, Id.Anyone)]);
        Assert.Equal(ErrorCode.Ok, h.Delete("/q/c").Err);
    }

    [Fact]
    public void SetDataErrors()
    {
        var h = new Harness();
        h.Create("/t");
        Assert.Equal(ErrorCode.BadArguments, h.SetData("/t/", B("x")).Err);       // ZK
        Assert.Equal(ErrorCode.BadArguments, h.SetData("t", B("x")).Err);
        Assert.Equal(ErrorCode.NoNode, h.SetData("/nonexist", B("x")).Err);       // ZK
        Assert.Equal(ErrorCode.BadVersion, h.SetData("/t", B("x"), 3).Err);       // ZK
        Assert.Equal(ErrorCode.NoAuth, h.SetData("/zookeeper/config", B("x")).Err); // ZK
        h.Create("/ro", acl: [new(Perms.All & ~Perms.Write, Id.Anyone)]);
        Assert.Equal(ErrorCode.NoAuth, h.SetData("/ro", B("x"), 7).Err);          // ACL before version
        Assert.Equal(ErrorCode.Ok, h.SetData("/t", B("xyz"), 0).Err);
    }

    [Fact]
    public void SetDataVersionWrapsLikeJavaInt()
    {
        var h = new Harness();
        h.Create("/v");
        // Move the node to version int.MaxValue with a hand-made txn, then let Prep increment it.
        h.Apply((new TxnHeader(S1, 0, h.Prep.NextZxid, h.Now, OpCode.SetData), new SetDataTxn("/v", [], int.MaxValue)));
        Assert.Equal(ErrorCode.Ok, h.SetData("/v", B("a"), int.MaxValue).Err);
        Assert.Equal(int.MinValue, h.StatOf("/v").Version);
        Assert.Equal(ErrorCode.Ok, h.SetData("/v", B("b"), int.MinValue).Err);
        Assert.Equal(int.MinValue + 1, h.StatOf("/v").Version);
    }

    [Fact]
    public void SetAclErrors()
    {
        var h = new Harness();
        h.Create("/t");
        Assert.Equal(ErrorCode.InvalidAcl, h.SetAcl("/nonexist", []).Err);                // ZK: InvalidACL first
        Assert.Equal(ErrorCode.InvalidAcl, h.SetAcl("/nonexist", null).Err);
        Assert.Equal(ErrorCode.BadArguments, h.SetAcl("/t/", Acl.OpenAclUnsafe).Err);
        Assert.Equal(ErrorCode.NoNode, h.SetAcl("/nonexist", Acl.OpenAclUnsafe).Err);      // ZK
        Assert.Equal(ErrorCode.BadVersion, h.SetAcl("/t", Acl.OpenAclUnsafe, 3).Err);      // ZK
        Assert.Equal(ErrorCode.Ok, h.SetAcl("/t", Acl.OpenAclUnsafe, 0).Err);              // ZK: aversion 1
        Assert.Equal(1, h.StatOf("/t").Aversion);
        Assert.Equal(ErrorCode.Ok, h.SetAcl("/t", [new(Perms.All & ~Perms.Admin, Id.Anyone)], 1).Err);
        Assert.Equal(ErrorCode.NoAuth, h.SetAcl("/t", Acl.OpenAclUnsafe).Err);
        Assert.Equal(ErrorCode.NoAuth, h.SetAcl("/zookeeper/config", Acl.OpenAclUnsafe).Err);
        var super = new AuthContext([new Id("super", "")]);
        Assert.Equal(ErrorCode.Ok, h.SetAcl("/zookeeper/config", Acl.OpenAclUnsafe, -1, auth: super).Err);
        Assert.Equal(0, h.StatOf("/zookeeper/config").Aversion); // -1 + 1
    }

    [Fact]
    public void CheckNeedsReadAndMatchesVersion()
    {
        var h = new Harness();
        h.Create("/c");
        h.SetData("/c", B("1"));
        var ok = h.Check("/c", 1);
        Assert.Equal(ErrorCode.Ok, ok.Err);
        Assert.Equal(EmptyResponse.Instance, ok.Response);
        Assert.Equal(ErrorCode.Ok, h.Check("/c", -1).Err);
        Assert.Equal(ErrorCode.BadVersion, h.Check("/c", 0).Err);
        Assert.Equal(ErrorCode.NoNode, h.Check("/missing", 0).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Check("/c/", 0).Err);
        h.Create("/noread", acl: [new(Perms.All & ~Perms.Read, Id.Anyone)]);
        Assert.Equal(ErrorCode.NoAuth, h.Check("/noread", 0).Err);
        var prepared = h.Prepare(OpCode.Check, new PathVersionRequest("/c", 1));
        Assert.Equal(new CheckVersionTxn("/c", 2), prepared.Txn); // ZooKeeper records the incremented version
    }

    [Fact]
    public void EveryPermissionIsCheckedOnTheRightNode()
    {
        // create: CREATE on parent; delete: DELETE on parent; setData: WRITE; setACL: ADMIN; check: READ.
        var cases = new (Perms Perm, Func<Harness, AuthContext, ErrorCode> Op, bool OnParent)[]
        {
            (Perms.Create, (h, a) => h.Create("/n/new", auth: a).Err, true),
            (Perms.Delete, (h, a) => h.Delete("/n/child", auth: a).Err, true),
            (Perms.Write, (h, a) => h.SetData("/n", B("x"), auth: a).Err, false),
            (Perms.Admin, (h, a) => h.SetAcl("/n", Acl.OpenAclUnsafe, auth: a).Err, false),
            (Perms.Read, (h, a) => h.Check("/n", -1, auth: a).Err, false),
        };
        var user = Digest("bob:pw");
        var userId = user.Ids[0];
        foreach (var (perm, op, _) in cases)
        {
            // Only this permission, for bob: allowed for bob, denied for anyone else.
            var h = new Harness();
            h.Create("/n", acl: [new(perm, userId)]);
            h.Create("/n/child", auth: new AuthContext([new Id("super", "")]));
            Assert.Equal(ErrorCode.NoAuth, op(h, AuthContext.Anonymous));
            Assert.Equal(ErrorCode.NoAuth, op(h, Digest("eve:pw")));
            Assert.Equal(ErrorCode.Ok, op(h, user));

            // Everything but this permission: denied even for bob.
            var h2 = new Harness();
            h2.Create("/n", acl: [new(Perms.All & ~perm, userId)]);
            h2.Create("/n/child", auth: new AuthContext([new Id("super", "")]));
            Assert.Equal(ErrorCode.NoAuth, op(h2, user));
        }
    }

    [Fact]
    public void SuperDigestGivenToThePreprocessorActsAsSuper()
    {
        var superDigest = Acls.Digest("super:secret");
        var h = new Harness(superDigest);
        var asDigestOnly = new AuthContext([new Id("digest", superDigest)]);
        Assert.Equal(ErrorCode.Ok, h.SetData("/zookeeper/config", B("x"), auth: asDigestOnly).Err);
        Assert.Equal(ErrorCode.NoAuth, h.SetData("/zookeeper/config", B("y"), auth: Digest("super:wrong")).Err);
    }

    [Fact]
    public void ZxidsIncreaseByOnePerPreparedTxnAndKeepTheEpoch()
    {
        var epoch = 5L << 32;
        var tree = new DataTree();
        var prep = new RequestPreprocessor(tree, null, epoch | 7) { CheckSessions = false };
        Assert.Equal(epoch | 8, prep.NextZxid);
        var a = prep.Prepare(1, 10, OpCode.Create, new CreateRequest("/a", [], Acl.OpenAclUnsafe, 0), AuthContext.Anonymous, 123);
        var b = prep.Prepare(1, 11, OpCode.Delete, new PathVersionRequest("/nonexistent", -1), AuthContext.Anonymous, 124);
        var c = prep.PrepareCreateSession(9, 1000, 125);
        Assert.Equal(new TxnHeader(1, 10, epoch | 8, 123, OpCode.Create), a.Header);
        Assert.Equal(new TxnHeader(1, 11, epoch | 9, 124, OpCode.Delete), b.Header); // errors keep the request's op code
        Assert.Equal(new ErrorTxn(ErrorCode.NoNode), b.Txn);
        Assert.Equal(new TxnHeader(9, 0, epoch | 10, 125, OpCode.CreateSession), c.Header);
        Assert.Equal(new CreateSessionTxn(1000), c.Txn);
        Assert.Equal(epoch | 11, prep.NextZxid);
        var applied = tree.Apply(b.Header, b.Txn);
        Assert.Equal(ErrorCode.NoNode, applied.Err);
        Assert.Equal(epoch | 9, tree.LastZxid);
    }

    [Fact]
    public void UnsupportedOpsAndMismatchedRequests()
    {
        var h = new Harness();
        Assert.Equal(ErrorCode.Unimplemented, ErrOf(h.Prepare(OpCode.GetData, new PathWatchRequest("/", false))));
        Assert.Equal(ErrorCode.MarshallingError, ErrOf(h.Prepare(OpCode.Create, new PathRequest("/x"))));
        Assert.Equal(ErrorCode.MarshallingError, ErrOf(h.Prepare(OpCode.Multi, new PathRequest("/x"))));
    }

    // ---------------------------------------------------------------- sessions

    [Fact]
    public void WritesFromALocalSessionPassButItsEphemeralsWaitForItsUpgrade()
    {
        // Local sessions (ZooKeeper's LeaderSessionTracker.checkSession): a session the tree does not know but that may
        // be a member's local session writes; an ephemeral needs a global session (EphemeralOnLocalSession until then).
        const long local = 0x0200000000000009, unknown = 0x0300000000000001;
        var h = new Harness(isLocalSession: id => id == local);
        Assert.Equal(ErrorCode.Ok, h.Create("/p", session: local).Err);
        Assert.Equal(ErrorCode.Ok, h.SetData("/p", [1], session: local).Err);
        Assert.Equal(ErrorCode.EphemeralOnLocalSession, h.Create("/e", mode: CreateMode.Ephemeral, session: local).Err);
        Assert.Equal(ErrorCode.EphemeralOnLocalSession, h.Run(OpCode.Multi, new MultiRequest([MCreate("/m"), MCreate("/me", CreateMode.EphemeralSequential)]), local).FirstError);
        Assert.Null(h.Tree.Find("/m"));
        Assert.Equal(ErrorCode.SessionExpired, h.Create("/x", session: unknown).Err);

        h.Apply(h.Prep.PrepareCreateSession(local, 5000, h.Now));   // the upgrade
        Assert.Equal(ErrorCode.Ok, h.Create("/e", mode: CreateMode.Ephemeral, session: local).Err);
        Assert.Equal(local, h.Tree.Find("/e")!.Stat.EphemeralOwner);
    }

    [Fact]
    public void WritesFromUnknownOrClosingSessionsAreSessionExpired()
    {
        var h = new Harness();
        const long unknown = 0x0200000000000009;
        Assert.Equal(ErrorCode.SessionExpired, h.Create("/x", session: unknown).Err);

        // Created by a prepared (not yet applied) createSession: already usable.
        var created = h.Prep.PrepareCreateSession(unknown, 5000, h.Now);
        var create = h.Prepare(OpCode.Create, new CreateRequest("/x", [], Acl.OpenAclUnsafe, (int)CreateMode.Ephemeral), unknown);
        Assert.IsType<CreateTxn>(create.Txn);
        h.Apply(created);
        h.Apply(create);

        // Closing (prepared, not applied): further writes fail, including an ephemeral create.
        var close = h.Prep.PrepareCloseSession(unknown, 1, h.Now);
        Assert.Equal(ErrorCode.SessionExpired, ErrOf(h.Prepare(OpCode.Create, new CreateRequest("/y", [], Acl.OpenAclUnsafe, (int)CreateMode.Ephemeral), unknown)));
        Assert.Equal(ErrorCode.SessionExpired, ErrOf(h.Prepare(OpCode.SetData, new SetDataRequest("/x", [], -1), unknown)));
        h.Apply(close);
        Assert.Equal(ErrorCode.SessionExpired, h.SetData("/zookeeper", [], session: unknown).Err);
        Assert.Null(h.Tree.Find("/x"));
        Assert.Null(h.Tree.Find("/y"));

        // Multi: each op reports it, as ZooKeeper's per-op checkSession does.
        var multi = h.Run(OpCode.Multi, new MultiRequest([MCreate("/m")]), unknown);
        Assert.Equal(ErrorCode.SessionExpired, multi.FirstError);

        h.Prep.CheckSessions = false;
        Assert.Equal(ErrorCode.Ok, h.Create("/z", session: unknown).Err);
    }

    [Fact]
    public void CloseSessionIncludesOutstandingEphemeralsAndSkipsOnesBeingDeleted()
    {
        var h = new Harness();
        h.Create("/kept", mode: CreateMode.Ephemeral, session: S1);
        h.Create("/going", mode: CreateMode.Ephemeral, session: S1);
        h.Create("/other", mode: CreateMode.Ephemeral, session: S2);
        var pendingCreate = h.Prepare(OpCode.Create, new CreateRequest("/pending", [], Acl.OpenAclUnsafe, (int)CreateMode.Ephemeral), S1);
        var pendingDelete = h.Prepare(OpCode.Delete, new PathVersionRequest("/going", -1), S1);
        var close = h.Prep.PrepareCloseSession(S1, 99, h.Now);
        Assert.Equal(new TxnHeader(S1, 99, pendingDelete.Header.Zxid + 1, h.Now, OpCode.CloseSession), close.Header);
        Assert.Equal(["/kept", "/pending"], ((CloseSessionTxn)close.Txn).EphemeralPaths);
        h.Apply(pendingCreate);
        h.Apply(pendingDelete);
        var r = h.Apply(close);
        Assert.Null(h.Tree.Find("/kept"));
        Assert.Null(h.Tree.Find("/pending"));
        Assert.Null(h.Tree.Find("/going"));
        Assert.NotNull(h.Tree.Find("/other"));
        Assert.Equal(4, r.Triggers.Count);
        Assert.Equal(0, h.Prep.OutstandingChanges);
        // The same path can be created again right away, by another session.
        Assert.Equal(ErrorCode.Ok, h.Create("/kept", mode: CreateMode.Ephemeral, session: S2).Err);
    }

    [Fact]
    public void CloseSessionOverlayLetsAFollowingCreateReuseThePath()
    {
        var h = new Harness();
        h.Create("/lock", mode: CreateMode.Ephemeral, session: S1);
        var close = h.Prep.PrepareCloseSession(S1, 1, h.Now);
        var create = h.Prepare(OpCode.Create, new CreateRequest("/lock", [], Acl.OpenAclUnsafe, (int)CreateMode.Ephemeral), S2);
        Assert.IsType<CreateTxn>(create.Txn);
        h.Apply(close);
        Assert.Equal(ErrorCode.Ok, h.Apply(create).Err);
        Assert.Equal(S2, h.StatOf("/lock").EphemeralOwner);
    }

    // ---------------------------------------------------------------- outstanding-change overlay

    [Fact]
    public void SecondPreparedCreateSeesTheFirst()
    {
        var h = new Harness();
        var first = h.Prepare(OpCode.Create, new CreateRequest("/a", [], Acl.OpenAclUnsafe, 0));
        Assert.Equal(ErrorCode.NodeExists, ErrOf(h.Prepare(OpCode.Create, new CreateRequest("/a", [], Acl.OpenAclUnsafe, 0))));
        var child = h.Prepare(OpCode.Create, new CreateRequest("/a/b", [], Acl.OpenAclUnsafe, 0));
        Assert.IsType<CreateTxn>(child.Txn);
        var seq1 = h.Prepare(OpCode.Create, new CreateRequest("/a/s", [], Acl.OpenAclUnsafe, (int)CreateMode.PersistentSequential));
        var seq2 = h.Prepare(OpCode.Create, new CreateRequest("/a/s", [], Acl.OpenAclUnsafe, (int)CreateMode.PersistentSequential));
        Assert.Equal("/a/s0000000001", ((CreateTxn)seq1.Txn).Path);
        Assert.Equal("/a/s0000000002", ((CreateTxn)seq2.Txn).Path);
        Assert.Equal(3, ((CreateTxn)seq2.Txn).ParentCversion);
        Assert.Equal(ErrorCode.NotEmpty, ErrOf(h.Prepare(OpCode.Delete, new PathVersionRequest("/a", -1))));
        Assert.True(h.Prep.OutstandingChanges > 0);
        foreach (var t in new[] { first, child, seq1, seq2 }) Assert.Equal(ErrorCode.Ok, h.Apply(t).Err);
        Assert.Equal(0, h.Prep.OutstandingChanges);
        Assert.Equal(3, h.Tree.Find("/a")!.Children.Count);
    }

    [Fact]
    public void DeleteThenCreateInFlight()
    {
        var h = new Harness();
        h.Create("/x", B("old"));
        var czxidBefore = h.StatOf("/x").Czxid;
        var delete = h.Prepare(OpCode.Delete, new PathVersionRequest("/x", 0));
        Assert.Equal(ErrorCode.NoNode, ErrOf(h.Prepare(OpCode.SetData, new SetDataRequest("/x", [], -1))));
        var create = h.Prepare(OpCode.Create, new CreateRequest("/x", B("new"), Acl.OpenAclUnsafe, 0));
        Assert.IsType<CreateTxn>(create.Txn);
        var setData = h.Prepare(OpCode.SetData, new SetDataRequest("/x", B("newer"), 0));
        var setDataTxn = Assert.IsType<SetDataTxn>(setData.Txn);
        Assert.Equal(1, setDataTxn.Version);
        Assert.Equal("/x", setDataTxn.Path);
        h.Apply(delete);
        h.Apply(create);
        h.Apply(setData);
        var stat = h.StatOf("/x");
        Assert.NotEqual(czxidBefore, stat.Czxid);
        Assert.Equal(create.Header.Zxid, stat.Czxid);
        Assert.Equal(1, stat.Version);
        Assert.Equal(B("newer"), h.Tree.Find("/x")!.Data);
    }

    [Fact]
    public void VersionsAdvanceInTheOverlay()
    {
        var h = new Harness();
        h.Create("/v");
        var s1 = h.Prepare(OpCode.SetData, new SetDataRequest("/v", B("1"), 0));
        Assert.Equal(ErrorCode.BadVersion, ErrOf(h.Prepare(OpCode.SetData, new SetDataRequest("/v", B("2"), 0))));
        var s2 = h.Prepare(OpCode.SetData, new SetDataRequest("/v", B("2"), 1));
        var acl = h.Prepare(OpCode.SetAcl, new SetAclRequest("/v", [new(Perms.Read, Id.Anyone)], 0));
        Assert.Equal(ErrorCode.NoAuth, ErrOf(h.Prepare(OpCode.SetData, new SetDataRequest("/v", B("3"), 2)))); // the pending ACL applies
        Assert.Equal(ErrorCode.BadVersion, ErrOf(h.Prepare(OpCode.Check, new PathVersionRequest("/v", 1))));
        Assert.IsType<CheckVersionTxn>(h.Prepare(OpCode.Check, new PathVersionRequest("/v", 2)).Txn);
        h.Apply(s1);
        h.Apply(s2);
        h.Apply(acl);
        Assert.Equal(2, h.StatOf("/v").Version);
        Assert.Equal(1, h.StatOf("/v").Aversion);
    }

    [Fact]
    public void AppliedForgetsOnlyUpToTheGivenZxid()
    {
        var h = new Harness();
        var a = h.Prepare(OpCode.Create, new CreateRequest("/a", [], Acl.OpenAclUnsafe, 0));
        var b = h.Prepare(OpCode.Create, new CreateRequest("/a/b", [], Acl.OpenAclUnsafe, 0));
        h.Tree.Apply(a.Header, a.Txn);
        h.Prep.Applied(a.Header.Zxid);
        Assert.Equal(2, h.Prep.OutstandingChanges); // b's parent and node records remain
        // /a's latest record (from b) still says 1 child.
        Assert.Equal(ErrorCode.NotEmpty, ErrOf(h.Prepare(OpCode.Delete, new PathVersionRequest("/a", -1))));
        h.Tree.Apply(b.Header, b.Txn);
        h.Prep.Applied(b.Header.Zxid);
        Assert.Equal(0, h.Prep.OutstandingChanges);
    }

    [Fact]
    public void ResetDropsTheOverlay()
    {
        var h = new Harness();
        h.Prepare(OpCode.Create, new CreateRequest("/ghost", [], Acl.OpenAclUnsafe, 0));
        Assert.Equal(ErrorCode.NodeExists, ErrOf(h.Prepare(OpCode.Create, new CreateRequest("/ghost", [], Acl.OpenAclUnsafe, 0))));
        h.Prep.Reset(h.Tree.LastZxid);
        Assert.Equal(0, h.Prep.OutstandingChanges);
        Assert.Equal(h.Tree.LastZxid + 1, h.Prep.NextZxid);
        Assert.Equal(ErrorCode.Ok, h.Create("/ghost").Err);
    }

    // ---------------------------------------------------------------- multi

    [Fact]
    public void MultiSuccessReportsEveryOpWithZooKeeperResultTypes()
    {
        var h = new Harness();
        h.Create("/base", B("v0"));
        var r = h.Multi(
            MCreate("/m1"),
            MCreate("/m2", op: OpCode.Create2),
            MCreate("/mc", CreateMode.Container, OpCode.CreateContainer),
            MCreate("/mt", CreateMode.PersistentWithTtl, OpCode.CreateTtl, ttl: 5000),
            MSetData("/base", B("v1"), 0),
            MCheck("/base", 1),
            MDelete("/m1"));
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Equal(ErrorCode.Ok, r.FirstError);
        var z = h.Tree.LastZxid;
        var results = ((MultiResponse)r.Response).Results;
        Assert.Equal(7, results.Count);
        Assert.Equal(new OpResult(OpCode.Create, ErrorCode.Ok, new PathResponse("/m1")), results[0]);
        Assert.Equal(OpCode.Create2, results[1].Type);
        Assert.Equal(OpCode.Create2, results[2].Type); // ZK: CreateResult(path, stat) is typed create2
        Assert.Equal(OpCode.Create2, results[3].Type);
        Assert.Equal(new Create2Response("/mc", h.StatOf("/mc")), results[2].Body);
        Assert.Equal(new OpResult(OpCode.SetData, ErrorCode.Ok, new StatResponse(h.StatOf("/base"))), results[4]);
        Assert.Equal(new OpResult(OpCode.Check, ErrorCode.Ok, EmptyResponse.Instance), results[5]);
        Assert.Equal(new OpResult(OpCode.Delete, ErrorCode.Ok, EmptyResponse.Instance), results[6]);
        // One zxid for all ops.
        Assert.Equal(z, h.StatOf("/m2").Czxid);
        Assert.Equal(z, h.StatOf("/base").Mzxid);
        Assert.Equal(
            [
                new WatchTrigger("/m1", EventType.NodeCreated), new WatchTrigger("/", EventType.NodeChildrenChanged),
                new WatchTrigger("/m2", EventType.NodeCreated), new WatchTrigger("/", EventType.NodeChildrenChanged),
                new WatchTrigger("/mc", EventType.NodeCreated), new WatchTrigger("/", EventType.NodeChildrenChanged),
                new WatchTrigger("/mt", EventType.NodeCreated), new WatchTrigger("/", EventType.NodeChildrenChanged),
                new WatchTrigger("/base", EventType.NodeDataChanged),
                new WatchTrigger("/m1", EventType.NodeDeleted), new WatchTrigger("/", EventType.NodeChildrenChanged),
            ], r.Triggers);
        Assert.Null(h.Tree.Find("/m1"));
    }

    [Fact]
    public void MultiCreateDeleteWithinOneTxnMatchesZooKeeperStats()
    {
        // ZK: multi(create /m5, create /m5/x, create /m5/x/y, delete /m5/x/y, check /m5/x 0) →
        // /m5 cversion 1 numChildren 1; /m5/x cversion 2 numChildren 0; all pzxid = the multi's zxid.
        var h = new Harness();
        var r = h.Multi(MCreate("/m5"), MCreate("/m5/x"), MCreate("/m5/x/y"), MDelete("/m5/x/y"), MCheck("/m5/x", 0));
        Assert.Equal(ErrorCode.Ok, r.FirstError);
        var z = h.Tree.LastZxid;
        Assert.Equal(new Stat(z, z, h.Now, h.Now, 0, 1, 0, 0, 0, 1, z), h.StatOf("/m5"));
        Assert.Equal(new Stat(z, z, h.Now, h.Now, 0, 2, 0, 0, 0, 0, z), h.StatOf("/m5/x"));
    }

    [Fact]
    public void FailedMultiIsAllOrNothingWithPerOpCodes()
    {
        var h = new Harness();
        h.Create("/m1");
        h.SetData("/m1", B("a"));
        var digest = h.Tree.Digest();
        var zxidBefore = h.Prep.NextZxid;
        var r = h.Multi(MCreate("/m3"), MCreate("/m4", op: OpCode.Create2), MSetData("/m1", B("a")), MCheck("/m1", 1), MDelete("/m2"));
        // ZK: [Ok, Ok, Ok, BadVersion, RuntimeInconsistency], reply header err 0.
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Equal(ErrorCode.BadVersion, r.FirstError);
        Assert.Equal(
            [
                OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.Ok),
                OpResult.Error(ErrorCode.BadVersion), OpResult.Error(ErrorCode.RuntimeInconsistency),
            ], ((MultiResponse)r.Response).Results);
        Assert.Empty(r.Triggers);
        Assert.Equal(digest, h.Tree.Digest());
        Assert.Equal(zxidBefore, h.Tree.LastZxid); // it still took a zxid
        Assert.Equal(0, h.Prep.OutstandingChanges);
        var txn = (MultiTxn)h.Log[^1].Txn;
        Assert.All(txn.Ops, op => Assert.Equal(OpCode.Error, op.Type));
    }

    [Fact]
    public void FailedMultiLeavesThePendingOverlayAsItWas()
    {
        // ZOOKEEPER-1624: a failed multi with sequential creates must not disturb later sequence numbers.
        var h = new Harness();
        h.Create("/q");
        var pending = h.Prepare(OpCode.Create, new CreateRequest("/q/p", [], Acl.OpenAclUnsafe, (int)CreateMode.PersistentSequential));
        Assert.Equal("/q/p0000000000", ((CreateTxn)pending.Txn).Path);
        var failed = h.Prepare(OpCode.Multi, new MultiRequest([
            MCreate("/q/s", CreateMode.PersistentSequential), MCreate("/q/s", CreateMode.PersistentSequential), MDelete("/q"), MCreate("/nope/x")]));
        Assert.Equal(
            [ErrorCode.Ok, ErrorCode.Ok, ErrorCode.NotEmpty, ErrorCode.RuntimeInconsistency],
            ((MultiTxn)failed.Txn).Ops.Select(o => ((ErrorTxn)o.Txn).Err));
        var next = h.Prepare(OpCode.Create, new CreateRequest("/q/p", [], Acl.OpenAclUnsafe, (int)CreateMode.PersistentSequential));
        Assert.Equal("/q/p0000000001", ((CreateTxn)next.Txn).Path);
        Assert.Equal(ErrorCode.NodeExists, ErrOf(h.Prepare(OpCode.Create, new CreateRequest("/q/p0000000000", [], Acl.OpenAclUnsafe, 0))));
        Assert.Equal(ErrorCode.NoNode, ErrOf(h.Prepare(OpCode.Delete, new PathVersionRequest("/q/s0000000001", -1))));
        h.Apply(pending);
        h.Apply(failed);
        h.Apply(next);
        Assert.Equal(["p0000000000", "p0000000001"], h.Tree.Find("/q")!.Children.Order(StringComparer.Ordinal));
        Assert.Equal(0, h.Prep.OutstandingChanges);
    }

    [Fact]
    public void MultiFailingAtTheFirstOpMarksTheRestRuntimeInconsistency()
    {
        var h = new Harness();
        var r = h.Multi(MDelete("/missing"), MCreate("/a"), MCreate("/b"));
        Assert.Equal(
            [OpResult.Error(ErrorCode.NoNode), OpResult.Error(ErrorCode.RuntimeInconsistency), OpResult.Error(ErrorCode.RuntimeInconsistency)],
            ((MultiResponse)r.Response).Results);
        Assert.Null(h.Tree.Find("/a"));
    }

    [Fact]
    public void MultiSeesItsOwnEarlierOps()
    {
        var h = new Harness();
        h.Create("/mc");
        var r = h.Multi(MDelete("/mc"), MCreate("/mc"), MCreate("/mc/a", CreateMode.Ephemeral), MCreate("/mc/a/b"));
        // ZK: [Ok, Ok, Ok, NoChildrenForEphemerals]
        Assert.Equal(
            [OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.NoChildrenForEphemerals)],
            ((MultiResponse)r.Response).Results);
        var ok = h.Multi(MDelete("/mc"), MCreate("/mc"), MCreate("/mc/s", CreateMode.PersistentSequential), MCreate("/mc/s", CreateMode.PersistentSequential));
        Assert.Equal(ErrorCode.Ok, ok.FirstError);
        Assert.Equal(["s0000000000", "s0000000001"], h.Tree.Find("/mc")!.Children.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void EmptyMultiSucceedsWithNoResults()
    {
        var h = new Harness();
        var r = h.Multi();
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Empty(((MultiResponse)r.Response).Results);
    }

    [Fact]
    public void MultiWithAReadOpIsMarshallingError()
    {
        // ZK: multi([getData]) → reply err -5 (MarshallingError) with no body.
        var h = new Harness();
        var r = h.Multi(MCreate("/a"), new MultiOp(OpCode.GetData, new PathWatchRequest("/a", false)));
        Assert.Equal(ErrorCode.MarshallingError, r.Err);
        Assert.Equal(EmptyResponse.Instance, r.Response);
        Assert.Null(h.Tree.Find("/a"));
        Assert.Equal(0, h.Prep.OutstandingChanges);
    }

    [Fact]
    public void FailedMultiResponseBytesMatchZooKeeper()
    {
        var h = new Harness();
        var r = h.Multi(MCreate("/m1"), MDelete("/nonexist"), MCreate("/m2"));
        var bytes = Jute.Serialize(r.Response);
        // Captured from ZooKeeper 3.8.0 for the same multi (after the reply header, which had err 0).
        var zk = Convert.FromHexString(
            "FFFFFFFF000000000000000000" + "FFFFFFFF00FFFFFF9BFFFFFF9B" + "FFFFFFFF00FFFFFFFEFFFFFFFE" + "FFFFFFFF01FFFFFFFF");
        Assert.Equal(zk, bytes);
    }

    // ---------------------------------------------------------------- containers and TTL reaping

    [Fact]
    public void PrepareReapRechecksTheCondition()
    {
        var h = new Harness { Now = 1000 };
        h.Create("/c", mode: CreateMode.Container, op: OpCode.CreateContainer);
        Assert.Null(h.Prep.PrepareReap("/c", 5000)); // never had children
        h.Create("/c/x");
        Assert.Null(h.Prep.PrepareReap("/c", 5000)); // has a child
        h.Delete("/c/x");
        var zxid = h.Prep.NextZxid;
        var reap = h.Prep.PrepareReap("/c", 5000);
        Assert.NotNull(reap);
        Assert.Equal(new TxnHeader(0, 0, zxid, 5000, OpCode.DeleteContainer), reap.Value.Header);
        Assert.Equal(new DeleteTxn("/c"), reap.Value.Txn);
        Assert.Null(h.Prep.PrepareReap("/c", 5000)); // already being deleted
        var r = h.Apply(reap.Value);
        Assert.Equal(ErrorCode.Ok, r.Err);
        Assert.Null(h.Tree.Find("/c"));
        Assert.Empty(h.Tree.Containers);

        Assert.Null(h.Prep.PrepareReap("/missing", 5000));
        h.Create("/plain");
        Assert.Null(h.Prep.PrepareReap("/plain", 5000));
        zxid = h.Prep.NextZxid;
        Assert.Null(h.Prep.PrepareReap("/zookeeper", 5000));
        Assert.Equal(zxid, h.Prep.NextZxid); // no zxid consumed when nothing is reaped
    }

    [Fact]
    public void PrepareReapSeesAPendingChildOrTouch()
    {
        var h = new Harness { Now = 1000 };
        h.Create("/c", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/c/x");
        h.Delete("/c/x");
        var pendingChild = h.Prepare(OpCode.Create, new CreateRequest("/c/y", [], Acl.OpenAclUnsafe, 0));
        Assert.Null(h.Prep.PrepareReap("/c", 5000));
        h.Apply(pendingChild);

        h.Create("/t", mode: CreateMode.PersistentWithTtl, op: OpCode.CreateTtl, ttl: 100);
        Assert.Null(h.Prep.PrepareReap("/t", 1100));
        h.Now = 1050;
        var touch = h.Prepare(OpCode.SetData, new SetDataRequest("/t", B("x"), -1));
        Assert.Null(h.Prep.PrepareReap("/t", 1101)); // pending mtime is 1050
        h.Apply(touch);
        var reap = h.Prep.PrepareReap("/t", 1151);
        Assert.NotNull(reap);
        h.Apply(reap.Value);
        Assert.Null(h.Tree.Find("/t"));
    }

    [Fact]
    public void DeleteContainerOpFollowsZooKeeperRules()
    {
        var h = new Harness();
        h.Create("/c", mode: CreateMode.Container, op: OpCode.CreateContainer);
        h.Create("/c/x");
        h.Create("/plain");
        Assert.Equal(ErrorCode.NotEmpty, h.Run(OpCode.DeleteContainer, new PathRequest("/c")).Err);
        Assert.Equal(ErrorCode.BadVersion, h.Run(OpCode.DeleteContainer, new PathRequest("/plain")).Err);
        Assert.Equal(ErrorCode.NoNode, h.Run(OpCode.DeleteContainer, new PathRequest("/missing")).Err);
        Assert.Equal(ErrorCode.BadArguments, h.Run(OpCode.DeleteContainer, new PathRequest("/")).Err);
        h.Delete("/c/x");
        Assert.Equal(ErrorCode.Ok, h.Run(OpCode.DeleteContainer, new PathRequest("/c")).Err);
    }

    [Fact]
    public void APrepareThatThrowsUsesUpNoZxidAndLeavesNoChange()
    {
        // A host callback that throws (here the quota warning) makes Prepare throw halfway through a multi, after its
        // first op recorded a change: the next txn must take the same zxid (a gap would be a zxid no txn has) and see
        // none of the thrown multi's changes.
        var tree = new DataTree();
        var throwOnWarning = false;
        var prep = new RequestPreprocessor(tree, null, 0)
        {
            CheckSessions = false, EnforceQuota = true,
            QuotaWarning = _ => { if (throwOnWarning) throw new InvalidOperationException("warning sink failed"); },
        };
        void Apply((TxnHeader Header, Txn Txn) prepared)
        {
            Assert.IsNotType<ErrorTxn>(prepared.Txn);
            tree.Apply(prepared.Header, prepared.Txn);
            prep.Applied(prepared.Header.Zxid);
        }
        var cxid = 0;
        (TxnHeader Header, Txn Txn) Create(string path, string data = "") =>
            prep.Prepare(S1, ++cxid, OpCode.Create, new CreateRequest(path, System.Text.Encoding.UTF8.GetBytes(data), Acl.OpenAclUnsafe, 0), AuthContext.Anonymous, 1000);
        Apply(Create("/app"));
        Apply(Create("/zookeeper/quota/app"));
        Apply(Create("/zookeeper/quota/app/zookeeper_limits", "count=1,bytes=-1"));   // soft: /app alone
        Apply(Create("/zookeeper/quota/app/zookeeper_stats", "count=0,bytes=0"));
        var next = prep.NextZxid;

        throwOnWarning = true;
        var multi = new MultiRequest([MCreate("/other"), MCreate("/app/child")]);
        Assert.Throws<InvalidOperationException>(() => prep.Prepare(S1, ++cxid, OpCode.Multi, multi, AuthContext.Anonymous, 1000));
        Assert.Throws<InvalidOperationException>(() => Create("/app/child"));
        throwOnWarning = false;

        Assert.Equal(next, prep.NextZxid);
        var other = Create("/other");
        Assert.Equal(next, other.Header.Zxid);
        Assert.IsType<CreateTxn>(other.Txn);   // not NodeExists: the thrown multi's create of /other left no record
        Apply(other);
        Assert.Equal(next, tree.LastZxid);
    }
}
