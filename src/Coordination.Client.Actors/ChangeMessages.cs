namespace Coordination.Client.Actors;

// ---------------------------------------------------------------- the change feed as messages

/// <summary>
/// Follows the change feed (<see cref="CoordinationClient.WatchChangesAsync"/>): every committed change under
/// <paramref name="Prefix"/> after <paramref name="AfterZxid"/>, then live, each once and in zxid order, resumed across
/// reconnects and failover. The proxy replies <see cref="ChangesSubscribed"/> to the sender; the changes go to
/// <paramref name="Subscriber"/> (or the sender) as <see cref="FeedChange"/>, at most as many as it asked for: it
/// starts with <paramref name="Demand"/> and asks for more with <see cref="RequestChanges"/> (the client buffers
/// a bounded amount meanwhile, and past it stops and resumes from where the subscriber is). The subscription ends
/// with <see cref="ChangesCompacted"/> or <see cref="ChangesEnded"/>, or when the subscriber stops
/// (<see cref="StopChanges"/>) or terminates.
/// </summary>
public sealed record SubscribeChanges(string Prefix, long AfterZxid = 0, int Demand = 256, Akka.Actor.IActorRef? Subscriber = null);

/// <summary>The proxy accepted a <see cref="SubscribeChanges"/>: its changes carry this id.</summary>
public sealed record ChangesSubscribed(long SubscriptionId, string Prefix);

/// <summary>One committed change of subscription <paramref name="SubscriptionId"/>.</summary>
public sealed record FeedChange(long SubscriptionId, Change Change);

/// <summary>Subscriber → proxy: send up to <paramref name="Count"/> more changes.</summary>
public sealed record RequestChanges(long SubscriptionId, int Count);

/// <summary>The server no longer retains the changes asked for; every change after <paramref name="RetainedAfter"/>
/// still is. The subscription has ended (subscribe again from <paramref name="RetainedAfter"/> after re-reading the
/// tree, or from the last zxid seen on another member).</summary>
public sealed record ChangesCompacted(long SubscriptionId, string Prefix, long RetainedAfter);

/// <summary>The subscription ended otherwise: the session is gone or the server refused it (<paramref name="Cause"/>).</summary>
public sealed record ChangesEnded(long SubscriptionId, Exception Cause);

/// <summary>Ends a subscription; the proxy replies <see cref="ChangesStopped"/> and sends no more of its changes.</summary>
public sealed record StopChanges(long SubscriptionId);
public sealed record ChangesStopped(long SubscriptionId);
