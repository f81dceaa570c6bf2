using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Server.Tests;

/// <summary>The TestKit wire client against a scripted fake server: FIFO checking and the arrival log.</summary>
public sealed class WireClientTests
{
    /// <summary>A one-connection fake server: answers the handshake, then runs <paramref name="script"/>.</summary>
    private static async Task<(WireClient Client, Task Server)> StartAsync(Func<NetworkStream, Task> script, WireClientOptions? options = null)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            listener.Stop();
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await ReadFrameAsync(stream);
            await WriteAsync(stream, (ref JuteWriter w) => new ConnectResponse(0, 4000, 0x1234, new byte[16], false).Write(ref w));
            await script(stream);
        });
        var client = await WireClient.ConnectAsync("127.0.0.1", port, options);
        return (client, server);
    }

    private static async Task<byte[]> ReadFrameAsync(Stream s)
    {
        var prefix = new byte[4];
        await s.ReadExactlyAsync(prefix);
        var body = new byte[System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(prefix)];
        await s.ReadExactlyAsync(body);
        return body;
    }

    private delegate void Body(ref JuteWriter w);

    private static async Task WriteAsync(Stream s, Body body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        Framing.WriteFrame(buffer, body, static (ref JuteWriter w, Body b) => b(ref w));
        await s.WriteAsync(buffer.WrittenMemory);
    }

    private static int XidOf(byte[] request) => System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(request);

    [Fact]
    public async Task A_response_out_of_xid_order_fails_the_connection()
    {
        var (client, server) = await StartAsync(async s =>
        {
            var first = XidOf(await ReadFrameAsync(s));
            var second = XidOf(await ReadFrameAsync(s));
            await WriteAsync(s, (ref JuteWriter w) => new ReplyHeader(second, 1, ErrorCode.Ok).Write(ref w));
            await WriteAsync(s, (ref JuteWriter w) => new ReplyHeader(first, 1, ErrorCode.Ok).Write(ref w));
            await Task.Delay(500);
        });
        await using (client)
        {
            Assert.Equal(0x1234, client.SessionId);
            var a = client.SendAsync(OpCode.Sync, new PathRequest("/"));
            var b = client.SendAsync(OpCode.Sync, new PathRequest("/"));
            var e = await Assert.ThrowsAsync<WireConnectionException>(() => a);
            Assert.Contains("out of order", e.Message);
            await Assert.ThrowsAsync<WireConnectionException>(() => b);
            Assert.NotNull(await client.Closed.WaitAsync(TimeSpan.FromSeconds(5)));
        }
        await server;
    }

    [Fact]
    public async Task Events_and_responses_are_logged_in_arrival_order()
    {
        var seen = new List<string>();
        var (client, server) = await StartAsync(async s =>
        {
            var xid = XidOf(await ReadFrameAsync(s));
            await WriteAsync(s, (ref JuteWriter w) => { new ReplyHeader(-1, 7, ErrorCode.Ok).Write(ref w); new WatcherEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/x").Write(ref w); });
            await WriteAsync(s, (ref JuteWriter w) => { new ReplyHeader(xid, 7, ErrorCode.Ok).Write(ref w); new Stat(1, 7, 0, 0, 1, 0, 0, 0, 0, 0, 1).Write(ref w); });
            await Task.Delay(500);
        }, new WireClientOptions { RecordArrivals = true, OnEvent = n => { lock (seen) seen.Add("event " + n.Event.Path); } });
        await using (client)
        {
            var (h, r) = await client.ExistsAsync("/x", watch: true);
            lock (seen) seen.Add("response");
            Assert.Equal(ErrorCode.Ok, h.Err);
            Assert.Equal(7, ((StatResponse)r!).Stat.Mzxid);
            Assert.Equal(["event /x", "response"], seen);
            var log = client.Arrivals;
            Assert.Equal([ArrivalKind.Event, ArrivalKind.Response], log.Select(a => a.Kind));
            Assert.Equal(7, client.LastZxid);
            Assert.True(client.Events.TryRead(out var n) && n.Event.Path == "/x" && n.Zxid == 7);
        }
        await server;
    }

    [Fact]
    public async Task Expired_session_is_reported_on_reattach()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            listener.Stop();
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await ReadFrameAsync(stream);
            await WriteAsync(stream, (ref JuteWriter w) => new ConnectResponse(0, 0, 0, new byte[16], false).Write(ref w));
        });
        await Assert.ThrowsAsync<SessionExpiredException>(() =>
            WireClient.ConnectAsync("127.0.0.1", port, new WireClientOptions { SessionId = 0x42, Password = new byte[16] }));
        await server;
    }
}
