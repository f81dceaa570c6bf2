using System.Buffers;
using System.Buffers.Binary;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

/// <summary>Encodes server-to-client frames: 4-byte length, reply header, body.</summary>
public static class Frames
{
    /// <summary>A per-thread scratch buffer, so encoding to an array allocates only the array it returns.</summary>
    [ThreadStatic] private static ArrayBufferWriter<byte>? _scratch;

    private static ArrayBufferWriter<byte> Scratch()
    {
        var scratch = _scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        return scratch;
    }

    /// <summary>
    /// Writes one reply frame (length, header, and the body when the header says Ok, or Compacted: the change feed's
    /// refusal says from where changes are retained) into <paramref name="output"/>.
    /// The hot path: the connection's write loop encodes replies straight into its reusable buffer with this.
    /// </summary>
    public static void Write(ArrayBufferWriter<byte> output, in ReplyHeader header, ZkResponse? body)
    {
        var start = output.WrittenCount;
        output.GetSpan(4);
        output.Advance(4);
        var w = new JuteWriter(output);
        header.Write(ref w);
        if (header.Err is ErrorCode.Ok or ErrorCode.Compacted) body?.Write(ref w);
        PatchLength(output, start);
    }

    /// <summary>Writes one frame holding <paramref name="record"/> into <paramref name="output"/>.</summary>
    public static void Write<T>(ArrayBufferWriter<byte> output, T record) where T : IJuteRecord
    {
        var start = output.WrittenCount;
        output.GetSpan(4);
        output.Advance(4);
        var w = new JuteWriter(output);
        record.Write(ref w);
        PatchLength(output, start);
    }

    /// <summary>Largest scratch buffer kept per thread; a bigger one (a 1 MiB znode) is dropped after use.</summary>
    public const int KeepBufferBytes = 64 * 1024;

    private static byte[] Take(ArrayBufferWriter<byte> scratch)
    {
        var frame = scratch.WrittenSpan.ToArray();
        if (scratch.Capacity > KeepBufferBytes) _scratch = null;
        return frame;
    }

    private static void PatchLength(ArrayBufferWriter<byte> output, int start)
    {
        var written = System.Runtime.InteropServices.MemoryMarshal.AsMemory(output.WrittenMemory);
        BinaryPrimitives.WriteInt32BigEndian(written.Span.Slice(start, 4), output.WrittenCount - start - 4);
    }

    public static byte[] Encode(in ReplyHeader header, ZkResponse? body)
    {
        var scratch = Scratch();
        Write(scratch, header, body);
        return Take(scratch);
    }

    public static byte[] Encode<T>(T record) where T : IJuteRecord
    {
        var scratch = Scratch();
        Write(scratch, record);
        return Take(scratch);
    }

    public static byte[] Notification(WatcherEvent e, long zxid) => Encode(new ReplyHeader(Xids.Notification, zxid, ErrorCode.Ok), e);
}
