using System.Buffers;
using Coordination.Protocol;
using Coordination.Server.Network;
using Coordination.Testing;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// A follower forwards a client's write as the bytes the client sent (issue 18: decoded once there, never encoded
/// again). The connection keeps them out of its read buffer, which the next read reuses: the kept body must be a copy
/// that outlives the buffer, exactly the body after the request header, and only for a write that decoded.
/// </summary>
public sealed class ForwardedBodyTests
{
    [Fact]
    public void A_write_body_is_kept_as_sent_and_outlives_the_read_buffer()
    {
        var write = new SetDataRequest("/app/config", [1, 2, 3, 4, 5], 7);
        var frame = Frame(42, OpCode.SetData, write);
        // Split across two segments inside the body, as a pipe may hand a frame over.
        var first = frame[..14];
        var second = frame[14..];
        var sequence = Sequences.Of(first, second);

        Assert.True(ClientConnection.TryParseRequest(sequence, out var xid, out var op, out var body, out _));
        var kept = ClientConnection.WriteBodyBytes(sequence, op, body);
        Array.Fill(first, (byte)0xEE);   // the read buffer is reused by the next read
        Array.Fill(second, (byte)0xEE);

        Assert.Equal(42, xid);
        Assert.NotNull(kept);
        Assert.Equal(Jute(write), kept);
        var reader = new JuteReader(kept);
        var decoded = Assert.IsType<SetDataRequest>(Requests.Read(OpCode.SetData, ref reader));
        Assert.Equal((write.NodePath, write.Version), (decoded.NodePath, decoded.Version));
        Assert.Equal(write.Data, decoded.Data);
    }

    [Fact]
    public void Reads_and_undecodable_writes_keep_nothing()
    {
        var read = Sequences.Of(Frame(1, OpCode.GetData, new PathWatchRequest("/a", false)));
        Assert.True(ClientConnection.TryParseRequest(read, out _, out var readOp, out var readBody, out _));
        Assert.Null(ClientConnection.WriteBodyBytes(read, readOp, readBody));

        // A setData cut short inside its path: answered with MarshallingError here, never forwarded.
        var truncated = Sequences.Of(Frame(2, OpCode.SetData, new SetDataRequest("/a/b/c", null, 0))[..12]);
        Assert.True(ClientConnection.TryParseRequest(truncated, out _, out var op, out var body, out _));
        Assert.IsType<Pipeline.MalformedRequest>(body);
        Assert.Null(ClientConnection.WriteBodyBytes(truncated, op, body));
    }

    /// <summary>A request frame without its length prefix (as the read loop hands it on): header, then body.</summary>
    private static byte[] Frame(int xid, OpCode op, ZkRequest request) => [.. Jute(new RequestHeader(xid, op)), .. Jute(request)];

    private static byte[] Jute<T>(T record) where T : IJuteRecord
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        record.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }
}
