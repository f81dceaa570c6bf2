using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Quotas (issue 19): zkCli's setquota, listquota and delquota, unchanged, and the refusals of writes past a hard
/// limit, against Apache ZooKeeper 3.8 with zookeeper.enforceQuota=true and ours with enforce-quota = on. The
/// expected lines were read from Apache's zkCli output; the same checks pass on both.
/// </summary>
public abstract class QuotaCompatTestsBase(IParityServer target, ITestOutputHelper output)
{
    private Task<string> ZkCliAsync(params string[] command) => ParityZkCli.RunAsync(target, output, command);

    private static string Unique(string what) => $"/quota-{what}-{Guid.NewGuid():N}"[..24];

    [SkippableFact]
    public async Task Hard_count_limit_refuses_the_create_past_it_and_delquota_lifts_it()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var root = Unique("count");
        Assert.Contains("Created " + root, await ZkCliAsync("create", root));
        await ZkCliAsync("setquota", "-N", "3", root);
        Assert.Contains($"Created {root}/a", await ZkCliAsync("create", root + "/a"));
        Assert.Contains($"Created {root}/b", await ZkCliAsync("create", root + "/b"));
        Assert.Contains($"Quota has exceeded : {root}/c", await ZkCliAsync("create", root + "/c"));
        var listed = await ZkCliAsync("listquota", root);
        Assert.Contains($"Output quota for {root} count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3", listed);
        Assert.Contains($"Output stat for {root} count=3,bytes=0", listed);
        Assert.Contains("Node does not exist", await ZkCliAsync("get", root + "/c"));

        await ZkCliAsync("delquota", root);
        Assert.Contains($"quota for {root} does not exist.", await ZkCliAsync("listquota", root));
        Assert.Contains($"Created {root}/c", await ZkCliAsync("create", root + "/c"));
    }

    [SkippableFact]
    public async Task Hard_byte_limit_refuses_sets_and_creates_past_it()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var root = Unique("bytes");
        await ZkCliAsync("create", root);
        await ZkCliAsync("setquota", "-B", "10", root);
        Assert.Contains($"Quota has exceeded : {root}", await ZkCliAsync("set", root, "12345678901"));
        Assert.Contains($"Created {root}/x", await ZkCliAsync("create", root + "/x", "1234567890"));
        Assert.Contains($"Quota has exceeded : {root}", await ZkCliAsync("set", root, "123"));
        Assert.Contains($"Quota has exceeded : {root}/y", await ZkCliAsync("create", root + "/y", "1"));
        var listed = await ZkCliAsync("listquota", root);
        Assert.Contains($"Output quota for {root} count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1", listed);
        Assert.Contains($"Output stat for {root} count=2,bytes=10", listed);
    }

    [SkippableFact]
    public async Task Soft_limits_are_only_reported_and_delquota_n_clears_the_count_limit()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var root = Unique("soft");
        await ZkCliAsync("create", root);
        await ZkCliAsync("setquota", "-n", "1", root);
        Assert.Contains($"Created {root}/x", await ZkCliAsync("create", root + "/x"));
        Assert.Contains($"Created {root}/y", await ZkCliAsync("create", root + "/y"));
        var listed = await ZkCliAsync("listquota", root);
        Assert.Contains($"Output quota for {root} count=1,bytes=-1=;byteHardLimit=-1;countHardLimit=-1", listed);
        Assert.Contains($"Output stat for {root} count=3,bytes=0", listed);

        await ZkCliAsync("delquota", "-n", root);
        Assert.Contains($"Output quota for {root} count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=-1", await ZkCliAsync("listquota", root));
    }
}

[Collection(ApacheParityCollection.Name)]
public sealed class ApacheQuotaTarget(ApacheParityFixture server, ITestOutputHelper output) : QuotaCompatTestsBase(server, output);

[Collection(OursParityCollection.Name)]
public sealed class OursQuotaTarget(OursParityFixture server, ITestOutputHelper output) : QuotaCompatTestsBase(server, output);
