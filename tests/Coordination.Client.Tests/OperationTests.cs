using System.Text;
using Coordination.Protocol;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>Every operation of the Task API, the same code against our server and Apache ZooKeeper.</summary>
public sealed class OperationTests(ServersFixture servers, ITestOutputHelper output) : IClassFixture<ServersFixture>
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);
    private static string Root(string name) => $"/{name}-{Guid.NewGuid():N}";

    private async Task<CoordinationClient> Connect(string target, string chroot = "")
    {
        var server = await servers.Get(target);
        return await Targets.ConnectAsync(server, output, chroot: chroot);
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Crud_and_typed_errors(string target)
    {
        await using var client = await Connect(target);
        Assert.Equal(ConnectionState.Connected, client.State);
        Assert.NotEqual(0, client.SessionId);
        var root = Root("crud");

        var created = await client.CreateWithStatAsync(root, B("v0")).Within();
        Assert.Equal(root, created.Path);
        Assert.Equal(0, created.Stat.Version);
        var data = await client.GetDataAsync(root).Within();
        Assert.Equal("v0", Encoding.UTF8.GetString(data.Data!));
        Assert.Equal(created.Stat, data.Stat);

        var stat = await client.SetDataAsync(root, B("v1"), 0).Within();
        Assert.Equal(1, stat.Version);
        await Assert.ThrowsAsync<BadVersionException>(() => client.SetDataAsync(root, B("x"), 0)).Within();
        await Assert.ThrowsAsync<NodeExistsException>(() => client.CreateAsync(root, B(""))).Within();
        var noNode = await Assert.ThrowsAsync<NoNodeException>(() => client.GetDataAsync(root + "/missing")).Within();
        Assert.Equal(root + "/missing", noNode.Path);
        Assert.Equal(ErrorCode.NoNode, noNode.Code);
        Assert.Null(await client.ExistsAsync(root + "/missing").Within());
        Assert.Equal(1, (await client.ExistsAsync(root).Within())!.Value.Version);

        var seq1 = await client.CreateAsync(root + "/s-", B(""), CreateMode.PersistentSequential).Within();
        var seq2 = await client.CreateAsync(root + "/s-", B(""), CreateMode.PersistentSequential).Within();
        Assert.Equal(root + "/s-0000000000", seq1);
        Assert.Equal(root + "/s-0000000001", seq2);
        var eph = await client.CreateAsync(root + "/e", B(""), CreateMode.Ephemeral).Within();
        await Assert.ThrowsAsync<NoChildrenForEphemeralsException>(() => client.CreateAsync(eph + "/c", B(""))).Within();
        await client.CreateWithStatAsync(root + "/container", B(""), CreateMode.Container).Within();
        var ttl = await client.CreateWithStatAsync(root + "/ttl", B(""), CreateMode.PersistentWithTtl, ttl: 60_000).Within()
            .ContinueWith(t => t.IsFaulted ? null : t.Result); // TTL nodes need extendedTypesEnabled on Apache
        output.WriteLine($"{target}: container ephemeralOwner 0x{(await client.ExistsAsync(root + "/container").Within())!.Value.EphemeralOwner:x}, " +
            (ttl is null ? "TTL nodes disabled" : $"ttl ephemeralOwner 0x{(await client.ExistsAsync(root + "/ttl").Within())!.Value.EphemeralOwner:x}"));

        var children = await client.GetChildrenAsync(root).Within();
        Assert.Contains("s-0000000000", children.Children);
        Assert.Contains("e", children.Children);
        Assert.Equal(children.Children.Count, children.Stat.NumChildren);
        Assert.Equal(children.Children.Count, await client.GetAllChildrenNumberAsync(root).Within());
        Assert.Equal([eph], await client.GetEphemeralsAsync(root).Within());

        await Assert.ThrowsAsync<NotEmptyException>(() => client.DeleteAsync(root)).Within();
        await Assert.ThrowsAsync<BadVersionException>(() => client.DeleteAsync(seq1, 5)).Within();
        await client.DeleteAsync(seq1, 0).Within();
        Assert.Equal(root, await client.SyncAsync(root).Within());
        await client.DeleteRecursiveAsync(root).Within();
        Assert.Null(await client.ExistsAsync(root).Within());
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetDataAsync("no-slash")).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Acl_digest_auth_and_whoami(string target)
    {
        await using var client = await Connect(target);
        var root = Root("acl");
        await client.AddAuthAsync(AuthInfo.Digest("alice", "secret")).Within();
        var who = await client.WhoAmIAsync().Within();
        Assert.Contains(who, c => c.AuthScheme == "digest" && c.User == "alice");

        var aliceOnly = new List<Acl> { new(Perms.All, Acls.DigestId("alice", "secret")) };
        await client.CreateAsync(root, B("secret"), acl: aliceOnly).Within();
        var acl = await client.GetAclAsync(root).Within();
        Assert.Equal(aliceOnly, acl.Acl);

        await using var other = await Connect(target);
        await Assert.ThrowsAsync<NoAuthException>(() => other.GetDataAsync(root)).Within();
        await other.AddAuthAsync(AuthInfo.Digest("alice", "secret")).Within();
        Assert.Equal("secret", Encoding.UTF8.GetString((await other.GetDataAsync(root).Within()).Data!));

        var stat = await client.SetAclAsync(root, Acls.Open, 0).Within();
        Assert.Equal(1, stat.Aversion);
        await client.DeleteAsync(root).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Multi_and_multiRead(string target)
    {
        await using var client = await Connect(target);
        var root = Root("multi");
        var results = await client.MultiAsync([
            Op.Create(root, B("r")),
            Op.Create(root + "/a", B("a")),
            Op.SetData(root, B("r1"), 0),
            Op.Check(root + "/a", 0),
        ]).Within();
        Assert.Equal(4, results.Count);
        Assert.Equal(root, Assert.IsType<MultiOpResult.Create>(results[0]).Path);
        Assert.Equal(1, Assert.IsType<MultiOpResult.SetData>(results[2]).Stat.Version);
        Assert.IsType<MultiOpResult.Check>(results[3]);

        var failure = await Assert.ThrowsAsync<KeeperException>(() => client.MultiAsync([
            Op.Create(root + "/b", B("")),
            Op.Delete(root + "/missing"),
        ])).Within();
        Assert.Equal(ErrorCode.NoNode, failure.Code);
        Assert.NotNull(failure.Results);
        Assert.Equal(2, failure.Results!.Count);
        Assert.Null(await client.ExistsAsync(root + "/b").Within()); // rolled back

        var reads = await client.MultiReadAsync([Op.GetData(root), Op.GetChildren(root), Op.GetData(root + "/missing")]).Within();
        Assert.Equal("r1", Encoding.UTF8.GetString(Assert.IsType<MultiOpResult.GetData>(reads[0]).Data!));
        Assert.Equal(["a"], Assert.IsType<MultiOpResult.GetChildren>(reads[1]).Children);
        Assert.Equal(ErrorCode.NoNode, Assert.IsType<MultiOpResult.Error>(reads[2]).Code);

        await client.MultiAsync([Op.Delete(root + "/a"), Op.Delete(root, 1)]).Within();
        Assert.Null(await client.ExistsAsync(root).Within());
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Chroot_is_applied_and_stripped(string target)
    {
        var root = Root("chroot");
        await using var plain = await Connect(target);
        await plain.CreateAsync(root, B("")).Within();
        await using var client = await Connect(target, root);
        var sink = new EventSink();
        Assert.Null(await client.ExistsAsync("/x", sink.Watcher).Within());
        Assert.Equal("/x", await client.CreateAsync("/x", B("1")).Within());
        Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, "/x"), await sink.Next());
        Assert.Equal("/q-0000000001", await client.CreateAsync("/q-", B(""), CreateMode.EphemeralSequential).Within());
        Assert.Equal(["/q-0000000001"], await client.GetEphemeralsAsync().Within());
        Assert.Equal("1", Encoding.UTF8.GetString((await plain.GetDataAsync(root + "/x").Within()).Data!));
        var multi = await client.MultiAsync([Op.Create("/y", B(""))]).Within();
        Assert.Equal("/y", Assert.IsType<MultiOpResult.Create>(multi[0]).Path);
        Assert.Equal(2, (await client.GetChildrenAsync("/").Within()).Children.Count(c => c is "x" or "y"));
        await plain.DeleteRecursiveAsync(root).Within();
    }

    /// <summary>
    /// Reads = Linearizable sends every read as a linearizable read (op 1001): ours answers each as the read itself,
    /// watches included; Apache ZooKeeper does not know it and answers Unimplemented, which the client surfaces.
    /// </summary>
    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Linearizable_reads_are_the_same_reads_and_ZooKeeper_refuses_them(string target)
    {
        var server = await servers.Get(target);
        await using var writer = await Connect(target);
        var root = Root("linearizable");
        await writer.CreateAsync(root, B("0")).Within();
        await writer.CreateAsync(root + "/c", B("")).Within();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var client = await CoordinationClient.ConnectAsync(
            Targets.Options(server.ConnectString, output) with { Reads = ReadConsistency.Linearizable }, cts.Token);
        if (target == "apache")
        {
            var refused = await Assert.ThrowsAsync<KeeperException>(() => client.GetDataAsync(root)).Within();
            Assert.Equal(ErrorCode.Unimplemented, refused.Code);
            return;
        }
        var data = new EventSink();
        Assert.Equal("0", Encoding.UTF8.GetString((await client.GetDataAsync(root, data.Watcher).Within()).Data!));
        Assert.Equal(["c"], (await client.GetChildrenAsync(root).Within()).Children);
        Assert.Null(await client.ExistsAsync(root + "/missing").Within());
        await Assert.ThrowsAsync<NoNodeException>(() => client.GetDataAsync(root + "/missing")).Within();
        Assert.Equal(1, await client.GetAllChildrenNumberAsync(root).Within());
        Assert.Equal(Acls.Open, (await client.GetAclAsync(root).Within()).Acl);
        var reads = await client.MultiReadAsync([Op.GetData(root), Op.GetChildren(root)]).Within();
        Assert.Equal(2, reads.Count);
        await writer.SetDataAsync(root, B("1")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, root), await data.Next());
        Assert.Equal("1", Encoding.UTF8.GetString((await client.GetDataAsync(root).Within()).Data!));
        await writer.DeleteRecursiveAsync(root).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task One_shot_watches(string target)
    {
        await using var client = await Connect(target);
        await using var writer = await Connect(target);
        var root = Root("watch");
        await client.CreateAsync(root, B("0")).Within();

        var data = new EventSink();
        var child = new EventSink();
        var exists = new EventSink();
        await client.GetDataAsync(root, data.Watcher).Within();
        await client.GetChildrenAsync(root, child.Watcher).Within();
        Assert.Null(await client.ExistsAsync(root + "/c", exists.Watcher).Within());

        await writer.SetDataAsync(root, B("1")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, root), await data.Next());
        await writer.CreateAsync(root + "/c", B("")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, root + "/c"), await exists.Next());
        Assert.Equal(new WatchedEvent(EventType.NodeChildrenChanged, KeeperState.SyncConnected, root), await child.Next());

        // One-shot: a second change fires nothing.
        await writer.SetDataAsync(root, B("2")).Within();
        await writer.DeleteAsync(root + "/c").Within();
        await data.NoneWithin(0.3);
        await child.NoneWithin(0);

        // Removing a watch: the watcher is told, the server forgets it.
        await client.GetDataAsync(root, data.Watcher).Within();
        await client.RemoveWatchesAsync(root, WatcherType.Data).Within();
        Assert.Equal(EventType.DataWatchRemoved, (await data.Next()).Type);
        await writer.SetDataAsync(root, B("3")).Within();
        await data.NoneWithin(0.3);
        await Assert.ThrowsAsync<NoWatcherException>(() => client.RemoveWatchesAsync(root, WatcherType.Children)).Within();
        Assert.Equal(0, client.WatchCount);
        await client.DeleteRecursiveAsync(root).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Persistent_and_recursive_watches(string target)
    {
        await using var client = await Connect(target);
        await using var writer = await Connect(target);
        var root = Root("pw");
        var node = root + "/p";
        await client.CreateAsync(root, B("")).Within();
        await client.CreateAsync(node, B("")).Within();
        // Apache keeps one watch mode per path and session, so the two kinds go on different paths.
        var persistent = new EventSink();
        var recursive = new EventSink();
        await client.AddWatchAsync(node, persistent.Watcher, AddWatchMode.Persistent).Within();
        await client.AddWatchAsync(root, recursive.Watcher, AddWatchMode.PersistentRecursive).Within();

        await writer.SetDataAsync(node, B("1")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, node), await persistent.Next());
        Assert.Equal(new WatchedEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, node), await recursive.Next());
        await writer.SetDataAsync(node, B("2")).Within();
        Assert.Equal(EventType.NodeDataChanged, (await persistent.Next()).Type); // still there
        Assert.Equal(EventType.NodeDataChanged, (await recursive.Next()).Type);

        await writer.CreateAsync(node + "/a", B("")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeChildrenChanged, KeeperState.SyncConnected, node), await persistent.Next());
        Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, node + "/a"), await recursive.Next());
        await writer.CreateAsync(node + "/a/b", B("")).Within();
        Assert.Equal(new WatchedEvent(EventType.NodeCreated, KeeperState.SyncConnected, node + "/a/b"), await recursive.Next());
        await writer.DeleteAsync(node + "/a/b").Within();
        Assert.Equal(new WatchedEvent(EventType.NodeDeleted, KeeperState.SyncConnected, node + "/a/b"), await recursive.Next());
        await persistent.NoneWithin(0.2); // grandchildren are not the persistent watch's business

        await client.RemoveWatchesAsync(root, WatcherType.PersistentRecursive).Within();
        Assert.Equal(EventType.PersistentWatchRemoved, (await recursive.Next()).Type);
        await writer.SetDataAsync(node, B("3")).Within();
        Assert.Equal(EventType.NodeDataChanged, (await persistent.Next()).Type);
        await recursive.NoneWithin(0.3);
        await client.RemoveWatchesAsync(node, WatcherType.Persistent).Within();
        Assert.Equal(EventType.PersistentWatchRemoved, (await persistent.Next()).Type);
        await client.DeleteRecursiveAsync(root).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Pipelined_requests_complete_in_order(string target)
    {
        await using var client = await Connect(target);
        var root = Root("pipe");
        await client.CreateAsync(root, B("")).Within();
        const int n = 2000;
        var order = new int[n];
        var next = 0;
        var tasks = new Task[n];
        for (var i = 0; i < n; i++)
        {
            var index = i;
            tasks[i] = client.SetDataAsync(root, B(i.ToString())).ContinueWith(t =>
            {
                Assert.True(t.IsCompletedSuccessfully, t.Exception?.ToString());
                order[index] = t.Result.Version;
                Interlocked.Increment(ref next);
            });
        }
        await Task.WhenAll(tasks).Within(30);
        // FIFO: the i-th write produced version i+1.
        for (var i = 0; i < n; i++) Assert.Equal(i + 1, order[i]);
        Assert.Equal((n - 1).ToString(), Encoding.UTF8.GetString((await client.GetDataAsync(root).Within()).Data!));
        await client.DeleteAsync(root).Within();
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Rejected_auth_is_terminal(string target)
    {
        var client = await Connect(target);
        var states = new StateRecorder(client);
        await Assert.ThrowsAsync<AuthFailedException>(() => client.AddAuthAsync(new AuthInfo("no-such-scheme", B("x")))).Within();
        await states.WaitFor(ConnectionState.AuthFailed);
        Assert.Equal(ConnectionState.AuthFailed, client.State);
        await Assert.ThrowsAsync<AuthFailedException>(() => client.ExistsAsync("/")).Within();
        await client.DisposeAsync();
    }

    [Fact]
    public void Connect_strings_parse_hosts_ports_and_chroot()
    {
        var cs = ConnectString.Parse("a:1, b ,[::1]:3/app/x");
        Assert.Equal([new HostAndPort("a", 1), new HostAndPort("b", 2181), new HostAndPort("::1", 3)], cs.Hosts);
        Assert.Equal("/app/x", cs.Chroot);
        Assert.Equal("/app/x", cs.ToServerPath("/"));
        Assert.Equal("/app/x/y", cs.ToServerPath("/y"));
        Assert.Equal("/y", cs.ToClientPath("/app/x/y"));
        Assert.Equal("/", cs.ToClientPath("/app/x"));
        Assert.Null(ConnectString.Parse("h:1/").Chroot);
        Assert.Throws<ArgumentException>(() => ConnectString.Parse("h:notaport"));
        Assert.Throws<ArgumentException>(() => ConnectString.Parse("h:1/bad/"));
        Assert.Throws<ArgumentException>(() => ConnectString.Parse(""));
    }

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Cancellation_and_close(string target)
    {
        var client = await Connect(target);
        var root = Root("close");
        await client.CreateAsync(root, B(""), CreateMode.Ephemeral).Within();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetDataAsync(root, ct: cts.Token)).Within();
        var sessionId = client.SessionId;
        await client.CloseAsync().Within();
        Assert.Equal(ConnectionState.Closed, client.State);
        await Assert.ThrowsAsync<ConnectionLossException>(() => client.GetDataAsync(root)).Within();
        await client.DisposeAsync();

        await using var other = await Connect(target);
        Assert.NotEqual(sessionId, other.SessionId);
        Assert.Null(await other.ExistsAsync(root).Within()); // the session's ephemeral went with it
    }
}
