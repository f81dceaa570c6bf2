using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The admin HTTP endpoint answers the same commands as the four-letter words, and /metrics the same numbers.</summary>
public sealed class AdminHttpTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Commands_and_metrics_agree_with_the_four_letter_words()
    {
        int adminPort = ServerProcess.FreeLoopbackPort(), metricsPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort} }}\ncoordination.metrics {{ enabled = on, port = {metricsPort} }}",
        });
        var client = await WireClient.ConnectAsync(server.ConnectString);
        for (var i = 0; i < 7; i++) await client.CreateAsync($"/admin-{i}", [1, 2, 3], CreateMode.Persistent).OkAsync();
        await client.ExistsAsync("/admin-0", watch: true).OkAsync();

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(10) };
        var mntrText = FourLetterWord.ParseMntr(await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
        var mntrJson = JsonDocument.Parse(await http.GetStringAsync("commands/mntr")).RootElement;
        output.WriteLine(mntrJson.ToString());
        Assert.Equal("mntr", mntrJson.GetProperty("command").GetString());
        foreach (var key in new[] { "znode_count", "watch_count", "ephemerals_count", "approximate_data_size", "global_sessions" })
            Assert.Equal(long.Parse(mntrText["zk_" + key]), mntrJson.GetProperty(key).GetInt64());
        Assert.Equal("standalone", mntrJson.GetProperty("server_state").GetString());

        var ruok = JsonDocument.Parse(await http.GetStringAsync("commands/ruok")).RootElement;
        Assert.Equal("imok", ruok.GetProperty("output").GetString());
        Assert.Equal(JsonValueKind.Null, ruok.GetProperty("error").ValueKind);
        var srvr = JsonDocument.Parse(await http.GetStringAsync("commands/srvr")).RootElement;
        Assert.Equal("standalone", srvr.GetProperty("mode").GetString());
        Assert.Equal(long.Parse(mntrText["zk_znode_count"]), srvr.GetProperty("node_count").GetInt64());
        // Not subject to the client-port whitelist, but unknown names are refused.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("commands/nope")).StatusCode);
        var all = JsonDocument.Parse(await http.GetStringAsync("commands")).RootElement.GetProperty("commands");
        Assert.Contains("wchc", all.EnumerateArray().Select(e => e.GetString()));

        using var metricsHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await metricsHttp.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
        var samples = metrics.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(' ')).ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(double.Parse(mntrText["zk_znode_count"]), samples["znode_count"]);
        Assert.Equal(double.Parse(mntrText["zk_watch_count"]), samples["watch_count"]);
        Assert.Contains("# TYPE packets_received counter", metrics);
        Assert.Equal(HttpStatusCode.NotFound, (await metricsHttp.GetAsync($"http://127.0.0.1:{metricsPort}/commands/mntr")).StatusCode);
    }
}
