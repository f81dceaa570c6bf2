using System.Text;
using Coordination.Client;
using Coordination.Client.Hosting;
using Coordination.TestKit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit;

namespace Coordination.Hosting.Tests;

/// <summary>
/// configuration.AddCoordination over a znode subtree, against a real server process (ours and Apache ZooKeeper 3.8,
/// same code): IOptionsMonitor sees a change another client writes within a second; with the server stopped the
/// values stay the last good ones; the first load is required unless optional.
/// </summary>
public sealed class ConfigurationProviderTests
{
    public sealed class DbOptions
    {
        public int Timeout { get; set; }
        public string Name { get; set; } = "";
        public int Pool { get; set; }
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static CoordinationClientOptions Fast(string connectString) => new()
    {
        ConnectString = connectString,
        SessionTimeout = TimeSpan.FromSeconds(30),
        RetryPolicy = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(100), 3, TimeSpan.FromMilliseconds(300)),
    };

    private static ConfigurationRoot Build(string connectString, bool optional = false, TimeSpan? initialLoadTimeout = null) =>
        (ConfigurationRoot)new ConfigurationBuilder().AddCoordination(source =>
        {
            source.Client = Fast(connectString);
            source.Root = "/app/config";
            source.Optional = optional;
            source.InitialLoadTimeout = initialLoadTimeout ?? TimeSpan.FromSeconds(10);
        }).Build();

    private static async Task<T> Within<T>(TaskCompletionSource<T> signal, TimeSpan limit, string what)
    {
        try { return await signal.Task.WaitAsync(limit); }
        catch (TimeoutException) { throw new TimeoutException($"{what}: not seen within {limit.TotalSeconds} s"); }
    }

    [Theory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task IOptionsMonitor_sees_another_clients_change_within_a_second_and_keeps_the_last_values_while_the_server_is_down(string target)
    {
        await using var server = await ServerProcess.StartAsync(target);
        await using var writer = await CoordinationClient.ConnectAsync(Fast(server.ConnectString));
        await writer.CreateRecursiveAsync("/app/config/Db/Timeout", B("5"));
        await writer.CreateAsync("/app/config/Db/Name", B("orders"));

        using var configuration = Build(server.ConnectString);
        var provider = configuration.Providers.OfType<CoordinationConfigurationProvider>().Single();
        using var services = new ServiceCollection().Configure<DbOptions>(configuration.GetSection("Db")).BuildServiceProvider();
        var monitor = services.GetRequiredService<IOptionsMonitor<DbOptions>>();
        Assert.Equal(5, monitor.CurrentValue.Timeout);
        Assert.Equal("orders", monitor.CurrentValue.Name);
        Assert.Null(configuration["app"]); // intermediate nodes without data are sections, not values

        // A change and a new key written by another client reach IOptionsMonitor within a second each.
        var changed = new TaskCompletionSource<DbOptions>(TaskCreationOptions.RunContinuationsAsynchronously);
        var added = new TaskCompletionSource<DbOptions>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = monitor.OnChange(o =>
        {
            if (o.Timeout == 7) changed.TrySetResult(o);
            if (o.Pool == 10) added.TrySetResult(o);
        });
        await writer.SetDataAsync("/app/config/Db/Timeout", B("7"));
        Assert.Equal("orders", (await Within(changed, TimeSpan.FromSeconds(1), "Db:Timeout = 7")).Name);
        await writer.CreateAsync("/app/config/Db/Pool", B("10"));
        Assert.Equal(7, (await Within(added, TimeSpan.FromSeconds(1), "Db:Pool = 10")).Timeout);

        // The server goes away: the provider's reloads fail, and the values stay the last good ones.
        server.Kill();
        await Eventually(() => !provider.Client.State.IsConnected(), "the provider's client sees the server gone");
        await Task.Delay(TimeSpan.FromSeconds(2)); // reload attempts fail meanwhile
        Assert.Equal((7, "orders", 10), (monitor.CurrentValue.Timeout, monitor.CurrentValue.Name, monitor.CurrentValue.Pool));
        Assert.Equal("7", configuration["Db:Timeout"]);

        // Back again: a change made after the return is seen, whether the provider's session survived the restart
        // (its watch lives on) or expired meanwhile (a new session re-arms the watch). The writer's session may
        // have expired too (the server caps the timeout at 10 s), so the change comes from a new client.
        await server.RestartAsync();
        var again = new TaskCompletionSource<DbOptions>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var later = monitor.OnChange(o => { if (o.Timeout == 9) again.TrySetResult(o); });
        await using var lateWriter = await CoordinationClient.ConnectAsync(Fast(server.ConnectString));
        await lateWriter.SetDataAsync("/app/config/Db/Timeout", B("9")).WaitAsync(TimeSpan.FromSeconds(30));
        await Within(again, TimeSpan.FromSeconds(30), "Db:Timeout = 9 after the server returned");
    }

    [Fact]
    public async Task Without_a_server_a_required_source_fails_to_build_and_an_optional_one_starts_empty_then_loads()
    {
        var port = ServerProcess.FreeLoopbackPort();
        var connect = $"127.0.0.1:{port}";
        var error = Assert.Throws<InvalidOperationException>(() => Build(connect, optional: false, initialLoadTimeout: TimeSpan.FromSeconds(2)));
        Assert.Contains("/app/config", error.Message);

        using var configuration = Build(connect, optional: true, initialLoadTimeout: TimeSpan.FromSeconds(2));
        Assert.Empty(configuration.AsEnumerable());
        var loaded = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = Microsoft.Extensions.Primitives.ChangeToken.OnChange(configuration.GetReloadToken,
            () => { if (configuration["Db:Timeout"] == "5") loaded.TrySetResult(true); });

        await using var server = await ServerProcess.StartAsync("ours", new ServerProcessOptions { Port = port });
        await using var writer = await CoordinationClient.ConnectAsync(Fast(server.ConnectString));
        await writer.CreateRecursiveAsync("/app/config/Db/Timeout", B("5"));
        await Within(loaded, TimeSpan.FromSeconds(30), "the optional source loads once a server answers");
    }

    private static async Task Eventually(Func<bool> condition, string what, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not within {seconds} s: {what}");
            await Task.Delay(50);
        }
    }
}
