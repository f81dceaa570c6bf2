using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Coordination.Protocol;
using Coordination.Server.Pipeline;

namespace Coordination.Benchmarks;

/// <summary>
/// Frame decode + request parse, as the connection's read loop does it (framing, header, body). The path intern table
/// (<see cref="PathInterner.Shared"/>) is warmed in setup, as it is on a server that has seen these paths before, so
/// reads of a held path decode to shared immutable requests (nothing allocated); writes allocate their request record
/// (an actor message) plus the data of setData and create, which the tree keeps.
/// </summary>
[MemoryDiagnoser]
public class RequestDecodeBenchmarks
{
    private const string NodePath = "/bench/data/n0000042";
    private ReadOnlySequence<byte> _getData, _exists, _getChildren, _setData, _create, _delete;

    [GlobalSetup]
    public void Setup()
    {
        var value = new byte[100];
        _getData = Frame(1, OpCode.GetData, new PathWatchRequest(NodePath, false));
        _exists = Frame(2, OpCode.Exists, new PathWatchRequest(NodePath, true));
        _getChildren = Frame(3, OpCode.GetChildren2, new PathWatchRequest("/bench/data", false));
        _setData = Frame(4, OpCode.SetData, new SetDataRequest(NodePath, value, -1));
        _create = Frame(5, OpCode.Create, new CreateRequest("/bench/w-1/s1-42", value, Acl.OpenAclUnsafe, (int)CreateMode.Persistent));
        _delete = Frame(6, OpCode.Delete, new PathVersionRequest("/bench/w-1/s1-42", -1));
        foreach (var frame in new[] { _getData, _exists, _getChildren, _setData, _create, _delete }) Decode(frame);
    }

    internal static ReadOnlySequence<byte> Frame(int xid, OpCode op, ZkRequest body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        w.WriteInt(0);
        new RequestHeader(xid, op).Write(ref w);
        body.Write(ref w);
        var bytes = buffer.WrittenSpan.ToArray();
        BinaryPrimitives.WriteInt32BigEndian(bytes, bytes.Length - 4);
        return new ReadOnlySequence<byte>(bytes);
    }

    private static ZkRequest Decode(ReadOnlySequence<byte> input)
    {
        var buffer = input;
        if (Framing.TryReadFrame(ref buffer, Framing.DefaultMaxFrame, out var frame, out _) != FrameStatus.Frame)
            throw new InvalidOperationException();
        var r = new JuteReader(frame.FirstSpan);
        var header = RequestHeader.Read(ref r);
        return Requests.Read(header.Type, ref r);
    }

    [Benchmark] public ZkRequest DecodeGetData() => Decode(_getData);
    [Benchmark] public ZkRequest DecodeExists() => Decode(_exists);
    [Benchmark] public ZkRequest DecodeGetChildren2() => Decode(_getChildren);
    [Benchmark] public ZkRequest DecodeSetData() => Decode(_setData);
    [Benchmark] public ZkRequest DecodeCreate() => Decode(_create);
    [Benchmark] public ZkRequest DecodeDelete() => Decode(_delete);
}

/// <summary>
/// Response encode: reply header + body into a frame. "Write" is the server's path since issue 6 (the connection's
/// write loop encodes into a reusable buffer); "Encode" returns a byte[] (notifications, handshakes);
/// "Baseline" is the encoder before issue 6 (a new ArrayBufferWriter and a ToArray per response).
/// </summary>
[MemoryDiagnoser]
public class ResponseEncodeBenchmarks
{
    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private GetDataResponse _getData = null!;
    private StatResponse _stat = null!;
    private WatcherEvent _event = null!;
    private static readonly Stat SampleStat = new(100, 200, 1_700_000_000_000, 1_700_000_000_500, 3, 0, 0, 0, 100, 0, 100);

    [GlobalSetup]
    public void Setup()
    {
        _getData = new GetDataResponse(new byte[100], SampleStat);
        _stat = new StatResponse(SampleStat);
        _event = new WatcherEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/bench/hot");
    }

    [Benchmark(Baseline = true)]
    public byte[] Baseline_GetData() => BaselineEncode(new ReplyHeader(7, 200, ErrorCode.Ok), _getData);

    [Benchmark] public byte[] Encode_GetData() => Frames.Encode(new ReplyHeader(7, 200, ErrorCode.Ok), _getData);

    [Benchmark]
    public int Write_GetData()
    {
        _buffer.ResetWrittenCount();
        Frames.Write(_buffer, new ReplyHeader(7, 200, ErrorCode.Ok), _getData);
        return _buffer.WrittenCount;
    }

    [Benchmark] public byte[] Baseline_Stat() => BaselineEncode(new ReplyHeader(7, 200, ErrorCode.Ok), _stat);

    [Benchmark]
    public int Write_Stat()
    {
        _buffer.ResetWrittenCount();
        Frames.Write(_buffer, new ReplyHeader(7, 200, ErrorCode.Ok), _stat);
        return _buffer.WrittenCount;
    }

    [Benchmark] public byte[] Baseline_Notification() => BaselineEncode(new ReplyHeader(Xids.Notification, 200, ErrorCode.Ok), _event);

    [Benchmark] public byte[] Encode_Notification() => Frames.Notification(_event, 200);

    /// <summary>Frames.Encode as it was before issue 6.</summary>
    private static byte[] BaselineEncode(in ReplyHeader header, ZkResponse? body)
    {
        var buffer = new ArrayBufferWriter<byte>(body is null or EmptyResponse ? 20 : 128);
        Framing.WriteFrame(buffer, (header, body), static (ref JuteWriter w, (ReplyHeader Header, ZkResponse? Body) s) =>
        {
            s.Header.Write(ref w);
            if (s.Header.Err == ErrorCode.Ok) s.Body?.Write(ref w);
        });
        return buffer.WrittenSpan.ToArray();
    }
}
