using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// A FIFO queue across processes (the ZooKeeper queue recipe, Curator's SimpleDistributedQueue): every item is a
/// persistent-sequential node under <c>queuePath</c>, taken by deleting it, so each item goes to exactly one
/// consumer even when many compete (the delete decides; a loser moves on to the next item). Consumers that find
/// the queue empty wait on one children watch. Items survive the producer's and consumer's sessions.
/// A take that fails with <see cref="ConnectionLossException"/> may have removed the item without delivering it
/// (at-most-once), as in Curator.
/// </summary>
public class DistributedQueue
{
    private protected readonly CoordinationClient Client;
    private protected readonly string QueuePath;
    private protected readonly IRetryPolicy RetryPolicy;

    public const string ItemPrefix = "qn-";

    public DistributedQueue(CoordinationClient client, string queuePath, IRetryPolicy? retry = null)
    {
        Client = client;
        QueuePath = queuePath;
        RetryPolicy = retry ?? Waits.DefaultRetry();
    }

    public string Path => QueuePath;

    /// <summary>Adds an item at the tail; returns its node path.</summary>
    public Task<string> PutAsync(byte[] item, CancellationToken ct = default) => PutNamedAsync(ItemPrefix, item, ct);

    private protected async Task<string> PutNamedAsync(string prefix, byte[] item, CancellationToken ct)
    {
        var path = Paths.Join(QueuePath, prefix);
        // Not retried: a replayed create after a lost reply would enqueue the item twice.
        try { return await Client.CreateAsync(path, item, CreateMode.PersistentSequential, ct: ct).ConfigureAwait(false); }
        catch (NoNodeException)
        {
            await Waits.Retry(RetryPolicy, c => Client.CreateRecursiveAsync(QueuePath, ct: c), ct).ConfigureAwait(false);
            return await Client.CreateAsync(path, item, CreateMode.PersistentSequential, ct: ct).ConfigureAwait(false);
        }
    }

    /// <summary>The items in delivery order (names), without taking them.</summary>
    public async Task<IReadOnlyList<string>> ItemNamesAsync(CancellationToken ct = default) =>
        Order(await ChildrenAsync(null, ct).ConfigureAwait(false));

    /// <summary>Takes the head item if there is one (null when empty).</summary>
    public async Task<byte[]?> TryTakeAsync(CancellationToken ct = default) => (await TakeFromAsync(await ItemNamesAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false)).Item;

    /// <summary>Takes the head item, waiting for one; null when <paramref name="timeout"/> passed first.</summary>
    public async Task<byte[]?> TakeAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        byte[]? taken = null;
        var got = await Waits.UntilAsync(Client, async (watcher, c) =>
        {
            var (item, found) = await TakeFromAsync(Order(await ChildrenAsync(watcher, c).ConfigureAwait(false)), c).ConfigureAwait(false);
            taken = item;
            return !found;
        }, timeout, ct).ConfigureAwait(false);
        return got ? taken : null;
    }

    private async Task<(byte[]? Item, bool Found)> TakeFromAsync(IReadOnlyList<string> names, CancellationToken ct)
    {
        foreach (var name in names)
        {
            var path = Paths.Join(QueuePath, name);
            try
            {
                var data = await Waits.Retry(RetryPolicy, c => Client.GetDataAsync(path, ct: c), ct).ConfigureAwait(false);
                await Client.DeleteAsync(path, ct: ct).ConfigureAwait(false);
                return (data.Data ?? [], true);
            }
            catch (NoNodeException) { } // another consumer took it first
        }
        return (null, false);
    }

    private async Task<IReadOnlyList<string>> ChildrenAsync(Action<WatchedEvent>? watcher, CancellationToken ct)
    {
        try { return (await Waits.Retry(RetryPolicy, c => Client.GetChildrenAsync(QueuePath, watcher, c), ct).ConfigureAwait(false)).Children; }
        catch (NoNodeException)
        {
            await Waits.Retry(RetryPolicy, c => Client.CreateRecursiveAsync(QueuePath, ct: c), ct).ConfigureAwait(false);
            return (await Waits.Retry(RetryPolicy, c => Client.GetChildrenAsync(QueuePath, watcher, c), ct).ConfigureAwait(false)).Children;
        }
    }

    /// <summary>Delivery order of the item names: by sequence (FIFO) here.</summary>
    private protected virtual IReadOnlyList<string> Order(IEnumerable<string> names) =>
        names.Where(n => n.StartsWith(ItemPrefix, StringComparison.Ordinal)).OrderBy(SequentialNodes.Sequence).ToList();
}

/// <summary>
/// A priority queue (Curator's DistributedPriorityQueue): items with a lower priority number are taken first, FIFO
/// among equal priorities. The priority is encoded in the node name (<c>qn-&lt;biased priority&gt;-&lt;sequence&gt;</c>).
/// </summary>
public sealed class DistributedPriorityQueue(CoordinationClient client, string queuePath, IRetryPolicy? retry = null)
    : DistributedQueue(client, queuePath, retry)
{
    /// <summary>Adds an item with <paramref name="priority"/> (lower is taken first).</summary>
    public Task<string> PutAsync(byte[] item, int priority, CancellationToken ct = default) =>
        PutNamedAsync($"{ItemPrefix}{(long)priority - int.MinValue:D10}-", item, ct);

    private protected override IReadOnlyList<string> Order(IEnumerable<string> names) =>
        names.Where(n => n.StartsWith(ItemPrefix, StringComparison.Ordinal))
            .OrderBy(n => n.Length > ItemPrefix.Length + 10 ? n.Substring(ItemPrefix.Length, 10) : "", StringComparer.Ordinal)
            .ThenBy(SequentialNodes.Sequence).ToList();
}
