using System.Text;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

/// <summary>ZooKeeper 3.7+ quota enforcement (zookeeper.enforceQuota), decided in Prep. The quota nodes are written
/// as zkCli's setquota writes them: "/zookeeper/quota{path}/zookeeper_limits" with StatsTrack text, then the
/// zookeeper_stats node, whose creation makes the tree count the subtree.</summary>
public class QuotaEnforcementTests
{
    private static Harness WithQuota(string limits, bool enforce = true, params string[] existing)
    {
        var h = new Harness(enforceQuota: enforce);
        Assert.Equal(ErrorCode.Ok, h.Create("/app").Err);
        foreach (var path in existing) Assert.Equal(ErrorCode.Ok, h.Create(path, Encoding.UTF8.GetBytes("12345")).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/zookeeper/quota/app").Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/zookeeper/quota/app/zookeeper_limits", Encoding.UTF8.GetBytes(limits)).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/zookeeper/quota/app/zookeeper_stats", Encoding.UTF8.GetBytes("count=0,bytes=0")).Err);
        return h;
    }

    private static string Stats(Harness h) => Encoding.UTF8.GetString(h.Tree.Find("/zookeeper/quota/app/zookeeper_stats")!.Data!);

    [Fact]
    public void HardCountLimitRefusesTheCreateThatWouldCrossIt()
    {
        // setquota -N 3 /app: "/app" itself counts, so two children fit.
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3");
        Assert.Equal(ErrorCode.Ok, h.Create("/app/a").Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/app/b").Err);
        Assert.Equal(ErrorCode.QuotaExceeded, h.Create("/app/c").Err);
        Assert.Equal(ErrorCode.QuotaExceeded, h.Create("/app/a/deeper", mode: CreateMode.Ephemeral).Err);
        Assert.Null(h.Tree.Find("/app/c"));
        Assert.Equal("count=3,bytes=0", Stats(h));
        Assert.Contains(h.QuotaWarnings, w => w == "Quota exceeded: /app [current count=4, hardCountLimit=3]");
        // Outside the quota root nothing is limited; a delete makes room again.
        Assert.Equal(ErrorCode.Ok, h.Create("/other").Err);
        Assert.Equal(ErrorCode.Ok, h.Delete("/app/b").Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/app/c").Err);
    }

    [Fact]
    public void HardByteLimitCountsTheDataChangeOfSetData()
    {
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1", existing: "/app/a"); // 5 bytes used
        Assert.Equal(ErrorCode.QuotaExceeded, h.Create("/app/b", new byte[6]).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/app/b", new byte[5]).Err);
        Assert.Equal(ErrorCode.QuotaExceeded, h.SetData("/app/a", new byte[6]).Err);
        // ZooKeeper checks the quota before the version: a set past the limit with a wrong version is QuotaExceeded.
        Assert.Equal(ErrorCode.QuotaExceeded, h.SetData("/app/a", new byte[6], version: 42).Err);
        Assert.Equal(ErrorCode.Ok, h.SetData("/app/a", new byte[2]).Err); // shrinking is always allowed
        Assert.Equal(ErrorCode.Ok, h.SetData("/app/b", new byte[8]).Err);
        Assert.Equal("count=3,bytes=10", Stats(h));
        Assert.Equal(1, h.StatOf("/app/a").Version); // the refused sets changed nothing
    }

    [Fact]
    public void SoftLimitsOnlyWarn()
    {
        var h = WithQuota("count=2,bytes=4");
        Assert.Equal(ErrorCode.Ok, h.Create("/app/a", new byte[3]).Err);
        Assert.Equal(ErrorCode.Ok, h.Create("/app/b", new byte[3]).Err);
        Assert.Equal("count=3,bytes=6", Stats(h));
        Assert.Contains("Quota exceeded: /app [current count=3, softCountLimit=2]", h.QuotaWarnings);
        Assert.Contains("Quota exceeded: /app [current bytes=6, softByteLimit=4]", h.QuotaWarnings);
    }

    [Fact]
    public void WithoutEnforcementHardLimitsAreNotApplied()
    {
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1", enforce: false);
        Assert.Equal(ErrorCode.Ok, h.Create("/app/a").Err);
        Assert.Equal("count=2,bytes=0", Stats(h));
        Assert.Empty(h.QuotaWarnings);
    }

    [Fact]
    public void PreparedButUnappliedWritesCount()
    {
        // Pipelined writes: the tree's stats do not have them yet, Prep must.
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3");
        var a = h.Prepare(OpCode.Create, new CreateRequest("/app/a", [], Acl.OpenAclUnsafe, 0));
        var b = h.Prepare(OpCode.Create, new CreateRequest("/app/b", [], Acl.OpenAclUnsafe, 0));
        var c = h.Prepare(OpCode.Create, new CreateRequest("/app/c", [], Acl.OpenAclUnsafe, 0));
        Assert.IsType<CreateTxn>(a.Txn);
        Assert.IsType<CreateTxn>(b.Txn);
        Assert.Equal(ErrorCode.QuotaExceeded, Assert.IsType<ErrorTxn>(c.Txn).Err);
        h.Apply(a);
        h.Apply(b);
        h.Apply(c);
        // A prepared delete makes room before it is applied, as a prepared create takes it.
        var delete = h.Prepare(OpCode.Delete, new PathVersionRequest("/app/a", -1));
        var d = h.Prepare(OpCode.Create, new CreateRequest("/app/d", [], Acl.OpenAclUnsafe, 0));
        Assert.IsType<CreateTxn>(d.Txn);
        h.Apply(delete);
        h.Apply(d);
        Assert.Equal("count=3,bytes=0", Stats(h));
    }

    [Fact]
    public void AMultiCrossingAHardLimitFailsWholeAndTakesNothing()
    {
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3");
        var refused = h.Multi(Harness.MCreate("/app/a"), Harness.MCreate("/app/b"), Harness.MCreate("/app/c"));
        var results = Assert.IsType<MultiResponse>(refused.Response).Results;
        Assert.Equal(ErrorCode.QuotaExceeded, results[2].Err);
        Assert.Null(h.Tree.Find("/app/a"));
        // The refused multi's own usage was rolled back: two creates still fit.
        Assert.Equal(ErrorCode.Ok, h.Multi(Harness.MCreate("/app/a"), Harness.MCreate("/app/b")).Err);
        Assert.Equal("count=3,bytes=0", Stats(h));
    }

    [Fact]
    public void ClosingASessionFreesItsEphemeralsUsage()
    {
        var h = WithQuota("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        Assert.Equal(ErrorCode.Ok, h.Create("/app/e", mode: CreateMode.Ephemeral, session: Harness.S2).Err);
        Assert.Equal(ErrorCode.QuotaExceeded, h.Create("/app/x").Err);
        var close = h.Prep.PrepareCloseSession(Harness.S2, 1, h.Now);
        var create = h.Prepare(OpCode.Create, new CreateRequest("/app/x", [], Acl.OpenAclUnsafe, 0));
        Assert.IsType<CreateTxn>(create.Txn);
        h.Apply(close);
        h.Apply(create);
        Assert.Equal("count=2,bytes=0", Stats(h));
    }
}
