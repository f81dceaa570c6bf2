using Akka.Actor;
using Akka.Event;
using Coordination.Core.Zab;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Where a peer keeps its log and epochs, and where committed txns go. Appends may complete later (group commit);
/// the other operations finish before they return, so that what follows them in the protocol sees their effect.
/// </summary>
public interface IZabStorage : IZabLogView
{
    /// <summary>Appends entries; the task completes when they are durable.</summary>
    Task AppendAsync(IReadOnlyList<LogEntry> entries);
    void Truncate(long zxid);
    void SaveEpochs(long acceptedEpoch, long currentEpoch);
    void InstallSnapshot(long leader, long zxid);
    /// <summary>Applies committed txns up to <paramref name="zxid"/>.</summary>
    void Commit(long zxid);
    long AcceptedEpoch { get; }
    long CurrentEpoch { get; }
}

/// <summary>The members of an ensemble: server id → the Akka address of its node ("akka.tcp://system@host:port").</summary>
public sealed record EnsembleMembers(IReadOnlyDictionary<long, string> Voters, IReadOnlyDictionary<long, string> Observers)
{
    public string AddressOf(long id) => Voters.TryGetValue(id, out var a) ? a : Observers[id];
}

/// <summary>
/// Hosts one server's <see cref="ZabPeer"/> in an actor: delivers messages from other peers and ticks, carries out
/// the peer's outputs in order, and sends Zab messages to the other members' peer actors over Akka.Remote by actor
/// selection. It deliberately uses no remote DeathWatch and no cluster membership: Zab's own pings and limits decide
/// liveness and leadership (a watched peer would be quarantined for good after a long partition).
/// </summary>
public sealed class PeerActor : ReceiveActor, IWithTimers
{
    public const string Name = "zab-peer";

    /// <summary>Ask the leader to propose a txn; answered with <see cref="ProposeResult"/>.</summary>
    public sealed record ProposeTxn(Func<long, byte[]> PayloadForZxid);
    public sealed record ProposeResult(long Zxid, bool Accepted);
    /// <summary>Ask for the peer's state; answered with <see cref="PeerStatus"/>.</summary>
    public sealed class GetStatus { public static readonly GetStatus Instance = new(); }
    public sealed record PeerStatus(long Id, PeerState Role, long Leader, bool ServesClients, long CurrentEpoch, long Committed, long LastZxid);

    private sealed class Tick { public static readonly Tick Instance = new(); }
    private sealed record AppendDone(long UpTo);

    private readonly long _myId;
    private readonly EnsembleMembers _members;
    private readonly IZabStorage _storage;
    private readonly ZabSettings _settings;
    private readonly Func<long> _clock;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<long, ActorSelection> _peers = new();
    private readonly ZabPeer _peer;

    public ITimerScheduler Timers { get; set; } = null!;

    public PeerActor(long myId, EnsembleMembers members, IZabStorage storage, ZabSettings settings, Func<long> clock)
    {
        _myId = myId;
        _members = members;
        _storage = storage;
        _settings = settings;
        _clock = clock;
        _peer = new ZabPeer(myId, members.Voters.Keys, members.Observers.Keys, storage, storage.AcceptedEpoch, storage.CurrentEpoch, settings);

        Receive<ZabMessage>(m => Execute(_peer.Receive(m, _clock())));
        Receive<Tick>(_ => Execute(_peer.Tick(_clock())));
        Receive<AppendDone>(d => Execute(_peer.OnPersisted(d.UpTo, _clock())));
        Receive<ProposeTxn>(OnPropose);
        Receive<GetStatus>(_ => Sender.Tell(new PeerStatus(_myId, _peer.Role, _peer.Leader, _peer.ServesClients, _peer.CurrentEpoch, _peer.Committed, _storage.LastZxid)));
        Receive<Status.Failure>(f => _log.Error(f.Cause, "Zab log append failed"));
    }

    public static Props Props(long myId, EnsembleMembers members, IZabStorage storage, ZabSettings settings, Func<long> clock) =>
        Akka.Actor.Props.Create(() => new PeerActor(myId, members, storage, settings, clock));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(_settings.TickMs));
        Execute(_peer.Start(_clock()));
    }

    private void OnPropose(ProposeTxn propose)
    {
        if (_peer.AllocateZxid() is not { } zxid)
        {
            Sender.Tell(new ProposeResult(0, false));
            return;
        }
        Execute(_peer.Propose(new LogEntry(zxid, propose.PayloadForZxid(zxid))));
        Sender.Tell(new ProposeResult(zxid, true));
    }

    private void Execute(IReadOnlyList<ZabOutput> outputs)
    {
        foreach (var output in outputs)
        {
            switch (output)
            {
                case SendTo send:
                    PeerOf(send.To).Tell(send.Message, ActorRefs.NoSender);
                    break;
                case AppendEntries append:
                    var upTo = append.Entries[^1].Zxid;
                    _storage.AppendAsync(append.Entries).PipeTo(Self, success: () => new AppendDone(upTo));
                    break;
                case TruncateLog truncate:
                    _storage.Truncate(truncate.Zxid);
                    break;
                case InstallSnapshot snapshot:
                    _storage.InstallSnapshot(snapshot.Leader, snapshot.Zxid);
                    break;
                case SaveEpochs epochs:
                    _storage.SaveEpochs(epochs.AcceptedEpoch, epochs.CurrentEpoch);
                    break;
                case CommitUpTo commit:
                    _storage.Commit(commit.Zxid);
                    break;
                case RoleChanged role:
                    _log.Info("Server {0} is {1} (leader {2}, epoch {3}, serving: {4})", _myId, role.Role, role.Leader, role.Epoch, role.ServesClients);
                    Context.System.EventStream.Publish(role);
                    break;
            }
        }
    }

    private ActorSelection PeerOf(long id)
    {
        if (!_peers.TryGetValue(id, out var selection))
            _peers[id] = selection = Context.ActorSelection($"{_members.AddressOf(id)}/user/{Name}");
        return selection;
    }
}
