using Akka.Actor;
using Akka.Coordination;
using Akka.Discovery;
using Akka.Hosting;
using Coordination.Akka.Discovery;
using Coordination.Akka.Hosting;
using Coordination.Client;
using Coordination.Client.Actors;
using Coordination.Client.Tests;
using Coordination.Protocol;
using Coordination.Recipes;
using Coordination.Recipes.Tests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>WithCoordinationClient, WithCoordinationDiscovery and the lease's Setup, each in a host configured only through Akka.Hosting.</summary>
public sealed class HostingExtensionsTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task WithCoordinationClient_starts_the_proxy_and_registers_it_for_injection(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        using var host = await AkkaHosts.StartAsync(Output, "proxy", "proxy", builder => builder
            .WithCoordinationClient(o => { o.ConnectString = server.ConnectString; o.SessionTimeout = TimeSpan.FromSeconds(6); o.ProxyName = "zk"; }));
        try
        {
            var proxy = await host.Services.GetRequiredService<IRequiredActor<CoordinationProxy>>().GetAsync().Within();
            Assert.Equal("zk", proxy.Path.Name);
            var created = await proxy.Ask<Created>(new Create(Root, [1, 2, 3]), TimeSpan.FromSeconds(10)).Within(15);
            Assert.Equal(Root, created.Path);
            await using var check = await Targets.ConnectAsync(server, Output);
            Assert.Equal([1, 2, 3], (await check.GetDataAsync(Root)).Data);
            Assert.Equal(TimeSpan.FromSeconds(6), host.Services.GetRequiredService<ActorSystem>().Coordination().Settings.SessionTimeout);
        }
        finally { await host.StopAsync().Within(20); }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task WithCoordinationDiscovery_makes_it_the_discovery_method_over_the_registered_instances(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        await using var registrar = await Targets.ConnectAsync(server, Output);
        await new Recipes.ServiceDiscovery(registrar, Root + "/services").RegisterAsync(new ServiceInstance("orders", "orders-1", "10.1.0.1", 4053)).Within();
        using var host = await AkkaHosts.StartAsync(Output, "discovery", "discovery", builder => builder
            .WithCoordinationDiscovery(o => { o.ConnectString = server.ConnectString; o.BasePath = Root + "/services"; }));
        try
        {
            var discovery = global::Akka.Discovery.Discovery.Get(host.Services.GetRequiredService<ActorSystem>()).Default;
            Assert.IsType<CoordinationServiceDiscovery>(discovery);
            var resolved = await discovery.Lookup(new Lookup("orders"), TimeSpan.FromSeconds(10)).Within(15);
            Assert.Equal([("10.1.0.1", 4053)], resolved.Addresses.Select(a => (a.Host, a.Port ?? 0)));
        }
        finally { await host.StopAsync().Within(20); }
    });

    /// <summary>
    /// The leases live under a node only a digest user may use: a lease given that user's credentials (through
    /// <see cref="CoordinationConnectionSetup"/>) is granted, one without them is refused.
    /// </summary>
    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task The_lease_option_sends_its_credentials_through_the_setup(string target) => Servers.RunAsync(target, null, Output, async server =>
    {
        await using (var admin = await Targets.ConnectAsync(server, Output))
        {
            await admin.CreateAsync(Root, []).Within();
            await admin.CreateAsync(Root + "/leases", [], acl: [new Acl(Perms.All, Acls.DigestId("akka", "secret"))]).Within();
        }
        async Task<bool> AcquireAsync(string owner, IReadOnlyList<AuthInfo>? auth)
        {
            using var host = await AkkaHosts.StartAsync(Output, owner, owner, builder => builder.WithCoordinationLease(o =>
            {
                o.ConnectString = server.ConnectString;
                o.RootPath = Root + "/leases";
                o.Auth = auth;
            }));
            try
            {
                var lease = LeaseProvider.Get(host.Services.GetRequiredService<ActorSystem>()).GetLease("guarded", CoordinationLeaseOption.Path, owner);
                return await lease.Acquire().Within(15);
            }
            finally { await host.StopAsync().Within(20); }
        }
        Assert.False(await AcquireAsync("anonymous", auth: null));
        Assert.True(await AcquireAsync("trusted", auth: [AuthInfo.Digest("akka", "secret")]));
    });
}
