using Akka.Actor;

namespace Coordination.Server.Pipeline;

// When a burst ends. Txns prepared and writes forwarded while the replica works through the requests waiting in its
// mailbox travel together (one group commit, one proposal or forward message per burst). The burst ends when the
// mailbox is empty after a message: they go out at once, without the hop of a message to itself (at one request in
// flight, every write took that hop on each replica it crossed: a follower's write two). Otherwise a FlushLog
// queued behind what waits sends them when it is handled.
public sealed partial class ReplicaActor
{
    /// <summary>A FlushLog message is in the mailbox.</summary>
    private bool _flushQueued;

    protected override bool AroundReceive(Receive receive, object message)
    {
        var handled = base.AroundReceive(receive, message);
        if ((_unlogged.Count > 0 || _unforwarded.Count > 0) && !_flushQueued)
        {
            if (!((ActorCell)Context).Mailbox.MessageQueue.HasMessages) OnFlushLog();
            else
            {
                _flushQueued = true;
                Self.Tell(FlushLog.Instance);
            }
        }
        return handled;
    }
}
