using Akka.Actor;
using Coordination.Core.Replica;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.Server.Persistence;

namespace Coordination.Server.Pipeline;

// The replica's behaviour per role (ReplicaCore's ReplicaRole), switched with Become when the peer reports a new
// role (OnRoleChanged). What every role does (client requests, the log's answers, commits, snapshots, stats, the
// member messages of an ensemble) is received alike; what differs is received here: whether sessions are created
// and re-attached at all (the core decides how, by its role), and who expires them and reaps containers.
public sealed partial class ReplicaActor
{
    /// <summary>Every role: requests, the log's answers, snapshots, stats, and (in an ensemble) member messages.</summary>
    private void ReceiveCommon()
    {
        Receive<ClientRequest>(OnClientRequest);
        Receive<LogAppended>(OnLogAppended);
        Receive<LogAppendFailed>(OnLogAppendFailed);
        Receive<ConnectionLost>(OnConnectionLost);
        Receive<GetReplicaStats>(OnGetStats);
        Receive<GetNodeAcl>(q => Sender.Tell(new NodeAcl(_tree.Find(q.Path)?.Acl)));
        Receive<FlushLog>(_ => _core.Flush());
        Receive<SnapshotChunk>(m =>
        {
            if (ReferenceEquals(m.Snapshot, _snapshot)) WriteSnapshotChunk();
        });
        Receive<SnapshotDone>(OnSnapshotDone);
        Receive<TakeSnapshot>(_ =>
        {
            // The admin snapshot is serialized in this one turn, so the file is a consistent (not fuzzy) snapshot:
            // what GET /commands/snapshot streams is what POST /commands/restore takes.
            var started = StartSnapshot(whole: true);
            Sender.Tell(started ? _snapshotWriter!.StartZxid : -1L);
        });
        ReceiveFeedMessages();
        ReceiveRestoreMessages();
        if (_ensemble is null) return;
        ReceiveEnsembleMessages();
        if (_settings.ReadOnlyMode) ReceiveReadOnlyMessages();
        if (_settings.LocalSessionsEnabled) ReceiveLocalSessionMessages();
    }

    /// <summary>A standalone server: it serves, prepares every write and commits through its journal.</summary>
    private void Standalone()
    {
        ReceiveCommon();
        ReceiveAsDecider();
    }

    /// <summary>An established leader: as standalone; the writes, session creations and syncs its followers forward
    /// are received in every role (ReceiveEnsembleMessages) and taken by the core while it leads.</summary>
    private void Leader()
    {
        ReceiveCommon();
        ReceiveAsDecider();
    }

    /// <summary>
    /// A synchronised follower or observer: it serves reads, and the core forwards writes and session creations to
    /// the leader and syncs with the leader before it says a session it has not applied is gone. The leader expires sessions.
    /// </summary>
    private void Learner()
    {
        ReceiveCommon();
        ReceiveSessionRequests();
        ReceiveAsNonLeader();
    }

    /// <summary>Standalone, leader, learner: sessions are created and re-attached (by the core, as its role says).</summary>
    private void ReceiveSessionRequests()
    {
        Receive<CreateSession>(CreateSession);
        Receive<ValidateSession>(ValidateSession);
    }

    /// <summary>
    /// Looking for a leader, or synchronising with one: no client is served (their connections are closing, and they
    /// try another server), nothing is prepared, and what other members forward is refused.
    /// </summary>
    private void NotServing()
    {
        ReceiveCommon();
        Receive<CreateSession>(_ => { });
        Receive<ValidateSession>(_ => { });
        ReceiveAsNonLeader();
    }

    /// <summary>Standalone and leader: sessions are created and expired here, containers and TTL nodes reaped.</summary>
    private void ReceiveAsDecider()
    {
        ReceiveSessionRequests();
        Receive<ExpireSession>(ExpireSession);
        Receive<ReapTick>(_ => Reap());
    }

    /// <summary>Follower, observer, not serving: expiry and reaping are the leader's (a forward is refused by the
    /// core: its sender closes that client's connection, and the client asks again where a leader serves).</summary>
    private void ReceiveAsNonLeader()
    {
        Receive<ExpireSession>(_ => { });
        Receive<ReapTick>(_ => { });
    }

    /// <summary>Switches to the behaviour of the core's role.</summary>
    private void BecomeRole() => Become(_core.Role switch
    {
        ReplicaRole.Standalone => Standalone,
        ReplicaRole.Leader => Leader,
        ReplicaRole.Follower or ReplicaRole.Observer => Learner,
        _ => NotServing,
    });
}
