using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Server.Persistence;

namespace Coordination.Server.Pipeline;

/// <summary>Admin → replica: replace the tree by <see cref="Tree"/> (ZooKeeper 3.9's restore command); answered
/// with <see cref="TreeRestored"/>.</summary>
internal sealed record RestoreTree(DataTree Tree);

/// <summary>The restore's outcome: the last zxid of the restored tree, or why it was refused.</summary>
internal sealed record TreeRestored(long LastZxid, string? Error);

// The admin restore command (ZooKeeper's ZooKeeperServer.restoreFromSnapshot): a standalone server's tree is replaced
// by a snapshot. As ZooKeeper blocks request submission while it restores, the replica stashes every message but the
// completions of what it had already handed to the log; once nothing is in flight it writes the restored tree as a
// snapshot at the current zxid (durable before it counts, so a restart finds it and replays only newer txns), swaps
// it in, and goes on with the stashed requests, which now see the restored tree. Sessions and watches as 3.9: see
// EndSessionsNotRestored. An ensemble member refuses: a
// restore of one replica behind Zab's back would make the members diverge (restore every member offline instead).
public sealed partial class ReplicaActor : IWithUnboundedStash
{
    public IStash Stash { get; set; } = null!;

    private sealed record RestorePersisted(DataTree Tree, IActorRef ReplyTo, Exception? Error);
    /// <summary>The restore waited this long for what was in flight to be applied: it is given up (answered with an
    /// error, the stashed requests served), so that a log that stopped answering cannot park every request forever.</summary>
    private static readonly TimeSpan RestoreIdleLimit = TimeSpan.FromSeconds(10);
    private sealed record RestoreIdleExpired;

    private void ReceiveRestoreMessages() => Receive<RestoreTree>(OnRestoreTree);

    private void OnRestoreTree(RestoreTree m)
    {
        if (_ensemble is not null)
        {
            Sender.Tell(new TreeRestored(-1, "restore is supported on a standalone server only: restore each ensemble member offline with --restore"));
            return;
        }
        var replyTo = Sender;
        AbortSnapshot();   // its file could be named as the restored one
        BecomeStacked(() =>
        {
            Receive<LogAppended>(appended => { OnLogAppended(appended); PersistRestoredIfIdle(m.Tree, replyTo); });
            Receive<LogAppendFailed>(failed => { OnLogAppendFailed(failed); PersistRestoredIfIdle(m.Tree, replyTo); });
            Receive<FlushLog>(_ => _core.Flush());
            Receive<SnapshotDone>(OnSnapshotDone);
            Receive<RestorePersisted>(OnRestorePersisted);
            Receive<RestoreIdleExpired>(_ =>
            {
                var why = $"the server did not become idle within {RestoreIdleLimit.TotalSeconds:0} s (its log did not answer); the tree is unchanged";
                _logger.Error("Restore given up: {0}", why);
                EndRestore(replyTo, new TreeRestored(-1, why));
            });
            ReceiveAny(_ => Stash.Stash());
        });
        Timers.StartSingleTimer("restore-idle", new RestoreIdleExpired(), RestoreIdleLimit);
        PersistRestoredIfIdle(m.Tree, replyTo);
    }

    /// <summary>Once every txn handed to the log has been applied: the restored tree takes the current zxid and is
    /// written durably in the background.</summary>
    private void PersistRestoredIfIdle(DataTree tree, IActorRef replyTo)
    {
        if (_core.Unlogged > 0 || _prep.NextZxid - 1 > _tree.LastZxid) return;
        Timers.Cancel("restore-idle");
        try
        {
            tree.AdoptForRestore(_tree.LastZxid, _tree.SessionSecret);
        }
        catch (InvalidOperationException e)
        {
            Self.Tell(new RestorePersisted(tree, replyTo, e));
            return;
        }
        if (_snapshots is not { } policy)
        {
            Self.Tell(new RestorePersisted(tree, replyTo, null));
            return;
        }
        var path = Path.Combine(policy.Files.Directory, SnapshotFiles.FileName(tree.LastZxid));
        Task.Run(() => SnapshotFiles.WriteDurably(path, tree.WriteSnapshot))
            .ContinueWith(t => new RestorePersisted(tree, replyTo, t.Exception?.GetBaseException()), TaskScheduler.Default)
            .PipeTo(Self);
    }

    private void OnRestorePersisted(RestorePersisted m)
    {
        if (m.Error is null)
        {
            _tree = m.Tree;
            _core.Prep = NewPreprocessor(_tree);
            ResetFeed();
            EndSessionsNotRestored();
            // The snapshot's sessions that no client holds now expire (and their ephemerals go with them).
            TrackAllSessions();
            _logger.Warning("Restored the tree from a snapshot: {0} znodes, last zxid 0x{1:x}", _tree.NodeCount, _tree.LastZxid);
            EndRestore(m.ReplyTo, new TreeRestored(_tree.LastZxid, null));
        }
        else
        {
            _logger.Error(m.Error, "Restore failed; the tree is unchanged");
            EndRestore(m.ReplyTo, new TreeRestored(-1, m.Error.Message));
        }
    }

    /// <summary>
    /// As ZooKeeper 3.9's restore (a new database with its own watch manager, a session tracker made from the
    /// snapshot's sessions): every watch set before is dropped, and a connected session that the snapshot does not
    /// hold is expired, so that its client learns that its ephemerals are gone (a lock holder must not go on as if
    /// it held the lock). The snapshot's sessions that are connected go on.
    /// </summary>
    private void EndSessionsNotRestored()
    {
        foreach (var (sessionId, session) in _sessions.ToList())
        {
            _watches.RemoveSession(sessionId);
            if (_tree.Sessions.ContainsKey(sessionId)) continue;
            _sessions.Remove(sessionId);
            EndSubscriptions(sessionId);
            _tracker.Tell(new SessionClosed(sessionId));
            session.Actor.Tell(new SessionEnded(session.NextSeq(), Expired: true));
        }
    }

    private void EndRestore(IActorRef replyTo, TreeRestored outcome)
    {
        replyTo.Tell(outcome);
        UnbecomeStacked();
        Stash.UnstashAll();
    }
}
