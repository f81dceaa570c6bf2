using System.Text.Json;
using Coordination.Bench;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The scale verb (bench/scale.sh) on a tiny tree: every figure of every point is there and plausible.</summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class ScaleBenchTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Scale_grows_the_tree_point_by_point_and_reports_every_figure(string target)
    {
        Targets.SkipUnlessAvailable(target);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await BenchApp.RunAsync(
        [
            "scale", "--targets", target, "--points", "3000,6000", "--wide", "2500", "--fanout", "1000", "--restarts", "2",
            // A 2-s settle window instead of 15 s at each of the four readings: the tiny tree's figures need no more.
            "--samples", "50", "--connections", "1", "--inflight", "2", "--zk-heap", "256m", "--settle", "2s", "--time-limit", "4m", "--json",
        ], stdout, stderr);
        output.WriteLine(stderr.ToString());
        output.WriteLine(stdout.ToString());
        Assert.Equal(0, code);

        using var json = JsonDocument.Parse(stdout.ToString());
        var figures = json.RootElement.GetProperty("figures").EnumerateArray().ToList();
        Assert.Equal([3000L, 6000L], figures.Select(f => f.GetProperty("point").GetInt64()));
        foreach (var f in figures)
        {
            var point = f.GetProperty("point").GetInt64();
            // A fresh tree's 5 (ZooKeeper counts the root twice), /scale, /small and its 10, /wide and its 2,500, one
            // directory per 1,000 leaves, the leaves.
            Assert.Equal(5 + 3 + 10 + 2500 + point / 1000 + point, f.GetProperty("znodes").GetInt64());
            Assert.True(f.GetProperty("rss_bytes").GetInt64() > 10 << 20, "no RSS");
            Assert.True(f.GetProperty("snapshot_bytes").GetInt64() > (point + 2500) * 100, "the snapshot cannot hold the tree's data");
            Assert.Equal(2500, f.GetProperty("wide_children").GetInt32());
            Assert.True(f.GetProperty("wide_get_children_ms").GetDouble() > 0);
            var p50 = f.GetProperty("small_get_children_p50_ms").GetDouble();
            Assert.InRange(p50, 1e-3, f.GetProperty("small_get_children_p99_ms").GetDouble());
            var restarts = f.GetProperty("restart_s").EnumerateArray().Select(r => r.GetDouble()).ToList();
            Assert.Equal(2, restarts.Count);
            Assert.All(restarts, r => Assert.InRange(r, 0.01, 120));
            Assert.True(f.GetProperty("first_start_s").GetDouble() > 0);
            Assert.InRange(f.GetProperty("rss_after_gc_bytes").GetInt64(), 10L << 20, 1L << 40);
            if (target == "ours")
            {
                // The GC's own figures (mntr), read when the RSS had settled: a live heap, and committed memory that holds it.
                var live = f.GetProperty("gc_live_bytes").GetInt64();
                Assert.InRange(live, 1L << 20, f.GetProperty("gc_committed_bytes").GetInt64());
            }
            if (target == "apache")
            {
                Assert.Equal(256L << 20, f.GetProperty("java_heap_max_bytes").GetInt64());
                Assert.True(f.GetProperty("java_heap_used_bytes").GetInt64() > 0, "jcmd GC.heap_info was not read");
            }
        }
    }
}
