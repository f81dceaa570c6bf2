using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Metrics as a real Prometheus scrapes them, the audit log of writes, and the log level and format from HOCON.
/// </summary>
public sealed class ObservabilityTests(ITestOutputHelper output)
{
    private const string PrometheusBinary = "/usr/bin/prometheus";

    private static string TempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    [SkippableFact]
    public async Task A_real_prometheus_scrapes_request_latency_znode_count_and_connections()
    {
        if (!File.Exists(PrometheusBinary))
        {
            var reason = $"{PrometheusBinary} missing (apt-get install prometheus)";
            if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_PROMETHEUS") == "1") Assert.Fail(reason);
            Skip.If(true, reason);
        }
        var metricsPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.metrics {{ enabled = on, port = {metricsPort} }}",
        });
        var dir = TempDir("prometheus");
        var promPort = ServerProcess.FreeLoopbackPort();
        File.WriteAllText(Path.Combine(dir, "prometheus.yml"),
            $"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: coordination\n    static_configs:\n      - targets: ['127.0.0.1:{metricsPort}']\n");
        using var prometheus = Process.Start(new ProcessStartInfo(PrometheusBinary)
        {
            ArgumentList =
            {
                $"--config.file={Path.Combine(dir, "prometheus.yml")}", $"--storage.tsdb.path={Path.Combine(dir, "data")}",
                $"--web.listen-address=127.0.0.1:{promPort}",
            },
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        })!;
        var promLog = new StringBuilder();
        prometheus.OutputDataReceived += (_, e) => { lock (promLog) promLog.AppendLine(e.Data); };
        prometheus.ErrorDataReceived += (_, e) => { lock (promLog) promLog.AppendLine(e.Data); };
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        try
        {
            await Targets.WithServerOutputOnFailure(server, output, async () =>
            {
                var initialZnodes = long.Parse(FourLetterWord.ParseMntr(await FourLetterWord.SendAsync(server.ConnectString, "mntr"))["zk_znode_count"], CultureInfo.InvariantCulture);
                await using var writer = await WireClient.ConnectAsync(server.ConnectString);
                await using var reader = await WireClient.ConnectAsync(server.ConnectString);
                const int created = 25;
                for (var i = 0; i < created; i++) await writer.CreateAsync($"/prom-{i}", [1, 2, 3], CreateMode.Persistent).OkAsync();
                for (var round = 0; round < 8; round++)
                    for (var i = 0; i < created; i++)
                    {
                        await reader.GetDataAsync($"/prom-{i}").OkAsync();
                        if (round % 4 == 0) await writer.SetDataAsync($"/prom-{i}", [4, 5]).OkAsync();
                    }

                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{promPort}/"), Timeout = TimeSpan.FromSeconds(5) };
                var expected = new Dictionary<string, Func<double, bool>>
                {
                    ["request_latency_ms_count{op=\"getData\"}"] = v => v >= 8 * created,
                    ["request_latency_ms_count{op=\"setData\"}"] = v => v >= 2 * created,
                    ["request_latency_ms_count{op=\"create\"}"] = v => v >= created,
                    ["histogram_quantile(0.99, request_latency_ms_bucket{op=\"getData\"})"] = v => v > 0 && v <= 10000,
                    ["znode_count"] = v => v == initialZnodes + created,
                    ["num_alive_connections"] = v => v == 2,
                    ["fsynctime_count"] = v => v > 0,
                    ["commit_count"] = v => v >= 3 * created,
                    ["packets_received"] = v => v >= 11 * created,
                };
                var deadline = Stopwatch.StartNew();
                var last = new Dictionary<string, string>();
                while (true)
                {
                    foreach (var (query, ok) in expected)
                    {
                        var value = await QueryAsync(http, query);
                        last[query] = value?.ToString(CultureInfo.InvariantCulture) ?? "(no sample)";
                        if (value is { } v && ok(v)) expected.Remove(query);
                    }
                    if (expected.Count == 0) break;
                    Assert.False(prometheus.HasExited, "prometheus exited:\n" + promLog);
                    if (deadline.Elapsed > TimeSpan.FromSeconds(60))
                        Assert.Fail("Prometheus never reported: " + string.Join("; ", expected.Keys.Select(q => $"{q} = {last[q]}")) + "\nprometheus log:\n" + promLog);
                    await Task.Delay(500);
                }
                output.WriteLine(string.Join("\n", last.Select(p => $"{p.Key} = {p.Value}")));

                // Every series the shipped Grafana dashboard plots is one this server exports.
                using var metricsHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
                var exported = (await metricsHttp.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics")).Split('\n')
                    .Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split('{', ' ')[0]).ToHashSet();
                foreach (var series in DashboardSeries()) Assert.True(exported.Contains(series), $"the dashboard plots {series}, which /metrics lacks");
            });
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The metric names in the PromQL of docker/grafana/coordination-dashboard.json.</summary>
    private static IEnumerable<string> DashboardSeries()
    {
        var file = Path.Combine(ServerProcess.FindRepositoryRoot(), "docker", "grafana", "coordination-dashboard.json");
        var panels = JsonDocument.Parse(File.ReadAllText(file)).RootElement.GetProperty("panels");
        var names = new HashSet<string>();
        foreach (var panel in panels.EnumerateArray())
            foreach (var target in panel.GetProperty("targets").EnumerateArray())
                foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(target.GetProperty("expr").GetString()!, @"\b([a-z_]+)\{"))
                    names.Add(m.Groups[1].Value);
        Assert.NotEmpty(names);
        return names;
    }

    /// <summary>The value of an instant query's single sample, or null while Prometheus has none (or is not up yet).</summary>
    private static async Task<double?> QueryAsync(HttpClient http, string query)
    {
        try
        {
            var json = JsonDocument.Parse(await http.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(query))).RootElement;
            var result = json.GetProperty("data").GetProperty("result");
            if (result.GetArrayLength() != 1) return null;
            var value = result[0].GetProperty("value")[1].GetString()!;
            return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v) ? v : null;
        }
        catch (HttpRequestException) { return null; }
        catch (TaskCanceledException) { return null; }
    }

    [Fact]
    public async Task The_audit_log_records_who_did_which_write_with_its_result_and_zxid()
    {
        var dir = TempDir("audit");
        var file = Path.Combine(dir, "audit.log");
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.audit {{ enabled = on, file = \"{file}\" }}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var client = await WireClient.ConnectAsync(server.ConnectString);
            await client.AddAuthAsync("digest", "alice:secret"u8.ToArray()).OkAsync();
            var create = await client.CreateAsync("/audited", [1], CreateMode.Persistent);
            var set = await client.SetDataAsync("/audited", [2]);
            var failed = await client.DeleteAsync("/not-there");
            var delete = await client.DeleteAsync("/audited");
            Assert.Equal(ErrorCode.NoNode, failed.Header.Err);

            var session = $"session=0x{client.SessionId:x}";
            string[] lines = [];
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(20))
            {
                lines = File.Exists(file) ? File.ReadAllLines(file).Where(l => l.Contains(session) && !l.Contains("operation=createSession")).ToArray() : [];
                if (lines.Length >= 4) break;
                await Task.Delay(100);
            }
            foreach (var line in lines) output.WriteLine(line);
            Assert.Equal(4, lines.Length);
            static Dictionary<string, string> Fields(string line) =>
                line.Split('\t').Skip(1).Select(f => f.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
            void Check(string line, string operation, string path, ErrorCode err, long zxid)
            {
                var f = Fields(line);
                Assert.Equal(operation, f["operation"]);
                Assert.Equal(path, f["znode"]);
                Assert.Equal(err == ErrorCode.Ok ? "success" : "failure", f["result"]);
                Assert.Equal(err.ToString(), f["err"]);
                Assert.Equal($"0x{zxid:x}", f["zxid"]);
                Assert.Equal("127.0.0.1", f["ip"]);
                Assert.Equal("ip:127.0.0.1,digest:alice", f["user"]);
            }
            Check(lines[0], "create", "/audited", ErrorCode.Ok, create.Header.Zxid);
            Check(lines[1], "setData", "/audited", ErrorCode.Ok, set.Header.Zxid);
            Check(lines[2], "delete", "/not-there", ErrorCode.NoNode, failed.Header.Zxid);
            Check(lines[3], "delete", "/audited", ErrorCode.Ok, delete.Header.Zxid);
        });
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task The_log_level_and_json_format_come_from_hocon()
    {
        // WARNING: the INFO line "listening on" must not appear.
        await using (var quiet = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = "coordination.logging.level = WARNING" }))
        {
            await using var client = await WireClient.ConnectAsync(quiet.ConnectString);
            await client.CreateAsync("/quiet", null, CreateMode.Persistent).OkAsync();
            await quiet.StopAsync();
            output.WriteLine(quiet.OutputTail);
            Assert.DoesNotContain("listening on", quiet.OutputTail);
        }

        // DEBUG in JSON: the session actor's debug line carries the session id as a structured field.
        await using var verbose = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.logging { level = DEBUG, format = json }",
        });
        await using var session = await WireClient.ConnectAsync(verbose.ConnectString);
        var deadline = Stopwatch.StartNew();
        JsonElement? connected = null;
        while (connected is null && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            foreach (var line in verbose.OutputTail.Split('\n').Where(l => l.StartsWith('{')))
            {
                var json = JsonDocument.Parse(line).RootElement;   // every log line is one JSON object
                if (json.GetProperty("LogLevel").GetString() == "Debug" && json.GetProperty("State").TryGetProperty("SessionId", out var sid)
                    && sid.GetInt64() == session.SessionId)
                    connected = json;
            }
            if (connected is null) await Task.Delay(100);
        }
        Assert.True(connected is not null, "no Debug JSON line with the session id; output:\n" + verbose.OutputTail);
        Assert.Contains("listening on", verbose.OutputTail);
        Assert.Equal("127.0.0.1", connected!.Value.GetProperty("State").GetProperty("ClientAddress").GetString());
    }

    [SkippableFact]
    public async Task The_compose_file_and_its_prometheus_config_are_valid()
    {
        // `docker-compose config` only parses and resolves the file: it needs no Docker engine.
        const string compose = "/usr/bin/docker-compose";
        if (!File.Exists(compose))
        {
            var reason = $"{compose} missing (apt-get install docker-compose)";
            if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_COMPOSE") == "1") Assert.Fail($"COORDINATION_REQUIRE_COMPOSE=1 but {reason}");
            Skip.If(true, reason);
        }
        var root = ServerProcess.FindRepositoryRoot();
        // The members' shared secret comes from the environment; without it compose refuses to start anything.
        var unset = await RunAsync(compose, root, null, "-f", "docker/compose.yaml", "config");
        Assert.True(unset.ExitCode != 0 && unset.Output.Contains("COORDINATION_ENSEMBLE_SECRET"), unset.Output);
        var config = await RunAsync(compose, root, "test-secret-0123456789abcdef", "-f", "docker/compose.yaml", "config");
        Assert.True(config.ExitCode == 0, config.Output);
        Assert.Contains("test-secret-0123456789abcdef", config.Output);
        foreach (var service in new[] { "node1:", "node2:", "node3:", "prometheus:", "grafana:" }) Assert.Contains(service, config.Output);
        foreach (var n in new[] { 1, 2, 3 }) Assert.Contains($"/etc/coordination/node{n}.conf", config.Output);
        if (!File.Exists("/usr/bin/promtool") && Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_PROMETHEUS") == "1")
            Assert.Fail("COORDINATION_REQUIRE_PROMETHEUS=1 but /usr/bin/promtool is missing (apt-get install prometheus)");
        if (File.Exists("/usr/bin/promtool"))
        {
            var check = await RunAsync("/usr/bin/promtool", root, null, "check", "config", "docker/prometheus.yml");
            Assert.True(check.ExitCode == 0, check.Output);
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string directory, string? ensembleSecret, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment.Remove("COORDINATION_ENSEMBLE_SECRET");
        if (ensembleSecret is not null) psi.Environment["COORDINATION_ENSEMBLE_SECRET"] = ensembleSecret;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout + await stderr);
    }
}
