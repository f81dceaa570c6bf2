using Coordination.Core.Zab;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>
/// Whole-ensemble Zab scenarios on a deterministic simulated network: each node is a <see cref="ZabPeer"/> with an
/// in-memory log whose host carries out the outputs. Links are FIFO per sender and receiver, interleaved at random. Safety is checked on every step: a committed txn is never
/// truncated, and every node applies the same txns in the same order (its applied sequence is a prefix of the others').
/// Each node's disk carries out appends, truncations and snapshot installs in order; with <c>MaxFsyncMs</c> set, each
/// one becomes durable (and is reported to the peer) only after a random delay, and a crash loses what is not durable.
/// </summary>
public sealed partial class ZabSimulationTests
{
    private sealed class Node : IZabLogView
    {
        public readonly long Id;
        public readonly List<LogEntry> Entries = new();   // the log as the peer sees it (durable or not)
        public long Retained;
        public readonly List<LogEntry> Durable = new();   // what a crash leaves
        public long DurableRetained;
        public readonly Queue<(long DueMs, Action Apply, long Report)> Disk = new();
        public readonly List<long> Applied = new();     // the state: zxids applied, in order
        /// <summary>How much of <see cref="Applied"/> the last prefix check covered (lowered when it is replaced).</summary>
        public int PrefixChecked;
        public long AcceptedEpoch, CurrentEpoch;
        public ZabPeer Peer = null!;
        public bool Up = true;
        /// <summary>Syncs this node's host holds for <see cref="ZabPeer.ConfirmLeadership"/>: their point (the node's last
        /// logged zxid when they arrived) and the newest zxid any leader had acknowledged to a client by then.</summary>
        public readonly Dictionary<long, (long SyncPoint, long AcknowledgedBefore)> HeldSyncs = new();
        public long LastRequest;
        public readonly List<long> Confirmed = new();
        /// <summary>Every role this node's peer reported, in order.</summary>
        public readonly List<PeerState> Roles = new();

        /// <summary>The committed configuration as the host keeps it on disk (ZooKeeper's dynamic config file): what a restart starts from.</summary>
        public ZabConfig Config;

        public Node(long id, ZabConfig config)
        {
            Id = id;
            Config = config;
        }
        public long LastZxid => Entries.Count > 0 ? Entries[^1].Zxid : Retained;
        public long RetainedFrom => Retained;
        public IReadOnlyList<LogEntry> EntriesAfter(long zxid) => Entries.Where(e => e.Zxid > zxid).ToList();
        public long LastApplied => Applied.Count > 0 ? Applied[^1] : 0;
    }

    private sealed class Cluster
    {
        private readonly Random _random;
        /// <summary>The configuration the ensemble was first started with (version 0).</summary>
        public readonly ZabConfig InitialConfig;
        /// <summary>Every configuration any reconfig txn made that a node activated (not the first configuration under the
        /// version its first leader gave it, whose counter is 0, which no txn has).</summary>
        public readonly HashSet<ZabConfig> EverActivated = new();
        private readonly List<(long To, ZabMessage Message)> _network = new();
        public readonly Dictionary<long, Node> Nodes = new();
        public readonly HashSet<(long, long)> Cut = new();
        /// <summary>Messages (from, to) lost in transit, as Akka.Remote loses them on a gated association.</summary>
        public Func<long, long, bool>? Lose;
        /// <summary>
        /// Links are authenticated as the host's are (<c>MemberHandshake</c>): a message passes, when sent and when
        /// delivered, only between two servers that each find the other in a configuration they know (the ones the host
        /// links with, see <see cref="LinksWith"/>). Off by default: the other scenarios let any server reach any other.
        /// </summary>
        public bool AuthenticatedLinks;
        public long Now;
        public readonly List<long> Acknowledged = new();   // zxids the leader committed (what clients were told)
        private readonly HashSet<long> _acknowledged = new();  // the same, to look up
        public readonly HashSet<long> EverApplied = new();  // every zxid any node ever applied: committed, never to be lost
        /// <summary>0: every disk write is durable at once; otherwise each becomes durable after up to this long.</summary>
        public int MaxFsyncMs;
        /// <summary>Nodes whose every disk write takes exactly this long (a slow disk), whatever <see cref="MaxFsyncMs"/> says.</summary>
        public readonly Dictionary<long, int> DiskLatencyMs = new();
        /// <summary>Nodes that do not run (a starved thread pool, a GC pause): no ticks, and what is sent to them waits.</summary>
        public readonly HashSet<long> Stalled = new();
        /// <summary>Every confirmation round's pings the leaders sent: (leader, round).</summary>
        public readonly HashSet<(long, long)> Rounds = new();

        public Cluster(int seed, long[] voters, long[]? observers = null)
        {
            _random = new Random(seed);
            InitialConfig = new ZabConfig(voters, observers ?? [], 0);
            foreach (var id in voters.Concat(observers ?? [])) AddNode(id, InitialConfig);
        }

        /// <summary>Starts a server (a new machine: empty disk) that believes <paramref name="config"/>.</summary>
        public Node AddNode(long id, ZabConfig config)
        {
            Nodes[id] = new Node(id, config);
            Restart(id);
            return Nodes[id];
        }

        public void Restart(long id)
        {
            var node = Nodes[id];
            node.Up = true;
            node.HeldSyncs.Clear();
            node.Applied.Clear();
            node.PrefixChecked = 0;
            // A restart recovers the state from the log: everything committed before is re-applied on commit.
            node.Peer = new ZabPeer(id, node.Config, node, node.AcceptedEpoch, node.CurrentEpoch, new ZabSettings(TickMs: 50));
            Execute(node, node.Peer.Start(Now));
        }

        public void Crash(long id)
        {
            var node = Nodes[id];
            node.Up = false;
            _network.RemoveAll(m => m.To == id);
            // What was not yet durable is lost.
            node.Disk.Clear();
            node.Entries.Clear();
            node.Entries.AddRange(node.Durable);
            node.Retained = node.DurableRetained;
        }

        /// <summary>Queues a disk write: durable (and reported with <paramref name="report"/>) at once, or after a random delay.</summary>
        private void Write(Node node, Action apply, long report)
        {
            var slow = DiskLatencyMs.TryGetValue(node.Id, out var latency);
            var due = MaxFsyncMs == 0 && !slow ? Now
                : Math.Max(node.Disk.Count > 0 ? node.Disk.Last().DueMs : 0, Now + (slow ? latency : _random.Next(MaxFsyncMs + 1)));
            node.Disk.Enqueue((due, apply, report));
            if (MaxFsyncMs == 0 && !slow) CompleteDiskWrites(node);
        }

        private void CompleteDiskWrites(Node node)
        {
            while (node.Up && node.Disk.TryPeek(out var write) && write.DueMs <= Now)
            {
                node.Disk.Dequeue();
                write.Apply();
                Execute(node, node.Peer.OnPersisted(write.Report, Now));
            }
        }

        public void Partition(long id)
        {
            foreach (var other in Nodes.Keys) if (other != id) { Cut.Add((id, other)); Cut.Add((other, id)); }
        }

        public void Heal() => Cut.Clear();

        public Node? Leader => Nodes.Values.FirstOrDefault(n => n.Up && n.Peer.Role == PeerState.Leading && n.Peer.ServesClients);

        /// <summary>A sync arrives at <paramref name="node"/>'s host, which holds it and asks its peer to confirm leadership.</summary>
        public long Sync(Node node)
        {
            var request = ++node.LastRequest;
            node.HeldSyncs[request] = (node.LastZxid, Acknowledged.Count > 0 ? Acknowledged.Max() : 0);
            Execute(node, node.Peer.ConfirmLeadership(request));
            return request;
        }

        /// <summary>Delivers what is in flight (and what that sends), without ticks or time passing.</summary>
        public void DeliverAll()
        {
            while (_network.FindIndex(m => !Stalled.Contains(m.To)) is var i and >= 0)
            {
                var (to, message) = _network[i];
                _network.RemoveAt(i);
                var target = Nodes[to];
                if (target.Up && Passes(message.From, to) && Lose?.Invoke(message.From, to) != true) Execute(target, target.Peer.Receive(message, Now));
            }
        }

        /// <summary>Whether a message from <paramref name="from"/> to <paramref name="to"/> gets through now.</summary>
        private bool Passes(long from, long to) =>
            !Cut.Contains((from, to)) && (!AuthenticatedLinks || (LinksWith(Nodes[from], to) && LinksWith(Nodes[to], from)));

        /// <summary>Whether <paramref name="node"/>'s host links with server <paramref name="other"/>: it dials it, and
        /// accepts it in the handshake, only when a configuration it follows names it (<c>PeerActor.RefreshLinks</c>).</summary>
        private static bool LinksWith(Node node, long other) =>
            new[] { node.Peer.Config, node.Peer.PendingConfig, node.Peer.HeardOfConfig }.Any(config => config?.IsMember(other) == true);

        public void Execute(Node node, IReadOnlyList<ZabOutput> outputs)
        {
            foreach (var output in outputs)
            {
                if (output is RoleChanged changed) node.Roles.Add(changed.Role);
                switch (output)
                {
                    case SendTo send:
                        if (send.Message is Ping { Round: > 0 } ping) Rounds.Add((node.Id, ping.Round));
                        if (Passes(node.Id, send.To)) _network.Add((send.To, send.Message));
                        break;
                    case RoleChanged role when !(role.ServesClients && role.Role == PeerState.Leading):
                        node.HeldSyncs.Clear();   // the host refuses them when leadership ends (ReplicaActor.RefuseHeldSyncs)
                        break;
                    case LeadershipConfirmed confirmed:
                        foreach (var (request, held) in node.HeldSyncs.Where(h => h.Key <= confirmed.UpToRequest).OrderBy(h => h.Key).ToList())
                        {
                            // A sync answered at this point must see every write acknowledged before it arrived.
                            Assert.True(held.AcknowledgedBefore <= held.SyncPoint,
                                $"node {node.Id} confirmed sync {request} at {Zxids.Format(held.SyncPoint)}, but {Zxids.Format(held.AcknowledgedBefore)} was acknowledged before it arrived: a stale read");
                            node.HeldSyncs.Remove(request);
                            node.Confirmed.Add(request);
                        }
                        break;
                    case AppendEntries append:
                        foreach (var e in append.Entries)
                        {
                            if (e.Zxid <= node.LastZxid) Assert.Fail($"node {node.Id}: append {e.Zxid:x} after {node.LastZxid:x}");
                            node.Entries.Add(e);
                        }
                        Write(node, () => node.Durable.AddRange(append.Entries), append.Entries[^1].Zxid);
                        break;
                    case TruncateLog truncate:
                        Assert.True(truncate.Zxid >= node.LastApplied, $"node {node.Id} truncates committed txns after {truncate.Zxid:x}");
                        node.Entries.RemoveAll(e => e.Zxid > truncate.Zxid);
                        Write(node, () => node.Durable.RemoveAll(e => e.Zxid > truncate.Zxid), truncate.Zxid);
                        break;
                    case InstallSnapshot snap:
                        var leader = Nodes[snap.Leader];
                        node.Applied.Clear();
                        node.Applied.AddRange(leader.Applied.Where(z => z <= snap.Zxid));
                        node.PrefixChecked = 0;
                        Assert.Equal(snap.Zxid, node.LastApplied == 0 ? snap.Zxid : node.LastApplied);
                        node.Entries.Clear();
                        node.Retained = snap.Zxid;
                        Write(node, () => { node.Durable.Clear(); node.DurableRetained = snap.Zxid; }, snap.Zxid);
                        break;
                    case SaveEpochs epochs:
                        node.AcceptedEpoch = epochs.AcceptedEpoch;
                        node.CurrentEpoch = epochs.CurrentEpoch;
                        break;
                    case ConfigActivated activated:
                        node.Config = activated.Config;
                        if (Zxids.CounterOf(activated.Config.Version) != 0) EverActivated.Add(activated.Config);
                        break;
                    case CommitUpTo commit:
                        var appliedBefore = node.LastApplied;
                        // The log is in zxid order: apply from the first entry after the last applied one.
                        for (var i = FirstAfter(node.Entries, node.LastApplied); i < node.Entries.Count && node.Entries[i].Zxid <= commit.Zxid; i++)
                        {
                            var zxid = node.Entries[i].Zxid;
                            node.Applied.Add(zxid);
                            if (EverApplied.Add(zxid)) CheckCommitQuorum(node, zxid, appliedBefore);
                        }
                        if (node.Peer.Role == PeerState.Leading)
                            foreach (var z in node.Applied)
                                if (Zxids.EpochOf(z) == node.CurrentEpoch && _acknowledged.Add(z)) Acknowledged.Add(z);
                        break;
                }
            }
            CheckPrefixes();
        }

        /// <summary>Called when a zxid is first committed, with the servers that hold it durably at that moment.</summary>
        public Action<long, IReadOnlySet<long>>? FirstCommitted;
        /// <summary>Set by the naive-commit control only: what the quorum check below reported.</summary>
        public readonly List<string> QuorumViolations = new();
        /// <summary>Record quorum violations instead of failing at once (the control that shows the check can fail).</summary>
        public bool RecordQuorumViolations;

        /// <summary>
        /// The step that first commits <paramref name="zxid"/> (on <paramref name="leader"/>, which had applied up to
        /// <paramref name="appliedBefore"/>) has it durable on a quorum of the configuration in force there and, when the
        /// reconfiguration before it was still pending there, of the configuration before that one too: never on a
        /// quorum of one configuration only while a reconfiguration is pending.
        /// </summary>
        private void CheckCommitQuorum(Node leader, long zxid, long appliedBefore)
        {
            var configs = leader.Entries.Where(e => e.Config is not null && e.Zxid <= zxid).Select(e => e.Config!).Prepend(InitialConfig).ToList();
            var required = configs[^1].Version > appliedBefore ? configs.TakeLast(2).ToList() : [configs[^1]];
            var holders = Nodes.Values.Where(n => n.DurableRetained >= zxid || HasDurably(n, zxid)).Select(n => n.Id).ToHashSet();
            FirstCommitted?.Invoke(zxid, holders);
            foreach (var config in required)
            {
                if (new Quorum(config.Voters).IsQuorum(holders)) continue;
                var violation = $"node {leader.Id} committed {Zxids.Format(zxid)} durable only on [{string.Join(",", holders.Order())}], no quorum of {config}";
                if (!RecordQuorumViolations) Assert.Fail(violation);
                QuorumViolations.Add(violation);
            }
        }

        /// <summary>The index of the first entry of <paramref name="log"/> (in zxid order) after <paramref name="zxid"/>.</summary>
        private static int FirstAfter(List<LogEntry> log, long zxid)
        {
            int lo = 0, hi = log.Count;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (log[mid].Zxid <= zxid) lo = mid + 1; else hi = mid;
            }
            return lo;
        }

        private static bool HasDurably(Node node, long zxid)
        {
            int lo = 0, hi = node.Durable.Count - 1;   // the durable log is in zxid order
            while (lo <= hi)
            {
                var mid = (lo + hi) >>> 1;
                var at = node.Durable[mid].Zxid;
                if (at == zxid) return true;
                if (at < zxid) lo = mid + 1; else hi = mid - 1;
            }
            return false;
        }

        /// <summary>
        /// Every node's applied sequence is a prefix of the longest one. Incremental: after each check all sequences
        /// agree pairwise up to what was checked of each (<see cref="Node.PrefixChecked"/>, lowered when a sequence is
        /// replaced), so only the positions past the checked part of a node or of the longest one need comparing;
        /// that fails exactly when the whole comparison would.
        /// </summary>
        private void CheckPrefixes()
        {
            var longestNode = Nodes.Values.OrderByDescending(n => n.Applied.Count).First();
            var longest = longestNode.Applied;
            foreach (var node in Nodes.Values)
                for (var i = Math.Min(node.PrefixChecked, longestNode.PrefixChecked); i < node.Applied.Count; i++)
                    if (node.Applied[i] != longest[i]) Assert.Fail($"node {node.Id} applied {node.Applied[i]:x} at {i}, another node {longest[i]:x}");
            foreach (var node in Nodes.Values) node.PrefixChecked = node.Applied.Count;
        }

        /// <summary>Runs <paramref name="ms"/> of simulated time; the leader proposes <paramref name="writesPerTick"/> txns per tick.</summary>
        public void Run(long ms, int writesPerTick = 0)
        {
            var until = Now + ms;
            var nextTick = Now;
            while (Now < until)
            {
                foreach (var node in Nodes.Values) CompleteDiskWrites(node);
                var deliverable = Stalled.Count == 0 ? _network : _network.Where(m => !Stalled.Contains(m.To)).ToList();
                if (deliverable.Count == 0 || Now >= nextTick)
                {
                    Now = Math.Max(Now, nextTick);
                    nextTick = Now + 50;
                    foreach (var node in Nodes.Values.Where(n => n.Up && !Stalled.Contains(n.Id))) Execute(node, node.Peer.Tick(Now));
                    if (Leader is { } leader)
                        for (var i = 0; i < writesPerTick; i++)
                        {
                            var zxid = leader.Peer.AllocateZxid()!.Value;
                            Execute(leader, leader.Peer.Propose(new LogEntry(zxid, BitConverter.GetBytes(zxid))));
                        }
                    continue;
                }
                // Zab needs FIFO links (TCP, Akka.Remote): deliver the oldest message of a random sender→receiver pair.
                var pick = deliverable[_random.Next(deliverable.Count)];
                var index = _network.FindIndex(m => m.To == pick.To && m.Message.From == pick.Message.From);
                var (to, message) = _network[index];
                _network.RemoveAt(index);
                var target = Nodes[to];
                if (!target.Up || !Passes(message.From, to) || Lose?.Invoke(message.From, to) == true) continue;
                Execute(target, target.Peer.Receive(message, Now));
                if (_random.Next(20) == 0) Now += 5;
            }
        }

        /// <summary>Each server's state, for a failure message.</summary>
        public string Describe() => string.Join("\n", Nodes.Values.Select(n =>
            $"  {n.Id}: {(n.Up ? "up" : "down")} {n.Peer.Role} leader {n.Peer.Leader} serves {n.Peer.ServesClients} member {n.Peer.IsMember} " +
            $"epochs {n.Peer.AcceptedEpoch}/{n.Peer.CurrentEpoch} logged {Zxids.Format(n.LastZxid)} committed {Zxids.Format(n.Peer.Committed)} " +
            $"applied {Zxids.Format(n.LastApplied)} config {n.Peer.Config} pending {n.Peer.PendingConfig?.ToString() ?? "-"}"));

        /// <param name="members">The servers that must converge; by default every running one that is a member by its own configuration.</param>
        public void AssertConverged(IEnumerable<long>? members = null)
        {
            var up = Nodes.Values.Where(n => n.Up && (members?.Contains(n.Id) ?? n.Peer.IsMember)).ToList();
            var reference = up.First().Applied;
            foreach (var node in up)
                Assert.True(reference.SequenceEqual(node.Applied), $"server {node.Id} applied up to {Zxids.Format(node.LastApplied)}, server {up[0].Id} up to {Zxids.Format(up[0].LastApplied)}:\n{Describe()}");
            var applied = reference.ToHashSet();
            foreach (var zxid in Acknowledged) Assert.Contains(zxid, applied);
            foreach (var zxid in EverApplied) if (!applied.Contains(zxid)) Assert.Fail($"committed txn {Zxids.Format(zxid)} was lost");
        }
    }

    /// <summary>
    /// A known-bad history for the incremental prefix check: a follower whose disk lost one logged txn from the
    /// middle of its log (Zab cannot see the hole: its last zxid is right) applies, after a restart, the next txn
    /// where the others applied the lost one. The check must stop the run there.
    /// </summary>
    [Fact]
    public void The_prefix_check_catches_a_member_that_applies_a_different_history()
    {
        var c = new Cluster(31, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var follower = c.Nodes.Values.First(n => n.Peer.Role == PeerState.Following);
        Assert.True(follower.Durable.Count > 10, $"only {follower.Durable.Count} txns logged");
        follower.Durable.RemoveAt(follower.Durable.Count / 2);
        c.Crash(follower.Id);
        c.Restart(follower.Id);
        var failure = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => c.Run(2_000, writesPerTick: 1));
        Assert.Contains($"node {follower.Id} applied", failure.Message);
    }

    [Fact]
    public void A_follower_that_sees_its_leaders_connection_close_elects_at_once_not_after_the_sync_limit()
    {
        Cluster CrashLeader(bool connectionClosed)
        {
            var cluster = new Cluster(11, [1, 2, 3]);
            cluster.Run(2_000);
            var leader = cluster.Leader!;
            cluster.Crash(leader.Id);
            if (connectionClosed)
                foreach (var follower in cluster.Nodes.Values.Where(n => n.Up)) cluster.Execute(follower, follower.Peer.ConnectionLost(leader.Id, cluster.Now));
            cluster.Run(350);
            return cluster;
        }
        // Waiting for the sync limit (5 ticks of 50 ms) plus the election's finalize wait takes longer than 350 ms...
        Assert.Null(CrashLeader(connectionClosed: false).Leader);
        // ...reacting to the closed connection does not.
        var c = CrashLeader(connectionClosed: true);
        Assert.NotNull(c.Leader);
        var old = c.Nodes.Values.First(n => !n.Up);
        Assert.NotEqual(old.Id, c.Leader!.Id);
        // Losing the connection to a member that is not the leader changes nothing.
        var follower2 = c.Nodes.Values.First(n => n.Up && n.Id != c.Leader!.Id);
        Assert.Empty(follower2.Peer.ConnectionLost(old.Id, c.Now));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_member_that_was_stalled_itself_does_not_take_its_peers_for_silent_on_its_first_tick_back(bool stalledIsLeader)
    {
        var c = new Cluster(5, [1, 2, 3]);
        c.Run(2_000);
        var leader = c.Leader!;
        var node = stalledIsLeader ? leader : c.Nodes.Values.First(n => n.Id != leader.Id);
        // The member does not run for 1 s, four sync limits (5 ticks of 50 ms); what the others sent waits behind its
        // first tick back (a starved thread pool or a GC pause on a loaded machine).
        c.Now += 1_000;
        c.Execute(node, node.Peer.Tick(c.Now));
        Assert.True(node.Peer.ServesClients, $"server {node.Id} ({node.Peer.Role}) gave up on its peers after its own stall");
        c.Run(1_000, writesPerTick: 2);
        Assert.Equal(leader.Id, c.Leader?.Id);
        Assert.All(c.Nodes.Values, n => Assert.True(n.Peer.ServesClients));
        c.AssertConverged();
    }

    [Fact]
    public void A_leader_that_is_really_gone_is_still_found_by_followers_that_stalled()
    {
        var c = new Cluster(5, [1, 2, 3]);
        c.Run(2_000);
        var old = c.Leader!;
        c.Crash(old.Id);
        c.Now += 1_000;   // the followers stall too
        c.Run(1_500);
        Assert.NotNull(c.Leader);
        Assert.NotEqual(old.Id, c.Leader!.Id);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_leader_forgets_a_learner_silent_past_the_sync_limit_and_takes_it_back_when_it_returns(bool crashed)
    {
        var c = new Cluster(7, [1, 2, 3]);
        c.Run(2_000, writesPerTick: 1);
        var leader = c.Leader!;
        var follower = c.Nodes.Values.First(n => n.Id != leader.Id);
        Assert.Equal(2, leader.Peer.LearnerCount);
        if (crashed) c.Crash(follower.Id);
        else c.Partition(follower.Id);
        // Four sync limits (5 ticks of 50 ms): the leader keeps its quorum with the other follower, and stops
        // pinging the silent one (pings to a killed member redialed its address, see RejoinTests).
        c.Run(1_000, writesPerTick: 1);
        Assert.Equal(leader.Id, c.Leader?.Id);
        Assert.Equal(1, leader.Peer.LearnerCount);
        var tick = leader.Peer.Tick(c.Now);
        Assert.DoesNotContain(tick, o => o is SendTo send && send.To == follower.Id);
        c.Execute(leader, tick);
        if (crashed) c.Restart(follower.Id);
        else c.Heal();
        c.Run(2_000, writesPerTick: 1);
        Assert.Equal(leader.Id, c.Leader?.Id);
        Assert.Equal(2, leader.Peer.LearnerCount);
        Assert.True(follower.Peer.ServesClients, $"server {follower.Id} is {follower.Peer.Role}, not serving");
        c.AssertConverged();
    }

    [Fact]
    public void Three_servers_elect_broadcast_and_apply_the_same_sequence()
    {
        var c = new Cluster(1, [1, 2, 3]);
        c.Run(2_000);
        Assert.NotNull(c.Leader);
        c.Run(2_000, writesPerTick: 5);
        c.Run(500);
        Assert.True(c.Acknowledged.Count >= 150, $"acknowledged {c.Acknowledged.Count}");
        c.AssertConverged();
        Assert.All(c.Nodes.Values, n => Assert.True(n.Peer.ServesClients));
    }

    public static IEnumerable<object[]> DiskSeeds => Enumerable.Range(1, 30).Select(seed => new object[] { seed });

    /// <summary>
    /// Acks reflect only what is on disk. Every disk write becomes durable after a random delay of up to 300 ms
    /// (several ticks), so fsyncs are still pending when leaders crash, elections run and followers truncate; crashes
    /// (of a minority, or of every server, which then come back one by one) lose whatever was not yet durable.
    /// Whatever the schedule (replayable by its seed), no committed txn is lost and all logs agree.
    /// </summary>
    [Theory]
    [MemberData(nameof(DiskSeeds))]
    public void Fsync_completions_delayed_across_elections_lose_no_committed_txn(int seed)
    {
        long[] voters = seed % 2 == 0 ? [1, 2, 3] : [1, 2, 3, 4, 5];
        var c = new Cluster(seed, voters) { MaxFsyncMs = 1_500 };
        var faults = new Random(seed);
        c.Run(2_000);
        for (var round = 0; round < 10; round++)
        {
            c.Run(faults.Next(50, 400), writesPerTick: 3);
            if (faults.Next(3) == 0)
            {
                // Power failure: every server crashes at once, then they come back one by one, so that the first
                // quorum to form may lack any one server's disk.
                var order = c.Nodes.Keys.OrderBy(_ => faults.Next()).ToList();
                foreach (var id in order) c.Crash(id);
                foreach (var id in order)
                {
                    c.Restart(id);
                    c.Run(faults.Next(0, 1_000), writesPerTick: 3);
                }
                continue;
            }
            // A minority crashes, the leader most often, while its last writes are still being synced.
            var crashed = new List<long>();
            for (var i = 0; i < (voters.Length - 1) / 2; i++)
            {
                var up = c.Nodes.Values.Where(n => n.Up).ToList();
                var victim = c.Leader is { } leader && faults.Next(3) > 0 ? leader : up[faults.Next(up.Count)];
                c.Crash(victim.Id);
                crashed.Add(victim.Id);
                c.Run(faults.Next(0, 200), writesPerTick: 3);
            }
            c.Run(faults.Next(100, 1_500), writesPerTick: 3);
            foreach (var id in crashed) c.Restart(id);
        }
        c.Run(6_000);
        c.AssertConverged();
        Assert.True(c.EverApplied.Count > 0, "nothing was committed");
    }

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public void Proposals_lost_on_the_way_to_a_follower_leave_no_hole_in_its_log(int seed)
    {
        // Akka.Remote is not TCP: a gated association drops what is sent meanwhile, and later messages arrive.
        var c = new Cluster(seed, [1, 2, 3]);
        c.Run(2_000);
        c.Run(500, writesPerTick: 5);
        var leader = c.Leader!;
        var follower = c.Nodes.Values.First(n => n.Id != leader.Id);
        c.Lose = (from, to) => from == leader.Id && to == follower.Id;
        c.Run(200, writesPerTick: 5);   // shorter than the sync limit: the follower does not notice by silence
        c.Lose = null;
        c.Run(2_000, writesPerTick: 5);
        c.Run(1_000);
        c.AssertConverged();
        Assert.All(c.Nodes.Values, n => Assert.True(n.Peer.ServesClients));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Leader_crash_under_load_loses_no_acknowledged_write_and_the_old_leader_catches_up(int seed)
    {
        var c = new Cluster(seed, [1, 2, 3, 4, 5]);
        c.Run(2_000);
        c.Run(1_000, writesPerTick: 5);
        var old = c.Leader!;
        c.Crash(old.Id);
        c.Run(3_000, writesPerTick: 5);
        var next = c.Leader;
        Assert.NotNull(next);
        Assert.NotEqual(old.Id, next!.Id);
        Assert.True(Zxids.EpochOf(c.Acknowledged[^1]) > Zxids.EpochOf(c.Acknowledged[0]), "the new leader runs in a newer epoch");

        c.Restart(old.Id);
        c.Run(3_000, writesPerTick: 2);
        c.Run(1_000);
        c.AssertConverged();
        Assert.Equal(PeerState.Following, old.Peer.Role);
    }

    [Fact]
    public void A_follower_behind_the_purge_point_gets_a_snapshot()
    {
        var c = new Cluster(5, [1, 2, 3]);
        c.Run(2_000);
        var leader = c.Leader!;
        var follower = c.Nodes.Values.First(n => n.Id != leader.Id);
        c.Crash(follower.Id);
        c.Run(1_000, writesPerTick: 5);
        // Purge everything the leader has applied from its log (as if snapshotted): the follower's position is gone.
        leader.Retained = leader.LastApplied;
        leader.Entries.RemoveAll(e => e.Zxid <= leader.Retained);
        c.Restart(follower.Id);
        c.Run(2_000, writesPerTick: 2);
        c.Run(1_000);
        c.AssertConverged();
        Assert.True(follower.Retained > 0, "the follower was brought up by a snapshot");
    }

    [Fact]
    public void An_uncommitted_tail_left_by_an_old_leader_is_truncated()
    {
        var c = new Cluster(6, [1, 2, 3]);
        c.Run(2_000);
        c.Run(500, writesPerTick: 3);
        c.Run(500);
        var old = c.Leader!;
        // The leader logs three proposals that never reach anyone, then dies.
        c.Partition(old.Id);
        for (var i = 0; i < 3; i++)
        {
            var zxid = old.Peer.AllocateZxid()!.Value;
            var outputs = old.Peer.Propose(new LogEntry(zxid, []));
            foreach (var o in outputs) if (o is AppendEntries a) old.Entries.AddRange(a.Entries);
        }
        var orphan = old.LastZxid;
        c.Crash(old.Id);
        c.Heal();
        c.Run(3_000, writesPerTick: 3);
        c.Restart(old.Id);
        c.Run(3_000, writesPerTick: 1);
        c.Run(1_000);
        c.AssertConverged();
        Assert.DoesNotContain(orphan, old.Entries.Select(e => e.Zxid));
        Assert.DoesNotContain(orphan, old.Applied);
    }

    /// <summary>
    /// Proposals and commits to a follower lost in transit for less than the sync limit (Akka.Remote drops what it
    /// sends to a gated association, then reconnects; the test kit's throttler blackhole does the same), and no write
    /// after them: the follower must not serve its stale state until a later proposal shows the hole (for as long as
    /// the ensemble is idle). The leader's pings carry its commit point; a synchronised follower that never received
    /// that proposal knows messages were lost on its FIFO link, rejoins, and is resynchronised.
    /// </summary>
    [Fact]
    public void A_follower_that_lost_proposals_catches_up_at_the_next_ping_without_waiting_for_a_write()
    {
        var c = new Cluster(8, [1, 2, 3]);
        c.Run(2_000);
        c.Run(500, writesPerTick: 3);
        c.Run(500);
        var leader = c.Leader!;
        var follower = c.Nodes.Values.First(n => n.Id != leader.Id);
        c.Lose = (from, to) => from == leader.Id && to == follower.Id;
        c.Run(100, writesPerTick: 3);
        c.Run(50);                      // what is still in flight is lost too: 3 ticks in all, within the sync limit (5)
        c.Lose = null;
        Assert.True(follower.Peer.Committed < leader.Peer.Committed, "nothing was lost");
        Assert.Equal(PeerState.Following, follower.Peer.Role);
        c.Run(1_000);                   // no write: only pings
        Assert.True(follower.Peer.Committed == leader.Peer.Committed && follower.Peer.ServesClients,
            $"the follower still serves a stale state a second after the loss:\n{c.Describe()}");
        c.AssertConverged();
    }

    [Fact]
    public void A_leader_partitioned_from_the_majority_stops_serving_and_rejoins_as_follower_after_the_heal()
    {
        var c = new Cluster(7, [1, 2, 3]);
        c.Run(2_000);
        c.Run(500, writesPerTick: 3);
        var old = c.Leader!;
        c.Partition(old.Id);
        var acknowledgedAtCut = c.Acknowledged.Count;
        c.Run(3_000, writesPerTick: 3);
        Assert.False(old.Peer.Role == PeerState.Leading && old.Peer.ServesClients, "the isolated leader must stop serving");
        var next = c.Leader;
        Assert.NotNull(next);
        Assert.NotEqual(old.Id, next!.Id);
        Assert.True(c.Acknowledged.Count > acknowledgedAtCut);

        c.Heal();
        c.Run(3_000, writesPerTick: 1);
        c.Run(1_000);
        c.AssertConverged();
        Assert.Equal(PeerState.Following, old.Peer.Role);
    }

    /// <summary>
    /// A non-voter answers every notification with its own vote, so that a looking server learns; two observers did
    /// that to each other, and every answer drew the next one: an endless exchange as soon as one notification passed
    /// between them (it hung <see cref="Cluster.DeliverAll"/>). An observer now leaves non-voters to the voters.
    /// </summary>
    [Fact]
    public void Two_observers_do_not_answer_each_other_forever()
    {
        var c = new Cluster(8, [1, 2, 3], observers: [6, 7]);
        var between = 0;
        c.Lose = (from, to) => { if (from is 6 or 7 && to is 6 or 7) between++; return false; };
        c.Run(2_000);
        c.Crash(c.Leader!.Id);
        c.Run(2_000);
        c.AssertConverged();
        Assert.Equal(PeerState.Observing, c.Nodes[6].Peer.Role);
        Assert.Equal(PeerState.Observing, c.Nodes[7].Peer.Role);
        Assert.True(between <= 20, $"{between} messages between the two observers in two elections");
    }

    [Fact]
    public void Observers_follow_but_never_make_a_quorum()
    {
        var c = new Cluster(8, [1, 2, 3], observers: [7]);
        c.Run(2_000);
        c.Run(1_000, writesPerTick: 3);
        c.Run(500);
        c.AssertConverged();
        Assert.Equal(PeerState.Observing, c.Nodes[7].Peer.Role);
        Assert.True(c.Nodes[7].Applied.Count > 0);

        var leader = c.Leader!;
        foreach (var id in new long[] { 1, 2, 3 }.Where(i => i != leader.Id)) c.Crash(id);
        var before = c.Acknowledged.Count;
        c.Run(200, writesPerTick: 3);   // within syncLimit: it still leads, but leader + observer is no quorum
        Assert.Equal(before, c.Acknowledged.Count);
    }

    // ---------------- sync: leadership confirmed by a quorum (ReadIndex) ----------------

    [Fact]
    public void A_sync_is_confirmed_after_one_ping_round_and_syncs_that_arrive_meanwhile_share_the_next_round()
    {
        var c = new Cluster(3, [1, 2, 3]);
        c.Run(2_000);
        c.Run(300, writesPerTick: 2);
        var leader = c.Leader!;
        c.Rounds.Clear();

        var first = c.Sync(leader);
        Assert.Equal(1, c.Rounds.Count);   // sent at once, not at the next tick
        Assert.Empty(leader.Confirmed);   // the leader alone is no quorum
        var second = c.Sync(leader);
        var third = c.Sync(leader);
        Assert.Equal(1, c.Rounds.Count);   // they wait for the round in flight to end

        c.DeliverAll();   // no tick, no time: one round trip per round
        Assert.Equal([first, second, third], leader.Confirmed);
        Assert.Equal(2, c.Rounds.Count);   // the first round, then one round for both later syncs
        Assert.Empty(leader.HeldSyncs);
    }

    [Fact]
    public void A_round_whose_pings_were_lost_is_confirmed_by_the_next_ticks_pings()
    {
        var c = new Cluster(4, [1, 2, 3]);
        c.Run(2_000);
        var leader = c.Leader!;
        c.Lose = (from, _) => from == leader.Id;
        var request = c.Sync(leader);
        c.DeliverAll();
        c.Lose = null;
        Assert.Empty(leader.Confirmed);
        c.Run(120);
        Assert.Equal([request], leader.Confirmed);
    }

    [Fact]
    public void An_observer_does_not_confirm_leadership()
    {
        var c = new Cluster(9, [1, 2, 3], observers: [7]);
        c.Run(2_000);
        var leader = c.Leader!;
        foreach (var id in new long[] { 1, 2, 3 }.Where(i => i != leader.Id)) c.Crash(id);
        c.Sync(leader);
        c.Run(200);   // within the sync limit: it still leads, the observer still answers its pings
        Assert.Equal(PeerState.Leading, leader.Peer.Role);
        Assert.Empty(leader.Confirmed);
    }

    /// <summary>
    /// The hole of ZOOKEEPER-1675: a leader cut off from the others keeps leading until it notices (a stall it
    /// discounts, a slow link), while the others elect a leader that commits writes. A sync answered by the old
    /// leader from its own state would let a read miss those writes. It must never be confirmed.
    /// </summary>
    [Fact]
    public void An_old_leader_cut_off_while_a_new_leader_commits_never_confirms_a_sync()
    {
        var c = new Cluster(7, [1, 2, 3]);
        c.Run(2_000);
        c.Run(500, writesPerTick: 3);
        var old = c.Leader!;
        c.Partition(old.Id);
        c.Stalled.Add(old.Id);   // it does not run: its limits do not advance
        var acknowledged = c.Acknowledged.Count;
        c.Run(3_000, writesPerTick: 3);
        var next = c.Leader!;
        Assert.NotEqual(old.Id, next.Id);
        Assert.True(c.Acknowledged.Count > acknowledged, "the new leader committed nothing");

        c.Stalled.Remove(old.Id);
        c.Execute(old, old.Peer.Tick(c.Now));   // back: the stall does not count against its learners
        Assert.True(old.Peer.Role == PeerState.Leading && old.Peer.ServesClients, "the old leader must still think it leads, or this proves nothing");
        var request = c.Sync(old);
        Assert.True(old.HeldSyncs[request].AcknowledgedBefore > old.HeldSyncs[request].SyncPoint, "answered at its point, the sync would be stale");
        c.Run(3_000, writesPerTick: 1);
        Assert.DoesNotContain(request, old.Confirmed);
        Assert.NotEqual(PeerState.Leading, old.Peer.Role);

        c.Heal();
        c.Run(3_000, writesPerTick: 1);
        Assert.DoesNotContain(request, old.Confirmed);
        Assert.Equal(PeerState.Following, old.Peer.Role);
        var afterHeal = c.Sync(c.Leader!);
        c.Run(200);
        Assert.Contains(afterHeal, c.Leader!.Confirmed);
        c.AssertConverged();
    }

    public static IEnumerable<object[]> SyncSeeds => Enumerable.Range(1, 10).Select(seed => new object[] { seed });

    /// <summary>
    /// Leaders are cut off with a follower (a minority of five), stalled, and healed, under writes; whichever node
    /// thinks it leads gets syncs every tick. A confirmed sync's point always covers every write acknowledged before
    /// it arrived (checked on every confirmation), and syncs are confirmed at all.
    /// </summary>
    [Theory]
    [MemberData(nameof(SyncSeeds))]
    public void Syncs_confirmed_by_any_leader_under_partitions_and_stalls_never_miss_an_acknowledged_write(int seed)
    {
        var c = new Cluster(seed, [1, 2, 3, 4, 5]);
        var faults = new Random(seed);
        c.Run(2_000);
        void RunWithSyncs(long ms)
        {
            for (var t = 0; t < ms; t += 50)
            {
                foreach (var node in c.Nodes.Values.Where(n => n.Up && n.Peer.Role == PeerState.Leading && n.Peer.ServesClients)) c.Sync(node);
                c.Run(50, writesPerTick: 1);
            }
        }
        for (var round = 0; round < 4; round++)
        {
            RunWithSyncs(faults.Next(100, 500));
            var leader = c.Leader ?? c.Nodes.Values.First();
            var buddy = c.Nodes.Values.Where(n => n.Id != leader.Id).ElementAt(faults.Next(4));
            foreach (var n in c.Nodes.Values.Where(n => n.Id != leader.Id && n.Id != buddy.Id))
            {
                c.Cut.Add((leader.Id, n.Id)); c.Cut.Add((n.Id, leader.Id));
                c.Cut.Add((buddy.Id, n.Id)); c.Cut.Add((n.Id, buddy.Id));
            }
            if (faults.Next(2) == 0) c.Stalled.Add(leader.Id);
            RunWithSyncs(faults.Next(500, 2_000));
            c.Stalled.Clear();
            RunWithSyncs(faults.Next(0, 400));
            c.Heal();
        }
        RunWithSyncs(2_000);
        c.Run(1_000);
        c.AssertConverged();
        Assert.True(c.Nodes.Values.Sum(n => n.Confirmed.Count) > 50, "too few syncs were confirmed to show anything");
    }
}
