using System.Collections.Concurrent;
using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Three real server processes (dotnet Coordination.Server.dll, Akka.Remote between them, SQLite journals on disk)
/// under a write load from several clients that fail over between members: members die by SIGKILL, and afterwards
/// every acknowledged write must be on every member and all tree digests must agree.
/// </summary>
[Collection(LoadAndNetnsCollection.Name)]
public sealed class ProcessTests(ITestOutputHelper output)
{
    private void Log(string line)
    {
        try { output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}"); } catch (InvalidOperationException) { }
    }

    /// <summary>
    /// Writers that create /load/cN-i one at a time, moving to the next member of the connect string (re-attaching
    /// their session) when the connection breaks. A create is acknowledged when its reply says Ok (or NodeExists on
    /// a retry of a create whose first reply was lost: then it was applied). Each ack keeps the reply's zxid.
    /// </summary>
    private sealed class WriteLoad(EnsembleProcesses ensemble, int clients, Action<string> log)
    {
        public readonly ConcurrentDictionary<string, (long Zxid, long At)> Acked = new();
        private int _failures;
        public int Failures => _failures;
        private readonly CancellationTokenSource _stop = new();
        private Task? _run;

        public void Start() => _run = Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => WriterAsync(c))));

        public async Task StopAsync()
        {
            _stop.Cancel();
            await _run!.WaitAsync(TimeSpan.FromSeconds(60));
        }

        private async Task WriterAsync(int client)
        {
            var hosts = ensemble.Members.Select(m => m.ConnectString).ToArray();
            var hostIndex = client % hosts.Length;
            WireClient? wire = null;
            WireClient? previous = null;
            var i = 0;
            var retrying = false;
            while (!_stop.IsCancellationRequested)
            {
                if (wire is null)
                {
                    var (host, port) = WireClient.ParseHostPort(hosts[hostIndex]);
                    hostIndex = (hostIndex + 1) % hosts.Length;
                    try
                    {
                        var options = new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(3), SessionTimeoutMs = 10_000 };
                        try
                        {
                            wire = previous is null
                                ? await WireClient.ConnectAsync(host, port, options)
                                : await previous.ReattachAsync(options, host, port);
                        }
                        catch (SessionExpiredException)
                        {
                            log($"writer {client}: session 0x{previous?.SessionId:x} expired, new session");
                            wire = await WireClient.ConnectAsync(host, port, options);
                        }
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException)
                    {
                        await Task.Delay(50);
                        continue;
                    }
                }
                var path = $"/load/c{client}-{i}";
                try
                {
                    var (header, _) = await wire.CreateAsync(path, null).WaitAsync(TimeSpan.FromSeconds(5));
                    if (header.Err == ErrorCode.Ok || (retrying && header.Err == ErrorCode.NodeExists))
                    {
                        Acked[path] = (header.Zxid, Stopwatch.GetTimestamp());
                        i++;
                        retrying = false;
                    }
                    else if (header.Err == ErrorCode.NodeExists) { i++; retrying = false; } // cannot happen: paths are unique
                    else throw new IOException($"create failed with {header.Err}");
                }
                catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException)
                {
                    Interlocked.Increment(ref _failures);
                    retrying = true; // the create may or may not have been applied: retry the same path elsewhere
                    previous = wire;
                    try { await wire.DisposeAsync(); } catch { }
                    wire = null;
                }
            }
            if (wire is not null) { try { await wire.CloseAsync(TimeSpan.FromSeconds(3)); } catch { } }
        }
    }

    private static async Task<EnsembleProcesses> StartAsync(ITestOutputHelper output, string journal)
    {
        var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3,
            new EnsembleProcessesOptions { ExtraHocon = $"coordination.persistence.journal = {journal}" });
        await using var c = await WireClient.ConnectAsync((await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).ConnectString);
        await c.CreateAsync("/load", null).OkAsync();
        return ensemble;
    }

    /// <summary>Every acknowledged create is on every member (read after sync), and all digests agree.</summary>
    private async Task VerifyAsync(EnsembleProcesses ensemble, WriteLoad load)
    {
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        await using (var c = await WireClient.ConnectAsync((await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).ConnectString))
            await c.CreateAsync("/load-done", null).OkAsync(); // one write in the final epoch: every member must apply it
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        Log("hashes: " + string.Join(", ", hashes.Select(h => $"{h.Key}: zxid 0x{h.Value.Zxid:x} digest 0x{h.Value.Digest:x}")));
        if (hashes.Values.Select(h => h.Digest).Distinct().Count() > 1) await LogTreeDifferencesAsync(ensemble, load);
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
        foreach (var member in ensemble.Members)
        {
            await using var reader = await WireClient.ConnectAsync(member.ConnectString);
            await reader.SyncAsync("/load").OkAsync();
            var children = ((GetChildrenResponse)(await reader.GetChildren2Async("/load").OkAsync())!).Children.ToHashSet();
            var missing = load.Acked.Keys.Where(p => !children.Contains(p["/load/".Length..])).ToList();
            Assert.True(missing.Count == 0, $"server {member.Id} lacks {missing.Count} acknowledged writes, e.g. {string.Join(", ", missing.Take(5))}");
            Log($"server {member.Id}: all {load.Acked.Count} acknowledged writes present ({children.Count} children)");
        }
    }

    /// <summary>Diagnostics when digests disagree: which znodes (/, /load and its children) differ between members, and the
    /// zxid ranges (czxid on the members that have them) of the missing ones.</summary>
    private async Task LogTreeDifferencesAsync(EnsembleProcesses ensemble, WriteLoad load)
    {
        var trees = new Dictionary<long, Dictionary<string, Stat?>>();
        var all = new HashSet<string>(load.Acked.Keys) { "/", "/load", "/load-done" };
        foreach (var member in ensemble.Members)
        {
            await using var reader = await WireClient.ConnectAsync(member.ConnectString);
            foreach (var c in ((GetChildrenResponse)(await reader.GetChildren2Async("/load").OkAsync())!).Children) all.Add("/load/" + c);
        }
        foreach (var member in ensemble.Members)
        {
            await using var reader = await WireClient.ConnectAsync(member.ConnectString);
            var paths = all.ToList();
            var replies = paths.Select(p => reader.GetDataAsync(p)).ToList();
            var tree = new Dictionary<string, Stat?>();
            for (var i = 0; i < paths.Count; i++)
            {
                var (header, response) = await replies[i];
                tree[paths[i]] = header.Err != ErrorCode.Ok ? null : ((GetDataResponse)response!).Stat;
            }
            trees[member.Id] = tree;
        }
        foreach (var (id, tree) in trees)
        {
            var missing = tree.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList();
            var czxids = missing.SelectMany(p => trees.Values.Select(t => t[p]).Where(st => st is not null).Select(st => st!.Value.Czxid)).Distinct().Order().ToList();
            var ranges = new List<string>();
            for (var i = 0; i < czxids.Count;)
            {
                var j = i;
                while (j + 1 < czxids.Count && czxids[j + 1] <= czxids[j] + 3) j++;
                ranges.Add($"0x{czxids[i]:x}..0x{czxids[j]:x} ({j - i + 1})");
                i = j + 1;
            }
            Log($"server {id}: {tree.Count(kv => kv.Value is not null)} of {all.Count} znodes; missing {missing.Count} " +
                $"(acked: {missing.Count(load.Acked.ContainsKey)}), czxid ranges: {string.Join(", ", ranges.Take(20))}");
            Log($"  server {id} /load: {tree["/load"]}");
        }
    }

    private static async Task WaitForAcksAsync(WriteLoad load, int atLeast, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (load.Acked.Count < atLeast)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"only {load.Acked.Count} of {atLeast} writes acknowledged within {timeout}");
            await Task.Delay(50);
        }
    }

    /// <summary>The Zab log on the file journal (the default) and on the persistent actor over FileEventJournal.</summary>
    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Sigkill_of_the_leader_under_write_load_loses_no_acknowledged_write(string journal)
    {
        await using var ensemble = await StartAsync(output, journal);
        var load = new WriteLoad(ensemble, clients: 6, Log);
        load.Start();
        await WaitForAcksAsync(load, 300, TimeSpan.FromSeconds(60));

        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
        var oldEpoch = load.Acked.Values.Max(a => a.Zxid) >> 32;
        var before = load.Acked.Count;
        var killedAt = Stopwatch.GetTimestamp();
        ensemble.Kill(leader.Id);
        Log($"SIGKILLed leader {leader.Id} (epoch {oldEpoch}) after {before} acknowledged writes");

        // The first acknowledged write in a later epoch: committed by the new leader.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        long firstNewEpochAck;
        while (true)
        {
            var newer = load.Acked.Values.Where(a => a.Zxid >> 32 > oldEpoch).Select(a => a.At).ToList();
            if (newer.Count > 0) { firstNewEpochAck = newer.Min(); break; }
            Assert.True(DateTime.UtcNow < deadline, $"no write acknowledged in a new epoch within 60 s: {await ensemble.DescribeAsync()}");
            await Task.Delay(20);
        }
        var failover = Stopwatch.GetElapsedTime(killedAt, firstNewEpochAck);
        var newLeader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30), notId: leader.Id);
        Log($"FAILOVER: leader SIGKILL -> first acknowledged write on the new leader {newLeader.Id}: {failover.TotalMilliseconds:F0} ms");
        Assert.True(failover < TimeSpan.FromSeconds(30), $"failover took {failover}");

        await WaitForAcksAsync(load, load.Acked.Count + 200, TimeSpan.FromSeconds(60));
        await ensemble.RestartAsync(leader.Id);
        await WaitForAcksAsync(load, load.Acked.Count + 200, TimeSpan.FromSeconds(60));
        await load.StopAsync();
        Log($"{load.Acked.Count} writes acknowledged, {load.Failures} indeterminate (retried)");
        await VerifyAsync(ensemble, load);
    }

    /// <summary>The Zab log on the file journal (the default) and on the persistent actor over FileEventJournal.</summary>
    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Sigkill_and_restart_of_followers_under_write_load_loses_no_acknowledged_write(string journal)
    {
        await using var ensemble = await StartAsync(output, journal);
        var load = new WriteLoad(ensemble, clients: 6, Log);
        load.Start();
        await WaitForAcksAsync(load, 200, TimeSpan.FromSeconds(60));

        for (var round = 0; round < 4; round++)
        {
            var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
            var follower = ensemble.Members.Where(m => m.Id != leader.Id).ElementAt(round % 2);
            ensemble.Kill(follower.Id);
            Log($"round {round}: SIGKILLed follower {follower.Id} (leader {leader.Id}) at {load.Acked.Count} acks, last acked zxid 0x{load.Acked.Values.Max(a => a.Zxid):x}");
            // The remaining quorum keeps acknowledging writes while the follower is down.
            await WaitForAcksAsync(load, load.Acked.Count + 100, TimeSpan.FromSeconds(60));
            await ensemble.RestartAsync(follower.Id);
            await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
            Log($"round {round}: follower {follower.Id} back ({await ensemble.DescribeAsync()}), last acked zxid 0x{load.Acked.Values.Max(a => a.Zxid):x}");
            await WaitForAcksAsync(load, load.Acked.Count + 100, TimeSpan.FromSeconds(60));
        }
        await load.StopAsync();
        Log($"{load.Acked.Count} writes acknowledged, {load.Failures} indeterminate (retried)");
        await VerifyAsync(ensemble, load);
    }
}
