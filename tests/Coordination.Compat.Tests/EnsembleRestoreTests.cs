using System.Net;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Restoring an ensemble (docs/architecture.md, "Restore of an ensemble"): ZooKeeper's flow, "restore every member from
/// the same snapshot", done with each member stopped (<c>--restore</c>), because the admin restore of one serving
/// member would swap its tree behind Zab's back. On three real processes: a snapshot streamed by the admin endpoint,
/// more writes, the online restore refused on a member, every member restarted with <c>--restore</c>; all of them hold
/// the snapshot's tree and none of the later writes, accept writes after, and keep it across another restart.
/// Apache ZooKeeper 3.8 has no restore command (3.9 restores each running member), so this runs against ours only.
/// </summary>
public sealed class EnsembleRestoreTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task Every_member_restored_from_one_snapshot_converges_to_it_and_takes_writes()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var adminPorts = new Dictionary<long, int>();
        int AdminPort(EnsembleProcesses.Member m)
        {
            lock (adminPorts) return adminPorts.TryGetValue(m.Id, out var port) ? port : adminPorts[m.Id] = CompatEnvironment.FreePort();
        }
        string? restoreFrom = null;
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            ExtraHocon = $"coordination.super-digest = \"{Acls.Digest("super:s3cret")}\"",
            MemberHocon = m => $"coordination.admin {{ enabled = on, address = \"127.0.0.1\", port = {AdminPort(m)}, rate-limiter-interval = 0s }}" +
                (restoreFrom is null ? "" : $"\ncoordination.persistence.restore-from = \"{restoreFrom}\""),
            Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
        });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        async Task<HttpResponseMessage> Admin(EnsembleProcesses.Member m, HttpMethod method, string command, byte[]? body = null)
        {
            var request = new HttpRequestMessage(method, $"http://127.0.0.1:{AdminPort(m)}/commands/{command}");
            request.Headers.TryAddWithoutValidation("Authorization", "digest super:s3cret");
            if (body is not null) request.Content = new ByteArrayContent(body);
            return await http.SendAsync(request);
        }
        async Task<int> ChildrenAt(EnsembleProcesses.Member m)
        {
            await using var c = await WireClient.ConnectAsync(m.ConnectString);
            await c.SendAsync(OpCode.Sync, new PathRequest("/r")).OkAsync();
            return ((GetChildrenResponse)(await c.GetChildren2Async("/r").OkAsync())!).Children.Count;
        }

        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        await using (var c = await WireClient.ConnectAsync(ensemble.ConnectString))
        {
            await c.CreateAsync("/r", [], CreateMode.Persistent).OkAsync();
            for (var i = 0; i < 10; i++) await c.CreateAsync($"/r/{i}", [(byte)i], CreateMode.Persistent).OkAsync();
        }
        // The snapshot from a follower (any member's applied tree is a committed state).
        var follower = ensemble.Members.First(m => m.Id != leader.Id);
        await ChildrenAt(follower);
        byte[] snapshot;
        using (var streamed = await Admin(follower, HttpMethod.Get, "snapshot?streaming=true"))
        {
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            snapshot = await streamed.Content.ReadAsByteArrayAsync();
        }
        Assert.Equal(10, DataTree.ReadSnapshot(new MemoryStream(snapshot)).CountDescendants("/r"));
        await using (var c = await WireClient.ConnectAsync(ensemble.ConnectString))
            for (var i = 10; i < 20; i++) await c.CreateAsync($"/r/{i}", [(byte)i], CreateMode.Persistent).OkAsync();

        // Online, on a member of a serving quorum: refused with the reason, and nothing changes.
        using (var refused = await Admin(leader, HttpMethod.Post, "restore", snapshot))
        {
            var text = await refused.Content.ReadAsStringAsync();
            output.WriteLine(text);
            Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
            Assert.Contains("--restore", text);
        }
        foreach (var m in ensemble.Members) Assert.Equal(20, await ChildrenAt(m));

        // Every member stopped, then started with --restore of the same file.
        var file = Path.Combine(Path.GetTempPath(), $"ensemble-restore-{Guid.NewGuid():N}.snap");
        await File.WriteAllBytesAsync(file, snapshot);
        try
        {
            await ensemble.StopAllAsync(TimeSpan.FromSeconds(10));
            restoreFrom = file;
            await Task.WhenAll(ensemble.Members.Select(m => ensemble.RestartNotServingAsync(m.Id)));
            await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(90));
            foreach (var m in ensemble.Members)
            {
                Assert.Equal(10, await ChildrenAt(m));
                Assert.True(Directory.EnumerateDirectories(m.DataDir, "pre-restore.*").Any(), $"member {m.Id} kept its old data aside");
            }

            await using (var c = await WireClient.ConnectAsync(ensemble.ConnectString))
                for (var i = 20; i < 25; i++) await c.CreateAsync($"/r/{i}", [(byte)i], CreateMode.Persistent).OkAsync();
            foreach (var m in ensemble.Members) Assert.Equal(15, await ChildrenAt(m));

            // A later start that keeps --restore starts from the data dir (the marker): the writes after the restore stay.
            await ensemble.RestartAllAsync();
            foreach (var m in ensemble.Members)
            {
                Assert.Equal(15, await ChildrenAt(m));
                await using var c = await WireClient.ConnectAsync(m.ConnectString);
                Assert.Equal(ErrorCode.NoNode, (await c.ExistsAsync("/r/15")).Header.Err);
                Assert.Equal(ErrorCode.Ok, (await c.ExistsAsync("/r/24")).Header.Err);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }
}
