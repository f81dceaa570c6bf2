using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Remote;
using Akka.Remote.Transport;
using Coordination.Client.Tests;
using Xunit;

namespace Coordination.Akka.Tests;

// The "never alive twice" detector of the cluster tests (HostingClusterTests, EmbeddedShardingLeaseTests): tracked
// actors record every incarnation in an IncarnationLog, and a partition is made with the throttler's blackhole.

public sealed record Ping(string EntityId);
public sealed record Pong(string EntityId, string Node);

public sealed class PingExtractor() : HashCodeMessageExtractor(10)
{
    public override string EntityId(object message) => ((Ping)message).EntityId;
}

/// <summary>A singleton or an entity: each incarnation records its start and stop, and answers pings with its node.</summary>
public sealed class Tracked : ReceiveActor
{
    private readonly IncarnationLog _log;
    private readonly string _key;
    private readonly string _node;
    private int _incarnation;

    public Tracked(IncarnationLog log, string key, string node)
    {
        (_log, _key, _node) = (log, key, node);
        Receive<Ping>(p => Sender.Tell(new Pong(p.EntityId, _node)));
    }

    protected override void PreStart() => _incarnation = _log.Started(_key, _node);
    protected override void PostStop() => _log.Stopped(_incarnation);
}

/// <summary>
/// Start and stop times (one monotonic clock: all nodes run in this process) of every incarnation of keyed actors;
/// <see cref="Overlaps"/> lists the pairs of incarnations of one key that ran at the same time.
/// </summary>
public sealed class IncarnationLog
{
    private readonly List<(string Key, string Node, long Start, long? Stop)> _incarnations = [];

    public int Started(string key, string node)
    {
        lock (_incarnations) { _incarnations.Add((key, node, Stopwatch.GetTimestamp(), null)); return _incarnations.Count - 1; }
    }

    public void Stopped(int incarnation)
    {
        lock (_incarnations) _incarnations[incarnation] = _incarnations[incarnation] with { Stop = Stopwatch.GetTimestamp() };
    }

    public int Incarnations { get { lock (_incarnations) return _incarnations.Count; } }

    public IReadOnlyList<(string Key, string Node)> Running(string? key = null)
    {
        lock (_incarnations) return _incarnations.Where(i => i.Stop is null && (key is null || i.Key == key)).Select(i => (i.Key, i.Node)).ToList();
    }

    public IReadOnlyList<string> Overlaps()
    {
        lock (_incarnations)
            return _incarnations.SelectMany((a, i) => _incarnations.Skip(i + 1)
                    .Where(b => b.Key == a.Key && a.Start < (b.Stop ?? long.MaxValue) && b.Start < (a.Stop ?? long.MaxValue))
                    .Select(b => $"{a.Key} ran on {a.Node} and on {b.Node} at once"))
                .ToList();
    }

    public IEnumerable<string> Describe()
    {
        lock (_incarnations)
        {
            var t0 = _incarnations.Count > 0 ? _incarnations.Min(i => i.Start) : 0;
            string At(long t) => $"{Stopwatch.GetElapsedTime(t0, t).TotalSeconds:F2}s";
            return _incarnations.Select(i => $"{i.Key} on {i.Node}: {At(i.Start)} .. {(i.Stop is { } s ? At(s) : "running")}").ToList();
        }
    }
}

public static class ClusterPartitions
{
    /// <summary>Blackholes every link of the application's transport (the throttler adapter, <c>trttl</c>) between
    /// <paramref name="alone"/> and <paramref name="others"/>, in both directions, from both ends.</summary>
    public static async Task BlackholeAsync(ActorSystem alone, IEnumerable<ActorSystem> others)
    {
        static RemoteTransport Transport(ActorSystem s) => ((IRemoteActorRefProvider)((ExtendedActorSystem)s).Provider).Transport;
        static Address AddressOf(ActorSystem s) => ((ExtendedActorSystem)s).Provider.DefaultAddress;
        foreach (var other in others)
        {
            Assert.True(await Transport(alone).ManagementCommand(new SetThrottle(AddressOf(other), ThrottleTransportAdapter.Direction.Both, Blackhole.Instance)).Within());
            Assert.True(await Transport(other).ManagementCommand(new SetThrottle(AddressOf(alone), ThrottleTransportAdapter.Direction.Both, Blackhole.Instance)).Within());
        }
    }
}
