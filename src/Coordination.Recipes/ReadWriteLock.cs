using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>
/// A reentrant read-write lock (Curator's InterProcessReadWriteLock): readers and writers queue as ephemeral-sequential
/// nodes under one path. A writer holds when it is first in line; a reader holds when no writer is ahead of it, and
/// waits on the first writer ahead otherwise. Both are reentrant per instance, and the holder of the write lock may
/// also take the read lock (downgrade: acquire read, then release write). A read holder cannot upgrade.
/// Loss rules are those of <see cref="DistributedLock"/>.
/// </summary>
public sealed class ReadWriteLock
{
    public const string ReadName = "__READ__";
    public const string WriteName = "__WRIT__";

    public ReadWriteLock(CoordinationClient client, string lockPath, IRetryPolicy? retry = null, byte[]? data = null)
    {
        WriteLock = new DistributedLock(client, lockPath, WriteName, DistributedLock.MutexDriver(1), retry, data);
        ReadLock = new DistributedLock(client, lockPath, ReadName, ReadDriver, retry, data);
    }

    public DistributedLock ReadLock { get; }
    public DistributedLock WriteLock { get; }

    private (bool, string?) ReadDriver(IReadOnlyList<string> sorted, int ourIndex)
    {
        if (WriteLock.IsHeld) return (true, null); // our own writer is ahead: reentrant downgrade
        for (var i = 0; i < ourIndex; i++)
            if (sorted[i].Contains(WriteName, StringComparison.Ordinal)) return (false, sorted[i]);
        return (true, null);
    }
}
