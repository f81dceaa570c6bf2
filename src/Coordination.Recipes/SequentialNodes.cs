using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// Shared by the locks, the latch, the semaphore and the queues: "protected" ephemeral-sequential nodes (Curator's protection mode). The node
/// name carries a per-instance GUID so that a create whose reply was lost (ConnectionLoss) can be found again
/// instead of leaving an orphan that would block everyone until the session ends.
/// </summary>
internal static class SequentialNodes
{
    public static string ProtectedPrefix(Guid id, string name) => $"_c_{id:N}-{name}";

    /// <summary>Creates the node (and missing parents), retrying under the policy; finds it again after a lost reply.</summary>
    public static async Task<string> CreateAsync(CoordinationClient client, string parent, Guid id, string name, byte[] data,
        IRetryPolicy retry, CancellationToken ct)
    {
        var prefix = ProtectedPrefix(id, name);
        return await RetryLoop.RunAsync(retry, async c =>
        {
            if (await FindAsync(client, parent, prefix, c).ConfigureAwait(false) is { } existing) return existing;
            try
            {
                return await client.CreateAsync(Paths.Join(parent, prefix), data, CreateMode.EphemeralSequential, ct: c).ConfigureAwait(false);
            }
            catch (NoNodeException)
            {
                await client.CreateRecursiveAsync(parent, ct: c).ConfigureAwait(false);
                return await client.CreateAsync(Paths.Join(parent, prefix), data, CreateMode.EphemeralSequential, ct: c).ConfigureAwait(false);
            }
        }, ct).ConfigureAwait(false);
    }

    private static async Task<string?> FindAsync(CoordinationClient client, string parent, string prefix, CancellationToken ct)
    {
        try
        {
            var children = await client.GetChildrenAsync(parent, ct: ct).ConfigureAwait(false);
            var mine = children.Children.FirstOrDefault(c => c.StartsWith(prefix, StringComparison.Ordinal));
            return mine is null ? null : Paths.Join(parent, mine);
        }
        catch (NoNodeException) { return null; }
    }

    /// <summary>The 10-digit sequence suffix of a sequential node name.</summary>
    public static long Sequence(string name) =>
        name.Length >= 10 && long.TryParse(name.AsSpan(name.Length - 10), out var seq) ? seq : long.MaxValue;

    /// <summary>Every lock-like name in one parent: mutex and latch contenders, and both sides of a read-write lock.</summary>
    public static readonly string[] LockNames = [DistributedLock.LockName, ReadWriteLock.ReadName, ReadWriteLock.WriteName, LeaderLatch.LatchName];

    /// <summary>The children of <paramref name="parent"/> whose names contain <paramref name="name"/>, in sequence order.</summary>
    public static Task<List<string>> SortedAsync(CoordinationClient client, string parent, string name, CancellationToken ct) =>
        SortedAsync(client, parent, [name], ct);

    /// <summary>The children whose names contain any of <paramref name="names"/>, in sequence order.</summary>
    public static async Task<List<string>> SortedAsync(CoordinationClient client, string parent, string[] names, CancellationToken ct)
    {
        var children = await client.GetChildrenAsync(parent, ct: ct).ConfigureAwait(false);
        return children.Children.Where(c => names.Any(n => c.Contains(n, StringComparison.Ordinal))).OrderBy(Sequence).ToList();
    }

    /// <summary>
    /// Deletes a node we own, "guaranteed" as Curator says: when the connection is lost before the delete is
    /// confirmed and the session may still be alive, it is tried again on the next reconnect, so that a lock or
    /// lease node is never left behind to block everyone for the rest of the session.
    /// </summary>
    public static async Task DeleteQuietlyAsync(CoordinationClient client, string path, IRetryPolicy retry)
    {
        try { await RetryLoop.RunAsync(retry, c => client.DeleteAsync(path, ct: c)).ConfigureAwait(false); }
        catch (NoNodeException) { }
        catch (KeeperException e) when (e.IsRetriable && !client.State.IsTerminal())
        {
            void OnState(ConnectionState s)
            {
                if (s.IsTerminal()) client.ConnectionStateChanged -= OnState;
                if (s != ConnectionState.Reconnected) return;
                client.ConnectionStateChanged -= OnState;
                _ = DeleteQuietlyAsync(client, path, retry);
            }
            client.ConnectionStateChanged += OnState;
            if (client.State.IsConnected()) OnState(ConnectionState.Reconnected); // reconnected before we subscribed
        }
        catch (KeeperException) { /* the session ends or already ended: the ephemeral goes with it */ }
    }
}
