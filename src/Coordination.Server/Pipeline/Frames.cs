using System.Buffers;
using Coordination.Protocol;

namespace Coordination.Server.Pipeline;

/// <summary>Encodes server-to-client frames: 4-byte length, reply header, body.</summary>
public static class Frames
{
    public static byte[] Encode(in ReplyHeader header, ZkResponse? body)
    {
        var buffer = new ArrayBufferWriter<byte>(body is null or EmptyResponse ? 20 : 128);
        Framing.WriteFrame(buffer, (header, body), static (ref JuteWriter w, (ReplyHeader Header, ZkResponse? Body) s) =>
        {
            s.Header.Write(ref w);
            if (s.Header.Err == ErrorCode.Ok) s.Body?.Write(ref w);
        });
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Encode<T>(T record) where T : IJuteRecord
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Framing.WriteFrame(buffer, record, static (ref JuteWriter w, T r) => r.Write(ref w));
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Notification(WatcherEvent e, long zxid) => Encode(new ReplyHeader(Xids.Notification, zxid, ErrorCode.Ok), e);
}
