using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Invariant 9 on real server processes: every request is answered, or its connection is closed, within the session
/// timeout, whatever happens to the leader. Members die by SIGKILL; clients re-attach their sessions as ZooKeeper
/// clients do (kazoo goes back to the same follower once it serves again).
/// </summary>
public sealed class LivenessTests(ITestOutputHelper output)
{
    private void Log(string line)
    {
        try { output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff}] {line}"); } catch (InvalidOperationException) { }
    }

    /// <summary>Re-attaches the session of <paramref name="old"/> to <paramref name="port"/>, retrying while that member
    /// does not serve yet (it closes connections during an election).</summary>
    private static async Task<WireClient> ReattachAsync(WireClient old, int port, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await old.ReattachAsync(new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) }, "127.0.0.1", port);
            }
            catch (WireConnectionException e) when (e is not SessionExpiredException && sw.Elapsed < timeout)
            {
                await Task.Delay(100);
            }
        }
    }

    [Fact]
    public async Task A_session_that_reattaches_to_its_follower_after_the_leader_is_killed_gets_its_sync_answered()
    {
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = ensemble.Members.First(m => m.Id != leader.Id);
        var client = await WireClient.ConnectAsync("127.0.0.1", follower.ClientPort, new WireClientOptions { SessionTimeoutMs = 10_000 });
        await client.CreateAsync("/before", null).OkAsync();
        await client.SyncAsync("/").OkAsync();

        ensemble.Kill(leader.Id);
        Log($"killed leader {leader.Id}; client on {follower.Id}");
        // The follower closes its client connections while it elects a new leader.
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(20));
        var newLeader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30), notId: leader.Id);
        Log($"new leader {newLeader.Id}");

        // No write happens in the new epoch: the session comes back to the same member and syncs first, as kazoo does.
        await using var again = await ReattachAsync(client, follower.ClientPort, TimeSpan.FromSeconds(8));
        await client.DisposeAsync();
        Assert.Equal(client.SessionId, again.SessionId);
        var sync = again.SyncAsync("/");
        var read = again.ExistsAsync("/before");
        var answered = await Task.WhenAny(sync, Task.Delay(TimeSpan.FromMilliseconds(again.NegotiatedTimeoutMs)));
        Assert.True(answered == sync, $"the re-attached session's sync on server {follower.Id} got no answer within its {again.NegotiatedTimeoutMs} ms timeout");
        await sync.OkAsync();
        await read.OkAsync();
    }

    /// <summary>
    /// One session that writes, syncs and reads its own node in a loop against its home member. A request must be
    /// answered, or its connection closed, within the session timeout; after a close the session re-attaches (its
    /// home member first, as kazoo does) and re-issues the request, which must then complete. A read after a sync
    /// must show the session's last acknowledged write. Anything else is recorded as a violation.
    /// </summary>
    private sealed class Worker(EnsembleProcesses ensemble, int index, EnsembleProcesses.Member home, Action<string> log)
    {
        public const int SessionTimeoutMs = 10_000;
        public readonly ConcurrentQueue<string> Violations = new();
        public int Completed;       // requests answered
        public int Reattached;
        private readonly string _path = $"/live/w{index}";
        private WireClient? _client;
        private CancellationToken _stop;

        public async Task RunAsync(CancellationToken stop)
        {
            _stop = stop;
            _client = await WireClient.ConnectAsync("127.0.0.1", home.ClientPort, new WireClientOptions { SessionTimeoutMs = SessionTimeoutMs });
            await IssueAsync("create", c => c.CreateAsync(_path, Encoding.UTF8.GetBytes("0")), ErrorCode.NodeExists);
            var value = 0;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    value++;
                    var data = Encoding.UTF8.GetBytes(value.ToString());
                    await IssueAsync("setData", c => c.SetDataAsync(_path, data));
                    await IssueAsync("sync", c => c.SyncAsync(_path));
                    var read = await IssueAsync("getData", c => c.GetDataAsync(_path));
                    var seen = read is GetDataResponse r ? Encoding.UTF8.GetString(r.Data ?? []) : "?";
                    if (seen != value.ToString()) Violations.Enqueue($"worker {index}: read {seen} after sync, its last acknowledged write was {value}");
                }
            }
            finally
            {
                await _client.DisposeAsync();
            }
        }

        /// <summary>Sends until answered; a close (or a ConnectionLoss answer) re-attaches and sends again.</summary>
        private async Task<ZkResponse?> IssueAsync(string what, Func<WireClient, Task<(ReplyHeader Header, ZkResponse? Response)>> request, params ErrorCode[] allowed)
        {
            while (true)
            {
                var client = _client!;
                var sent = Stopwatch.StartNew();
                Task<(ReplyHeader Header, ZkResponse? Response)> reply;
                try { reply = request(client); }
                catch (Exception) when (!client.IsConnected) { await ReattachAsync(); continue; }
                var first = await Task.WhenAny(reply, client.Closed, Task.Delay(SessionTimeoutMs));
                if (first == reply && reply.IsCompletedSuccessfully)
                {
                    var (header, response) = reply.Result;
                    Interlocked.Increment(ref Completed);
                    if (header.Err == ErrorCode.Ok || Array.IndexOf(allowed, header.Err) >= 0) return response;
                    if (header.Err != ErrorCode.ConnectionLoss) Violations.Enqueue($"worker {index}: {what} answered {header.Err}");
                    else log($"worker {index}: {what} answered ConnectionLoss, re-issuing");
                    continue;
                }
                if (first != reply && first != client.Closed)
                {
                    Violations.Enqueue($"worker {index}: {what} on {client.Host}:{client.Port} neither answered nor its connection closed after {sent.ElapsedMilliseconds} ms");
                    await client.DisposeAsync();
                    _stop.ThrowIfCancellationRequested();
                }
                else if (client.Closed.IsCompleted && client.Closed.Result is { } reason && reason.Message.Contains("xid"))
                {
                    Violations.Enqueue($"worker {index}: protocol error on {client.Host}:{client.Port}: {reason.Message}");
                }
                await ReattachAsync();
            }
        }

        private async Task ReattachAsync()
        {
            var old = _client!;
            await old.DisposeAsync();
            var ports = new[] { home.ClientPort }.Concat(ensemble.Members.Where(m => m != home).Select(m => m.ClientPort)).ToArray();
            var sw = Stopwatch.StartNew();
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    _client = await old.ReattachAsync(new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) }, "127.0.0.1", ports[attempt % ports.Length]);
                    Interlocked.Increment(ref Reattached);
                    return;
                }
                catch (SessionExpiredException)
                {
                    Violations.Enqueue($"worker {index}: session 0x{old.SessionId:x} expired");
                    throw;
                }
                catch (WireConnectionException) when (sw.Elapsed < TimeSpan.FromSeconds(60))
                {
                    await Task.Delay(100);
                }
            }
        }
    }

    [Fact]
    public async Task Every_request_of_every_reconnected_session_completes_while_the_leader_is_killed_again_and_again()
    {
        const int rounds = 4;
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3);
        var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        await using (var setup = await WireClient.ConnectAsync("127.0.0.1", leader.ClientPort))
            await setup.CreateAsync("/live", null).OkAsync();

        // Two sessions on each member: whoever leads later, some sessions sit on followers and some on the leader.
        var workers = Enumerable.Range(0, 6).Select(i => new Worker(ensemble, i, ensemble.Members[i % 3], Log)).ToList();
        using var stop = new CancellationTokenSource();
        var running = workers.Select(w => Task.Run(() => w.RunAsync(stop.Token))).ToList();
        var progressed = new List<int>();
        try
        {
            for (var round = 1; round <= rounds; round++)
            {
                await Task.Delay(1500);
                var victim = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
                ensemble.Kill(victim.Id);
                var next = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30), notId: victim.Id);
                Log($"round {round}: killed leader {victim.Id}, new leader {next.Id}");
                await ensemble.RestartAsync(victim.Id);
                await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
            }
            // After the last round every session must make progress again, for longer than a session timeout: a
            // request left waiting would be rescued by the next failover during the rounds, not here.
            var before = workers.Select(w => Volatile.Read(ref w.Completed)).ToList();
            await Task.Delay(TimeSpan.FromMilliseconds(Worker.SessionTimeoutMs + 3000));
            progressed.AddRange(workers.Select((w, i) => Volatile.Read(ref w.Completed) - before[i]));
        }
        finally
        {
            stop.Cancel();
            try { await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(60)); }
            catch (OperationCanceledException) { }   // a worker stopped in the middle of a violation
        }
        foreach (var w in workers) Log($"completed {w.Completed} requests, re-attached {w.Reattached} times");
        var violations = workers.SelectMany(w => w.Violations).ToList();
        Assert.True(violations.Count == 0, string.Join("\n", violations));
        for (var i = 0; i < workers.Count; i++) Assert.True(progressed[i] >= 3, $"worker {i} made no progress after the last round");
        Assert.True(workers.Sum(w => w.Reattached) >= rounds, "the sessions were never disconnected: the test did not exercise a failover");
    }
}
