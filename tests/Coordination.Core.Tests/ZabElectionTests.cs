using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>
/// Fast leader election driven by a deterministic simulated network: messages are delivered one at a time in a
/// seeded random order (so every interleaving the seed produces is exercised), time advances only through ticks.
/// </summary>
public sealed class ZabElectionTests
{
    private sealed class Network
    {
        private readonly Random _random;
        private readonly List<(long To, Notification Message)> _inFlight = new();
        public readonly Dictionary<long, FastLeaderElection> Peers = new();
        public readonly Dictionary<long, ElectionDecided> Decisions = new();
        public readonly HashSet<long> Down = new();
        public long Now;

        public Network(int seed, IEnumerable<long> voters, IEnumerable<long>? observers = null)
        {
            _random = new Random(seed);
            var quorum = new Quorum(voters);
            foreach (var id in quorum.Voters.Concat(observers ?? [])) Peers[id] = new FastLeaderElection(id, quorum);
        }

        public void Start(long id, long lastZxid, long epoch) => Handle(id, Peers[id].Start(lastZxid, epoch, Now));

        private void Handle(long from, IReadOnlyList<ElectionOutput> outputs)
        {
            foreach (var output in outputs)
            {
                switch (output)
                {
                    case BroadcastNotification b:
                        foreach (var to in Peers.Keys) if (to != from) _inFlight.Add((to, b.Notification));
                        break;
                    case SendNotification s:
                        _inFlight.Add((s.To, s.Notification));
                        break;
                    case ElectionDecided d:
                        Decisions[from] = d;
                        break;
                }
            }
        }

        /// <summary>
        /// Delivers messages in random order, ticking every 50 simulated ms, for <paramref name="forMs"/> of simulated
        /// time; messages to or from a down peer are lost.
        /// </summary>
        public void Run(long forMs = 5_000)
        {
            var until = Now + forMs;
            var nextTick = Now + 50;
            while (Now < until)
            {
                if (_inFlight.Count == 0 || Now >= nextTick)
                {
                    Now = Math.Max(Now, nextTick);
                    nextTick = Now + 50;
                    foreach (var (id, peer) in Peers) if (!Down.Contains(id)) Handle(id, peer.Tick(Now));
                    continue;
                }
                var index = _random.Next(_inFlight.Count);
                var (to, message) = _inFlight[index];
                _inFlight.RemoveAt(index);
                if (Down.Contains(to) || Down.Contains(message.From)) continue;
                Handle(to, Peers[to].Receive(message, Now));
                if (_random.Next(10) == 0) Now += 10;
            }
        }
    }

    [Fact]
    public void Fresh_ensemble_elects_the_highest_id_and_everyone_agrees()
    {
        var net = new Network(1, [1, 2, 3]);
        foreach (var id in new long[] { 1, 2, 3 }) net.Start(id, 0, 0);
        net.Run();
        Assert.Equal(3, net.Decisions.Count);
        Assert.All(net.Decisions.Values, d => Assert.Equal(3, d.Vote.Leader));
        Assert.Equal(PeerState.Leading, net.Decisions[3].State);
        Assert.Equal(PeerState.Following, net.Decisions[1].State);
    }

    [Fact]
    public void A_stale_server_with_a_higher_id_does_not_win()
    {
        var net = new Network(2, [1, 2, 3]);
        net.Start(1, Zxids.Make(1, 10), 1);
        net.Start(2, Zxids.Make(1, 10), 1);
        net.Start(3, Zxids.Make(1, 5), 1);
        net.Run();
        Assert.All(net.Decisions.Values, d => Assert.Equal(2, d.Vote.Leader));
    }

    [Fact]
    public void Tied_zxids_break_by_epoch_then_id()
    {
        var net = new Network(3, [1, 2, 3, 4, 5]);
        net.Start(1, Zxids.Make(2, 7), 2);
        net.Start(2, Zxids.Make(2, 7), 3);   // same zxid, newer epoch: wins
        net.Start(3, Zxids.Make(2, 7), 2);
        net.Start(4, Zxids.Make(2, 7), 2);
        net.Start(5, Zxids.Make(2, 7), 2);
        net.Run();
        Assert.All(net.Decisions.Values, d => Assert.Equal(2, d.Vote.Leader));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void From_every_starting_state_all_voters_agree_on_the_most_up_to_date_server(int size)
    {
        for (var seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var ids = Enumerable.Range(1, size).Select(i => (long)i).ToArray();
            var net = new Network(seed, ids);
            var votes = ids.ToDictionary(id => id, id => new Vote(id, Zxids.Make(random.Next(1, 3), random.Next(0, 4)), random.Next(1, 3)));
            foreach (var id in ids.OrderBy(_ => random.Next())) net.Start(id, votes[id].Zxid, votes[id].Epoch);
            net.Run();

            var best = votes.Values.Aggregate((a, b) => a.IsBetterThan(b) ? a : b);
            Assert.Equal(size, net.Decisions.Count);
            Assert.All(net.Decisions.Values, d => Assert.Equal(best.Leader, d.Vote.Leader));
            Assert.Single(net.Decisions.Values, d => d.State == PeerState.Leading);
        }
    }

    [Fact]
    public void A_server_that_starts_late_follows_the_established_leader_even_with_a_higher_id()
    {
        var net = new Network(4, [1, 2, 3]);
        net.Down.Add(3);
        net.Start(1, Zxids.Make(1, 3), 1);
        net.Start(2, Zxids.Make(1, 3), 1);
        net.Run();
        Assert.Equal(2, net.Decisions[1].Vote.Leader);

        net.Down.Remove(3);
        net.Start(3, Zxids.Make(1, 3), 1);   // would win a fresh election by id
        net.Run();
        Assert.Equal(PeerState.Following, net.Decisions[3].State);
        Assert.Equal(2, net.Decisions[3].Vote.Leader);
    }

    [Fact]
    public void A_minority_never_elects_anyone()
    {
        var net = new Network(5, [1, 2, 3]);
        net.Down.Add(2);
        net.Down.Add(3);
        net.Start(1, 0, 0);
        net.Run();
        Assert.Empty(net.Decisions);
        Assert.True(net.Peers[1].IsElecting);
    }

    [Fact]
    public void Observers_never_vote_but_learn_the_leader()
    {
        var net = new Network(6, [1, 2, 3], observers: [9]);
        net.Start(9, Zxids.Make(5, 5), 5);   // the most recent history of all, but it does not vote
        foreach (var id in new long[] { 1, 2, 3 }) net.Start(id, Zxids.Make(1, 1), 1);
        net.Run();
        Assert.Equal(3, net.Decisions[1].Vote.Leader);
        Assert.Equal(PeerState.Observing, net.Decisions[9].State);
        Assert.Equal(3, net.Decisions[9].Vote.Leader);
    }
}
