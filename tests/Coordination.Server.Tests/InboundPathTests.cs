using System.Globalization;
using System.Text;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Issue 18: a connection's read loop sends ordinary requests straight to the replica, and only auth and SASL packets
/// to the session actor (docs/architecture.md §4). What that could break, on the wire: a request pipelined behind an
/// auth packet must be checked with the ids it adds, a ping answered with the zxid the connection last saw, every
/// request timed once per op, and a replaced connection's requests never answered on its successor.
/// </summary>
public sealed class InboundPathTests(ITestOutputHelper output)
{
    private static readonly byte[] AdminAuth = Encoding.UTF8.GetBytes("admin:secret");
    private static readonly IReadOnlyList<Acl> AdminOnly = [new(Perms.All, new Id("digest", Acls.Digest("admin:secret")))];
    private static readonly IReadOnlyList<Acl> Open = [new(Perms.All, new Id("world", "anyone"))];

    private static byte[] Concat(params byte[][] frames) => frames.SelectMany(f => f).ToArray();

    private static byte[] AuthFrame(byte[] credentials) =>
        WireFrames.Request(Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, "digest", credentials));

    /// <summary>
    /// addauth and a create that needs its id in one TCP write: as ZooKeeper (which handles auth inline in its read
    /// path), the create is checked with the new id, so it succeeds.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_create_pipelined_in_the_same_write_as_addauth_is_checked_with_the_id_it_adds(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var admin = await WireClient.ConnectAsync(server.ConnectString);
            await admin.AddAuthAsync("digest", AdminAuth).OkAsync();
            await admin.CreateAsync("/guarded", null, acl: AdminOnly).OkAsync();

            for (var i = 0; i < 5; i++)
            {
                await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
                await raw.HandshakeAsync();
                Assert.True(await raw.SendAsync(Concat(
                    AuthFrame(AdminAuth),
                    WireFrames.Request(1, OpCode.Create, new CreateRequest($"/guarded/c{i}", null, Open, 0)))));
                var outcome = await raw.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 2);
                output.WriteLine($"[{target}] round {i}: {outcome}");
                Assert.Equal([(Xids.AuthPacket, ErrorCode.Ok), (1, ErrorCode.Ok)],
                    outcome.Replies.Select(r => (r.Xid, r.Err)).OrderBy(r => r.Xid));
            }
        });
    }

    /// <summary>
    /// With auth.enforce on, a request and a ping in the same TCP write right behind a good auth packet are served
    /// (they would be refused, and the connection closed, if they were checked with the ids from before the auth).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task With_auth_enforce_the_requests_pipelined_behind_a_good_auth_packet_are_served(string target)
    {
        await using var server = await Targets.StartAsync(target, output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.auth.enforce { enabled = on, schemes = [digest] }",
            JavaOptions = ["-Dzookeeper.enforce.auth.enabled=true", "-Dzookeeper.enforce.auth.schemes=digest"],
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
                await raw.HandshakeAsync();
                Assert.True(await raw.SendAsync(Concat(
                    AuthFrame(AdminAuth),
                    WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/", false)),
                    WireFrames.Request(Xids.Ping, OpCode.Ping, null))));
                var outcome = await raw.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 3);
                output.WriteLine($"[{target}] round {i}: {outcome}");
                Assert.Equal([(Xids.AuthPacket, ErrorCode.Ok), (Xids.Ping, ErrorCode.Ok), (1, ErrorCode.Ok)],
                    outcome.Replies.Select(r => (r.Xid, r.Err)).OrderBy(r => r.Xid));
                Assert.False(outcome.ClosedByServer);
            }
        });
    }

    /// <summary>
    /// A ping's reply carries the last zxid the connection saw: right after the handshake the same as a read's, after
    /// a write that write's. (Nothing else writes meanwhile, so ZooKeeper's, the server's last zxid, is the same.)
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_ping_answers_with_the_last_zxid_the_connection_saw(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
            await raw.HandshakeAsync();
            async Task<ReplyHeader> AskAsync(byte[] frame)
            {
                Assert.True(await raw.SendAsync(frame));
                var outcome = await raw.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 1);
                output.WriteLine($"[{target}] {outcome}");
                var reply = Assert.Single(outcome.Replies);
                Assert.Equal(ErrorCode.Ok, reply.Err);
                return reply;
            }

            var firstPing = await AskAsync(WireFrames.Request(Xids.Ping, OpCode.Ping, null));
            var read = await AskAsync(WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/", false)));
            Assert.True(read.Zxid > 0);
            Assert.Equal(read.Zxid, firstPing.Zxid);
            var create = await AskAsync(WireFrames.Request(2, OpCode.Create, new CreateRequest("/pinged", null, Open, 0)));
            Assert.True(create.Zxid > read.Zxid);
            Assert.Equal(create.Zxid, (await AskAsync(WireFrames.Request(Xids.Ping, OpCode.Ping, null))).Zxid);
        });
    }

    /// <summary>
    /// Every request answered by the replica is timed once under its op (the metrics endpoint's request_latency_ms
    /// histograms, mntr's read and update latencies); pings are not.
    /// </summary>
    [Fact]
    public async Task Latency_statistics_count_each_request_once_under_its_op()
    {
        var metricsPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.metrics {{ enabled = on, port = {metricsPort} }}",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { AutoPing = false });
        await client.CreateAsync("/timed", [1]).OkAsync();
        for (var i = 0; i < 5; i++) await client.SendAsync(OpCode.GetData, new PathWatchRequest("/timed", false)).OkAsync();
        for (var i = 0; i < 3; i++) await client.SetDataAsync("/timed", [2]).OkAsync();
        for (var i = 0; i < 2; i++) await client.ExistsAsync("/timed").OkAsync();
        for (var i = 0; i < 4; i++) client.Ping();
        // Pipelined (one write, one read batch): each still counts once.
        var pipelined = Enumerable.Range(0, 6).Select(_ => client.SendAsync(OpCode.GetData, new PathWatchRequest("/timed", false))).ToList();
        foreach (var request in pipelined) await request.OkAsync();
        for (var waited = 0; client.PongCount < 4; waited++)
        {
            Assert.True(waited < 100, $"{client.PongCount} of 4 pongs within 10 s");
            await Task.Delay(100);
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
        var samples = metrics.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));
        double Count(string op) => samples.GetValueOrDefault($"request_latency_ms_count{{op=\"{op}\"}}");
        output.WriteLine(string.Join("\n", samples.Where(s => s.Key.StartsWith("request_latency_ms_count", StringComparison.Ordinal))));
        Assert.Equal((1, 11, 3, 2, 0), (Count("create"), Count("getData"), Count("setData"), Count("exists"), Count("ping")));

        var mntr = FourLetterWord.ParseMntr(await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
        // Updates include the closeSession of the readiness probe's session (ServerProcess), timed like any request.
        Assert.Equal((13, 4 + Count("closeSession")), (double.Parse(mntr["zk_cnt_readlatency"], CultureInfo.InvariantCulture),
            double.Parse(mntr["zk_cnt_updatelatency"], CultureInfo.InvariantCulture)));
    }

    /// <summary>
    /// A session re-attached on a new connection while its old one has a long pipeline in flight: the new connection
    /// gets the answers to its own requests and never one to the old connection's (whose xids it does not use).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_replaced_connections_requests_in_flight_are_not_answered_on_its_successor(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            const int OldXids = 1_000_000, Pipelined = 3000;
            var pipeline = Concat(Enumerable.Range(0, Pipelined)
                .Select(i => WireFrames.Request(OldXids + i, OpCode.Exists, new PathWatchRequest("/", false))).ToArray());
            for (var round = 0; round < 10; round++)
            {
                await using var old = await RawConnection.ConnectAsync(server.Host, server.Port);
                var session = await old.HandshakeAsync();
                var sending = old.SendAsync(pipeline);
                await using var successor = await RawConnection.ConnectAsync(server.Host, server.Port);
                Assert.True(await successor.SendAsync(WireFrames.Connect(session.SessionId, session.Password)));
                var handshake = await successor.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true, stopAfterReplies: 0);
                Assert.Equal(session.SessionId, handshake.ConnectResponse?.SessionId);
                await sending;
                Assert.True(await successor.SendAsync(Concat(Enumerable.Range(1, 20)
                    .Select(xid => WireFrames.Request(xid, OpCode.Exists, new PathWatchRequest("/", false))).ToArray())));
                var outcome = await successor.ObserveAsync(TimeSpan.FromSeconds(10), probeXid: 20);
                output.WriteLine($"[{target}] round {round}: {outcome}");
                Assert.Equal(Enumerable.Range(1, 20), outcome.Replies.Select(r => r.Xid));
                Assert.All(outcome.Replies, r => Assert.Equal(ErrorCode.Ok, r.Err));
            }
        });
    }
}
