using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Coordination.Bench;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>Runs Coordination.Bench in-process for ~2 s against a real server and checks its JSON report.</summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class BenchSmokeTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Bench_runs_without_errors_and_reports_json(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var r = await RunBenchJsonAsync(
            [
                "--connect", server.ConnectString, "--sessions", "4", "--inflight", "8", "--op", "mixed", "--read-ratio", "0.8",
                "--znodes", "200", "--warmup", "500ms", "--duration", "2s", "--watchers", "5", "--server-pid", server.Pid.ToString(),
            ]);
            Assert.True(r.GetProperty("ops_per_sec").GetDouble() > 0);
            Assert.True(r.GetProperty("per_op").GetProperty("get").GetProperty("ops").GetInt64() > 0);
            Assert.True(r.GetProperty("per_op").GetProperty("set").GetProperty("ops").GetInt64() > 0);
            var watch = r.GetProperty("watch");
            Assert.True(watch.GetProperty("rounds").GetInt64() > 0, "no watch fan-out round completed");
            Assert.Equal(0, watch.GetProperty("missed_notifications").GetInt64());
            Assert.True(r.GetProperty("server").GetProperty("cpu_ms").GetDouble() >= 0);
        });
    }

    /// <summary>
    /// The sessions command end to end on 200 sessions from three loopback source addresses (80 per address): every
    /// session opens, its 5 watches are registered on the server, every session is notified of the one change, and
    /// every session closes, with no error or lost connection; the figures are there and sane.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Sessions_opens_watches_notifies_and_closes_every_session(string target)
    {
        ResourceLimits.EnsureOpenFiles(4096);
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var code = await BenchApp.RunAsync(
            [
                "sessions", "--connect", server.ConnectString, "--server-pid", server.Pid.ToString(), "--sessions", "200",
                "--watches-per-session", "5", "--watch-paths", "50", "--concurrency", "32", "--per-source-address", "80",
                "--settle", "200ms", "--step-limit", "60s", "--time-limit", "2m", "--json",
            ], stdout, stderr);
            output.WriteLine(stderr.ToString());
            output.WriteLine(stdout.ToString());
            Assert.True(code == 0, $"sessions exit code {code}");
            using var json = JsonDocument.Parse(stdout.ToString());
            var r = json.RootElement;
            Assert.Equal(200, r.GetProperty("connected").GetInt64());
            Assert.Equal(1000, r.GetProperty("server_watch_count").GetInt64());
            Assert.Equal(200, r.GetProperty("notified").GetInt64());
            Assert.Equal(0, r.GetProperty("errors").GetInt64());
            Assert.Equal(0, r.GetProperty("lost").GetInt64());
            Assert.True(r.GetProperty("sessions_per_sec").GetDouble() > 0);
            Assert.True(r.GetProperty("closes_per_sec").GetDouble() > 0);
            Assert.True(r.GetProperty("rss_sessions_bytes").GetInt64() > 0);
            var last = r.GetProperty("notify_all_ms").GetDouble();
            Assert.InRange(r.GetProperty("notify_p50_ms").GetDouble(), 0, last);
            Assert.Contains($"| {server.ConnectString} |", stderr.ToString());
        });
    }

    /// <summary>Runs the bench with --json; checks it exited 0 with successful ops, latencies and no error of any kind.</summary>
    private async Task<JsonElement> RunBenchJsonAsync(string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await BenchApp.RunAsync([.. args, "--json"], stdout, stderr);
        output.WriteLine(stderr.ToString());
        output.WriteLine(stdout.ToString());
        Assert.True(code == 0, $"bench exit code {code}");
        using var json = JsonDocument.Parse(stdout.ToString());
        var r = json.RootElement.Clone();
        Assert.True(r.GetProperty("ops").GetInt64() > 0, "no successful ops");
        Assert.Equal(0, r.GetProperty("errors").GetInt64());
        Assert.Equal(0, r.GetProperty("warmup_errors").GetInt64());
        Assert.Equal(0, r.GetProperty("connection_losses").GetInt64());
        Assert.True(r.GetProperty("latency_us").GetProperty("p50").GetDouble() > 0);
        Assert.True(r.GetProperty("latency_us").GetProperty("p99").GetDouble() > 0);
        return r;
    }

    [Fact]
    public async Task Bench_rejects_bad_arguments()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, await BenchApp.RunAsync(["--op", "frobnicate"], stdout, stderr));
        Assert.Contains("unknown op", stderr.ToString());
        Assert.Equal(0, await BenchApp.RunAsync(["--help"], stdout, stderr));
        Assert.Equal(2, await BenchApp.RunAsync(["sessions", "--sessions", "0"], stdout, stderr));
        Assert.Contains("--sessions must be at least 1", stderr.ToString());
    }

    /// <summary>
    /// A ratio the table shows (2 decimals) against the one its two shown values (3 decimals each) give: the bench
    /// divides the unrounded values, so the shown ones allow an error of half their last digit each, which a big ratio
    /// magnifies (write 1.839 ms over fdatasync 0.128 ms is 14.31-14.42: a fixed 0.02 failed CI at 14.40, session 23).
    /// </summary>
    private static void AssertRatio(double shown, double numerator, double denominator)
    {
        var ratio = numerator / denominator;
        var tolerance = ratio * (0.0005 / numerator + 0.0005 / denominator) + 0.005;
        Assert.InRange(shown, ratio - tolerance, ratio + tolerance);
    }

    [Fact]
    public async Task Side_by_side_runs_against_ours_and_prints_the_table()
    {
        var table = await RunSideBySideAsync(
        [
            "--targets", "ours", "--one-member", "--rows", "get,latency-set,watch", "--watchers", "5", "--runs", "1",
            "--shapes", "2x4", "--znodes", "50", "--warmup", "200ms", "--duration", "1s", "--prime", "0s", "--time-limit", "2m",
        ]);
        Assert.Contains("| getData 100 B", table);
        Assert.Contains("| latency setData 1x1", table);
        Assert.Contains("| watch 5 watchers", table);
        Assert.Contains("CPU ms/1k ops", table);
        // Beside the 1x1 write row: the disk's fdatasync floor from the same run, and the write's p50 over it.
        double P50(string row, string server) => double.Parse(table.Split('\n').Select(l => l.Split('|'))
            .Single(c => c.Length > 5 && c[1].Trim() == row && c[2].Trim() == server)[5].Trim(), CultureInfo.InvariantCulture);
        var fsyncP50 = P50("fdatasync 128 B", "disk");
        Assert.InRange(fsyncP50, 0.001, 1000);
        var writeP50 = P50("latency setData 1x1", "ours");
        AssertRatio(P50("latency setData 1x1", "ours/fsync"), writeP50, fsyncP50);
        // --one-member: the same rows against ours as an ensemble of one, and its ratio to the standalone server.
        var zab1P50 = P50("latency setData 1x1", "ours-zab1");
        AssertRatio(P50("latency setData 1x1", "zab1/standalone"), zab1P50, writeP50);
        Assert.Contains("as an ensemble of one (Mode: leader)", _stderr);
    }

    [Fact]
    public async Task Rate_paces_the_load_and_measures_from_the_intended_send_time()
    {
        await using var server = await Targets.StartAsync("ours", output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            const double target = 2000;
            var r = await RunBenchJsonAsync(
            [
                "--connect", server.ConnectString, "--sessions", "4", "--inflight", "8", "--op", "get", "--znodes", "100",
                "--rate", "2000", "--warmup", "300ms", "--duration", "2s", "--server-pid", server.Pid.ToString(),
            ]);
            var rate = r.GetProperty("rate");
            Assert.Equal(target, rate.GetProperty("target_ops_per_sec").GetDouble());
            // Open loop: never faster than the schedule (a closed loop would do tens of thousands).
            var achieved = r.GetProperty("ops_per_sec").GetDouble();
            Assert.InRange(achieved, 1, 1.05 * target);
            Assert.Equal(achieved, rate.GetProperty("achieved_ops_per_sec").GetDouble());
            // And not slower than the schedule: every request due in the measured window is accounted for, however
            // slow the machine is (a stall only moves requests from answered to unsent or in flight): answered in the
            // window, never sent for want of a free slot, or among the at most sessions x inflight (32) still in flight
            // at its end. A pacer that sends less than its schedule fails this; a stalled test machine does not.
            var due = target * r.GetProperty("duration_s").GetDouble();
            var accounted = r.GetProperty("ops").GetInt64() + r.GetProperty("errors").GetInt64()
                + rate.GetProperty("unsent").GetInt64() + r.GetProperty("connection_losses").GetInt64();
            Assert.InRange(accounted, due - 32 - 3, due + 3);
            Assert.Equal(r.GetProperty("ops").GetInt64(), r.GetProperty("latency_us").GetProperty("count").GetInt64());
            Assert.True(r.GetProperty("latency_us").GetProperty("p999").GetDouble() >= r.GetProperty("latency_us").GetProperty("p99").GetDouble());
            Assert.True(rate.GetProperty("send_lag_us").GetProperty("count").GetInt64() > 0);
            Assert.Equal(server.Pid, r.GetProperty("server").GetProperty("pid").GetInt32());
        });
    }

    [Fact]
    public void Server_pid_is_repeatable_and_comma_separated()
    {
        Assert.Equal([12, 34, 56], BenchOptions.Parse(["--server-pid", "12,34", "--server-pid=56"]).ServerPids);
        Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--rate", "0"]));
    }

    [Fact]
    public async Task Side_by_side_runs_a_3_node_ensemble_of_ours()
    {
        var table = await RunSideBySideAsync(
        [
            "--nodes", "3", "--targets", "ours", "--rows", "get,latency-get", "--runs", "1", "--shapes", "4x8", "--znodes", "50",
            "--warmup", "0s", "--duration", "1s", "--prime", "0s", "--time-limit", "2m",
        ]);
        Assert.Contains("3-node ensembles", table);
        Assert.Contains("p999 ms", table);
        foreach (var label in (string[])["getData 100 B", "latency getData 1x1 (leader)", "latency getData 1x1 (follower)"])
        {
            var row = table.Split('\n').Single(l => l.Split('|') is { Length: > 4 } c && c[1].Trim() == label && c[2].Trim() == "ours");
            var ops = double.Parse(row.Split('|')[4].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            Assert.True(ops > 0, $"no throughput in: {row}");
        }
        // The 1x1 rows ran on one member each, a different one for the leader and the follower.
        string MemberOf(string placementRow) => Regex.Match(_stderr, placementRow + @".* on (127\.0\.0\.1:\d+)").Groups[1].Value;
        var onLeader = MemberOf(@"latency-get@leader\s+ours");
        var onFollower = MemberOf(@"latency-get@follower\s+ours");
        Assert.NotEqual("", onLeader);
        Assert.NotEqual("", onFollower);
        Assert.NotEqual(onLeader, onFollower);
    }

    private string _stderr = "";

    /// <summary>Runs the side-by-side verb; checks it exited 0 and returns the table it printed.</summary>
    private async Task<string> RunSideBySideAsync(string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await BenchApp.RunAsync(["side-by-side", .. args], stdout, stderr);
        _stderr = stderr.ToString();
        output.WriteLine(_stderr);
        output.WriteLine(stdout.ToString());
        Assert.Equal(0, code);
        return stdout.ToString();
    }

    [Fact]
    public async Task Side_by_side_rejects_bad_arguments()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, await BenchApp.RunAsync(["side-by-side", "--nodes", "2"], stdout, stderr));
        Assert.Contains("--nodes: 1 or 3", stderr.ToString());
        Assert.Equal(2, await BenchApp.RunAsync(["side-by-side", "--rows", "frobnicate"], stdout, stderr));
        Assert.Equal(0, await BenchApp.RunAsync(["side-by-side", "--help"], stdout, stderr));
        Assert.Contains("half-set", stdout.ToString());
    }
}
