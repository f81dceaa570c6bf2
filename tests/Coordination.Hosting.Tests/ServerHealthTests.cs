using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Coordination.Client;
using Coordination.Server.Hosting;
using Coordination.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace Coordination.Hosting.Tests;

/// <summary>
/// The server's health: /health/live and /health/ready on the admin endpoint (ready only while in a quorum with a known
/// leader), the Docker HEALTHCHECK's own command, and a server embedded in a Generic Host through AddCoordinationServer.
/// </summary>
public sealed class ServerHealthTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(int port, string path)
    {
        using var response = await Http.GetAsync($"http://127.0.0.1:{port}{path}");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<(HttpStatusCode Status, string Body)> EventuallyAsync(int port, string path, HttpStatusCode wanted, string what, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        (HttpStatusCode, string) last = default;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await GetAsync(port, path);
                if (last.Item1 == wanted) return last;
            }
            catch (HttpRequestException e) { last = (0, e.Message); }
            await Task.Delay(200);
        }
        throw new TimeoutException($"not {what} within {seconds} s: last {last.Item1} {last.Item2}");
    }

    [Fact]
    public async Task A_member_is_ready_only_while_in_a_quorum_and_live_throughout()
    {
        var adminPorts = new Dictionary<long, int>();
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            MemberHocon = m =>
            {
                lock (adminPorts) if (!adminPorts.ContainsKey(m.Id)) adminPorts[m.Id] = ServerProcess.FreeLoopbackPort();
                return $"coordination.admin {{ enabled = on, port = {adminPorts[m.Id]} }}";
            },
        });
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        foreach (var member in ensemble.Members)
        {
            var (status, body) = await EventuallyAsync(adminPorts[member.Id], "/health/ready", HttpStatusCode.OK, $"member {member.Id} ready");
            Assert.Equal("Healthy", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(adminPorts[member.Id], "/health/live")).Status);
        }

        // Two of three gone: the survivor has no quorum; it stays live (restarting it would not help) but not ready.
        var survivor = ensemble.Members[0];
        ensemble.Kill(ensemble.Members[1].Id);
        ensemble.Kill(ensemble.Members[2].Id);
        var (_, notReady) = await EventuallyAsync(adminPorts[survivor.Id], "/health/ready", HttpStatusCode.ServiceUnavailable, "unready without a quorum");
        var answer = JsonDocument.Parse(notReady).RootElement;
        Assert.Equal("Unhealthy", answer.GetProperty("status").GetString());
        Assert.Contains("no quorum", answer.GetProperty("reason").GetString());
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(adminPorts[survivor.Id], "/health/live")).Status);

        await ensemble.RestartAsync(ensemble.Members[1].Id);
        await EventuallyAsync(adminPorts[survivor.Id], "/health/ready", HttpStatusCode.OK, "ready again with a quorum", 90);
    }

    [Fact]
    public async Task The_Docker_HEALTHCHECK_command_passes_while_ready_and_fails_once_the_server_is_gone()
    {
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await ServerProcess.StartAsync("ours", new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort} }}",
        });
        var dockerfile = File.ReadAllText(Path.Combine(ServerProcess.FindRepositoryRoot(), "docker", "Dockerfile"));
        var command = JsonSerializer.Deserialize<string[]>(Regex.Match(dockerfile, @"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])").Groups[1].Value)!;
        Assert.Equal("bash", command[0]);
        Assert.Contains("/health/ready", command[^1]);
        var probe = command.Select(a => a.Replace("/127.0.0.1/8080", $"/127.0.0.1/{adminPort}")).ToArray();

        await EventuallyAsync(adminPort, "/health/ready", HttpStatusCode.OK, "ready");
        Assert.Equal(0, await RunAsync(probe));
        server.Kill();
        Assert.NotEqual(0, await RunAsync(probe));
    }

    private static async Task<int> RunAsync(string[] command)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException("the health probe hung"); }
        return p.ExitCode;
    }

    [Fact]
    public async Task A_server_embedded_with_AddCoordinationServer_serves_reports_healthy_and_stops_with_the_host()
    {
        var dataDir = Directory.CreateTempSubdirectory("coordination-embedded-").FullName;
        var port = ServerProcess.FreeLoopbackPort();
        try
        {
            var builder = EmbeddedServer.Builder(port, dataDir);
            builder.Services.AddHealthChecks().AddCoordinationServer();
            using var host = builder.Build();
            await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));

            var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
            Assert.Equal(HealthStatus.Healthy, report.Status);
            Assert.Equal("standalone", report.Entries["coordination-server"].Data["mode"]);
            Assert.NotNull(host.Services.GetRequiredService<CoordinationServerService>().Node?.Current);

            await using (var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = $"127.0.0.1:{port}" }))
                await client.CreateAsync("/embedded", "x"u8.ToArray());

            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await Assert.ThrowsAnyAsync<Exception>(() => CoordinationClient.ConnectAsync(new CoordinationClientOptions
            {
                ConnectString = $"127.0.0.1:{port}", RetryPolicy = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 1),
            }).WaitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { }
        }
    }
}
