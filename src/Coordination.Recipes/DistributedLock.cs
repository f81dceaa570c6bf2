using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// Decides, from the contenders sorted by sequence, whether our node holds the lock and otherwise which node to wait
/// for (Curator's LockInternalsDriver). Waiting on one node only keeps a release from waking everyone (no herd).
/// </summary>
internal delegate (bool Acquired, string? WatchName) LockDriver(IReadOnlyList<string> sorted, int ourIndex);

/// <summary>
/// A reentrant distributed mutex (Curator's InterProcessMutex): contenders queue as ephemeral-sequential nodes under
/// <c>lockPath</c>; the lowest holds the lock and each waiter watches only its predecessor (no herd effect).
/// The instance is the owner: acquiring again on the same instance nests (count), and the lock is released when
/// the count returns to zero. Ownership is considered lost as soon as the connection is Suspended (the session may
/// be expiring and the next contender may be granted the lock), when the session expires or the client is closed,
/// and when the lock node vanishes (deleted by someone else): <see cref="IsHeld"/> turns false and
/// <see cref="LostToken"/> is cancelled. Do the guarded work under <see cref="LostToken"/>, then call
/// <see cref="ReleaseAsync"/> as usual, or take a <see cref="LockHandle"/> with <see cref="LockAsync"/> and
/// <c>await using</c> it. <see cref="FencingToken"/> lets a resource reject a stale holder.
/// </summary>
public sealed class DistributedLock
{
    private readonly CoordinationClient _client;
    private readonly string _lockPath;
    private readonly string _lockName;
    private readonly LockDriver _driver;
    private readonly byte[] _data;
    private readonly IRetryPolicy _retry;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile string? _node;
    private int _holdCount;
    private long _fencingToken;
    private CancellationTokenSource? _lost;

    public const string LockName = "lock-";

    public DistributedLock(CoordinationClient client, string lockPath, IRetryPolicy? retry = null, byte[]? data = null)
        : this(client, lockPath, LockName, MutexDriver(1), retry, data) { }

    internal DistributedLock(CoordinationClient client, string lockPath, string lockName, LockDriver driver, IRetryPolicy? retry, byte[]? data)
    {
        _client = client;
        _lockPath = lockPath;
        _lockName = lockName;
        _driver = driver;
        _data = data ?? [];
        _retry = retry ?? Waits.DefaultRetry();
        _client.ConnectionStateChanged += OnState;
    }

    /// <summary>The first <paramref name="maxHolders"/> contenders hold; a waiter watches the node that many places ahead.</summary>
    internal static LockDriver MutexDriver(int maxHolders) => (sorted, index) =>
        index < maxHolders ? (true, null) : (false, sorted[index - maxHolders]);

    public string LockPath => _lockPath;
    /// <summary>The node that represents this holder (null when not held).</summary>
    public string? NodePath => _node;
    /// <summary>True while this instance holds the lock and its session has not ended.</summary>
    public bool IsHeld => _holdCount > 0 && _lost is { IsCancellationRequested: false };
    /// <summary>Cancelled when ownership ends: release, or loss with the session (expiry, close) or of the node. A fresh token per acquisition.</summary>
    public CancellationToken LostToken => _lost?.Token ?? new CancellationToken(true);

    /// <summary>
    /// The fencing token of the current hold (0 when not held): the creation zxid (czxid) of our lock node. Every
    /// later holder's node was created after ours (the lock goes to the lowest sequence), so its token is greater:
    /// a resource that remembers the highest token it has accepted and refuses lower ones rejects a holder whose
    /// ownership ended without its knowing (a paused process, an expired session).
    /// </summary>
    public long FencingToken => Volatile.Read(ref _fencingToken);

    private void OnState(ConnectionState state)
    {
        // Suspended counts as lost: the server may already have expired the session and granted the lock to the
        // next contender before this client can know. Treat the critical section as over; release and re-acquire.
        if (state.IsTerminal() || state == ConnectionState.Suspended) MarkLost();
    }

    private void MarkLost() { try { _lost?.Cancel(); } catch (ObjectDisposedException) { } }

    /// <summary>
    /// Acquires the lock, waiting at most <paramref name="timeout"/> (null = until cancelled; zero = only if free now).
    /// Returns false on timeout.
    /// </summary>
    public async Task<bool> AcquireAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_holdCount > 0 && _node is not null && !(_lost?.IsCancellationRequested ?? true))
            {
                _holdCount++;
                return true;
            }
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var wait = timeout != TimeSpan.Zero;
            if (timeout is { } t && wait) deadline.CancelAfter(t);
            string? node = null;
            try
            {
                // A fresh id per attempt: a guaranteed delete of an earlier node may still be pending.
                node = await SequentialNodes.CreateAsync(_client, _lockPath, Guid.NewGuid(), _lockName, _data, _retry, ct).ConfigureAwait(false);
                if (!await WaitUntilAcquiredAsync(node, wait, deadline.Token).ConfigureAwait(false))
                {
                    await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
                    return false;
                }
                _node = node;
                _holdCount = 1;
                _lost?.Dispose();
                _lost = new CancellationTokenSource();
                if (_client.State.IsTerminal()) _lost.Cancel();
                await WatchOwnNodeAsync(node).ConfigureAwait(false);
                return true;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                if (node is not null) await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
                return false;
            }
            catch
            {
                if (node is not null) await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
                throw;
            }
        }
        finally { _gate.Release(); }
    }

    /// <summary>Ownership also ends when our node is deleted behind our back (an operator, or a lease revoked by hand).</summary>
    private async Task WatchOwnNodeAsync(string node)
    {
        void OnEvent(WatchedEvent e)
        {
            if (_node != node) return;
            if (e.Type == EventType.NodeDeleted) MarkLost();
            else if (e.Type != EventType.None) _ = WatchOwnNodeQuietlyAsync(node); // a data change consumed the one-shot watch: re-arm
        }
        try
        {
            if (await _client.ExistsAsync(node, OnEvent).ConfigureAwait(false) is { } stat) Volatile.Write(ref _fencingToken, stat.Czxid);
            else MarkLost();
        }
        catch (KeeperException) { MarkLost(); }
    }

    private async Task WatchOwnNodeQuietlyAsync(string node)
    {
        try { await WatchOwnNodeAsync(node).ConfigureAwait(false); } catch { }
    }

    private async Task<bool> WaitUntilAcquiredAsync(string node, bool wait, CancellationToken ct)
    {
        var name = Paths.Name(node);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var sorted = await Waits.Retry(_retry, c => SequentialNodes.SortedAsync(_client, _lockPath, SequentialNodes.LockNames, c), ct).ConfigureAwait(false);
            var index = sorted.IndexOf(name);
            if (index < 0) throw new NoNodeException(node, $"lock node {node} vanished (session expired?)");
            var (acquired, watchName) = _driver(sorted, index);
            if (acquired) return true;
            if (!wait) return false;
            var watched = Paths.Join(_lockPath, watchName!);
            await Waits.ArmAndWaitAsync(_client,
                async (watcher, c) => await Waits.Retry(_retry, cc => _client.ExistsAsync(watched, watcher, cc), c).ConfigureAwait(false) is not null,
                ct).ConfigureAwait(false);
        }
    }

    /// <summary>Releases one level of ownership; the node is deleted when the count reaches zero.</summary>
    public async Task ReleaseAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_holdCount == 0 || _node is null) throw new InvalidOperationException($"lock {_lockPath} is not held by this instance");
            if (--_holdCount > 0) return;
            var node = _node;
            _node = null;
            Volatile.Write(ref _fencingToken, 0);
            MarkLost();
            await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Acquires the lock (waiting at most <paramref name="timeout"/>, null = until cancelled) and returns a handle that
    /// releases it when disposed: <c>await using var held = await mutex.LockAsync(ct: ct);</c>.
    /// Throws <see cref="TimeoutException"/> when the lock was not acquired in time.
    /// </summary>
    public async Task<LockHandle> LockAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        if (!await AcquireAsync(timeout, ct).ConfigureAwait(false))
            throw new TimeoutException($"lock {_lockPath} not acquired within {timeout}");
        return new LockHandle(this, _node!, FencingToken, LostToken);
    }

    /// <summary>The data of every contender's node, holder first (participant ids for election views).</summary>
    public async Task<IReadOnlyList<(string Node, byte[] Data)>> GetContendersAsync(CancellationToken ct = default)
    {
        var result = new List<(string, byte[])>();
        List<string> sorted;
        try { sorted = await Waits.Retry(_retry, c => SequentialNodes.SortedAsync(_client, _lockPath, _lockName, c), ct).ConfigureAwait(false); }
        catch (NoNodeException) { return result; }
        foreach (var name in sorted)
        {
            try { result.Add((name, (await Waits.Retry(_retry, c => _client.GetDataAsync(Paths.Join(_lockPath, name), ct: c), ct).ConfigureAwait(false)).Data ?? [])); }
            catch (NoNodeException) { }
        }
        return result;
    }
}

/// <summary>
/// One hold of a <see cref="DistributedLock"/> (from <see cref="DistributedLock.LockAsync"/>): disposing it releases
/// that hold once. <see cref="FencingToken"/> and <see cref="LostToken"/> are those of the hold.
/// </summary>
public sealed class LockHandle : IAsyncDisposable
{
    private readonly DistributedLock _lock;
    private int _released;

    internal LockHandle(DistributedLock mutex, string nodePath, long fencingToken, CancellationToken lostToken)
    {
        _lock = mutex;
        NodePath = nodePath;
        FencingToken = fencingToken;
        LostToken = lostToken;
    }

    public string NodePath { get; }
    /// <summary>See <see cref="DistributedLock.FencingToken"/>: pass it with every write to the guarded resource.</summary>
    public long FencingToken { get; }
    /// <summary>Cancelled when this hold ends (release, or loss with the session or the node).</summary>
    public CancellationToken LostToken { get; }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) == 1) return;
        try { await _lock.ReleaseAsync().ConfigureAwait(false); }
        catch (InvalidOperationException) { } // already released by hand or lost with the session
    }
}
