using System.Buffers;
using System.Runtime.Serialization;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.Server.Network;
using Coordination.Server.Pipeline;
using Coordination.Testing;

namespace Coordination.Fuzz;

/// <summary>A decoder's input was answered by something other than a clean error: a finding.</summary>
public sealed class FuzzFinding(string message) : Exception(message);

/// <summary>
/// One target per decoder that bytes from a socket reach. Each calls the server's own decoding code, lets through
/// only the exceptions the server catches at that entry (and turns into an error reply or a clean close), and
/// checks what a crash would not show: that decoding allocates in proportion to the input, never to a length
/// field, and that what decodes re-encodes to a fixed point. Anything else escapes, and the fuzzer records it.
/// </summary>
public static class FuzzTargets
{
    public delegate void Target(ReadOnlySpan<byte> input);

    /// <summary>Target names, as <c>fuzz/run.sh</c> and the corpus directories spell them.</summary>
    public static readonly IReadOnlyDictionary<string, Target> All = new Dictionary<string, Target>
    {
        ["client"] = ClientStream,
        ["connect"] = Connect,
        ["request"] = Request,
        ["member-frames"] = MemberFrames,
        ["zab"] = Zab,
        ["txn"] = Txn,
    };

    /// <summary>
    /// What one input may allocate: a constant for the decoders' fixed costs plus a multiple of the input (a decoded
    /// record is larger than its encoding: a one-byte path becomes a string object and a list slot).
    /// The constant covers the member frame reader's 64 KiB receive buffer and first-use costs (an exception's
    /// stack trace). A length field that makes a decoder allocate what the input does not hold exceeds it.
    /// </summary>
    public static long AllocationBound(int inputLength) => 256 * 1024 + 32L * inputLength;

    /// <summary>Runs one target on one input, with the allocation check around it.</summary>
    public static void Run(string target, ReadOnlySpan<byte> input)
    {
        var run = All[target];
        var before = GC.GetAllocatedBytesForCurrentThread();
        run(input);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated > AllocationBound(input.Length))
            throw new FuzzFinding($"{target}: decoding {input.Length} bytes allocated {allocated} bytes (bound {AllocationBound(input.Length)})");
    }

    // ------------------------------------------------------------------ client port

    /// <summary>
    /// The client port's byte stream, in the steps of <c>ClientConnection.ReadLoopAsync</c>: a four-letter word in
    /// the first four bytes ends it; otherwise frames, the first a ConnectRequest, the rest requests, until a
    /// frame is refused (the connection closes). The input arrives as two buffer segments, so that frames
    /// spanning them take the copying path the pipe can hand out.
    /// </summary>
    public static void ClientStream(ReadOnlySpan<byte> input)
    {
        if (input.Length >= 4 && FourLetterWords.Detect(input[..4]) is not null) return;
        var buffer = TwoSegments(input);
        var handshakeDone = false;
        while (Framing.TryReadFrame(ref buffer, Framing.DefaultMaxFrame, out var frame, out _) == FrameStatus.Frame)
        {
            if (!handshakeDone)
            {
                if (!TryConnect(frame)) return;
                handshakeDone = true;
                continue;
            }
            if (!ClientConnection.TryParseRequest(frame, out _, out _, out _, out _)) return;
        }
    }

    /// <summary>The payload of a connection's first frame (ConnectRequest, with or without the readOnly byte).</summary>
    public static void Connect(ReadOnlySpan<byte> input)
    {
        var frame = new ReadOnlySequence<byte>(input.ToArray());
        if (!TryConnect(frame, out var connect)) return;
        ExpectFixedPoint("connect", Jute.Serialize(connect), bytes => { var r = new JuteReader(bytes); return Jute.Serialize(ConnectRequest.Read(ref r)); });
    }

    /// <summary>The payload of a request frame after the handshake: header and body of any op code.</summary>
    public static void Request(ReadOnlySpan<byte> input)
    {
        var frame = new ReadOnlySequence<byte>(input.ToArray());
        if (!ClientConnection.TryParseRequest(frame, out _, out var op, out var body, out _)) return;
        if (body is MalformedRequest or UnknownOpRequest) return;
        ExpectFixedPoint($"request {op}", Encode(body), bytes => { var r = new JuteReader(bytes); return Encode(Requests.Read(op, ref r)); });
    }

    private static bool TryConnect(ReadOnlySequence<byte> frame) => TryConnect(frame, out _);

    /// <summary>ReadLoopAsync closes the connection on a JuteException from the handshake.</summary>
    private static bool TryConnect(ReadOnlySequence<byte> frame, out ConnectRequest connect)
    {
        try
        {
            connect = ClientConnection.ParseConnect(frame);
            return true;
        }
        catch (JuteException)
        {
            connect = null!;
            return false;
        }
    }

    // ------------------------------------------------------------------ member port

    /// <summary>
    /// The member transport's receive framing (<see cref="MemberFrameReader"/>, what <c>SocketAssociation</c>
    /// reads with). The first byte sets how the rest arrives: in chunks of 1 to 256 bytes. The payloads handed
    /// out must be exactly the frames of the whole input, whatever the chunking. A bad length prefix throws
    /// InvalidDataException, on which the association closes.
    /// </summary>
    public static void MemberFrames(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return;
        var chunk = input[0] + 1;
        var stream = input[1..];
        const int maxFrame = 4 << 20;   // EnsembleSettings' default maximum-frame-size

        var expected = new List<byte[]>();
        var whole = new ReadOnlySequence<byte>(stream.ToArray());
        while (Framing.TryReadFrame(ref whole, maxFrame, out var frame, out var length) == FrameStatus.Frame)
            if (length > 0) expected.Add(frame.ToArray());

        var reader = new MemberFrameReader(maxFrame);
        var delivered = new List<byte[]>();
        try
        {
            for (var at = 0; at < stream.Length;)
            {
                var free = reader.FreeSpace.Span;
                var n = Math.Min(Math.Min(chunk, free.Length), stream.Length - at);
                stream.Slice(at, n).CopyTo(free);
                at += n;
                reader.Received(n, payload => delivered.Add(payload.ToArray()));
            }
        }
        catch (InvalidDataException)
        {
            // The association closes; what was delivered before must still be a prefix of the real frames.
        }
        if (delivered.Count > expected.Count || delivered.Where((d, i) => !d.AsSpan().SequenceEqual(expected[i])).Any())
            throw new FuzzFinding($"member frames: {delivered.Count} payloads delivered differ from the {expected.Count} in the stream");
    }

    private static readonly ZabSerializer ZabCodec = new(null!);

    /// <summary>
    /// A Zab or ensemble message: the first byte is the manifest letter, the rest the bytes ZabSerializer decodes.
    /// Akka.Remote's endpoint reader logs and drops a message whose deserialization throws SerializationException.
    /// </summary>
    public static void Zab(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return;
        var manifest = ((char)input[0]).ToString();
        object message;
        try { message = ZabCodec.FromBinary(input[1..].ToArray(), manifest); }
        catch (SerializationException) { return; }
        if (ZabCodec.Manifest(message) != manifest) throw new FuzzFinding($"zab: manifest '{manifest}' decoded a {message.GetType().Name}");
        ExpectFixedPoint($"zab '{manifest}'", ZabCodec.ToBinary(message), bytes => ZabCodec.ToBinary(ZabCodec.FromBinary(bytes, manifest)));
    }

    /// <summary>
    /// A txn as logged and as carried by Zab proposals (Propose, Inform, SyncLearner entries): header, error flag
    /// and body, as a follower decodes a committed entry it did not propose.
    /// </summary>
    public static void Txn(ReadOnlySpan<byte> input)
    {
        (TxnHeader Header, Core.Txn Txn) txn;
        try { txn = Txns.Deserialize(input); }
        catch (JuteException) { return; }
        ExpectFixedPoint("txn", Txns.Serialize(txn.Header, txn.Txn), bytes => { var (h, t) = Txns.Deserialize(bytes); return Txns.Serialize(h, t); });
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Re-decoding what a decoded record encodes to must give the same bytes again.</summary>
    private static void ExpectFixedPoint(string what, byte[] encoded, Func<byte[], byte[]> decodeEncode)
    {
        var again = decodeEncode(encoded);
        if (!again.AsSpan().SequenceEqual(encoded))
            throw new FuzzFinding($"{what}: re-encoding is not stable ({encoded.Length} bytes, then {again.Length})");
    }

    internal static byte[] Encode(ZkRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        var w = new JuteWriter(buffer);
        request.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    private static ReadOnlySequence<byte> TwoSegments(ReadOnlySpan<byte> input)
    {
        var half = input.Length / 2;
        if (half == 0) return new ReadOnlySequence<byte>(input.ToArray());
        return Sequences.Of(input[..half].ToArray(), input[half..].ToArray());
    }
}
