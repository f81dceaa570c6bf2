using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// Issue 3, disk full: with the data dir on a small tmpfs that is then filled up, writes fail with an error to the
/// client (the server stays up and keeps serving reads), nothing is half-applied, and once space is freed the server
/// accepts writes again by itself, without a restart. Every acknowledged write (before, during and after) is there
/// with its data and version, live and after a SIGKILL + restart on the same data dir.
/// Needs root (mount -t tmpfs); skipped otherwise unless COORDINATION_REQUIRE_DISKFULL=1.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class DiskFullTests(ITestOutputHelper output)
{
    private sealed record NodeState(byte[] Data, int Version);

    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();

    [SkippableFact]
    public async Task Disk_full_fails_writes_applies_nothing_partially_and_recovers_without_restart()
    {
        var required = Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_DISKFULL") == "1";
        void SkipOrFail(string reason)
        {
            if (required) Assert.Fail($"COORDINATION_REQUIRE_DISKFULL=1 but {reason}");
            Skip.If(true, reason);
        }
        if (!OperatingSystem.IsLinux()) SkipOrFail("the disk-full test needs Linux (tmpfs)");
        if (GetEuid() != 0) SkipOrFail("the disk-full test mounts a small tmpfs and needs root");

        var mountDir = Servers.TempDir("diskfull");
        var (mountExit, mountOutput) = Run("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mountDir);
        if (mountExit != 0)
        {
            try { Directory.Delete(mountDir); } catch { }
            SkipOrFail($"mount -t tmpfs failed (exit {mountExit}): {mountOutput.Trim()}");
        }
        var total = Stopwatch.StartNew();
        try
        {
            await RunAsync(mountDir, total);
        }
        finally
        {
            var (u, uo) = Run("umount", mountDir);
            if (u != 0)
            {
                output.WriteLine($"umount failed ({uo.Trim()}); lazy unmount");
                Run("umount", "-l", mountDir);
            }
            try { Directory.Delete(mountDir, recursive: true); } catch { }
        }
    }

    private async Task RunAsync(string mountDir, Stopwatch total)
    {
        var dataDir = Path.Combine(mountDir, "data");
        var filler = Path.Combine(mountDir, "filler");
        var acked = new Dictionary<string, NodeState>();   // every acknowledged write's resulting state
        var mustBeAbsent = new HashSet<string>();          // nodes whose create failed (never acknowledged)
        var failedData = new Dictionary<string, List<byte[]>>(); // setData payloads that were refused
        var multis = new List<(string A, string B, string K)>();

        // Snapshots every 50 txns so that snapshot writes (and journal purges) also hit the full disk.
        await using var server = await Servers.StartAsync(output, """
            coordination.persistence { snapshot-every-txns = 50, snapshot-chunk-nodes = 20, snapshots-retained = 2 }
            """, dataDir);
        var pid = server.Pid;
        var client = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 30_000 });
        try
        {
            // ---- before: some znodes and acknowledged writes
            await client.CreateAsync("/df", null).OkAsync();
            acked["/df"] = new NodeState([], 0);
            for (var i = 0; i < 8; i++)
            {
                var path = $"/df/k{i}";
                var data = Payload(path, 0, 256);
                await client.CreateAsync(path, data).OkAsync();
                acked[path] = new NodeState(data, 0);
                var data2 = Payload(path, 1, 256);
                var stat = ((StatResponse)(await client.SetDataAsync(path, data2).OkAsync())!).Stat;
                acked[path] = new NodeState(data2, stat.Version);
            }
            // enough txns for a snapshot (and a journal purge) before the disk fills up
            for (var i = 0; i < 60; i++)
            {
                var path = $"/df/k{i % 8}";
                var data = Payload(path, 100 + i, 1 << 10);
                var stat = ((StatResponse)(await client.SetDataAsync(path, data).OkAsync())!).Stat;
                acked[path] = new NodeState(data, stat.Version);
            }
            output.WriteLine($"[{total.Elapsed.TotalSeconds:F1}s] before: {acked.Count} nodes written; data dir: {Describe(dataDir)}");

            // ---- fill the filesystem
            var filled = Fill(filler);
            output.WriteLine($"[{total.Elapsed.TotalSeconds:F1}s] filler {filled >> 10} KiB; free now {FreeBytes(mountDir)} bytes");

            // ---- during: writes must fail with an error (not hang, not crash the server), reads keep working
            var during = Stopwatch.StartNew();
            int okDuring = 0, failedSingles = 0, failedMultis = 0, n = 0;
            var errors = new Dictionary<ErrorCode, int>();
            // At least 3 s, so that the journal writer fails and restarts several times with a growing backoff.
            while ((failedSingles < 3 || failedMultis < 2 || during.Elapsed < TimeSpan.FromSeconds(3)) && during.Elapsed < TimeSpan.FromSeconds(20))
            {
                if (n > 0) await Task.Delay(20);
                n++;
                var key = $"/df/k{n % 8}";
                var kind = n % 3;
                if (kind == 0)
                {
                    var data = Payload(key, 1000 + n, 64 << 10);
                    var (h, r) = await Reply(client.SetDataAsync(key, data));
                    if (h.Err == ErrorCode.Ok) { acked[key] = new NodeState(data, ((StatResponse)r!).Stat.Version); okDuring++; }
                    else { Count(errors, h.Err); failedSingles++; AddFailed(failedData, key, data); }
                }
                else if (kind == 1)
                {
                    var path = $"/df/new{n}";
                    var data = Payload(path, 0, 64 << 10);
                    var (h, _) = await Reply(client.CreateAsync(path, data));
                    if (h.Err == ErrorCode.Ok) { acked[path] = new NodeState(data, 0); okDuring++; }
                    else { Count(errors, h.Err); failedSingles++; mustBeAbsent.Add(path); }
                }
                else
                {
                    var (a, b) = ($"/df/mA{n}", $"/df/mB{n}");
                    var data = Payload(a, 0, 32 << 10);
                    var kData = Payload(key, 2000 + n, 32 << 10);
                    multis.Add((a, b, key));
                    var (h, r) = await Reply(client.MultiAsync(
                    [
                        new(OpCode.Create, new CreateRequest(a, data, Acl.OpenAclUnsafe, 0)),
                        new(OpCode.Create, new CreateRequest(b, data, Acl.OpenAclUnsafe, 0)),
                        new(OpCode.SetData, new SetDataRequest(key, kData, -1)),
                    ]));
                    if (h.Err == ErrorCode.Ok && r is MultiResponse mr && mr.Results.All(x => x.Err == ErrorCode.Ok))
                    {
                        acked[a] = new NodeState(data, 0);
                        acked[b] = new NodeState(data, 0);
                        acked[key] = new NodeState(kData, ((StatResponse)mr.Results[2].Body).Stat.Version);
                        okDuring++;
                    }
                    else
                    {
                        Assert.NotEqual(ErrorCode.Ok, h.Err); // a multi fails as a whole
                        Count(errors, h.Err);
                        failedMultis++;
                        mustBeAbsent.Add(a);
                        mustBeAbsent.Add(b);
                        AddFailed(failedData, key, kData);
                        // nothing of the failed multi is visible
                        Assert.Equal(ErrorCode.NoNode, (await Reply(client.ExistsAsync(a))).Header.Err);
                        Assert.Equal(ErrorCode.NoNode, (await Reply(client.ExistsAsync(b))).Header.Err);
                    }
                }
                Assert.False(server.HasExited, $"server exited on a full disk (code {server.ExitCode}):\n{server.OutputTail}");
                // reads still work and show exactly the acknowledged state
                await AssertStateAsync(client, key, acked[key], "read while the disk is full");
            }
            output.WriteLine($"[{total.Elapsed.TotalSeconds:F1}s] during ({during.Elapsed.TotalSeconds:F1}s, {n} requests): {okDuring} acked, " +
                             $"{failedSingles} single writes and {failedMultis} multis failed with {string.Join(", ", errors.Select(e => $"{e.Key}×{e.Value}"))}");
            var log = server.OutputTail;
            output.WriteLine($"  server log: {Occurrences(log, "Journal write failed")} journal write failures, " +
                             $"{Occurrences(log, "Transaction log writer stopped")} writer restarts, {Occurrences(log, "Snapshot")} snapshot lines");
            Assert.True(failedSingles >= 3 && failedMultis >= 2,
                $"writes kept succeeding on a full disk for {during.Elapsed.TotalSeconds:F0} s ({okDuring} acked, {failedSingles} + {failedMultis} failed)");
            Assert.All(errors.Keys, e => Assert.Equal(ErrorCode.SystemError, e));
            Assert.True(client.IsConnected, "the session's connection was lost on a full disk");
            await AssertAllAsync(client, acked, mustBeAbsent, failedData, multis, "while the disk is full");

            // ---- space is back: writes succeed again without a restart
            File.Delete(filler);
            var recovery = Stopwatch.StartNew();
            var attempts = 0;
            while (true)
            {
                attempts++;
                var key = "/df/k0";
                var data = Payload(key, 5000 + attempts, 128);
                var (h, r) = await Reply(client.SetDataAsync(key, data));
                if (h.Err == ErrorCode.Ok) { acked[key] = new NodeState(data, ((StatResponse)r!).Stat.Version); break; }
                Assert.Equal(ErrorCode.SystemError, h.Err);
                AddFailed(failedData, key, data);
                Assert.True(recovery.Elapsed < TimeSpan.FromSeconds(30), $"writes still fail {recovery.Elapsed.TotalSeconds:F0} s after space was freed:\n{server.OutputTail}");
                await Task.Delay(100);
            }
            output.WriteLine($"[{total.Elapsed.TotalSeconds:F1}s] writes succeed again {recovery.Elapsed.TotalMilliseconds:F0} ms after the filler was deleted ({attempts} attempts)");
            Assert.Equal(pid, server.Pid);
            Assert.False(server.HasExited);

            // ---- after: more writes, including a multi, all acknowledged
            for (var i = 0; i < 20; i++)
            {
                var key = $"/df/k{i % 8}";
                var data = Payload(key, 9000 + i, 4 << 10);
                var stat = ((StatResponse)(await Reply(client.SetDataAsync(key, data)).OkAsync())!).Stat;
                acked[key] = new NodeState(data, stat.Version);
                var path = $"/df/after{i}";
                await Reply(client.CreateAsync(path, data)).OkAsync();
                acked[path] = new NodeState(data, 0);
            }
            {
                var (a, b, key) = ("/df/afterA", "/df/afterB", "/df/k3");
                var kData = Payload(key, 99_999, 100);
                var mr = (MultiResponse)(await Reply(client.MultiAsync(
                [
                    new(OpCode.Create, new CreateRequest(a, kData, Acl.OpenAclUnsafe, 0)),
                    new(OpCode.Create, new CreateRequest(b, kData, Acl.OpenAclUnsafe, 0)),
                    new(OpCode.SetData, new SetDataRequest(key, kData, -1)),
                ])).OkAsync())!;
                Assert.All(mr.Results, x => Assert.Equal(ErrorCode.Ok, x.Err));
                acked[a] = new NodeState(kData, 0);
                acked[b] = new NodeState(kData, 0);
                acked[key] = new NodeState(kData, ((StatResponse)mr.Results[2].Body).Stat.Version);
                multis.Add((a, b, key));
            }
            await AssertAllAsync(client, acked, mustBeAbsent, failedData, multis, "after space was freed (same process)");
            Assert.Equal(pid, server.Pid);
        }
        finally
        {
            await client.DisposeAsync();
        }

        // ---- SIGKILL + restart on the same data dir: everything acknowledged is durable, nothing failed reappears
        server.Kill();
        await server.RestartAsync();
        await using (var verifier = await WireClient.ConnectAsync(server.ConnectString))
            await AssertAllAsync(verifier, acked, mustBeAbsent, failedData, multis, "after SIGKILL + restart");
        output.WriteLine($"[{total.Elapsed.TotalSeconds:F1}s] verified {acked.Count} acknowledged nodes, {mustBeAbsent.Count} failed creates, {multis.Count} multis after SIGKILL + restart");
    }

    private static async Task<(ReplyHeader Header, ZkResponse? Response)> Reply(Task<(ReplyHeader Header, ZkResponse? Response)> request) =>
        await request.WaitAsync(ReplyTimeout); // a write on a full disk must be answered, not hang

    private static void Count(Dictionary<ErrorCode, int> errors, ErrorCode e) => errors[e] = errors.GetValueOrDefault(e) + 1;

    private static void AddFailed(Dictionary<string, List<byte[]>> failed, string key, byte[] data)
    {
        if (!failed.TryGetValue(key, out var list)) failed[key] = list = new List<byte[]>();
        list.Add(data);
    }

    private static async Task AssertStateAsync(WireClient client, string path, NodeState expected, string when)
    {
        var (h, r) = await Reply(client.GetDataAsync(path));
        Assert.True(h.Err == ErrorCode.Ok, $"{when}: {path} read failed with {h.Err}, expected v{expected.Version}");
        var g = (GetDataResponse)r!;
        Assert.True(g.Stat.Version == expected.Version && (g.Data ?? []).AsSpan().SequenceEqual(expected.Data),
            $"{when}: {path} is v{g.Stat.Version} ({(g.Data ?? []).Length} bytes), expected the acknowledged v{expected.Version} ({expected.Data.Length} bytes)");
    }

    private static async Task AssertAllAsync(WireClient client, Dictionary<string, NodeState> acked, HashSet<string> mustBeAbsent,
        Dictionary<string, List<byte[]>> failedData, List<(string A, string B, string K)> multis, string when)
    {
        foreach (var (path, expected) in acked) await AssertStateAsync(client, path, expected, when);
        foreach (var path in mustBeAbsent)
            Assert.True((await Reply(client.ExistsAsync(path))).Header.Err == ErrorCode.NoNode, $"{when}: failed create of {path} is visible");
        foreach (var (a, b, _) in multis)
        {
            var ea = (await Reply(client.ExistsAsync(a))).Header.Err == ErrorCode.Ok;
            var eb = (await Reply(client.ExistsAsync(b))).Header.Err == ErrorCode.Ok;
            Assert.True(ea == eb, $"{when}: multi half-applied: {a} exists={ea}, {b} exists={eb}");
        }
        // a refused setData never shows up (payloads are unique, so equality with the current data would betray it)
        foreach (var (path, list) in failedData)
            foreach (var data in list)
                Assert.False(acked[path].Data.AsSpan().SequenceEqual(data), $"{when}: refused setData of {path} is the current data");
        var children = (GetChildrenResponse)(await Reply(client.GetChildren2Async("/df")).OkAsync())!;
        var expectedChildren = acked.Keys.Where(p => p.StartsWith("/df/", StringComparison.Ordinal)).Select(p => p[4..]).OrderBy(x => x, StringComparer.Ordinal);
        Assert.Equal(expectedChildren, children.Children.OrderBy(x => x, StringComparer.Ordinal));
    }

    /// <summary>Unique, recognisable payload of the given size.</summary>
    private static byte[] Payload(string path, int n, int size)
    {
        var head = Encoding.UTF8.GetBytes($"{path}#{n}#{Guid.NewGuid():N}|");
        var data = new byte[Math.Max(size, head.Length)];
        head.CopyTo(data, 0);
        for (var i = head.Length; i < data.Length; i++) data[i] = (byte)('a' + (i + n) % 26);
        return data;
    }

    /// <summary>Writes the filler until ENOSPC, in shrinking chunks, so that practically no byte is left free.</summary>
    private static long Fill(string file)
    {
        long written = 0;
        using var handle = File.OpenHandle(file, FileMode.CreateNew, FileAccess.Write);
        var chunk = new byte[1 << 20];
        Random.Shared.NextBytes(chunk);
        for (var size = chunk.Length; size >= 512; size /= 4)
        {
            while (true)
            {
                try { RandomAccess.Write(handle, chunk.AsSpan(0, size), written); }
                catch (IOException) { break; }
                written += size;
            }
        }
        return written;
    }

    private static int Occurrences(string text, string what)
    {
        var count = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    private static long FreeBytes(string dir) => new DriveInfo(dir).AvailableFreeSpace;

    private static string Describe(string dir) =>
        string.Join(", ", new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Select(f => $"{f.Name} {f.Length >> 10} KiB"));

    private static (int ExitCode, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(15_000)) { p.Kill(); return (-1, $"{file} timed out"); }
            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (Exception e) { return (-1, e.Message); }
    }
}
