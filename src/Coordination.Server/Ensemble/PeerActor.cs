using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Where a peer keeps its log and epochs, and where committed txns go. Appends and truncations take effect in the
/// log at once, in order, and their tasks complete once they are durable (group commit); the other operations are
/// durable before they return.
/// </summary>
public interface IZabStorage : IZabLogView
{
    /// <summary>Appends entries; the task completes when they are durable.</summary>
    Task AppendAsync(IReadOnlyList<LogEntry> entries);
    /// <summary>Drops the entries after <paramref name="zxid"/>; the task completes when that is durable.</summary>
    Task TruncateAsync(long zxid);
    void SaveEpochs(long acceptedEpoch, long currentEpoch);
    /// <summary>Applies committed txns up to <paramref name="zxid"/>.</summary>
    void Commit(long zxid);
    long AcceptedEpoch { get; }
    long CurrentEpoch { get; }
}

/// <summary>The members of an ensemble: server id → the Akka address of its node ("akka.tcp://system@host:port").</summary>
public sealed record EnsembleMembers(IReadOnlyDictionary<long, string> Voters, IReadOnlyDictionary<long, string> Observers)
{
    public string AddressOf(long id) => Voters.TryGetValue(id, out var a) ? a : Observers[id];

    /// <summary>The configuration these members make (with its version and text); null means version 0 of exactly them.</summary>
    public ZabConfig? Config { get; init; }

    /// <summary>The Akka protocol of the addresses (e.g. akka.tcp), to spell the addresses of members a reconfig adds.</summary>
    public string Protocol { get; init; } = "akka.tcp";

    /// <summary>The members' ActorSystem name: <see cref="EnsembleSettings.SystemName"/>, or the application's when embedded.</summary>
    public string SystemName { get; init; } = EnsembleSettings.SystemName;
}

/// <summary>
/// Hosts one server's <see cref="ZabPeer"/> in an actor: delivers messages from other peers and ticks, carries out
/// the peer's outputs in order, and sends Zab messages to the other members' peer actors over Akka.Remote (by path,
/// see <see cref="RemotePaths"/>). It deliberately uses no remote DeathWatch and no cluster membership: Zab's own pings and limits decide
/// liveness and leadership (a watched peer would be quarantined for good after a long partition).
/// Transport concerns live here, not in the protocol: large SyncLearner messages travel in pieces, snapshots are
/// fetched from the leader in chunks, and the replica hears role changes and proposes through this actor.
/// </summary>
public sealed partial class PeerActor : ReceiveActor, IWithTimers, IWithUnboundedStash
{
    public const string Name = "zab-peer";
    /// <summary>Entries and snapshot bytes per remote message: well under the transport's maximum frame.</summary>
    private const int ChunkBytes = 1 << 20;

    /// <summary>The leader's replica proposes prepared txns (their zxids must be the peer's next ones).</summary>
    public sealed record ProposeBatch(IReadOnlyList<Proposal> Proposals);
    /// <summary>Ask for the peer's state; answered with <see cref="PeerStatus"/>.</summary>
    public sealed class GetStatus { public static readonly GetStatus Instance = new(); }
    public sealed record PeerStatus(long Id, PeerState Role, long Leader, bool ServesClients, long CurrentEpoch, long Committed, long LastZxid, long? NextZxid);
    /// <summary>The leader's replica holds a sync until this peer confirms it still leads (<see cref="ZabPeer.ConfirmLeadership"/>);
    /// answered with <see cref="LeadershipConfirmed"/>, or never if it stops leading (the replica hears <see cref="RoleChanged"/>).</summary>
    public sealed record ConfirmLeadership(long RequestId);
    /// <summary>The replica finished a snapshot that starts at <see cref="StartZxid"/>.</summary>
    public sealed record SnapshotTaken(long StartZxid);

    private sealed class Tick { public static readonly Tick Instance = new(); }
    /// <summary>A storage output is durable: reported to the peer with the zxid it names (<see cref="ZabPeer.OnPersisted"/>).</summary>
    private sealed record AppendDone(long UpTo);
    private sealed record PartWritten(long Offset);
    private sealed class FetchTimedOut { public static readonly FetchTimedOut Instance = new(); }

    private readonly long _myId;
    private readonly bool _reconfigEnabled;
    private EnsembleMembers _members;
    private readonly IZabStorage _storage;
    private readonly IZabSnapshots? _snapshots;
    private readonly ZabSettings _settings;
    private readonly Func<long> _clock;
    private readonly IActorRef _replica;
    private readonly EnsembleState? _state;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<long, IActorRef> _peers = new();
    private MemberSenders _senders;
    /// <summary>As <see cref="_senders"/>, and the servers only heard of (<see cref="ZabPeer.HeardOfConfig"/>): for
    /// election notifications alone.</summary>
    private MemberSenders _electionSenders;
    private readonly ZabPeer _peer;
    // Outputs not yet carried out: they wait while a snapshot is being fetched (everything after it depends on it).
    private readonly Queue<ZabOutput> _outputs = new();
    private InstallSnapshot? _installing;
    /// <summary>The role whose behaviour this actor has (null while it installs a snapshot).</summary>
    private PeerState? _behaviour = PeerState.Looking;
    private FileStream? _fetchFile;
    private long _fetchOffset;   // the offset of the part asked for and not yet received, -1 if none
    private readonly List<LogEntry> _syncPrefix = new();
    private readonly List<LogEntry> _gatheredAppends = new();
    private readonly Dictionary<long, List<LogEntry>> _gatheredProposals = new();

    public ITimerScheduler Timers { get; set; } = null!;
    public IStash Stash { get; set; } = null!;

    /// <param name="reconfigEnabled">The ensemble's membership is dynamic (coordination.reconfig-enabled): the first
    /// configuration is kept in the dynamic config file too once its first leader versioned it, so that a member's
    /// HOCON no longer decides its membership. Without it a member's membership stays its HOCON's.</param>
    public PeerActor(long myId, EnsembleMembers members, IZabStorage storage, ZabSettings settings, Func<long> clock,
        IActorRef? replica = null, EnsembleState? state = null, bool reconfigEnabled = false)
    {
        _reconfigEnabled = reconfigEnabled;
        _myId = myId;
        _members = members;
        _storage = storage;
        _snapshots = storage as IZabSnapshots;
        _settings = settings;
        _clock = clock;
        _replica = replica ?? ActorRefs.Nobody;
        _state = state;
        _senders = _electionSenders = new MemberSenders(members);
        _peer = new ZabPeer(myId, members.Config ?? new ZabConfig(members.Voters.Keys, members.Observers.Keys, 0), storage,
            storage.AcceptedEpoch, storage.CurrentEpoch, settings);
        state?.ConfigChanged(_peer.Config);

        Looking();
    }

    // ------------------------------------------------------------------ behaviours: one per role, and the SNAP phase
    //
    // The Zab core decides every role change; the host follows it after each batch of outputs (BecomeRole), so what a
    // reader sees here is the card's "leader, follower and observer actors exchanging proposals, acks and commits":
    // only a leader takes proposals and confirms leadership, only a learner takes its leader's sync, and while a
    // learner fetches a snapshot everything that depends on it waits in the stash.

    /// <summary>Electing: no proposals (the replica is told why), no sync to take.</summary>
    private void Looking()
    {
        RefuseUnvouched();
        Receive<ProposeBatch>(RefuseProposals);
        Receive<ConfirmLeadership>(_ => { });   // not leading: the replica hears it from RoleChanged
        Receive<SyncEntriesPart>(_ => { });     // from a leader this peer does not follow
        InAnyRole();
    }

    /// <summary>Leading: proposes the replica's txns, confirms leadership for syncs and linearizable reads, serves learners.</summary>
    private void Leading()
    {
        RefuseUnvouched();
        Receive<ProposeBatch>(OnProposeBatch);
        Receive<ConfirmLeadership>(m => Execute(_peer.ConfirmLeadership(m.RequestId)));
        Receive<SyncEntriesPart>(_ => { });
        InAnyRole();
    }

    /// <summary>Following: syncs from its leader, acks its proposals, applies its commits.</summary>
    private void Following()
    {
        RefuseUnvouched();
        Learning();
    }

    /// <summary>Observing: as a follower, but its acks do not count (the core sends none that do).</summary>
    private void Observing()
    {
        RefuseUnvouched();
        Learning();
    }

    private void Learning()
    {
        Receive<ProposeBatch>(RefuseProposals);
        Receive<ConfirmLeadership>(_ => { });
        // A large sync arrives in pieces before its SyncLearner; only the current leader's are kept.
        Receive<SyncEntriesPart>(part => { if (part.From == _peer.Leader) _syncPrefix.AddRange(part.Entries); });
        Receive<SyncLearner>(sync =>
        {
            if (_syncPrefix.Count > 0)
            {
                sync = sync with { Entries = [.. _syncPrefix, .. sync.Entries] };
                _syncPrefix.Clear();
            }
            Execute(_peer.Receive(sync, _clock()));
        });
        InAnyRole();
    }

    /// <summary>
    /// A learner fetching the leader's snapshot: what the core said after the install waits in <see cref="_outputs"/>,
    /// and Zab messages, syncs and leadership questions wait in the stash until the snapshot is installed.
    /// </summary>
    private void InstallingSnapshot()
    {
        RefuseUnvouched();
        Receive<SnapshotPart>(OnSnapshotPart);
        Receive<PartWritten>(w =>
        {
            _fetchOffset = w.Offset;
            PeerOf(_installing!.Leader).Tell(new FetchSnapshot(_myId, _installing.Zxid, w.Offset), Self);
        });
        Receive<FetchTimedOut>(_ => throw new TimeoutException($"fetching snapshot 0x{_installing?.Zxid:x} from server {_installing?.Leader} timed out"));
        Receive<ProposeBatch>(RefuseProposals);
        Receive<Tick>(_ => { });
        Receive<Akka.Remote.DisassociatedEvent>(_ => { });
        Housekeeping();
        // Everything else (Zab messages, batched proposals, sync pieces, leadership questions) waits for the install.
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>Whatever names a member (the From of Zab and ensemble messages) must come from that member's link:
    /// registered first in every behaviour. A server only heard of is answered in elections, and heard in nothing else.</summary>
    private void RefuseUnvouched()
    {
        Receive<ElectionMessage>(m => !_electionSenders.Vouches(Sender, m.From), Refuse);
        Receive<ZabMessage>(m => m is not ElectionMessage && !_senders.Vouches(Sender, m.From), Refuse);
        Receive<SyncEntriesPart>(m => !_senders.Vouches(Sender, m.From), Refuse);
        Receive<ProposeMany>(m => !_senders.Vouches(Sender, m.From), Refuse);
        Receive<FetchSnapshot>(m => !_senders.Vouches(Sender, m.From), Refuse);
        Receive<SnapshotPart>(m => !_senders.Vouches(Sender, m.From), Refuse);
    }

    /// <summary>What every role does alike: the core takes every Zab message and tick and decides by its own role.</summary>
    private void InAnyRole()
    {
        Receive<ZabMessage>(m =>
        {
            KillIfReconfigAcked(m);
            Execute(_peer.Receive(m, _clock()));
        });
        Receive<ProposeMany>(m =>
        {
            var now = _clock();
            var outputs = new List<ZabOutput>();
            foreach (var entry in m.Entries) outputs.AddRange(_peer.Receive(new Propose(m.From, entry), now));
            Execute(outputs);
        });
        Receive<Tick>(_ => Execute(_peer.Tick(_clock())));
        Receive<Akka.Remote.DisassociatedEvent>(e =>
        {
            if (_senders.MemberAt(e.RemoteAddress) is { } id) Execute(_peer.ConnectionLost(id, _clock()));
        });
        Receive<SnapshotPart>(_ => { });        // a late part of a fetch that is over
        Housekeeping();
    }

    /// <summary>Storage completions, snapshots served and taken, status and failures: the same in every behaviour.</summary>
    private void Housekeeping()
    {
        Receive<AppendDone>(d =>
        {
            KillIfReconfigLogged(d.UpTo);
            Execute(_peer.OnPersisted(d.UpTo, _clock()));
        });
        Receive<ConfigSaved>(OnConfigSaved);
        Receive<SnapshotTaken>(t =>
        {
            _snapshots?.SnapshotTaken(t.StartZxid);
            _state?.LogStarts(_storage.RetainedFrom);
        });
        // Served in any role: a learner may still fetch from a leader that has just stepped down (same file).
        Receive<FetchSnapshot>(ServeSnapshot);
        Receive<GetStatus>(_ => Sender.Tell(new PeerStatus(_myId, _peer.Role, _peer.Leader, _peer.ServesClients, _peer.CurrentEpoch, _peer.Committed, _storage.LastZxid, _peer.NextZxid)));
        // Every write piped back here (log appends and truncations, snapshot parts and installs, the dynamic config file).
        Receive<Status.Failure>(f => throw new IOException("a write of this member failed: " + f.Cause.Message, f.Cause));
    }

    /// <summary>The behaviour of the core's role, once no snapshot is being fetched.</summary>
    private void BecomeRole()
    {
        if (_installing is not null || _behaviour == _peer.Role) return;
        _behaviour = _peer.Role;
        Become(_peer.Role switch
        {
            PeerState.Leading => Leading,
            PeerState.Following => Following,
            PeerState.Observing => Observing,
            _ => Looking,
        });
    }

    /// <summary>Not leading (or no longer): none of the batch is proposed, and the replica re-prepares after it hears the new role.</summary>
    private void RefuseProposals(ProposeBatch batch)
    {
        if (batch.Proposals.Count == 0) return;
        Sender.Tell(new LogAppendFailed(batch.Proposals, new InvalidOperationException(
            $"not proposing 0x{batch.Proposals[0].Header.Zxid:x}: this server is {_peer.Role}, not the leader")));
    }

    private void Refuse(object message) => MemberSenders.Refuse(Context.System, _log, message, Sender);

    public static Props Props(long myId, EnsembleMembers members, IZabStorage storage, ZabSettings settings, Func<long> clock,
        IActorRef? replica = null, EnsembleState? state = null, bool reconfigEnabled = false) =>
        Akka.Actor.Props.Create(() => new PeerActor(myId, members, storage, settings, clock, replica, state, reconfigEnabled));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(_settings.TickMs));
        // A killed leader's connection closes long before the sync limit passes: react to that, as ZooKeeper does.
        Context.System.EventStream.Subscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
        Execute(_peer.Start(_clock()));
    }

    protected override void PostStop()
    {
        _fetchFile?.Dispose();
        base.PostStop();
    }

    private void OnProposeBatch(ProposeBatch batch)
    {
        var outputs = new List<ZabOutput>();
        for (var i = 0; i < batch.Proposals.Count; i++)
        {
            var proposal = batch.Proposals[i];
            if (_peer.NextZxid != proposal.Header.Zxid || _peer.AllocateZxid() is null)
            {
                // Leadership moved (or the replica's zxids are stale): nothing from here on is proposed.
                Sender.Tell(new LogAppendFailed(batch.Proposals.Skip(i).ToList(), new InvalidOperationException(
                    $"not proposing 0x{proposal.Header.Zxid:x}: this server is not an established leader at that zxid")));
                break;
            }
            var payload = Txns.Serialize(proposal.Header, proposal.Txn);
            var config = proposal is { Header.Type: Protocol.OpCode.Reconfig, Txn: SetDataTxn } ? ReconfigToPropose(ref payload, proposal) : null;
            _state?.Proposed(payload.Length);
            if (config is not null) OnReconfigProposed(proposal.Header.Zxid);
            outputs.AddRange(_peer.Propose(new LogEntry(proposal.Header.Zxid, payload, config)));
        }
        Execute(outputs);
    }

    private void Execute(IReadOnlyList<ZabOutput> outputs)
    {
        for (var i = 0; i < outputs.Count; i++) _outputs.Enqueue(outputs[i]);
        RefreshLinks();   // a server a reconfig just added may be sent to in these very outputs
        while (_installing is null && _outputs.TryDequeue(out var output)) CarryOut(output);
        FlushGathered();
        RefreshLinks();
        _state?.Update(_peer);
        _state?.LogStarts(_storage.RetainedFrom);
        BecomeRole();
    }

    /// <summary>
    /// Runs of log appends and of proposals to the same peer go out together: one group-commit append and one
    /// remote message per peer for a burst. Anything else is carried out only after what was gathered before it,
    /// so the order of the log and of each peer's messages is the protocol's. (The leader's sends do not wait for
    /// its own append: acks follow durability, not sends.)
    /// </summary>
    private void GatherProposal(long to, LogEntry entry)
    {
        if (!_gatheredProposals.TryGetValue(to, out var list)) _gatheredProposals[to] = list = new List<LogEntry>();
        list.Add(entry);
    }

    private void FlushGathered()
    {
        if (_gatheredAppends.Count > 0)
        {
            var entries = _gatheredAppends.ToArray();
            _gatheredAppends.Clear();
            var upTo = entries[^1].Zxid;
            _storage.AppendAsync(entries).PipeTo(Self, success: () => new AppendDone(upTo));
        }
        foreach (var (to, list) in _gatheredProposals)
        {
            if (list.Count == 0) continue;
            PeerOf(to).Tell(list.Count == 1 ? new Propose(_myId, list[0]) : new ProposeMany(_myId, list.ToArray()), Self);
            list.Clear();
        }
    }

    private void CarryOut(ZabOutput output)
    {
        switch (output)
        {
            case AppendEntries append:
                if (ReconfigFaultHooks.ActivateOnLog) SaveConfigsOnLog(append.Entries);
                _gatheredAppends.AddRange(append.Entries);
                return;
            case SendTo send when SendHeld(send.To):
                return;
            case SendTo { Message: Propose propose } send:
                GatherProposal(send.To, propose.Entry);
                return;
        }
        FlushGathered();
        switch (output)
        {
            case SendTo { Message: SyncLearner sync } send:
                SendSync(send.To, sync);
                break;
            case SendTo send:
                PeerOf(send.To).Tell(send.Message, Self);
                break;
            case TruncateLog truncate:
                _storage.TruncateAsync(truncate.Zxid).PipeTo(Self, success: () => new AppendDone(truncate.Zxid));
                break;
            case InstallSnapshot snapshot:
                BeginFetch(snapshot);
                break;
            case SaveEpochs epochs:
                _storage.SaveEpochs(epochs.AcceptedEpoch, epochs.CurrentEpoch);
                break;
            case SyncRefused refused:
                _log.Error("Server {0} refuses leader {1}'s sync: truncate to 0x{2:x}, below this member's snapshot at 0x{3:x}. " +
                    "Its history is not the leader's (restored from another snapshot than the quorum's?): restore it from the same " +
                    "snapshot as the others (--restore), or empty its data dir to take the leader's.", _myId, refused.Leader, refused.TruncateTo, refused.RetainedFrom);
                break;
            case CommitUpTo commit:
                KillIfReconfigCommitted(commit.Zxid);
                _storage.Commit(commit.Zxid);
                break;
            case ConfigActivated activated:
                OnConfigActivated(activated.Config);
                break;
            case LeadershipConfirmed confirmed:
                _replica.Tell(confirmed);
                break;
            case RoleChanged role:
                _log.Info("Server {0} is {1} (leader {2}, epoch {3}, serving: {4})", _myId, role.Role, role.Leader, role.Epoch, role.ServesClients);
                if (!role.ServesClients) _syncPrefix.Clear();
                // Told directly so that the replica sees it after the commits that precede it.
                _replica.Tell(role);
                Context.System.EventStream.Publish(role);
                break;
        }
    }

    /// <summary>Sends a SyncLearner, its leading entries in pieces when it would not fit one frame.</summary>
    private void SendSync(long to, SyncLearner sync)
    {
        _state?.Metrics?.RecordFollowerSync(sync.Mode switch
        {
            SyncMode.Snap => Metrics.EnsembleMetrics.SyncKind.Snap,
            SyncMode.Trunc or SyncMode.TruncThenDiff => Metrics.EnsembleMetrics.SyncKind.Trunc,
            _ => Metrics.EnsembleMetrics.SyncKind.Diff,
        });
        var peer = PeerOf(to);
        var start = 0;
        while (true)
        {
            long bytes = 0;
            var end = start;
            while (end < sync.Entries.Count && bytes + sync.Entries[end].Payload.Length + 12 <= ChunkBytes) bytes += sync.Entries[end++].Payload.Length + 12;
            if (end == start && end < sync.Entries.Count) end++;   // one entry larger than a chunk still goes alone
            if (end == sync.Entries.Count) break;
            peer.Tell(new SyncEntriesPart(_myId, sync.Entries.Skip(start).Take(end - start).ToList()), Self);
            start = end;
        }
        peer.Tell(start == 0 ? sync : sync with { Entries = sync.Entries.Skip(start).ToList() }, Self);
    }

    // ------------------------------------------------------------------ SNAP: fetch from the leader, in chunks

    private void BeginFetch(InstallSnapshot snapshot)
    {
        if (_snapshots is null) throw new NotSupportedException("this peer's storage cannot install snapshots");
        _installing = snapshot;
        _fetchOffset = -1;   // nothing is taken until the first part is asked for
        _behaviour = null;
        Become(InstallingSnapshot);
        _fetchFile = new FileStream(_snapshots.TemporaryPath(snapshot.Zxid), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        _log.Info("Fetching snapshot 0x{0:x} from server {1}", snapshot.Zxid, snapshot.Leader);
        Self.Tell(new PartWritten(0));
        ArmFetchTimeout();
    }

    private void ArmFetchTimeout() =>
        Timers.StartSingleTimer("fetch", FetchTimedOut.Instance, TimeSpan.FromMilliseconds(_settings.TickMs * _settings.InitLimitTicks));

    private void OnSnapshotPart(SnapshotPart part)
    {
        if (_installing is not { } installing || _fetchFile is not { } file) return;
        if (!part.Answers(installing.Leader, installing.Zxid, _fetchOffset))
        {
            _log.Warning("Ignoring a part of snapshot 0x{0:x} at offset {1} from server {2}: fetching 0x{3:x} from server {4} at offset {5}",
                part.Zxid, part.Offset, part.From, installing.Zxid, installing.Leader, _fetchOffset);
            return;
        }
        _fetchOffset = -1;   // one part per ask: a duplicate of this one is not written twice
        if (part.Missing) throw new IOException($"server {part.From} no longer has snapshot 0x{part.Zxid:x}");
        ArmFetchTimeout();
        if (!part.Last)
        {
            var next = part.Offset + part.Bytes.Length;
            file.WriteAsync(part.Bytes).AsTask().PipeTo(Self, success: () => new PartWritten(next));
            return;
        }
        file.Write(part.Bytes);
        file.Flush(flushToDisk: true);
        file.Dispose();
        _fetchFile = null;
        Timers.Cancel("fetch");
        _snapshots!.Install(_snapshots.TemporaryPath(installing.Zxid), installing.Zxid).PipeTo(Self, success: () => new AppendDone(installing.Zxid));
        _state?.SnapshotInstalled();
        _log.Info("Installed snapshot 0x{0:x} from server {1}", installing.Zxid, installing.Leader);
        _installing = null;
        Execute([]);
        Stash.UnstashAll();
    }

    /// <summary>Leader side: reads one chunk of the requested snapshot off the actor's thread and sends it back.</summary>
    private void ServeSnapshot(FetchSnapshot fetch)
    {
        var requester = Sender;
        var self = Self;
        var path = _snapshots?.SnapshotPath(fetch.Zxid);
        var myId = _myId;
        Task.Run(() =>
        {
            byte[] bytes;
            bool last;
            if (path is null)
            {
                if (fetch.Zxid != 0) return new SnapshotPart(myId, fetch.Zxid, fetch.Offset, [], true, Missing: true);
                // An ensemble that never snapshotted: its zxid-0 state is the empty tree.
                using var ms = new MemoryStream();
                new DataTree().WriteSnapshot(ms);
                return new SnapshotPart(myId, 0, 0, ms.ToArray(), true, false);
            }
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var length = RandomAccess.GetLength(handle);
            bytes = new byte[(int)Math.Clamp(length - fetch.Offset, 0, ChunkBytes)];
            var read = 0;
            while (read < bytes.Length) read += RandomAccess.Read(handle, bytes.AsSpan(read), fetch.Offset + read);
            last = fetch.Offset + bytes.Length >= length;
            return new SnapshotPart(myId, fetch.Zxid, fetch.Offset, bytes, last, false);
        }).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new SnapshotPart(myId, fetch.Zxid, fetch.Offset, [], true, Missing: true),
            TaskScheduler.Default).PipeTo(requester, self);
    }

    private IActorRef PeerOf(long id)
    {
        if (_peers.TryGetValue(id, out var peer)) return peer;
        if (!_knownAddresses.TryGetValue(id, out var address) && !_members.Voters.TryGetValue(id, out address) && !_members.Observers.TryGetValue(id, out address))
        {
            // No configuration this member knows has it: nowhere to send. (A throw here restarted the peer actor, which
            // re-elected and closed every client connection of this member.)
            _log.Warning("No address for server {0}: message dropped", id);
            return ActorRefs.Nobody;
        }
        return _peers[id] = RemotePaths.Resolve(Context.System, address + Self.Path.ToStringWithoutAddress());
    }
}
