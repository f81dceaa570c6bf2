using Akka.Actor;
using Akka.Configuration;
using Akka.Remote;
using Akka.Remote.Transport;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Pipeline;
using Coordination.Server.Ensemble;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// Multi-node scenarios: three ActorSystems in this test process, each with a <see cref="PeerActor"/>, talking Zab over
/// real Akka.Remote (our socket transport) on 127.0.0.1 with the throttler adapter for partitions. The log is in memory here; the scenarios
/// check election, broadcast, leader crash and a leader partitioned from the majority.
/// </summary>
public sealed class EnsembleScenarioTests(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed class MemoryStorage : IZabStorage
    {
        private readonly object _gate = new();
        public readonly List<LogEntry> Entries = new();
        public readonly List<long> Applied = new();
                public long AcceptedEpoch { get; private set; }
        public long CurrentEpoch { get; private set; }
        public long LastZxid { get { lock (_gate) return Entries.Count > 0 ? Entries[^1].Zxid : 0; } }
        public long RetainedFrom => 0;   // nothing is ever compacted here
        public IReadOnlyList<LogEntry> EntriesAfter(long zxid) { lock (_gate) return Entries.Where(e => e.Zxid > zxid).ToList(); }
        public Task AppendAsync(IReadOnlyList<LogEntry> entries) { lock (_gate) Entries.AddRange(entries); return Task.CompletedTask; }
        public Task TruncateAsync(long zxid) { lock (_gate) Entries.RemoveAll(e => e.Zxid > zxid); return Task.CompletedTask; }
        public void SaveEpochs(long accepted, long current) { AcceptedEpoch = accepted; CurrentEpoch = current; }
        public void Commit(long zxid)
        {
            lock (_gate)
                foreach (var e in Entries.Where(e => e.Zxid <= zxid && (Applied.Count == 0 || e.Zxid > Applied[^1])).ToList()) Applied.Add(e.Zxid);
        }
        public List<long> AppliedSnapshot() { lock (_gate) return Applied.ToList(); }
    }

    private static readonly Config NodeConfig = ConfigurationFactory.ParseString("""
        akka {
          loglevel = WARNING
          actor.provider = remote
          actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
          actor.serialization-bindings { "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
            "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab }
          remote.enabled-transports = ["akka.remote.coordination-socket"]
          remote.coordination-socket {
            transport-class = "Coordination.Server.Ensemble.SocketTransport, Coordination.Server"
            hostname = 127.0.0.1, port = 0, applied-adapters = ["trttl"]
            # Zab over real remoting on ephemeral ports; member authentication has its own tests (Ensemble.Tests).
            auth.insecure = on
          }
        }
        """);

    private readonly Dictionary<long, ActorSystem> _systems = new();
    private readonly Dictionary<long, IActorRef> _peers = new();
    private readonly Dictionary<long, MemoryStorage> _storage = new();
    private readonly ZabSettings _settings = new(TickMs: 100, InitLimitTicks: 10, SyncLimitTicks: 5);

    public async Task InitializeAsync()
    {
        foreach (var id in new long[] { 1, 2, 3 }) _systems[id] = ActorSystem.Create("zab", NodeConfig);
        var addresses = _systems.ToDictionary(kv => kv.Key, kv => ((ExtendedActorSystem)kv.Value).Provider.DefaultAddress.ToString());
        var members = new EnsembleMembers(addresses, new Dictionary<long, string>());
        foreach (var (id, system) in _systems)
        {
            _storage[id] = new MemoryStorage();
            _peers[id] = system.ActorOf(PeerActor.Props(id, members, _storage[id], _settings, () => Environment.TickCount64), PeerActor.Name);
        }
        await Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var system in _systems.Values) await system.Terminate();
    }

    private async Task<PeerActor.PeerStatus> WaitForLeaderAsync(IEnumerable<long> among, TimeSpan timeout, long notId = -1)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            foreach (var id in among)
            {
                var status = await _peers[id].Ask<PeerActor.PeerStatus>(PeerActor.GetStatus.Instance, TimeSpan.FromSeconds(3));
                if (status.Role == PeerState.Leading && status.ServesClients && status.Id != notId) return status;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException("no leader elected in time");
    }

    private async Task<List<long>> ProposeAsync(long leader, int count)
    {
        var zxids = new List<long>();
        var status = await _peers[leader].Ask<PeerActor.PeerStatus>(PeerActor.GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.True(status.NextZxid.HasValue, "the leader cannot propose");
        for (var i = 0; i < count; i++) zxids.Add(status.NextZxid!.Value + i);
        _peers[leader].Tell(new PeerActor.ProposeBatch(zxids.Select(TestProposal).ToList()));
        return zxids;
    }

    private static Proposal TestProposal(long zxid) => new(new TxnHeader(1, 1, zxid, 0, OpCode.CreateSession), new CreateSessionTxn(1000));

    private async Task WaitAppliedAsync(IEnumerable<long> nodes, long zxid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (nodes.Any(n => !_storage[n].AppliedSnapshot().Contains(zxid)))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"zxid {zxid:x} not applied everywhere in time");
            await Task.Delay(50);
        }
    }

    private static RemoteTransport Transport(ActorSystem s) => ((IRemoteActorRefProvider)((ExtendedActorSystem)s).Provider).Transport;
    private static Address AddressOf(ActorSystem s) => ((ExtendedActorSystem)s).Provider.DefaultAddress;

    private async Task SetPartitionAsync(long isolated, ThrottleMode mode)
    {
        foreach (var (id, system) in _systems)
            if (id != isolated)
                Assert.True(await Transport(_systems[isolated]).ManagementCommand(new SetThrottle(AddressOf(system), ThrottleTransportAdapter.Direction.Both, mode)));
    }

    [Fact]
    public async Task Three_nodes_elect_one_leader_and_replicate_in_the_same_order()
    {
        var leader = await WaitForLeaderAsync(_systems.Keys, TimeSpan.FromSeconds(20));
        output.WriteLine($"leader {leader.Id}, epoch {leader.CurrentEpoch}");
        var zxids = await ProposeAsync(leader.Id, 50);
        await WaitAppliedAsync(_systems.Keys, zxids[^1], TimeSpan.FromSeconds(10));
        var reference = _storage[leader.Id].AppliedSnapshot();
        Assert.Equal(zxids, reference);
        foreach (var id in _systems.Keys) Assert.Equal(reference, _storage[id].AppliedSnapshot());
    }

    [Fact]
    public async Task A_crashed_leader_is_replaced_and_no_committed_txn_is_lost()
    {
        var leader = await WaitForLeaderAsync(_systems.Keys, TimeSpan.FromSeconds(20));
        var before = await ProposeAsync(leader.Id, 30);
        await WaitAppliedAsync(_systems.Keys, before[^1], TimeSpan.FromSeconds(10));

        await _systems[leader.Id].Terminate();     // abrupt: its peers just stop hearing from it
        var survivors = _systems.Keys.Where(id => id != leader.Id).ToList();
        var next = await WaitForLeaderAsync(survivors, TimeSpan.FromSeconds(20), notId: leader.Id);
        output.WriteLine($"old leader {leader.Id} (epoch {leader.CurrentEpoch}), new leader {next.Id} (epoch {next.CurrentEpoch})");
        Assert.True(next.CurrentEpoch > leader.CurrentEpoch);

        var after = await ProposeAsync(next.Id, 30);
        await WaitAppliedAsync(survivors, after[^1], TimeSpan.FromSeconds(10));
        foreach (var id in survivors) Assert.Equal(before.Concat(after).ToList(), _storage[id].AppliedSnapshot());
        _systems.Remove(leader.Id);
    }

    [Fact]
    public async Task A_leader_partitioned_from_the_majority_steps_down_and_rejoins_with_identical_state()
    {
        var leader = await WaitForLeaderAsync(_systems.Keys, TimeSpan.FromSeconds(20));
        var before = await ProposeAsync(leader.Id, 20);
        await WaitAppliedAsync(_systems.Keys, before[^1], TimeSpan.FromSeconds(10));

        await SetPartitionAsync(leader.Id, Blackhole.Instance);
        var majority = _systems.Keys.Where(id => id != leader.Id).ToList();
        var next = await WaitForLeaderAsync(majority, TimeSpan.FromSeconds(20), notId: leader.Id);
        var old = await _peers[leader.Id].Ask<PeerActor.PeerStatus>(PeerActor.GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.False(old.Role == PeerState.Leading && old.ServesClients, "the isolated leader still claims to lead");
        // The isolated old leader cannot get anything committed.
        var refused = await _peers[leader.Id].Ask<LogAppendFailed>(new PeerActor.ProposeBatch([TestProposal(old.LastZxid + 1)]), TimeSpan.FromSeconds(3));
        Assert.Single(refused.Batch);

        var during = await ProposeAsync(next.Id, 20);
        await SetPartitionAsync(leader.Id, Unthrottled.Instance);
        await WaitAppliedAsync(_systems.Keys, during[^1], TimeSpan.FromSeconds(20));
        var status = await _peers[leader.Id].Ask<PeerActor.PeerStatus>(PeerActor.GetStatus.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal(PeerState.Following, status.Role);
        // Its host follows the core's role: as a follower it takes no proposals at all, and says why.
        var notLeading = await _peers[leader.Id].Ask<LogAppendFailed>(new PeerActor.ProposeBatch([TestProposal(status.LastZxid + 1)]), TimeSpan.FromSeconds(3));
        Assert.Contains("this server is Following, not the leader", notLeading.Cause.Message);
        foreach (var id in _systems.Keys) Assert.Equal(before.Concat(during).ToList(), _storage[id].AppliedSnapshot());
    }
}
