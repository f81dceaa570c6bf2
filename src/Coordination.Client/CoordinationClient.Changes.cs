using System.Runtime.CompilerServices;
using System.Runtime.Serialization;
using System.Threading.Channels;
using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>One committed change from the change feed: its zxid, what happened to which znode, and the znode's data
/// and Stat after the txn (none for <see cref="EventType.NodeDeleted"/>). A multi gives several with one zxid.</summary>
public sealed record Change(long Zxid, EventType Type, string Path, byte[]? Data, Stat Stat);

/// <summary>The changes asked for are no longer retained by the server; every change after
/// <see cref="RetainedAfter"/> still is (a cache must re-read the tree, or resume from there if that is enough).</summary>
public sealed class CompactedException(string? path, long retainedAfter)
    : KeeperException(ErrorCode.Compacted, path, $"changes under {path} are retained only after zxid 0x{retainedAfter:x}")
{
    public long RetainedAfter { get; } = retainedAfter;

    private CompactedException(SerializationInfo info, StreamingContext context)
        : this(PathOf(info), info.GetInt64(nameof(RetainedAfter))) { }

#pragma warning disable SYSLIB0051, CS0672 // Akka.Remote's exception support still uses ISerializable
    public override void GetObjectData(SerializationInfo info, StreamingContext context)
    {
        base.GetObjectData(info, context);
        info.AddValue(nameof(RetainedAfter), RetainedAfter);
    }
#pragma warning restore SYSLIB0051, CS0672
}

public sealed partial class CoordinationClient
{
    /// <summary>Frames of one live subscription, from the read loop to its enumerator: a <see cref="Change"/>, or
    /// the end (<see cref="CompactedException"/>, or completion when the connection is lost or the buffer overflowed).</summary>
    internal sealed class FeedSink(int capacity)
    {
        public readonly Channel<Change> Changes = Channel.CreateBounded<Change>(new BoundedChannelOptions(capacity) { SingleWriter = true, SingleReader = true });
    }

    /// <summary>Live subscriptions by the xid of their WatchChanges request (the read loop's, under <see cref="_lock"/>).</summary>
    private readonly Dictionary<int, FeedSink> _feeds = new();

    /// <summary>
    /// Every committed change under <paramref name="path"/> (the znode and its descendants) with a zxid greater than
    /// <paramref name="afterZxid"/>, in zxid order, then each one as it commits, until <paramref name="ct"/> is
    /// cancelled. Exactly once across reconnects and failover to another server: after a connection loss (or when
    /// this consumer falls more than <paramref name="buffer"/> changes behind, which ends the server-side
    /// subscription rather than hold memory) it resumes from the last change it yielded.
    /// Throws <see cref="CompactedException"/> when the server no longer retains what is asked for.
    /// A Coordination.Akka extension (op WatchChanges): an Apache ZooKeeper server refuses it (Unimplemented).
    /// </summary>
    public async IAsyncEnumerable<Change> WatchChangesAsync(string path, long afterZxid, int buffer = 4096,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        var serverPath = Server(path);
        // Resume point: the last zxid whose changes were all yielded, and how many of the next zxid's were (a multi's
        // changes may be split by a disconnection).
        var complete = afterZxid;
        var partialZxid = -1L;
        var partialCount = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var sink = new FeedSink(buffer);
            var request = new WatchChangesRequest(serverPath, complete);
            int subscription;
            try
            {
                subscription = await SubmitFeedAsync(request, sink, path, ct).ConfigureAwait(false);
            }
            catch (ConnectionLossException) when (!_state.IsTerminal())
            {
                await Task.Delay(50, ct).ConfigureAwait(false);   // the session loop reconnects; ask again then
                continue;
            }
            var skip = partialCount;
            try
            {
                await foreach (var change in sink.Changes.Reader.ReadAllAsync(ct).ConfigureAwait(false))
                {
                    if (change.Zxid == partialZxid && skip > 0)
                    {
                        skip--;
                        continue;
                    }
                    if (change.Zxid != partialZxid)
                    {
                        if (partialZxid > complete) complete = partialZxid;
                        partialZxid = change.Zxid;
                        partialCount = 0;
                    }
                    partialCount++;
                    yield return change with { Path = _connect.ToClientPath(change.Path) };
                }
            }
            finally { StopFeed(subscription, sink); }
            // Ended: the connection was lost, the buffer overflowed, or the server said Compacted (thrown by the reader).
        }
    }

    /// <summary>Sends the subscription and waits for its acceptance; returns its xid (which names its changes).</summary>
    private async Task<int> SubmitFeedAsync(WatchChangesRequest request, FeedSink sink, string path, CancellationToken ct)
    {
        var completion = new TaskCompletionSource<ZkResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var packet = new Packet(OpCode.WatchChanges, request, completion, null, path) { Feed = sink };
        lock (_lock)
        {
            if (_state.IsTerminal()) throw new ConnectionLossException(path, $"the client is {_state}");
            _outgoing.Writer.TryWrite(packet);
        }
        await using var _ = ct.Register(() => completion.TrySetCanceled());
        await completion.Task.ConfigureAwait(false);
        return packet.Xid;
    }

    /// <summary>The consumer stopped (or the subscription ended): if the server still serves it, tell it to stop.</summary>
    private void StopFeed(int subscription, FeedSink sink)
    {
        lock (_lock)
        {
            if (!_feeds.TryGetValue(subscription, out var live) || !ReferenceEquals(live, sink)) return;
            _feeds.Remove(subscription);
        }
        sink.Changes.Writer.TryComplete();
        _outgoing.Writer.TryWrite(new Packet(OpCode.StopChanges, new StopChangesRequest(subscription), null, null, null));
    }

    /// <summary>The read loop's part: a WatchChanges reply registers its sink before the changes that follow it.</summary>
    private void OnFeedReply(Packet packet, ReplyHeader header, ref JuteReader reader)
    {
        if (header.Err == ErrorCode.Ok)
        {
            lock (_lock) _feeds[header.Xid] = packet.Feed!;
            return;
        }
        if (header.Err == ErrorCode.Compacted)
        {
            var position = ChangeFeedPosition.Read(ref reader);
            packet.Completion?.TrySetException(new CompactedException(packet.ClientPath, position.RetainedAfter));
        }
    }

    /// <summary>A change frame (xid <see cref="Xids.Change"/>) from the read loop.</summary>
    private void OnChangeFrame(ReplyHeader header, ref JuteReader reader)
    {
        if (header.Err != ErrorCode.Ok)
        {
            var end = ChangeFeedPosition.Read(ref reader);
            FeedSink? ended;
            lock (_lock) _feeds.Remove(end.Subscription, out ended);
            ended?.Changes.Writer.TryComplete(new CompactedException(null, end.RetainedAfter));
            return;
        }
        var change = ChangeEvent.Read(ref reader);
        FeedSink? sink;
        lock (_lock) _feeds.TryGetValue(change.Subscription, out sink);
        if (sink is null) return;   // stopped or from an earlier connection
        if (sink.Changes.Writer.TryWrite(new Change(header.Zxid, change.Type, change.NodePath, change.Data, change.Stat))) return;
        // The consumer is too far behind: end this subscription here and on the server; it resumes where it stopped.
        StopFeed(change.Subscription, sink);
    }

    /// <summary>The connection is gone, and the server ends its subscriptions with it: their enumerators resume.</summary>
    private void EndFeedsLocked()
    {
        foreach (var sink in _feeds.Values) sink.Changes.Writer.TryComplete();
        _feeds.Clear();
    }
}
