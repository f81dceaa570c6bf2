using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Servers that share a process (TestEnsemble, an embedded server) each count their own packets and request latency:
/// srvr and mntr of one server must not report another's traffic (issue 18: the counters were process-wide statics).
/// </summary>
public sealed class ServerStatsTests
{
    [Fact]
    public async Task Two_servers_in_one_process_report_their_own_packets_and_requests()
    {
        await using var busy = await TestEnsemble.StartStandaloneAsync();
        await using var quiet = await TestEnsemble.StartStandaloneAsync();
        const int requests = 40;
        await using (var client = await WireClient.ConnectAsync(busy.ConnectString))
        {
            await client.CreateAsync("/stats", Encoding.UTF8.GetBytes("x")).OkAsync();
            for (var i = 0; i < requests; i++) await client.GetDataAsync("/stats").OkAsync();
        }

        var busySrvr = await FourLetterWord.SendAsync(busy.ConnectString, "srvr");
        var quietSrvr = await FourLetterWord.SendAsync(quiet.ConnectString, "srvr");
        var quietMntr = await FourLetterWord.SendAsync(quiet.ConnectString, "mntr");
        Assert.True(Value(busySrvr, "Received: ") >= requests, busySrvr);
        Assert.True(Value(busySrvr, "Sent: ") >= requests, busySrvr);
        Assert.Equal(0, Value(quietSrvr, "Received: "));
        Assert.Equal(0, Value(quietSrvr, "Sent: "));
        Assert.Equal(0, Value(quietMntr, "zk_request_count\t"));
    }

    private static long Value(string text, string prefix) =>
        long.Parse(text.Split('\n').Single(l => l.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..].Trim());
}
