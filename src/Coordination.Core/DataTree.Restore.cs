namespace Coordination.Core;

public sealed partial class DataTree
{
    /// <summary>
    /// Makes a tree read from a snapshot take the place of a live one (the admin <c>restore</c> command): its last
    /// zxid becomes the later of its own and <paramref name="lastZxid"/> (the live tree's), so that the txns that
    /// follow keep increasing zxids and a restart reads it and then only newer txns; it keeps the deployment's
    /// session secret, so that live sessions' passwords still hold; and the live sessions stay open in it (without
    /// ephemerals), while the snapshot's other sessions expire as sessions whose clients never return.
    /// </summary>
    public void AdoptForRestore(long lastZxid, byte[]? sessionSecret, IReadOnlyDictionary<long, int> liveSessions)
    {
        if (ReplayMode || SnapshotEndZxid != _lastZxid) throw new InvalidOperationException("a fuzzy snapshot needs its journal replayed first");
        _lastZxid = Math.Max(_lastZxid, lastZxid);
        SnapshotEndZxid = _lastZxid;
        SessionSecret = sessionSecret ?? SessionSecret;
        foreach (var (sessionId, timeoutMs) in liveSessions) _sessions.TryAdd(sessionId, timeoutMs);
    }
}
