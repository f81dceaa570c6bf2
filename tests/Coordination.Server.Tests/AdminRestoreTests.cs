using System.Net;
using System.Text.Json;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// The admin restore command, ZooKeeper 3.9's Commands.RestoreCommand: POST the snapshot that GET /commands/snapshot
/// streamed; ALL on the root (401 without a credential, 403 without the grant); one per rate-limiter-interval (429);
/// answers {"last_zxid", "command": "restore", "error"}. Debian has ZooKeeper 3.8, which has no restore command, so
/// the status codes and keys come from 3.9's source (Commands.RestoreCommand, ZooKeeperServer.restoreFromSnapshot)
/// and these tests run against ours only, on a real process with a real data dir.
/// </summary>
public sealed class AdminRestoreTests(ITestOutputHelper output)
{
    private const string Super = "digest super:s3cret";

    private static string Hocon(int adminPort, string rateLimit) =>
        $"coordination.admin {{ enabled = on, port = {adminPort}, rate-limiter-interval = {rateLimit} }}\n" +
        $"coordination.super-digest = \"{Acls.Digest("super:s3cret")}\"";

    private static HttpClient Http(int adminPort) => new() { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(60) };

    private static async Task<HttpResponseMessage> Send(HttpClient http, HttpMethod method, string command, string? authorization, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, $"commands/{command}");
        if (body is not null) request.Content = new ByteArrayContent(body);
        if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
        return await http.SendAsync(request);
    }

    private static async Task<byte[]> SnapshotAsync(HttpClient http)
    {
        using var snapshot = await Send(http, HttpMethod.Get, "snapshot?streaming=true", Super);
        Assert.Equal(HttpStatusCode.OK, snapshot.StatusCode);
        return await snapshot.Content.ReadAsByteArrayAsync();
    }

    [Fact]
    public async Task Restore_is_authorized_rate_limited_and_brings_the_snapshot_back_as_ZooKeeper_3_9_does()
    {
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = Hocon(adminPort, "3s") });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await client.CreateAsync("/kept", [1], CreateMode.Persistent).OkAsync();
        await client.CreateAsync("/changed", [1], CreateMode.Persistent).OkAsync();
        using var http = Http(adminPort);
        var bytes = await SnapshotAsync(http);

        // A session opened after the snapshot, with an ephemeral and a watch; and a watch of the session in the snapshot.
        await using var late = await WireClient.ConnectAsync(server.ConnectString);
        await late.CreateAsync("/late-lock", [], CreateMode.Ephemeral).OkAsync();
        await client.ExistsAsync("/kept", watch: true).OkAsync();
        await client.SetDataAsync("/changed", [2]).OkAsync();
        await client.CreateAsync("/added", [3], CreateMode.Persistent).OkAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, (await Send(http, HttpMethod.Post, "restore", null, bytes)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(http, HttpMethod.Post, "rest", "digest bob:pw", bytes)).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Send(http, HttpMethod.Get, "restore", Super)).StatusCode);
        // A body that is not a snapshot, then one cut short: refused, and nothing changed.
        using (var garbage = await Send(http, HttpMethod.Post, "restore", Super, [1, 2, 3]))
            Assert.Equal(HttpStatusCode.InternalServerError, garbage.StatusCode);
        await Task.Delay(3200);
        using (var truncated = await Send(http, HttpMethod.Post, "restore", Super, bytes[..(bytes.Length * 2 / 3)]))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, truncated.StatusCode);
            output.WriteLine(await truncated.Content.ReadAsStringAsync());
        }
        Assert.Equal(ErrorCode.Ok, (await client.ExistsAsync("/added")).Header.Err);
        Assert.Equal(ErrorCode.Ok, (await late.ExistsAsync("/late-lock")).Header.Err);
        // 3.9's limiter: one restore per interval, a refused one included; the next is a 429 with a null error.
        using (var limited = await Send(http, HttpMethod.Post, "restore", Super, bytes))
        {
            Assert.Equal((HttpStatusCode)429, limited.StatusCode);
            var refusal = JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("restore", refusal.GetProperty("command").GetString());
            Assert.Equal(JsonValueKind.Null, refusal.GetProperty("error").ValueKind);
        }
        Assert.Equal(ErrorCode.Ok, (await client.ExistsAsync("/added")).Header.Err);

        await Task.Delay(3200);
        using var restored = await Send(http, HttpMethod.Post, "restore", Super, bytes);
        var answer = JsonDocument.Parse(await restored.Content.ReadAsStringAsync()).RootElement;
        output.WriteLine(answer.ToString());
        Assert.Equal(HttpStatusCode.OK, restored.StatusCode);
        Assert.Equal(new[] { "command", "error", "last_zxid" }, answer.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal("restore", answer.GetProperty("command").GetString());
        Assert.True(answer.GetProperty("last_zxid").GetInt64() > 0);

        // The session of the snapshot goes on and sees its tree; its watch went with the old tree (as 3.9's new
        // database has a new watch manager). The later session is expired, so its client learns its lock is gone.
        async Task AssertRestored(WireClient c)
        {
            Assert.Equal([1], ((GetDataResponse)(await c.GetDataAsync("/changed").OkAsync())!).Data);
            Assert.Equal(ErrorCode.Ok, (await c.ExistsAsync("/kept")).Header.Err);
            Assert.Equal(ErrorCode.NoNode, (await c.ExistsAsync("/added")).Header.Err);
            Assert.Equal(ErrorCode.NoNode, (await c.ExistsAsync("/late-lock")).Header.Err);
        }
        await AssertRestored(client);
        await client.DeleteAsync("/kept").OkAsync();
        await client.CreateAsync("/after-restore", [4], CreateMode.Persistent).OkAsync();
        Assert.False(client.Events.TryRead(out var fired), $"a watch set before the restore fired: {fired}");
        await late.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<SessionExpiredException>(() => late.ReattachAsync());

        await server.RestartAsync();
        await using var again = await WireClient.ConnectAsync(server.ConnectString);
        Assert.Equal([1], ((GetDataResponse)(await again.GetDataAsync("/changed").OkAsync())!).Data);
        Assert.Equal(ErrorCode.NoNode, (await again.ExistsAsync("/kept")).Header.Err);
        Assert.Equal(ErrorCode.NoNode, (await again.ExistsAsync("/added")).Header.Err);
        Assert.Equal(ErrorCode.Ok, (await again.ExistsAsync("/after-restore")).Header.Err);
    }

    [Fact]
    public async Task A_snapshot_streamed_while_writes_are_applied_restores()
    {
        // Small snapshot chunks, so that a fuzzy snapshot would interleave many writes (and be refused by restore).
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = Hocon(adminPort, "0s") + "\ncoordination.persistence.snapshot-chunk-nodes = 5",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await Task.WhenAll(Enumerable.Range(0, 3000).Select(i => client.CreateAsync($"/n{i}", [], CreateMode.Persistent).OkAsync()));
        await client.CreateAsync("/counter", [0], CreateMode.Persistent).OkAsync();
        using var http = Http(adminPort);

        // Four writers, each with 8 writes in flight, while the snapshot is taken.
        using var stop = new CancellationTokenSource();
        var writes = 0;
        var writers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => WireClient.ConnectAsync(server.ConnectString)));
        var writing = writers.SelectMany(w => Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                await w.SetDataAsync("/counter", BitConverter.GetBytes(Interlocked.Increment(ref writes))).OkAsync();
        }))).ToList();
        await Task.Delay(300);
        var bytes = await SnapshotAsync(http);
        await Task.Delay(200);
        stop.Cancel();
        await Task.WhenAll(writing);
        foreach (var w in writers) await w.DisposeAsync();
        var inSnapshot = DataTree.ReadSnapshot(new MemoryStream(bytes)).Find("/counter")!.Data!;
        output.WriteLine($"{writes} writes; the snapshot holds counter {BitConverter.ToInt32(inSnapshot.AsSpan().Length == 4 ? inSnapshot : new byte[4])}");

        using var restored = await Send(http, HttpMethod.Post, "restore", Super, bytes);
        var answer = await restored.Content.ReadAsStringAsync();
        output.WriteLine(answer);
        Assert.Equal(HttpStatusCode.OK, restored.StatusCode);
        Assert.Equal(inSnapshot, ((GetDataResponse)(await client.GetDataAsync("/counter").OkAsync())!).Data);
        Assert.Equal(ErrorCode.Ok, (await client.ExistsAsync("/n2999")).Header.Err);
    }

    [Fact]
    public async Task A_SIGKILL_during_a_restore_leaves_the_old_tree_or_the_new_one_and_an_answered_restore_survives()
    {
        // Tree A (the snapshot) and tree B (A plus /b's children and /state = B): after each kill the restarted server
        // holds exactly one of them; a restore answered before the kill must have left A.
        const int Children = 1500;
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = Hocon(adminPort, "0s") });
        var payload = new byte[600];
        async Task CreateChildren(WireClient c, string parent)
        {
            await c.CreateAsync(parent, [], CreateMode.Persistent).OkAsync();
            await Task.WhenAll(Enumerable.Range(0, Children).Select(i => c.CreateAsync($"{parent}/{i}", payload, CreateMode.Persistent).OkAsync()));
        }
        byte[] snapshotA;
        using var http = Http(adminPort);
        await using (var c = await WireClient.ConnectAsync(server.ConnectString))
        {
            await c.CreateAsync("/state", "A"u8.ToArray(), CreateMode.Persistent).OkAsync();
            await CreateChildren(c, "/a");
            snapshotA = await SnapshotAsync(http);
            await c.SetDataAsync("/state", "B"u8.ToArray()).OkAsync();
            await CreateChildren(c, "/b");
        }
        output.WriteLine($"snapshot A: {snapshotA.Length} bytes");

        // Kill delays after the POST starts (ms); -1: after the answer.
        int[] delays = [-1, 0, 15, 40, 90, 200, 500, 1000];
        var outcomes = new List<string>();
        foreach (var delay in delays)
        {
            using var cts = new CancellationTokenSource();
            var post = Task.Run(async () =>
            {
                try { using var r = await Send(http, HttpMethod.Post, "restore", Super, snapshotA); return r.StatusCode; }
                catch (Exception) { return (HttpStatusCode)0; }
            });
            if (delay < 0) Assert.Equal(HttpStatusCode.OK, await post);
            else await Task.Delay(delay);
            var answeredBeforeKill = post.IsCompletedSuccessfully && await post == HttpStatusCode.OK;
            server.Kill();
            await post;
            await server.RestartAsync();

            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            var state = System.Text.Encoding.ASCII.GetString(((GetDataResponse)(await c.GetDataAsync("/state").OkAsync())!).Data!);
            var a = ((GetChildrenResponse)(await c.GetChildren2Async("/a").OkAsync())!).Children.Count;
            var b = await c.GetChildren2Async("/b");
            var bCount = b.Header.Err == ErrorCode.Ok ? ((GetChildrenResponse)b.Response!).Children.Count : -1;
            outcomes.Add($"kill after {(delay < 0 ? "the answer" : delay + " ms")}: {state} (answered first: {answeredBeforeKill})");
            output.WriteLine(outcomes[^1] + $", /a {a}, /b {bCount}");
            Assert.Equal(Children, a);
            if (state == "A") Assert.Equal(-1, bCount);
            else
            {
                Assert.Equal("B", state);
                Assert.Equal(Children, bCount);
                Assert.False(answeredBeforeKill, "the restore was answered, but the restart shows the tree from before it");
            }
            if (state == "A")
            {
                await c.SetDataAsync("/state", "B"u8.ToArray()).OkAsync();
                await CreateChildren(c, "/b");
            }
        }
        Assert.Contains(outcomes, o => o.Contains(": A"));
    }
}
