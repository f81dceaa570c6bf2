using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// A counting semaphore across processes (Curator's InterProcessSemaphoreV2): at most <c>maxLeases</c> leases are
/// out at a time. A lease is an ephemeral-sequential node under <c>path/leases</c>, so a crashed holder's lease
/// returns with its session. Acquisition is serialised by a mutex under <c>path/locks</c>: only the one acquirer
/// at the head of that line watches the lease count, so a returned lease wakes one waiter, not all (no herd).
/// </summary>
public sealed class DistributedSemaphore
{
    private readonly CoordinationClient _client;
    private readonly string _leasesPath;
    private readonly int _maxLeases;
    private readonly IRetryPolicy _retry;
    private readonly DistributedLock _acquireLock;
    private readonly Guid _id = Guid.NewGuid();

    public const string LeaseName = "lease-";

    public DistributedSemaphore(CoordinationClient client, string path, int maxLeases, IRetryPolicy? retry = null)
    {
        if (maxLeases < 1) throw new ArgumentOutOfRangeException(nameof(maxLeases));
        _client = client;
        _leasesPath = Paths.Join(path, "leases");
        _maxLeases = maxLeases;
        _retry = retry ?? Waits.DefaultRetry();
        _acquireLock = new DistributedLock(client, Paths.Join(path, "locks"), _retry);
    }

    public int MaxLeases => _maxLeases;

    /// <summary>Acquires one lease, waiting at most <paramref name="timeout"/> (null = until cancelled). Null on timeout.</summary>
    public async Task<SemaphoreLease?> AcquireAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        (await AcquireAsync(1, timeout, ct).ConfigureAwait(false))?.Single();

    /// <summary>Acquires <paramref name="count"/> leases (all or none) within <paramref name="timeout"/>. Null on timeout.</summary>
    public async Task<IReadOnlyList<SemaphoreLease>?> AcquireAsync(int count, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        if (count < 1 || count > _maxLeases) throw new ArgumentOutOfRangeException(nameof(count));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout is { } t) deadline.CancelAfter(t);
        var leases = new List<SemaphoreLease>();
        try
        {
            for (var i = 0; i < count; i++) leases.Add(await AcquireOneAsync(deadline.Token).ConfigureAwait(false));
            return leases;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await ReturnAllAsync(leases).ConfigureAwait(false);
            return null;
        }
        catch
        {
            await ReturnAllAsync(leases).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task ReturnAllAsync(IEnumerable<SemaphoreLease> leases)
    {
        foreach (var lease in leases) await lease.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<SemaphoreLease> AcquireOneAsync(CancellationToken ct)
    {
        if (!await _acquireLock.AcquireAsync(null, ct).ConfigureAwait(false)) throw new OperationCanceledException(ct);
        string? node = null;
        try
        {
            node = await SequentialNodes.CreateAsync(_client, _leasesPath, Guid.NewGuid(), LeaseName, [], _retry, ct).ConfigureAwait(false);
            var name = Paths.Name(node);
            while (await Waits.ArmAndWaitAsync(_client, async (watcher, c) =>
            {
                var leases = await Waits.Retry(_retry, cc => _client.GetChildrenAsync(_leasesPath, watcher, cc), c).ConfigureAwait(false);
                if (!leases.Children.Contains(name)) throw new NoNodeException(node, $"lease node {node} vanished (session expired?)");
                return leases.Children.Count > _maxLeases;
            }, ct).ConfigureAwait(false)) { }
            return new SemaphoreLease(_client, node, _retry);
        }
        catch
        {
            if (node is not null) await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
            throw;
        }
        finally { await _acquireLock.ReleaseAsync().ConfigureAwait(false); }
    }

    /// <summary>The lease nodes currently out (for monitoring).</summary>
    public async Task<IReadOnlyList<string>> GetLeaseNodesAsync(CancellationToken ct = default)
    {
        try { return (await Waits.Retry(_retry, c => _client.GetChildrenAsync(_leasesPath, ct: c), ct).ConfigureAwait(false)).Children; }
        catch (NoNodeException) { return []; }
    }
}

/// <summary>One lease of a <see cref="DistributedSemaphore"/>; dispose (or <see cref="ReturnAsync"/>) to give it back.</summary>
public sealed class SemaphoreLease : IAsyncDisposable
{
    private readonly CoordinationClient _client;
    private readonly IRetryPolicy _retry;
    private int _returned;

    internal SemaphoreLease(CoordinationClient client, string nodePath, IRetryPolicy retry)
    {
        _client = client;
        NodePath = nodePath;
        _retry = retry;
    }

    public string NodePath { get; }

    /// <summary>True while the lease node still exists (false after return, or once its session ended).</summary>
    public async Task<bool> IsValidAsync(CancellationToken ct = default) =>
        Volatile.Read(ref _returned) == 0 && _client.State.IsConnected() && await _client.ExistsAsync(NodePath, ct: ct).ConfigureAwait(false) is not null;

    public async Task ReturnAsync()
    {
        if (Interlocked.Exchange(ref _returned, 1) != 0) return;
        await SequentialNodes.DeleteQuietlyAsync(_client, NodePath, _retry).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await ReturnAsync().ConfigureAwait(false);
}
