using System.Collections.Concurrent;
using Coordination.Client;
using Coordination.Client.Hosting;
using Coordination.TestKit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Xunit;

namespace Coordination.Hosting.Tests;

/// <summary>
/// A Generic Host app wires the client through AddCoordinationClient(configuration.GetSection("Coordination")):
/// validated options, the client injected, its diagnostics through ILogger, and a health check that follows the
/// session against a real server that stops and comes back.
/// </summary>
public sealed class ClientHostingTests
{
    private static IHost BuildHost(IDictionary<string, string?> settings, LogCapture? logs = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        if (logs is not null) builder.Logging.AddProvider(logs);
        builder.Services.AddCoordinationClient(builder.Configuration.GetSection("Coordination"));
        builder.Services.AddHealthChecks().AddCoordinationClient();
        return builder.Build();
    }

    [Fact]
    public async Task Health_follows_the_session_when_the_server_stops_and_returns()
    {
        await using var server = await ServerProcess.StartAsync("ours");
        var logs = new LogCapture();
        using var host = BuildHost(new Dictionary<string, string?>
        {
            ["Coordination:ConnectString"] = server.ConnectString,
            ["Coordination:SessionTimeout"] = "00:00:30",
            ["Coordination:RetryMaxSleep"] = "00:00:00.500",
        }, logs);
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var client = host.Services.GetRequiredService<CoordinationClient>();

        await Eventually(health, HealthStatus.Healthy, "healthy once connected");
        await client.CreateAsync("/hosted", "v1"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains(logs.Messages, m => m.Level == LogLevel.Information && m.Category == typeof(CoordinationClient).FullName && m.Text.Contains("connected to"));

        server.Kill();
        var down = await Eventually(health, HealthStatus.Unhealthy, "unhealthy with the server down");
        Assert.Equal(nameof(ConnectionState.Suspended), down.Entries["coordination-client"].Data["state"]);
        Assert.Contains(logs.Messages, m => m.Level == LogLevel.Warning && m.Text.Contains("connection lost"));

        await server.RestartAsync();
        await Eventually(health, HealthStatus.Healthy, "healthy again once the server is back");
        Assert.Equal("v1"u8.ToArray(), (await client.GetDataAsync("/hosted").WaitAsync(TimeSpan.FromSeconds(10))).Data);

        await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(ConnectionState.Closed, client.State);
    }

    [Fact]
    public async Task An_expired_session_is_unhealthy_until_the_hosted_client_starts_a_new_one()
    {
        await using var server = await ServerProcess.StartAsync("ours");
        using var host = BuildHost(new Dictionary<string, string?>
        {
            ["Coordination:ConnectString"] = server.ConnectString,
            ["Coordination:SessionTimeout"] = "00:00:04",
            ["Coordination:RestartBackoff"] = "00:00:03",
        });
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var client = host.Services.GetRequiredService<CoordinationClient>();
        await Eventually(health, HealthStatus.Healthy, "healthy once connected");
        var firstSession = client.SessionId;

        // No server for longer than the session timeout: the client reports Expired (the session is gone for good).
        server.Kill();
        await EventuallyState(health, "Expired");
        await server.RestartAsync();
        await Eventually(health, HealthStatus.Healthy, "healthy with a new session");
        Assert.NotEqual(firstSession, client.SessionId);
        await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Invalid_settings_stop_the_host_at_start_with_the_setting_named()
    {
        using var host = BuildHost(new Dictionary<string, string?>
        {
            ["Coordination:ConnectString"] = "127.0.0.1:2181/bad//chroot",
            ["Coordination:SessionTimeout"] = "-00:00:01",
        });
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(e.Failures, f => f.Contains("Coordination:ConnectString"));
        Assert.Contains(e.Failures, f => f.Contains("Coordination:SessionTimeout"));

        using var missing = BuildHost(new Dictionary<string, string?>());
        var none = await Assert.ThrowsAsync<OptionsValidationException>(() => missing.StartAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(none.Failures, f => f.Contains("ConnectString is required"));
    }

    private static async Task EventuallyState(HealthCheckService health, string state, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var entry = (await health.CheckHealthAsync()).Entries["coordination-client"];
            if (entry.Data["state"].Equals(state))
            {
                Assert.Equal(HealthStatus.Unhealthy, entry.Status);
                return;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not {state} within {seconds} s: {entry.Data["state"]}");
            await Task.Delay(50);
        }
    }

    private static async Task<HealthReport> Eventually(HealthCheckService health, HealthStatus wanted, string what, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var report = await health.CheckHealthAsync();
            if (report.Status == wanted) return report;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"not {what} within {seconds} s: {report.Status} ({report.Entries["coordination-client"].Description})");
            await Task.Delay(100);
        }
    }
}

/// <summary>Keeps what the application logged.</summary>
public sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(string Category, LogLevel Level, string Text)> Messages { get; } = new();
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
    public void Dispose() { }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Messages.Enqueue((category, logLevel, formatter(state, exception)));
    }
}
