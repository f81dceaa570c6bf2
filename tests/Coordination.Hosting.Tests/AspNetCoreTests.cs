using System.Net;
using Coordination.Client;
using Coordination.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Xunit;

namespace Coordination.Hosting.Tests;

/// <summary>
/// An ASP.NET Core app (Kestrel on 127.0.0.1) wires the client through AddCoordinationClient, uses it in an endpoint,
/// and maps its health checks: /health flips to 503 when the server stops and back to 200 when it returns.
/// </summary>
public sealed class AspNetCoreTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task Health_endpoint_of_an_AspNetCore_app_flips_unhealthy_when_the_server_stops_and_back_when_it_returns()
    {
        await using var server = await ServerProcess.StartAsync("ours");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Coordination:ConnectString"] = server.ConnectString,
            ["Coordination:SessionTimeout"] = "00:01:00",
            ["Coordination:RetryMaxSleep"] = "00:00:00.500",
        });
        builder.Services.AddCoordinationClient(builder.Configuration.GetSection("Coordination"));
        builder.Services.AddHealthChecks().AddCoordinationClient();
        await using var app = builder.Build();
        app.MapHealthChecks("/health", new HealthCheckOptions
        {
            ResultStatusCodes = { [HealthStatus.Degraded] = 503 },
            ResponseWriter = (context, report) =>
                context.Response.WriteAsync($"{report.Status} {report.Entries["coordination-client"].Data["state"]}"),
        });
        app.MapGet("/greeting", async (CoordinationClient client) =>
            Results.Text(System.Text.Encoding.UTF8.GetString((await client.GetDataAsync("/greeting")).Data ?? [])));
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();

        await using (var writer = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = server.ConnectString }))
            await writer.CreateAsync("/greeting", "hello"u8.ToArray());
        await Eventually(url + "/health", HttpStatusCode.OK, "Healthy Connected", "healthy once connected");
        Assert.Equal("hello", await Http.GetStringAsync(url + "/greeting"));

        // Unhealthy while the session is only suspended, not just once it has expired (the test server caps the
        // session timeout at 20 ticks, 10 s).
        server.Kill();
        await Eventually(url + "/health", HttpStatusCode.ServiceUnavailable, "Unhealthy Suspended", "unhealthy with the server down", seconds: 20);

        await server.RestartAsync();
        // Reconnected to the same session, or Connected with a new one if the restart outlived the session.
        await Eventually(url + "/health", HttpStatusCode.OK, "Healthy", "healthy again once the server is back");
        Assert.Equal("hello", await Http.GetStringAsync(url + "/greeting"));
        await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Polls until the status is <paramref name="status"/> and the body (status and state) contains <paramref name="body"/>.</summary>
    private static async Task Eventually(string url, HttpStatusCode status, string body, string what, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            using var response = await Http.GetAsync(url);
            last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (response.StatusCode == status && last.Contains($" {body}", StringComparison.Ordinal)) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"not {what} within {seconds} s: last {last}");
    }
}
