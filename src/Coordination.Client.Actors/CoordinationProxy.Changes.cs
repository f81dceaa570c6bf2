using Akka.Actor;

namespace Coordination.Client.Actors;

/// <summary>
/// The change feed as messages (<see cref="SubscribeChanges"/>). Each subscription is a task that enumerates the
/// client's <see cref="CoordinationClient.WatchChangesAsync"/> (which resumes across reconnects exactly once) and
/// tells each change to the subscriber only against its demand: a subscriber that does not ask for more holds the
/// task, the client's bounded buffer fills, and the client stops the server-side subscription and resumes later from
/// the last change delivered. Nothing is unbounded, and nothing blocks the proxy.
/// </summary>
public sealed partial class CoordinationProxy
{
    private readonly Dictionary<long, FeedPump> _feeds = new();
    private long _lastFeedId;

    private sealed class FeedPump(long id, IActorRef subscriber, int demand)
    {
        public readonly long Id = id;
        public readonly IActorRef Subscriber = subscriber;
        public readonly CancellationTokenSource Stop = new();
        public readonly SemaphoreSlim Demand = new(Math.Max(0, demand));
        private bool _ended;

        /// <summary>Tells the subscriber unless the subscription has ended: once <see cref="End"/> returns, nothing
        /// more of it reaches the subscriber (so nothing follows ChangesStopped).</summary>
        public void Send(object message)
        {
            lock (Stop) if (!_ended) Subscriber.Tell(message);
        }

        public void End()
        {
            lock (Stop) _ended = true;
            Stop.Cancel();
        }
    }

    private sealed record FeedEnded(long Id);

    private void ReceiveChanges()
    {
        Receive<SubscribeChanges>(Subscribe);
        Receive<RequestChanges>(r =>
        {
            if (r.Count > 0 && _feeds.TryGetValue(r.SubscriptionId, out var pump)) pump.Demand.Release(r.Count);
        });
        Receive<StopChanges>(s =>
        {
            EndFeed(s.SubscriptionId);
            Sender.Tell(new ChangesStopped(s.SubscriptionId));
        });
        Receive<FeedEnded>(e => EndFeed(e.Id));
    }

    private void Subscribe(SubscribeChanges s)
    {
        var pump = new FeedPump(++_lastFeedId, s.Subscriber ?? Sender, s.Demand);
        _feeds[pump.Id] = pump;
        Context.Watch(pump.Subscriber);
        Sender.Tell(new ChangesSubscribed(pump.Id, s.Prefix));
        var client = _client;
        var self = Self;
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var change in client.WatchChangesAsync(s.Prefix, s.AfterZxid, ct: pump.Stop.Token).ConfigureAwait(false))
                {
                    await pump.Demand.WaitAsync(pump.Stop.Token).ConfigureAwait(false);
                    pump.Send(new FeedChange(pump.Id, change));
                }
            }
            catch (OperationCanceledException) when (pump.Stop.IsCancellationRequested) { }
            catch (CompactedException e) { pump.Send(new ChangesCompacted(pump.Id, s.Prefix, e.RetainedAfter)); }
            catch (Exception e) { pump.Send(new ChangesEnded(pump.Id, e)); }
            self.Tell(new FeedEnded(pump.Id));
        });
    }

    /// <summary>Stops a subscription's task (it sends nothing more) and forgets it.</summary>
    private void EndFeed(long id)
    {
        if (!_feeds.Remove(id, out var pump)) return;
        pump.End();
        UnwatchIfUnused(pump.Subscriber);
    }

    private void EndFeedsOf(IActorRef subscriber)
    {
        foreach (var pump in _feeds.Values.Where(p => p.Subscriber.Equals(subscriber)).ToList()) EndFeed(pump.Id);
    }

    /// <summary>The proxy stops (or restarts with a new client): its subscribers learn that their feeds ended.</summary>
    private void EndAllFeeds()
    {
        foreach (var pump in _feeds.Values)
        {
            pump.End();
            pump.Subscriber.Tell(new ChangesEnded(pump.Id, new ConnectionLossException(null, "the coordination proxy stopped")));
        }
        _feeds.Clear();
    }
}
