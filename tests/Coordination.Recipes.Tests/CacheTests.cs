using System.Text;
using Coordination.Client;
using Coordination.Client.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Recipes.Tests;

/// <summary>NodeCache, TreeCache, group membership and service discovery: changes arrive, and keep arriving after a reconnect and a new session.</summary>
public sealed class CacheTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Node_cache_follows_changes_across_reconnect_and_session_restart(string target) => Shared(target, async server =>
    {
        var (client, proxy) = await Clients.BehindProxyAsync(server, Output);
        await using var writer = await Targets.ConnectAsync(server, Output);
        var config = Root + "/config";
        var cache = new NodeCache(client, config);
        var events = new List<CacheEvent>();
        cache.Changed += e => { lock (events) events.Add(e); };
        try
        {
            await cache.StartAsync().Within();
            Assert.Null(cache.Current);
            await writer.CreateRecursiveAsync(config, B("v1")).Within();
            await Clients.Eventually(() => S(cache.Current?.Data) == "v1", "v1 cached");
            await writer.SetDataAsync(config, B("v2")).Within();
            await Clients.Eventually(() => S(cache.Current?.Data) == "v2", "v2 cached");

            // Changed while the cache's connection is down: seen after the reconnect.
            proxy.Cut();
            await Clients.Eventually(() => client.State == ConnectionState.Suspended, "suspended");
            await writer.SetDataAsync(config, B("v3")).Within();
            proxy.Heal();
            await Clients.Eventually(() => S(cache.Current?.Data) == "v3", "v3 cached after reconnect");

            // A new session: the watch is added again.
            await Clients.ExpireSessionAsync(server, client, Output);
            await Clients.Eventually(() => client.State == ConnectionState.Expired, "expired");
            await client.RestartAsync().Within(20);
            await Clients.Eventually(async () => { await writer.SetDataAsync(config, B("v4")); await Task.Delay(100); return S(cache.Current?.Data) == "v4"; }, "v4 cached after restart");
            await writer.DeleteAsync(config).Within();
            await Clients.Eventually(() => cache.Current is null, "deletion seen");
            lock (events)
            {
                Assert.Equal(CacheEventType.Initialized, events[0].Type);
                Assert.Equal(CacheEventType.NodeAdded, events[1].Type);
                Assert.Equal(CacheEventType.NodeRemoved, events[^1].Type);
            }
        }
        finally
        {
            await cache.DisposeAsync();
            await client.DisposeAsync();
            await proxy.DisposeAsync();
        }
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Tree_cache_mirrors_a_subtree(string target) => Shared(target, async server =>
    {
        await using var client = await Targets.ConnectAsync(server, Output);
        await using var writer = await Targets.ConnectAsync(server, Output);
        var tree = Root + "/tree";
        await writer.CreateRecursiveAsync(tree + "/a/x", B("ax")).Within();
        await using var cache = new TreeCache(client, tree);
        await cache.StartAsync().Within();
        Assert.Equal("ax", S(cache.Get(tree + "/a/x")?.Data));
        await writer.CreateAsync(tree + "/b", B("b")).Within();
        await writer.CreateAsync(tree + "/b/y", B("by")).Within();
        await writer.SetDataAsync(tree + "/a/x", B("ax2")).Within();
        await Clients.Eventually(() => S(cache.Get(tree + "/b/y")?.Data) == "by" && S(cache.Get(tree + "/a/x")?.Data) == "ax2", "subtree changes");
        Assert.Equal(["a", "b"], cache.GetChildren(tree));
        await writer.DeleteRecursiveAsync(tree + "/a").Within();
        await Clients.Eventually(() => cache.Get(tree + "/a") is null && cache.Get(tree + "/a/x") is null, "subtree deletion");
        await using var shallow = new TreeCache(client, tree + "/b", maxDepth: 0);
        await shallow.StartAsync().Within();
        Assert.Single(shallow.Nodes);
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Group_members_see_joins_updates_and_a_crashed_member_leaving(string target) => Shared(target, async server =>
    {
        var group = Root + "/group";
        await using var a = await Targets.ConnectAsync(server, Output);
        var (bClient, bProxy) = await Clients.BehindProxyAsync(server, Output, TimeSpan.FromSeconds(2));
        await using var memberA = new GroupMember(a, group, "a", B("host-a"));
        var changes = new List<MembershipChange>();
        memberA.MembershipChanged += c => { lock (changes) changes.Add(c); };
        await memberA.StartAsync().Within();
        var memberB = new GroupMember(bClient, group, "b", B("host-b"));
        await memberB.StartAsync().Within();
        await Clients.Eventually(() => memberA.CurrentMembers.Count == 2, "a sees b");
        Assert.Equal("host-b", S(memberA.CurrentMembers["b"]));
        Assert.Equal(["a", "b"], memberB.CurrentMembers.Keys.Order());
        await memberB.SetDataAsync(B("host-b2")).Within();
        await Clients.Eventually(() => S(memberA.CurrentMembers["b"]) == "host-b2", "update seen");
        await Clients.CrashAsync(bClient, bProxy); // b dies: it leaves when its session times out
        await Clients.Eventually(() => !memberA.CurrentMembers.ContainsKey("b"), "b left", 20);
        lock (changes)
            Assert.Equal([MembershipChangeType.Joined, MembershipChangeType.Joined, MembershipChangeType.Updated, MembershipChangeType.Left],
                changes.Select(c => c.Type));
    });

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Service_discovery_registers_queries_watches_and_reregisters_after_expiry(string target) => Shared(target, async server =>
    {
        var basePath = Root + "/services";
        var (client, proxy) = await Clients.BehindProxyAsync(server, Output);
        await using var observer = await Targets.ConnectAsync(server, Output);
        try
        {
            await using var discovery = new ServiceDiscovery(client, basePath);
            var web1 = new ServiceInstance("web", "web-1", "10.0.0.1", 8080, System.Text.Json.JsonDocument.Parse("{\"zone\":\"a\"}").RootElement);
            await discovery.RegisterAsync(web1).Within();
            await discovery.RegisterAsync(new ServiceInstance("db", "db-1", "10.0.0.9", 5432)).Within();
            var finder = new ServiceDiscovery(observer, basePath);
            Assert.Equal(["db", "web"], await finder.QueryForNamesAsync().Within());
            var found = Assert.Single(await finder.QueryForInstancesAsync("web").Within());
            Assert.Equal(("web-1", "10.0.0.1", 8080, "a"), (found.Id, found.Address, found.Port, found.Payload!.Value.GetProperty("zone").GetString()));

            await using var cache = await finder.StartServiceCacheAsync("web").Within();
            var changed = 0;
            cache.Changed += () => Interlocked.Increment(ref changed);
            Assert.Single(cache.Instances);
            await discovery.RegisterAsync(new ServiceInstance("web", "web-2", "10.0.0.2", 8080)).Within();
            await Clients.Eventually(() => cache.Instances.Count == 2, "web-2 seen");
            await discovery.UnregisterAsync(web1).Within();
            await Clients.Eventually(() => cache.Instances.Select(i => i.Id).SequenceEqual(["web-2"]), "web-1 gone");
            Assert.True(Volatile.Read(ref changed) >= 2);

            // The registering process's session expires: its instances come back once its client restarts.
            proxy.Cut();
            await Clients.ExpireSessionAsync(server, client, Output);
            await Clients.Eventually(() => cache.Instances.Count == 0, "instances gone with the session");
            proxy.Heal();
            await Clients.Eventually(() => client.State == ConnectionState.Expired, "expired");
            await client.RestartAsync().Within(20);
            await Clients.Eventually(() => cache.Instances.Select(i => i.Id).SequenceEqual(["web-2"]), "re-registered");
        }
        finally
        {
            await client.DisposeAsync();
            await proxy.DisposeAsync();
        }
    });
}
