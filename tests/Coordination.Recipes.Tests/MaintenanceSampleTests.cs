using System.Text.RegularExpressions;
using Coordination.Client.Tests;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>
/// samples/MaintenanceJobs end to end: a real server, the sample with 3 workers for a bounded time, a configuration
/// change made with the coord CLI; every worker must see it through its watch, and no two repairs may overlap.
/// </summary>
public sealed class MaintenanceSampleTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    [Fact]
    public Task Workers_run_one_repair_at_a_time_and_pick_up_a_config_change_without_restart() => Servers.RunAsync("ours", null, Output, async server =>
    {
        const int workers = 3;
        var root = "/m" + Guid.NewGuid().ToString("N");
        var lines = new List<string>();
        using var sample = SampleProcesses.Start(SampleProcesses.Built("samples/MaintenanceJobs", "MaintenanceJobs.dll"),
            "--connect", server.ConnectString, "--workers", $"{workers}", "--duration", "12", "--root", root);
        var reading = Task.Run(async () =>
        {
            while (await sample.StandardOutput.ReadLineAsync() is { } line) lock (lines) lines.Add(line);
        });
        int Count(string prefix, string? containing = null)
        {
            lock (lines) return lines.Count(l => l.StartsWith(prefix) && (containing is null || l.Contains(containing)));
        }
        try
        {
            await Clients.Eventually(() => Count("READY ") == workers, "all workers ready", 30);
            await Clients.Eventually(() => Count("JOB-END ") >= 2, "repairs running", 20);

            using var cli = SampleProcesses.Start(SampleProcesses.Built("src/Coordination.Cli", "coord.dll"), "-S", server.ConnectString, "set", root + "/config",
                "{\"repairMillis\":20,\"paused\":false,\"version\":\"2\"}");
            await cli.WaitForExitAsync().Within(30);
            Assert.True(cli.ExitCode == 0, $"coord set failed: {await cli.StandardError.ReadToEndAsync()}");
            await Clients.Eventually(() => Count("CONFIG ", "\"version\":\"2\"") == workers, "every worker saw the new config", 15);

            await sample.WaitForExitAsync().Within(40);
            await reading.Within();
        }
        finally
        {
            if (!sample.HasExited) sample.Kill(entireProcessTree: true);
            lock (lines) Output.WriteLine(string.Join("\n", lines.TakeLast(40)));
        }

        Assert.Equal(0, sample.ExitCode);
        List<string> all;
        lock (lines) all = lines.ToList();
        Assert.Contains(all, l => l.StartsWith("LEADER "));
        // Independently of the sample's own count: START and END lines must strictly alternate (never two repairs at once).
        var running = 0;
        foreach (var line in all)
        {
            if (line.StartsWith("JOB-START ")) Assert.True(++running == 1, $"overlapping repair: {line}");
            else if (line.StartsWith("JOB-END ")) running--;
        }
        var summary = Regex.Match(all.Last(l => l.StartsWith("SUMMARY ")), @"jobs=(\d+) overlaps=(\d+)");
        Assert.True(int.Parse(summary.Groups[1].Value) >= 5, all.Last(l => l.StartsWith("SUMMARY ")));
        Assert.Equal("0", summary.Groups[2].Value);
    });
}
