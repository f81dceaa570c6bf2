using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Invariant 10, one bound at a time (README "Resource bounds"): each test drives one abusive client against a real
/// server process, checks that the bound acts (the abuser is refused or cut off, the metric counts it) and that a
/// well-behaved session is unaffected. Where ZooKeeper 3.8 defines the behaviour, the same test runs against it.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class ResourceBoundsTests(ITestOutputHelper output)
{
    private static readonly byte[] Megabyte = new byte[1_000_000];

    // ------------------------------------------------------------------ connections per address

    /// <summary>
    /// Ours only: ZooKeeper 3.8 (NIO) counts a connection after accept on its selector threads, and the same burst got
    /// 84 sessions of 100 past its maxClientCnxns=60 (measured with this test on the "apache" target).
    /// </summary>
    [Fact]
    public async Task Connections_from_one_address_past_the_limit_are_closed_at_accept()
    {
        const string target = "ours";
        ResourceLimits.EnsureOpenFiles(4096);
        await using var server = await Targets.StartAsync(target, output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.max-client-connections = 60",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            // A burst of 100 connects at once from one address: exactly 60 get a session, whatever the interleaving.
            var sockets = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Abuse.TryConnectFromAsync("127.0.0.2", server.Port)));
            var sessions = await Task.WhenAll(sockets.Select(s => s is null ? Task.FromResult(false) : Abuse.HandshakeAsync(s, TimeSpan.FromSeconds(10))));
            output.WriteLine($"{target}: {sessions.Count(ok => ok)} of 100 connections got a session");
            Assert.Equal(60, sessions.Count(ok => ok));

            // Another address is counted on its own.
            await using (var other = await WireClient.ConnectAsync(server.ConnectString))
                await other.ExistsAsync("/").OkAsync(ErrorCode.Ok);

            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.True(long.Parse(mntr["zk_connection_rejected"], CultureInfo.InvariantCulture) >= 40, $"zk_connection_rejected = {mntr["zk_connection_rejected"]}");

            // Closed connections are counted out again.
            foreach (var s in sockets) s?.Dispose();
            await Eventually(async () =>
            {
                using var again = await Abuse.ConnectFromAsync("127.0.0.2", server.Port);
                return await Abuse.HandshakeAsync(again, TimeSpan.FromSeconds(5));
            }, TimeSpan.FromSeconds(10), "a new connection from the address after the others closed");
        });
    }

    // ------------------------------------------------------------------ handshake timeout

    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_connection_that_never_completes_its_handshake_is_closed(string target)
    {
        await using var server = await Targets.StartAsync(target, output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.handshake-timeout = 1s",
            JavaOptions = ["-Dzookeeper.nio.sessionlessCnxnTimeout=1000"],
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            using var silent = await Abuse.ConnectFromAsync("127.0.0.1", server.Port);
            using var partial = await Abuse.ConnectFromAsync("127.0.0.1", server.Port);
            await partial.SendAsync(WireFrames.Connect()[..10]);   // a length and a few bytes of the ConnectRequest
            using var complete = await Abuse.ConnectFromAsync("127.0.0.1", server.Port);
            Assert.True(await Abuse.HandshakeAsync(complete, TimeSpan.FromSeconds(5)));

            var started = Stopwatch.StartNew();
            var closed = await Task.WhenAll(
                Abuse.ClosedByServerAsync(silent, TimeSpan.FromSeconds(6)),
                Abuse.ClosedByServerAsync(partial, TimeSpan.FromSeconds(6)),
                Abuse.ClosedByServerAsync(complete, TimeSpan.FromSeconds(3)));
            output.WriteLine($"{target}: silent closed {closed[0]}, partial closed {closed[1]}, handshaken closed {closed[2]} after {started.ElapsedMilliseconds} ms");
            Assert.True(closed[0], "a connection that sent nothing must be closed");
            Assert.True(closed[1], "a connection that sent half a handshake must be closed");
            Assert.False(closed[2], "a connection with a session must stay open");
            if (server.Kind == ServerKind.Ours)
            {
                var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
                Assert.True(long.Parse(mntr["zk_sessionless_connections_expired"], CultureInfo.InvariantCulture) >= 2);
            }
        });
    }

    // ------------------------------------------------------------------ a client that does not read

    [Fact]
    public async Task A_client_that_stops_reading_is_disconnected_after_the_flush_timeout_and_its_session_lives_on()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            // Only the flush timeout can act: the queue may hold everything this client asks for.
            ExtraHocon = "coordination { flush-timeout = 2s, max-queued-bytes-per-connection = 1GiB }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var good = await WireClient.ConnectAsync(server.ConnectString);
            await good.CreateAsync("/big", Megabyte).OkAsync();

            using var reader = await Abuse.ConnectFromAsync("127.0.0.1", server.Port);
            var session = await Abuse.HandshakeForSessionAsync(reader);
            var getBig = WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/big", false));
            var sent = 0;
            var send = Task.Run(async () =>
            {
                // Asks for 300 MB and reads none of it; the sends block once the server stops reading from it.
                for (; sent < 300; sent++) if (!await Abuse.TrySendAsync(reader, getBig)) return;
            });
            var closed = await Abuse.ClosedByServerAsync(reader, TimeSpan.FromSeconds(20), readNothing: true);
            output.WriteLine($"closed {closed} after {sent} requests sent");
            Assert.True(closed, "the server must close a connection whose client does not read");

            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.True(long.Parse(mntr["zk_connections_dropped_flush_timeout"], CultureInfo.InvariantCulture) >= 1, "zk_connections_dropped_flush_timeout");
            // The session was not closed with the connection: it re-attaches.
            await using var back = await WireClient.ConnectAsync(server.Host, server.Port, new WireClientOptions { SessionId = session.Id, Password = session.Password });
            Assert.Equal(session.Id, back.SessionId);
            await back.ExistsAsync("/big").OkAsync();
            await good.GetDataAsync("/big").OkAsync();
            await send.WaitAsync(TimeSpan.FromSeconds(10));
        });
    }

    [Fact]
    public async Task Watch_events_queued_to_a_client_that_does_not_read_are_bounded()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination { max-queued-bytes-per-connection = 2MiB, flush-timeout = 120s, persistence.force-sync = off }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var leaf = "/w/" + new string('e', 900);   // each event is about 1 KB
            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await writer.CreateAsync("/w", null).OkAsync();
            await writer.CreateAsync(leaf, null).OkAsync();

            using var watcher = await Abuse.ConnectFromAsync("127.0.0.1", server.Port);
            Assert.True(await Abuse.HandshakeAsync(watcher, TimeSpan.FromSeconds(5)));
            await watcher.SendAsync(WireFrames.Request(1, OpCode.AddWatch, new AddWatchRequest("/w", AddWatchMode.PersistentRecursive)));
            var closed = Abuse.ClosedByServerAsync(watcher, TimeSpan.FromSeconds(60), readNothing: true);

            // Changes under /w until the watcher is cut off: its events fill the kernel's buffers, then its queue.
            var writes = 0;
            while (!closed.IsCompleted && writes < 200_000)
            {
                await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => writer.SetDataAsync(leaf, [1]).OkAsync()));
                writes += 200;
            }
            output.WriteLine($"{writes} writes until the watcher was cut off");
            Assert.True(await closed, "the watcher that does not read must be disconnected");
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.True(long.Parse(mntr["zk_connections_dropped_queue_full"], CultureInfo.InvariantCulture) >= 1, "zk_connections_dropped_queue_full");
            await writer.SetDataAsync(leaf, [2]).OkAsync();
        });
    }

    // ------------------------------------------------------------------ requests outstanding across the server

    [Fact]
    public async Task Requests_outstanding_across_the_server_are_bounded()
    {
        const int limit = 20, clients = 5, each = 300;
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.global-outstanding-limit = {limit}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var sessions = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => WireClient.ConnectAsync(server.ConnectString)));
            for (var i = 0; i < clients; i++) await sessions[i].CreateAsync($"/o{i}", null).OkAsync();

            // Every client pipelines durable writes (each waits for an fsync): without the bound they all sit in the replica.
            var load = Task.WhenAll(sessions.SelectMany((s, i) => Enumerable.Range(0, each).Select(_ => s.SetDataAsync($"/o{i}", [1]).OkAsync())));
            var highest = await HighestWhileAsync(server, "zk_outstanding_requests", load);
            var after = await FourLetterWord.MntrAsync(server.Host, server.Port);
            output.WriteLine($"highest zk_outstanding_requests {highest}; throttle waits {after["zk_request_throttle_wait_count"]}");
            // Each connection may always have one request in progress (no starvation), so the bound is limit + clients.
            Assert.InRange(highest, 0, limit + clients);
            Assert.True(long.Parse(after["zk_request_throttle_wait_count"], CultureInfo.InvariantCulture) > 0);
            foreach (var s in sessions) await s.DisposeAsync();
        });
    }

    /// <summary>
    /// The server-wide outstanding count is kept per read batch and per flush (not per request): under pipelined load
    /// from many connections, some closing with requests in flight, it must stay within the limit plus one batch per
    /// connection and come back to exactly 0, or the server would throttle itself for good.
    /// </summary>
    [Fact]
    public async Task Requests_counted_in_batches_are_all_released()
    {
        const int clients = 8, each = 2000, dropped = 3, limit = 1000, batch = 32;
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.global-outstanding-limit = {limit}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var sessions = await Task.WhenAll(Enumerable.Range(0, clients + dropped).Select(_ => WireClient.ConnectAsync(server.ConnectString)));
            await sessions[0].CreateAsync("/b", [1, 2, 3]).OkAsync();

            // Connections that close with a pipeline of reads in flight release what they still count.
            foreach (var s in sessions.Skip(clients))
            {
                _ = Enumerable.Range(0, each).Select(_ => s.GetDataAsync("/b")).ToList();
                await s.DisposeAsync();
            }
            // On a quiet machine a round can finish between two mntr samples: run rounds until one is seen in flight.
            var highest = 0L;
            for (var round = 0; round < 10 && highest == 0; round++)
            {
                var load = Task.WhenAll(sessions.Take(clients).SelectMany(s => Enumerable.Range(0, each).Select(_ => s.GetDataAsync("/b").OkAsync())));
                highest = await HighestWhileAsync(server, "zk_client_requests_outstanding", load);
            }
            // Answered requests release their bytes while their connections stay open, not only when they close.
            var answeredBytes = await BytesOutstandingAsync(server);
            foreach (var s in sessions.Take(clients)) await s.DisposeAsync();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            long after;
            while ((after = long.Parse((await FourLetterWord.MntrAsync(server.Host, server.Port))["zk_client_requests_outstanding"], CultureInfo.InvariantCulture)) != 0
                   && DateTime.UtcNow < deadline)
                await Task.Delay(50);
            var afterBytes = await BytesOutstandingAsync(server);
            output.WriteLine($"highest zk_client_requests_outstanding {highest}; after the load {answeredBytes} bytes, after the close {after} ({afterBytes} bytes)");
            Assert.InRange(highest, 1, limit + batch * (clients + dropped));
            Assert.Equal(0, answeredBytes);
            Assert.Equal(0, after);
            Assert.Equal(0, afterBytes);
        });
    }

    // ------------------------------------------------------------------ bytes of requests outstanding

    /// <summary>Large writes, each a frame of about <see cref="LargeWrite"/> bytes, pipelined by each client.</summary>
    private const int LargeWrite = 200_000, LargeWritesEach = 40;

    /// <summary>
    /// Counted alone, one client could pipeline 1,000 requests of 1 MB and make the server hold them all (seen in CI:
    /// AbuseTests' setWatches abuser got 781 requests of 992 KiB in, 1.5 GiB of live heap). With a byte bound the
    /// connection stops being read once its requests in flight hold max-inflight-bytes-per-connection: at most that
    /// plus the one request read past it.
    /// </summary>
    [Fact]
    public async Task Bytes_of_requests_in_flight_on_one_connection_are_bounded()
    {
        const long bound = 1 << 20;
        var highest = await HighestBytesUnderLargeWritesAsync($"coordination {{ max-inflight-bytes-per-connection = {bound}, global-outstanding-bytes = 0 }}", clients: 1);
        Assert.InRange(highest, 1, bound + LargeWrite + 1024);
    }

    /// <summary>
    /// Across connections, global-outstanding-bytes: a connection that already has a request outstanding stops reading
    /// while the server holds that many bytes, so the total passes it by at most one request per connection.
    /// </summary>
    [Fact]
    public async Task Bytes_of_requests_outstanding_across_the_server_are_bounded()
    {
        const long limit = 1 << 20;
        const int clients = 5;
        var highest = await HighestBytesUnderLargeWritesAsync($"coordination {{ max-inflight-bytes-per-connection = 0, global-outstanding-bytes = {limit} }}", clients);
        Assert.InRange(highest, 1, limit + clients * (LargeWrite + 1024));
    }

    /// <summary>
    /// Each of <paramref name="clients"/> sessions pipelines <see cref="LargeWritesEach"/> setData of
    /// <see cref="LargeWrite"/> bytes; every one must succeed. Returns the highest zk_client_request_bytes_outstanding
    /// seen meanwhile, after checking that it came back to 0 with the sessions still connected.
    /// </summary>
    private async Task<long> HighestBytesUnderLargeWritesAsync(string hocon, int clients)
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = hocon });
        var highest = 0L;
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var sessions = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => WireClient.ConnectAsync(server.ConnectString)));
            for (var i = 0; i < clients; i++) await sessions[i].CreateAsync($"/large{i}", null).OkAsync();
            var data = new byte[LargeWrite];
            var load = Task.WhenAll(sessions.SelectMany((s, i) => Enumerable.Range(0, LargeWritesEach).Select(_ => s.SetDataAsync($"/large{i}", data).OkAsync())));
            highest = await HighestWhileAsync(server, "zk_client_request_bytes_outstanding", load);
            var after = await BytesOutstandingAsync(server);
            output.WriteLine($"highest zk_client_request_bytes_outstanding {highest}; after the load {after}");
            Assert.Equal(0, after);
            foreach (var s in sessions) await s.DisposeAsync();
        });
        return highest;
    }

    /// <summary>zk_client_request_bytes_outstanding once it is 0, or after 10 s.</summary>
    private static async Task<long> BytesOutstandingAsync(ServerProcess server)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        long bytes;
        while ((bytes = long.Parse((await FourLetterWord.MntrAsync(server.Host, server.Port))["zk_client_request_bytes_outstanding"], CultureInfo.InvariantCulture)) != 0
               && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        return bytes;
    }

    /// <summary>The highest value mntr reported for <paramref name="key"/> while <paramref name="load"/> ran (then awaits it).</summary>
    private static async Task<long> HighestWhileAsync(ServerProcess server, string key, Task load)
    {
        var highest = 0L;
        while (!load.IsCompleted)
        {
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            highest = Math.Max(highest, long.Parse(mntr[key], CultureInfo.InvariantCulture));
            await Task.Delay(2);
        }
        await load;
        return highest;
    }

    // ------------------------------------------------------------------ response size

    [Fact]
    public async Task A_read_whose_response_would_exceed_the_limit_fails_with_MarshallingError()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination { max-response-size = 64KiB, persistence.force-sync = off }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            await c.CreateAsync("/d", new byte[40_000]).OkAsync();
            await c.CreateAsync("/kids", null).OkAsync();
            var prefix = new string('k', 80);
            await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => c.CreateAsync($"/kids/{prefix}{i:D4}", null).OkAsync()));

            static MultiOp GetData(string path) => new(OpCode.GetData, new PathWatchRequest(path, false));
            var one = await c.SendAsync(OpCode.MultiRead, new MultiRequest([GetData("/d")]));
            Assert.Equal(ErrorCode.Ok, one.Header.Err);
            var two = await c.SendAsync(OpCode.MultiRead, new MultiRequest([GetData("/d"), GetData("/d")]));
            Assert.Equal(ErrorCode.MarshallingError, two.Header.Err);
            // 1000 names of 84 bytes: 88 KB, over 64 KiB.
            Assert.Equal(ErrorCode.MarshallingError, (await c.SendAsync(OpCode.GetChildren, new PathWatchRequest("/kids", false))).Header.Err);
            Assert.Equal(ErrorCode.MarshallingError, (await c.SendAsync(OpCode.GetChildren2, new PathWatchRequest("/kids", false))).Header.Err);
            Assert.Equal(ErrorCode.MarshallingError, (await c.SendAsync(OpCode.MultiRead,
                new MultiRequest([new MultiOp(OpCode.GetChildren, new PathWatchRequest("/kids", false))]))).Header.Err);
            // The session goes on, and a response under the limit is built.
            await c.DeleteAsync($"/kids/{prefix}0000").OkAsync();
            Assert.Equal(ErrorCode.Ok, (await c.SendAsync(OpCode.GetChildren, new PathWatchRequest("/", false))).Header.Err);
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.Equal("4", mntr["zk_large_responses_rejected"]);
        });
    }

    // ------------------------------------------------------------------ connections in total (file descriptors)

    /// <summary>
    /// max-connections (ZooKeeper's maxCnxns), by default derived from the open-files limit, keeps a flood of clients
    /// from taking every descriptor: the server runs with 400 descriptors and receives 450 connections. Those past the
    /// cap are closed at accept; the server stays up (with none left, .NET aborted it, exit 134, in 2 of 6 runs); a
    /// session opened before the flood goes on writing while the journal opens new segments and snapshots are taken;
    /// the accept loop does not spin at the cap; and once the flood closes, new clients get in again.
    /// Fails without the cap: COORDINATION_TEST_MAX_CONNECTIONS=1000 sets max-connections above the descriptor limit.
    /// </summary>
    [Fact]
    public async Task A_flood_of_connections_stops_at_the_connection_cap_and_leaves_descriptors_to_the_server()
    {
        const int descriptors = 400, flood = 450;
        ResourceLimits.EnsureOpenFiles(4096);
        var configured = Environment.GetEnvironmentVariable("COORDINATION_TEST_MAX_CONNECTIONS") is { Length: > 0 } v ? $"coordination.max-connections = {v}" : "";
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            LaunchPrefix = ["prlimit", $"--nofile={descriptors}:{descriptors}"],
            // The flood's sessions never ping: a 2-minute timeout keeps them (and their descriptors) for the whole test.
            TickTimeMs = 6000,
            // Small segments and frequent snapshots: the writes below need new files while the flood is held.
            ExtraHocon = $"coordination.persistence {{ log-segment-size = 64KiB, log-preallocate = 16KiB, snapshot-every-txns = 100 }}\n{configured}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var cap = ParseConnectionCap(server.OutputTail);
            output.WriteLine($"open-files limit {descriptors}: max-connections resolved to {cap}");
            await using var keeper = await WireClient.ConnectAsync(server.ConnectString);
            await keeper.CreateAsync("/kept", new byte[10]).OkAsync();
            var filesBefore = Directory.GetFiles(server.DataDir, "*", SearchOption.AllDirectories).Length;

            var sockets = new List<Socket>();
            try
            {
                for (var i = 0; i < flood; i++)
                    if (await Abuse.TryConnectFromAsync("127.0.0.1", server.Port) is { } s) sockets.Add(s);
                var sessions = await Task.WhenAll(sockets.Select(s => Abuse.HandshakeAsync(s, TimeSpan.FromSeconds(30), sessionTimeoutMs: 120_000)));
                var admitted = sessions.Count(ok => ok);
                output.WriteLine($"{sockets.Count} of {flood} connected, {admitted} got a session");

                // The session from before the flood writes 1.2 MB: about 20 new journal segments and 3 snapshots.
                var chunk = new byte[4000];
                for (var i = 0; i < 300; i++) await keeper.SetDataAsync("/kept", chunk).OkAsync();
                Assert.Equal(4000, ((GetDataResponse)(await keeper.GetDataAsync("/kept").OkAsync())!).Data!.Length);
                var filesAfter = Directory.GetFiles(server.DataDir, "*", SearchOption.AllDirectories).Length;
                output.WriteLine($"data dir files: {filesBefore} before, {filesAfter} after the writes");
                Assert.True(filesAfter >= filesBefore + 3, $"the journal opened no new segments/snapshots ({filesBefore} -> {filesAfter} files)");

                // At the cap, a trickle of new connects (each accepted and closed) costs little CPU. (A second to let
                // the last snapshot and purge finish first.)
                await Task.Delay(1000);
                var cpuBefore = ProcStats.ReadCpuTime(server.Pid)!.Value;
                var measuring = Stopwatch.StartNew();
                var refused = 0;
                while (measuring.Elapsed < TimeSpan.FromSeconds(3))
                {
                    if (await Abuse.TryConnectFromAsync("127.0.0.1", server.Port) is { } late)
                    {
                        if (!await Abuse.HandshakeAsync(late, TimeSpan.FromSeconds(2))) refused++;
                        late.Dispose();
                    }
                    await Task.Delay(20);
                }
                var cpu = ProcStats.ReadCpuTime(server.Pid)!.Value - cpuBefore;
                output.WriteLine($"at the cap: {refused} late connects refused, server CPU {cpu.TotalMilliseconds:F0} ms in 3 s, {ProcStats.CountOpenFiles(server.Pid)} descriptors open");
                Assert.True(cpu < TimeSpan.FromSeconds(1), $"the server used {cpu.TotalMilliseconds:F0} ms of CPU in 3 s at the cap: the accept loop spins");
                Assert.True(refused > 0, "no late connect was refused at the cap");

                Assert.False(server.HasExited, $"the server exited with {server.ExitCode}");
                // The keeper and mntr's own connection (whose actor may not have stopped yet) hold one or two slots.
                Assert.InRange(admitted, cap - 2, cap - 1);
            }
            finally
            {
                foreach (var s in sockets) s.Dispose();
            }
            await keeper.ExistsAsync("/kept").OkAsync();
            await Eventually(async () =>
            {
                await using var after = await WireClient.ConnectAsync(server.ConnectString);
                return (await after.ExistsAsync("/kept")).Header.Err == ErrorCode.Ok;
            }, TimeSpan.FromSeconds(15), "a session after the flood closed");
            // (mntr's own connection would have been refused at the cap.)
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.True(long.Parse(mntr["zk_connection_rejected_max_connections"], CultureInfo.InvariantCulture) >= flood - cap,
                $"zk_connection_rejected_max_connections = {mntr["zk_connection_rejected_max_connections"]}");
            Assert.Equal("0", mntr["zk_accept_failures"]);   // the cap kept descriptors free: accept never failed
        });
    }

    /// <summary>
    /// max-connections counts every address together and is counted at accept: a burst of 120 connects at once from two
    /// addresses gets exactly 50 sessions, whatever the interleaving.
    /// </summary>
    [Fact]
    public async Task A_burst_of_connections_from_several_addresses_gets_exactly_max_connections()
    {
        ResourceLimits.EnsureOpenFiles(4096);
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = "coordination.max-connections = 50" });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            Assert.Equal(50, ParseConnectionCap(server.OutputTail));
            var sockets = await Task.WhenAll(Enumerable.Range(0, 120).Select(i => Abuse.TryConnectFromAsync(i % 2 == 0 ? "127.0.0.2" : "127.0.0.3", server.Port)));
            var sessions = await Task.WhenAll(sockets.Select(s => s is null ? Task.FromResult(false) : Abuse.HandshakeAsync(s, TimeSpan.FromSeconds(10))));
            output.WriteLine($"{sessions.Count(ok => ok)} of 120 connections got a session");
            Assert.Equal(50, sessions.Count(ok => ok));
            foreach (var s in sockets) s?.Dispose();
            await Eventually(async () =>
            {
                await using var after = await WireClient.ConnectAsync(server.ConnectString);
                return (await after.ExistsAsync("/")).Header.Err == ErrorCode.Ok;
            }, TimeSpan.FromSeconds(10), "a session after the burst closed");
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            // 70 of the burst, and any attempt above that was made before the burst's connections were counted out.
            Assert.True(long.Parse(mntr["zk_connection_rejected_max_connections"], CultureInfo.InvariantCulture) >= 70,
                $"zk_connection_rejected_max_connections = {mntr["zk_connection_rejected_max_connections"]}");
        });
    }

    private static int ParseConnectionCap(string serverOutput)
    {
        var match = System.Text.RegularExpressions.Regex.Match(serverOutput, @"Client connections: at most (\d+) in total");
        Assert.True(match.Success, "the server did not log its connection cap");
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    internal static async Task Eventually(Func<Task<bool>> check, TimeSpan within, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try { if (await check()) return; }
            catch (Exception) when (deadline.Elapsed < within) { }
            if (deadline.Elapsed > within) Assert.Fail($"not within {within.TotalSeconds} s: {what}");
            await Task.Delay(200);
        }
    }
}

/// <summary>Raw client sockets for abusive clients: bound to a chosen loopback address, no reading unless asked.</summary>
internal static class Abuse
{
    public static async Task<Socket> ConnectFromAsync(string localAddress, int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Bind(new IPEndPoint(IPAddress.Parse(localAddress), 0));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token);
        return socket;
    }

    /// <summary>A connection, or null when the server refused or reset it (a full backlog).</summary>
    public static async Task<Socket?> TryConnectFromAsync(string localAddress, int port)
    {
        try { return await ConnectFromAsync(localAddress, port); }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { return null; }
    }

    public static async Task<bool> TrySendAsync(Socket socket, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty) bytes = bytes[await socket.SendAsync(bytes)..];
            return true;
        }
        catch (SocketException) { return false; }
        catch (ObjectDisposedException) { return false; }
    }

    /// <summary>Sends a ConnectRequest and reads the response: true when a session was granted.</summary>
    public static async Task<bool> HandshakeAsync(Socket socket, TimeSpan timeout, int sessionTimeoutMs = 30_000)
    {
        try { return (await HandshakeForSessionAsync(socket, timeout, sessionTimeoutMs)).Id != 0; }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException) { return false; }
    }

    public static async Task<(long Id, byte[] Password)> HandshakeForSessionAsync(Socket socket, TimeSpan? timeout = null, int sessionTimeoutMs = 30_000)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        await socket.SendAsync(WireFrames.Connect(timeoutMs: sessionTimeoutMs), cts.Token);
        var frame = await ReadFrameAsync(socket, cts.Token) ?? throw new IOException("closed during the handshake");
        var r = new JuteReader(frame);
        var response = ConnectResponse.Read(ref r);
        return (response.SessionId, response.Password);
    }

    /// <summary>One length-prefixed frame, or null at end of stream.</summary>
    public static async Task<byte[]?> ReadFrameAsync(Socket socket, CancellationToken ct)
    {
        var length = new byte[4];
        if (!await ReadExactlyAsync(socket, length, ct)) return null;
        var frame = new byte[BinaryPrimitives.ReadInt32BigEndian(length)];
        return await ReadExactlyAsync(socket, frame, ct) ? frame : null;
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken ct)
    {
        while (!buffer.IsEmpty)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (n == 0) return false;
            buffer = buffer[n..];
        }
        return true;
    }

    /// <summary>
    /// True when the server closes the connection within <paramref name="within"/>. Reads (and discards) what arrives,
    /// unless <paramref name="readNothing"/>: then it only polls for the close (a reset, or end of stream once the
    /// kernel reports the socket readable with no data, which needs reading; so a non-reader polls the peer's state).
    /// </summary>
    public static async Task<bool> ClosedByServerAsync(Socket socket, TimeSpan within, bool readNothing = false)
    {
        var deadline = Stopwatch.StartNew();
        var buffer = new byte[64 * 1024];
        while (deadline.Elapsed < within)
        {
            try
            {
                if (readNothing)
                {
                    if (!PeerStillOpen(socket)) return true;
                    await Task.Delay(100);
                    continue;
                }
                using var cts = new CancellationTokenSource(within - deadline.Elapsed);
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token) == 0) return true;
            }
            catch (OperationCanceledException) { return false; }
            catch (SocketException) { return true; }
            catch (ObjectDisposedException) { return true; }
        }
        return false;
    }

    /// <summary>
    /// Without reading the receive queue: a closed peer shows as a failing zero-byte send after its RST, or as
    /// TCP state CLOSE_WAIT (the server's FIN arrived) in /proc/net/tcp for this socket's local port.
    /// </summary>
    private static bool PeerStillOpen(Socket socket)
    {
        var local = (IPEndPoint)socket.LocalEndPoint!;
        var hexPort = local.Port.ToString("X4", CultureInfo.InvariantCulture);
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4 || !fields[1].EndsWith(":" + hexPort, StringComparison.Ordinal)) continue;
            return fields[3] == "01";   // ESTABLISHED; 08 = CLOSE_WAIT (peer closed), gone = reset
        }
        return false;
    }
}
