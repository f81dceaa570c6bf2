using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Akka.Actor;
using Coordination.Protocol;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Network;

/// <summary>A decoded request frame from a bound connection, sent straight to the session actor.</summary>
public sealed record Incoming(ClientConnection Connection, int Xid, OpCode Op, ZkRequest Body, long ReceivedTicks);


/// <summary>
/// Socket I/O of one client connection: a read loop that frames and decodes requests, and a write loop that drains
/// an outbox and flushes once per drained batch. At most <c>max-inflight-per-connection</c> requests are in flight:
/// the read loop stops reading while they are, so a client that never reads cannot grow the server's memory.
/// </summary>
public sealed class ClientConnection
{
    private static long _nextId;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    /// <summary>
    /// An outbox entry: a ready frame, or a reply (header and body) that the write loop encodes straight into its
    /// reusable buffer, so a reply costs no per-response byte arrays.
    /// </summary>
    private readonly record struct Outgoing(byte[]? Frame, ReplyHeader Header, ZkResponse? Body, bool IsResponse);

    private readonly Channel<Outgoing> _outbox =
        Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    /// <summary>The write loop's encode buffer: replies are encoded here and copied into the pipe in one write per batch.</summary>
    private ArrayBufferWriter<byte> _encodeBuffer = new(16 * 1024);
    private readonly SemaphoreSlim _inflight;
    private readonly int _maxFrame;
    private readonly CancellationTokenSource _cts = new();
    private TaskCompletionSource<IActorRef?> _binding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile IActorRef? _session;
    private int _closed;

    public long Id { get; } = Interlocked.Increment(ref _nextId);
    public IPEndPoint Remote { get; }
    public DateTime EstablishedUtc { get; } = DateTime.UtcNow;
    public long SessionId { get; set; }
    /// <summary>The session actor this connection was offered to (set during the handshake).</summary>
    public IActorRef? Owner { get; set; }
    public int SessionTimeoutMs { get; set; }
    public long PacketsReceived;
    public long PacketsSent;
    public long LastZxid;
    /// <summary>For cons: the last op's ZooKeeper abbreviation, xid, response time and latency.</summary>
    public string LastOp = "NA";
    public int LastCxid;
    public long LastResponseMs;
    public long LastLatencyMs;
    public string RemoteAddress => Remote.Address.IsIPv4MappedToIPv6 ? Remote.Address.MapToIPv4().ToString() : Remote.Address.ToString();
    public int Outstanding => _maxInflight - _inflight.CurrentCount;
    private readonly int _maxInflight;

    public ClientConnection(Socket socket, int maxFrame, int maxInflight)
    {
        _socket = socket;
        _socket.NoDelay = true;
        Remote = (IPEndPoint)socket.RemoteEndPoint!;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096));
        _writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024));
        _maxFrame = maxFrame;
        _maxInflight = maxInflight;
        _inflight = new SemaphoreSlim(maxInflight, maxInflight);
    }

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Queues a frame. Responses release an in-flight slot once written; events do not hold one.</summary>
    public void Send(byte[] frame, bool isResponse)
    {
        if (!_outbox.Writer.TryWrite(new Outgoing(frame, default, null, isResponse)) && isResponse) ReleaseSlot();
    }

    /// <summary>
    /// Queues a reply to be encoded by the write loop (length, header, and the body when the header says Ok), exactly
    /// as <see cref="Frames.Encode(in ReplyHeader, ZkResponse?)"/> would. The body must not change afterwards.
    /// </summary>
    public void Send(in ReplyHeader header, ZkResponse? body, bool isResponse)
    {
        if (!_outbox.Writer.TryWrite(new Outgoing(null, header, body, isResponse)) && isResponse) ReleaseSlot();
    }

    /// <summary>Lets the read loop continue past the handshake, delivering requests to <paramref name="session"/>.</summary>
    public void Bind(IActorRef session)
    {
        _session = session;
        _binding.TrySetResult(session);
    }

    /// <summary>Sends what is queued, then closes the socket.</summary>
    public void CloseAfterFlush()
    {
        _binding.TrySetResult(null);
        _outbox.Writer.TryComplete();
    }

    /// <summary>Closes at once, dropping anything unsent.</summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _binding.TrySetResult(null);
        _outbox.Writer.TryComplete();
        _cts.Cancel();
        try { _socket.Shutdown(SocketShutdown.Both); } catch { /* already gone */ }
        _socket.Dispose();
    }

    private void ReleaseSlots(int count)
    {
        if (count <= 0) return;
        try { _inflight.Release(count); }
        catch (SemaphoreFullException) { for (var i = 0; i < count; i++) ReleaseSlot(); }
    }

    private void ReleaseSlot()
    {
        try { _inflight.Release(); } catch (SemaphoreFullException) { /* pings and auth replies that were not counted */ }
    }

    public async Task WriteLoopAsync()
    {
        try
        {
            var reader = _outbox.Reader;
            while (await reader.WaitToReadAsync(_cts.Token).ConfigureAwait(false))
            {
                var released = 0;
                var sent = 0;
                var encode = _encodeBuffer;
                while (reader.TryRead(out var item))
                {
                    if (item.Frame is { } frame)
                    {
                        if (encode.WrittenCount > 0) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                        _writer.Write(frame);
                    }
                    else
                    {
                        Frames.Write(encode, item.Header, item.Body);
                        if (encode.WrittenCount >= 32 * 1024) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                    }
                    sent++;
                    if (item.IsResponse) released++;
                }
                if (encode.WrittenCount > 0) { _writer.Write(encode.WrittenSpan); encode.ResetWrittenCount(); }
                if (encode.Capacity > Frames.KeepBufferBytes) _encodeBuffer = new ArrayBufferWriter<byte>(16 * 1024);
                Interlocked.Add(ref PacketsSent, sent);
                Interlocked.Add(ref ServerStats.PacketsSent, sent);
                var flush = await _writer.FlushAsync(_cts.Token).ConfigureAwait(false);
                ReleaseSlots(released);
                if (flush.IsCompleted) break;
            }
        }
        catch (Exception) when (IsClosed || _cts.IsCancellationRequested) { }
        catch (IOException) { }
        catch (SocketException) { }
        finally
        {
            Abort();
        }
    }

    public enum ReadOutcome { ClientClosed, FourLetterWord, Refused, ProtocolError }

    /// <summary>
    /// Reads the handshake (or a four-letter word), then requests until the connection ends.
    /// <paramref name="onHandshake"/> receives the ConnectRequest; the loop then waits for <see cref="Bind"/>.
    /// </summary>
    public async Task<(ReadOutcome Outcome, string? Detail)> ReadLoopAsync(Action<ConnectRequest> onHandshake)
    {
        var handshakeDone = false;
        var firstRead = true;
        var first = new byte[4];
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_cts.Token).ConfigureAwait(false);
                var buffer = result.Buffer;

                if (firstRead && buffer.Length >= 4)
                {
                    firstRead = false;
                    buffer.Slice(0, 4).CopyTo(first);
                    if (FourLetterWords.Detect(first) is { } word)
                    {
                        _reader.AdvanceTo(buffer.GetPosition(4));
                        return (ReadOutcome.FourLetterWord, word);
                    }
                }

                var waitForBinding = false;
                while (true)
                {
                    var status = Framing.TryReadFrame(ref buffer, _maxFrame, out var frame, out var length);
                    if (status == FrameStatus.NeedMoreData) break;
                    if (status != FrameStatus.Frame)
                        return (ReadOutcome.ProtocolError, $"frame length {length} outside [0, {_maxFrame}]");

                    Interlocked.Increment(ref PacketsReceived);
                    Interlocked.Increment(ref ServerStats.PacketsReceived);
                    if (!handshakeDone)
                    {
                        ConnectRequest connect;
                        try { connect = ParseConnect(frame); }
                        catch (JuteException e) { return (ReadOutcome.ProtocolError, "bad connect request: " + e.Message); }
                        handshakeDone = true;
                        onHandshake(connect);
                        waitForBinding = true;
                        break;
                    }

                    if (!TryParseRequest(frame, out var xid, out var op, out var body, out var error))
                        return (ReadOutcome.ProtocolError, error);
                    if (!_inflight.Wait(0)) await _inflight.WaitAsync(_cts.Token).ConfigureAwait(false);
                    _session!.Tell(new Incoming(this, xid, op, body, System.Diagnostics.Stopwatch.GetTimestamp()));
                }

                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (waitForBinding)
                {
                    if (await _binding.Task.ConfigureAwait(false) is null) return (ReadOutcome.Refused, null);
                    continue;
                }
                if (result.IsCompleted || result.IsCanceled) return (ReadOutcome.ClientClosed, null);
            }
        }
        catch (OperationCanceledException) { return (ReadOutcome.ClientClosed, null); }
        catch (IOException) { return (ReadOutcome.ClientClosed, null); }
        catch (SocketException) { return (ReadOutcome.ClientClosed, null); }
        catch (ObjectDisposedException) { return (ReadOutcome.ClientClosed, null); }
    }

    internal static ConnectRequest ParseConnect(ReadOnlySequence<byte> frame)
    {
        var bytes = frame.IsSingleSegment ? frame.FirstSpan : frame.ToArray();
        var r = new JuteReader(bytes);
        return ConnectRequest.Read(ref r);
    }

    /// <summary>
    /// Decodes header and body. A frame too short for a header is a protocol error (the connection closes, as in
    /// ZooKeeper); a bad body becomes <see cref="MalformedRequest"/>, answered with MarshallingError.
    /// </summary>
    internal static bool TryParseRequest(ReadOnlySequence<byte> frame, out int xid, out OpCode op, out ZkRequest body, out string? error)
    {
        var bytes = frame.IsSingleSegment ? frame.FirstSpan : frame.ToArray();
        xid = 0; op = 0; body = EmptyRequest.Instance; error = null;
        if (bytes.Length < 8) { error = $"request frame of {bytes.Length} bytes has no header"; return false; }
        var r = new JuteReader(bytes);
        var header = RequestHeader.Read(ref r);
        xid = header.Xid;
        op = header.Type;
        try { body = Requests.Read(op, ref r); }
        catch (UnknownOpException e) when (op is OpCode.Multi or OpCode.MultiRead) { body = new MalformedRequest(e.Message); }
        catch (UnknownOpException) { body = UnknownOpRequest.Instance; }
        catch (JuteException e) { body = new MalformedRequest(e.Message); }
        return true;
    }
}

