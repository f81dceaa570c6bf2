using System.Globalization;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Issue 19: mntr prints every key of ZooKeeper's jvm_pause_time_ms summary set (Apache prints all nine, as zeros unless
/// its pause monitor is on), and ours fills them with each GC pause of the server: after writes that make the server
/// collect, the count is the number of pauses seen and min, the percentiles and max are ordered as one distribution's.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class GcPauseMetricsTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task mntr_reports_each_GC_pause_of_the_server_as_jvm_pause_time_ms()
    {
        await using var server = await Targets.StartAsync("ours", output);
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        var data = new byte[60_000];   // below the large-object heap: the server's copies fill generation 0
        for (var i = 0; i < 50; i++) await client.CreateAsync($"/gc-{i}", data, CreateMode.Persistent).OkAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        Dictionary<string, string> mntr;
        for (var batch = 0; ; batch++)
        {
            for (var i = 0; i < 50; i++) await client.SetDataAsync($"/gc-{i}", data).OkAsync();
            mntr = FourLetterWord.ParseMntr(await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
            if (Value(mntr, "cnt") >= 2) break;
            Assert.True(DateTime.UtcNow < deadline, $"no GC pause reported after {batch + 1} batches of 50 writes of 60 KB: cnt {Value(mntr, "cnt")}");
        }
        output.WriteLine(string.Join(", ", new[] { "avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999" }.Select(k => $"{k} {mntr[$"zk_{k}_jvm_pause_time_ms"]}")));
        Assert.True(double.Parse(mntr["zk_avg_jvm_pause_time_ms"], CultureInfo.InvariantCulture) > 0, "an average pause of 0 ms");
        var ordered = new[] { "min", "p50", "p95", "p99", "p999", "max" }.Select(k => Value(mntr, k)).ToList();
        Assert.Equal(ordered.Order(), ordered);
        Assert.True(Value(mntr, "sum") >= Value(mntr, "max"), "the sum of the pauses is below the longest");
    }

    private static long Value(Dictionary<string, string> mntr, string prefix) =>
        long.Parse(mntr[$"zk_{prefix}_jvm_pause_time_ms"], CultureInfo.InvariantCulture);
}
