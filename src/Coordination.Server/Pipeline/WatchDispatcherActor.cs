using Akka.Actor;

namespace Coordination.Server.Pipeline;

/// <summary>
/// Fans watch notifications for one subtree shard out to the watching sessions. The replica has already decided
/// who is notified and at which position in each session's output, so this child only frames the event once and
/// delivers it; the heavy fan-out of a hot znode (thousands of watchers) runs here instead of in the replica.
/// </summary>
public sealed class WatchDispatcherActor : ReceiveActor
{
    public WatchDispatcherActor()
    {
        Receive<Fanout>(fanout =>
        {
            var frame = Frames.Notification(fanout.Event, fanout.Zxid);
            foreach (var (session, seq) in fanout.Recipients)
                session.Tell(new Notification(seq, fanout.Zxid, frame, fanout.Acl));
        });
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new WatchDispatcherActor());

    /// <summary>Fan-out is sharded by top-level subtree, so one subtree's events always use one child.</summary>
    public static int ShardOf(string path, int shards)
    {
        if (shards == 1 || path.Length <= 1) return 0;
        var end = path.IndexOf('/', 1);
        var top = end < 0 ? path.AsSpan(1) : path.AsSpan(1, end - 1);
        return (int)((uint)string.GetHashCode(top) % (uint)shards);
    }
}
