using Coordination.Protocol;
using Coordination.Server.Feed;
using Coordination.Server.Pipeline;

namespace Coordination.Server.PipelineTests;

/// <summary>What the change feed must send: a change's frame encoded for one subscriber, as the feed did before it kept frames.</summary>
internal static class ChangeFrames
{
    public static byte[] Encoded(long zxid, Change c, int subscription) =>
        Frames.Encode(new ReplyHeader(Xids.Change, zxid, ErrorCode.Ok), new ChangeEvent(subscription, c.Type, c.Path, c.Data, c.Stat));
}
