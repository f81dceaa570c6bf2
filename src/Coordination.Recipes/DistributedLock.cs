using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>
/// A reentrant distributed mutex (Curator's InterProcessMutex): contenders queue as ephemeral-sequential nodes under
/// <c>lockPath</c>; the lowest holds the lock and each waiter watches only its predecessor (no herd effect).
/// The instance is the owner: acquiring again on the same instance nests (count), and the lock is released when
/// the count returns to zero. Ownership is considered lost as soon as the connection is Suspended (the session may
/// be expiring and the next contender may be granted the lock) and when the session expires or the client is
/// closed: <see cref="IsHeld"/> turns false and <see cref="LostToken"/> is cancelled. Do the guarded work under
/// <see cref="LostToken"/>, then call <see cref="ReleaseAsync"/> as usual.
/// </summary>
public sealed class DistributedLock
{
    private readonly CoordinationClient _client;
    private readonly string _lockPath;
    private readonly IRetryPolicy _retry;
    private readonly Guid _id = Guid.NewGuid();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _node;
    private int _holdCount;
    private CancellationTokenSource? _lost;

    public const string LockName = "lock-";

    public DistributedLock(CoordinationClient client, string lockPath, IRetryPolicy? retry = null)
    {
        _client = client;
        _lockPath = lockPath;
        _retry = retry ?? new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromSeconds(1));
        _client.ConnectionStateChanged += OnState;
    }

    public string LockPath => _lockPath;
    /// <summary>The node that represents this holder (null when not held).</summary>
    public string? NodePath => _node;
    /// <summary>True while this instance holds the lock and its session has not ended.</summary>
    public bool IsHeld => _holdCount > 0 && _lost is { IsCancellationRequested: false };
    /// <summary>Cancelled when ownership ends: release, or loss with the session (expiry, close). A fresh token per acquisition.</summary>
    public CancellationToken LostToken => _lost?.Token ?? new CancellationToken(true);

    private void OnState(ConnectionState state)
    {
        // Suspended counts as lost: the server may already have expired the session and granted the lock to the
        // next contender before this client can know. Treat the critical section as over; release and re-acquire.
        if (state.IsTerminal() || state == ConnectionState.Suspended) { try { _lost?.Cancel(); } catch (ObjectDisposedException) { } }
    }

    /// <summary>Acquires the lock, waiting at most <paramref name="timeout"/> (null = until cancelled). Returns false on timeout.</summary>
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
            if (timeout is { } t) deadline.CancelAfter(t);
            string? node = null;
            try
            {
                node = await SequentialNodes.CreateAsync(_client, _lockPath, _id, LockName, [], _retry, deadline.Token).ConfigureAwait(false);
                await WaitUntilFirstAsync(node, deadline.Token).ConfigureAwait(false);
                _node = node;
                _holdCount = 1;
                _lost?.Dispose();
                _lost = new CancellationTokenSource();
                if (_client.State.IsTerminal()) _lost.Cancel();
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

    private async Task WaitUntilFirstAsync(string node, CancellationToken ct)
    {
        var name = node[(node.LastIndexOf('/') + 1)..];
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var sorted = await RetryLoop.RunAsync(_retry, c => SequentialNodes.SortedAsync(_client, _lockPath, LockName, c), ct).ConfigureAwait(false);
            var index = sorted.IndexOf(name);
            if (index < 0) throw new NoNodeException(node, $"lock node {node} vanished (session expired?)");
            if (index == 0) return;
            var predecessor = _lockPath + "/" + sorted[index - 1];
            var gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stat = await RetryLoop.RunAsync(_retry, c => _client.ExistsAsync(predecessor, _ => gone.TrySetResult(), c), ct).ConfigureAwait(false);
            if (stat is null) continue;
            // Also wake up on a state change: after a reconnect the watch is re-registered, after expiry we must fail.
            using var reg = ct.Register(() => gone.TrySetCanceled(ct));
            void OnState(ConnectionState s) { if (s.IsTerminal() || s == ConnectionState.Reconnected) gone.TrySetResult(); }
            _client.ConnectionStateChanged += OnState;
            try { await gone.Task.ConfigureAwait(false); }
            finally { _client.ConnectionStateChanged -= OnState; }
            if (_client.State.IsTerminal()) throw new SessionExpiredException(node, $"client is {_client.State} while waiting for {_lockPath}");
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
            try { _lost?.Cancel(); } catch (ObjectDisposedException) { }
            await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }
}
