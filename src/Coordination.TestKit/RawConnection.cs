using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Coordination.Protocol;

namespace Coordination.TestKit;

/// <summary>Builders for raw client frames (for fuzzing and protocol tests).</summary>
public static class WireFrames
{
    /// <summary>A length-prefixed frame around <paramref name="payload"/>.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> payload)
    {
        var bytes = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, payload.Length);
        payload.CopyTo(bytes.AsSpan(4));
        return bytes;
    }

    /// <summary>A frame whose length prefix is <paramref name="declaredLength"/>, followed by <paramref name="payload"/> (any size).</summary>
    public static byte[] FrameWithLength(int declaredLength, ReadOnlySpan<byte> payload)
    {
        var bytes = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, declaredLength);
        payload.CopyTo(bytes.AsSpan(4));
        return bytes;
    }

    public static byte[] Connect(long sessionId = 0, byte[]? password = null, int timeoutMs = 30_000, long lastZxid = 0, int protocolVersion = 0) =>
        Frame(Jute.Serialize(new ConnectRequest(protocolVersion, lastZxid, timeoutMs, sessionId, password ?? new byte[16], false)));

    /// <summary>The payload (unframed) of a request: header then body.</summary>
    public static byte[] RequestPayload(int xid, OpCode op, ZkRequest? body)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        var w = new JuteWriter(buffer);
        new RequestHeader(xid, op).Write(ref w);
        body?.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Request(int xid, OpCode op, ZkRequest? body) => Frame(RequestPayload(xid, op, body));

    /// <summary>A request frame with a raw (possibly garbage) body after a valid header.</summary>
    public static byte[] Request(int xid, int op, ReadOnlySpan<byte> body)
    {
        var payload = new byte[8 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(payload, xid);
        BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), op);
        body.CopyTo(payload.AsSpan(8));
        return Frame(payload);
    }
}

/// <summary>What a raw connection saw after sending something.</summary>
public sealed record RawOutcome(
    IReadOnlyList<ReplyHeader> Replies, bool ClosedByServer, bool Reset, TimeSpan Elapsed, bool SawConnectResponse,
    ConnectResponse? ConnectResponse, string? Note)
{
    public bool AnyError => Replies.Any(r => r.Err != ErrorCode.Ok);
    public override string ToString() =>
        $"replies=[{string.Join(",", Replies.Take(8).Select(r => $"{r.Xid}:{(int)r.Err}"))}{(Replies.Count > 8 ? $",... {Replies.Count} in all, last {Replies[^1].Xid}:{(int)Replies[^1].Err}" : "")}] " +
        $"closed={ClosedByServer} reset={Reset} " +
        $"connectResponse={(SawConnectResponse ? ConnectResponse?.Timeout.ToString() ?? "garbled" : "none")} after={Elapsed.TotalMilliseconds:F0}ms{(Note is null ? "" : " " + Note)}";
}

/// <summary>A raw TCP connection to a ZooKeeper server for sending arbitrary bytes and observing the reaction.</summary>
public sealed class RawConnection : IAsyncDisposable
{
    /// <summary>A reply frame larger than this is reported as a bad length (no server sends one).</summary>
    private const int MaxFrame = 64 << 20;
    private readonly Socket _socket;
    private byte[] _buffer = new byte[64 * 1024];
    private int _buffered;
    private bool _handshakeDone;

    public ConnectResponse? Session { get; private set; }

    private RawConnection(Socket socket) => _socket = socket;

    /// <param name="receiveBufferBytes">SO_RCVBUF set before connecting (0 = the kernel's default and autotuning).</param>
    public static async Task<RawConnection> ConnectAsync(string host, int port, CancellationToken ct = default, int receiveBufferBytes = 0)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferBytes > 0) socket.ReceiveBufferSize = receiveBufferBytes;
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            return new RawConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends a valid ConnectRequest and reads the ConnectResponse.</summary>
    public async Task<ConnectResponse> HandshakeAsync(int timeoutMs = 30_000, CancellationToken ct = default)
    {
        await SendAsync(WireFrames.Connect(timeoutMs: timeoutMs), ct).ConfigureAwait(false);
        var outcome = await ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true, stopAfterReplies: 0, ct: ct).ConfigureAwait(false);
        if (outcome.ConnectResponse is null) throw new WireConnectionException($"no connect response: {outcome}");
        return outcome.ConnectResponse;
    }

    /// <summary>Sends bytes; returns false when the server already closed the connection (reset or broken pipe).</summary>
    public async Task<bool> SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct = default)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                var n = await _socket.SendAsync(bytes, SocketFlags.None, ct).ConfigureAwait(false);
                bytes = bytes[n..];
            }
            return true;
        }
        catch (SocketException) { return false; }
        catch (ObjectDisposedException) { return false; }
    }

    /// <summary>Half-closes the sending side (the server sees end of stream).</summary>
    public void ShutdownSend()
    {
        try { _socket.Shutdown(SocketShutdown.Send); } catch (SocketException) { }
    }

    /// <summary>
    /// Reads for up to <paramref name="window"/>: parses frames as reply headers (the first as a ConnectResponse when
    /// <paramref name="expectConnectResponse"/>), stops early when the server closes the connection or when
    /// <paramref name="stopAfterReplies"/> replies, any error reply (if <paramref name="stopOnError"/>) or the reply to
    /// <paramref name="probeXid"/> arrived.
    /// </summary>
    public async Task<RawOutcome> ObserveAsync(TimeSpan window, bool expectConnectResponse = false, int stopAfterReplies = int.MaxValue,
        bool stopOnError = false, int? probeXid = null, CancellationToken ct = default)
    {
        var replies = new List<ReplyHeader>();
        var sw = Stopwatch.StartNew();
        var closed = false;
        var reset = false;
        var sawConnect = false;
        string? note = null;
        ConnectResponse? connectResponse = null;
        expectConnectResponse &= !_handshakeDone;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(window);
        while (true)
        {
            // Consume complete frames from the buffer.
            while (true)
            {
                var status = Framing.TryReadFrame(_buffer.AsSpan(0, _buffered), MaxFrame, out var length);
                if (status is FrameStatus.Negative or FrameStatus.TooLarge) { note = $"server sent bad frame length {length}"; closed = true; break; }
                if (status == FrameStatus.NeedMoreData)
                {
                    if (_buffer.Length < 4 + length) Array.Resize(ref _buffer, 4 + length);
                    break;
                }
                var frame = _buffer.AsSpan(4, length);
                if (expectConnectResponse && !sawConnect)
                {
                    sawConnect = true;
                    _handshakeDone = true;
                    try
                    {
                        var r = new JuteReader(frame);
                        connectResponse = ConnectResponse.Read(ref r);
                        Session = connectResponse;
                    }
                    catch (Exception e) { note = $"garbled connect response: {e.Message}"; }
                }
                else if (length >= ReplyHeader.Size)
                {
                    var r = new JuteReader(frame);
                    replies.Add(ReplyHeader.Read(ref r));
                }
                else note = $"short frame of {length} bytes";
                Buffer.BlockCopy(_buffer, 4 + length, _buffer, 0, _buffered - 4 - length);
                _buffered -= 4 + length;
            }
            if (closed) break;
            if (expectConnectResponse && sawConnect && stopAfterReplies == 0) break;
            if (replies.Count >= stopAfterReplies && stopAfterReplies > 0) break;
            if (stopOnError && replies.Any(r => r.Err != ErrorCode.Ok)) break;
            if (probeXid is { } px && replies.Any(r => r.Xid == px)) break;
            if (_buffered == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer.AsMemory(_buffered), SocketFlags.None, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { break; }
            catch (SocketException) { closed = true; reset = true; break; }
            catch (ObjectDisposedException) { closed = true; break; }
            if (n == 0) { closed = true; break; }
            _buffered += n;
        }
        return new RawOutcome(replies, closed, reset, sw.Elapsed, sawConnect, connectResponse, note);
    }

    public ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch { }
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
