using Akka.Actor;
using Akka.Configuration;
using Akka.Discovery;
using Coordination.Akka;
using Coordination.Akka.Discovery;
using Coordination.Client.Tests;
using Coordination.Recipes;
using Coordination.Recipes.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>Akka.Discovery with <c>akka.discovery.method = coordination</c>, over instances registered by the recipe.</summary>
public sealed class DiscoveryTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Lookup_returns_the_registered_instances_and_follows_changes(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        await using var registrar = await Targets.ConnectAsync(server, Output);
        var registry = new Coordination.Recipes.ServiceDiscovery(registrar, Root + "/services");
        var payload = System.Text.Json.JsonDocument.Parse("{\"ports\":{\"management\":8558}}").RootElement;
        await registry.RegisterAsync(new ServiceInstance("orders", "orders-1", "10.1.0.1", 4053, payload)).Within();
        await registry.RegisterAsync(new ServiceInstance("orders", "orders-2", "10.1.0.2", 4053)).Within();

        var config = ConfigurationFactory.ParseString($$"""
            akka.discovery.method = coordination
            akka.discovery.coordination { connect-string = "{{server.ConnectString}}", base-path = "{{Root}}/services" }
            """).WithFallback(CoordinationAkka.DefaultConfig());
        using var system = ActorSystem.Create("discovery", config);
        var discovery = global::Akka.Discovery.Discovery.Get(system).Default;
        Assert.IsType<CoordinationServiceDiscovery>(discovery);

        var resolved = await discovery.Lookup(new Lookup("orders"), TimeSpan.FromSeconds(10)).Within(15);
        Assert.Equal("orders", resolved.ServiceName);
        Assert.Equal([("10.1.0.1", 4053), ("10.1.0.2", 4053)], resolved.Addresses.Select(a => (a.Host, a.Port ?? 0)).OrderBy(a => a.Host));
        Assert.NotNull(resolved.Addresses[0].Address);
        var management = await discovery.Lookup(new Lookup("orders", "management", "tcp"), TimeSpan.FromSeconds(10)).Within(15);
        Assert.Contains(management.Addresses, a => a.Host == "10.1.0.1" && a.Port == 8558);

        await registry.UnregisterAsync(new ServiceInstance("orders", "orders-1", "10.1.0.1")).Within();
        Assert.Equal(["10.1.0.2"], (await discovery.Lookup(new Lookup("orders"), TimeSpan.FromSeconds(10)).Within(15)).Addresses.Select(a => a.Host));
        Assert.Empty((await discovery.Lookup(new Lookup("missing"), TimeSpan.FromSeconds(10)).Within(15)).Addresses);
        await system.Terminate().WaitAsync(TimeSpan.FromSeconds(20));
    });
}
