namespace Coordination.Core;

public sealed partial class DataTree
{
    /// <summary>
    /// Makes a tree read from a snapshot take the place of a live one (the admin <c>restore</c> command, or
    /// <c>--restore</c> on an ensemble member): its last zxid becomes the later of its own and
    /// <paramref name="lastZxid"/>, so that the txns that follow keep increasing zxids and a restart reads it and then
    /// only newer txns; with <paramref name="sessionSecret"/> it keeps the deployment's session secret, so that the
    /// passwords of the snapshot's sessions that are still connected hold. Its sessions are the snapshot's, as in
    /// ZooKeeper 3.9's restore (a new session tracker from the restored database).
    /// </summary>
    public void AdoptForRestore(long lastZxid, byte[]? sessionSecret)
    {
        if (ReplayMode || SnapshotEndZxid != _lastZxid) throw new InvalidOperationException("a fuzzy snapshot needs its journal replayed first");
        _lastZxid = Math.Max(_lastZxid, lastZxid);
        SnapshotEndZxid = _lastZxid;
        SessionSecret = sessionSecret ?? SessionSecret;
    }
}
