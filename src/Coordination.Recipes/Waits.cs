using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>
/// The one "arm a watch, then wait" loop every blocking recipe uses. <c>arm</c> reads the state it cares about and
/// sets a one-shot watch; it returns false when the wait is already over. The wait also ends on a reconnect (the
/// state may have moved while we were away) and fails on expiry or close, so no recipe hangs on a dead session.
/// </summary>
internal static class Waits
{
    public static async Task<bool> ArmAndWaitAsync(CoordinationClient client, Func<Action<WatchedEvent>, CancellationToken, Task<bool>> arm,
        CancellationToken ct)
    {
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnState(ConnectionState s) { if (s.IsTerminal() || s == ConnectionState.Reconnected) fired.TrySetResult(); }
        client.ConnectionStateChanged += OnState;
        try
        {
            if (!await arm(_ => fired.TrySetResult(), ct).ConfigureAwait(false)) return false;
            using var reg = ct.Register(() => fired.TrySetCanceled(ct));
            await fired.Task.ConfigureAwait(false);
        }
        finally { client.ConnectionStateChanged -= OnState; }
        ThrowIfEnded(client);
        return true;
    }

    /// <summary>
    /// Re-arms and waits until <c>arm</c> says the wait is over; false when <paramref name="timeout"/> passed first
    /// (null = wait until <paramref name="ct"/>).
    /// </summary>
    public static async Task<bool> UntilAsync(CoordinationClient client, Func<Action<WatchedEvent>, CancellationToken, Task<bool>> arm,
        TimeSpan? timeout, CancellationToken ct)
    {
        if (timeout == TimeSpan.Zero) return !await arm(_ => { }, ct).ConfigureAwait(false); // check once, never wait
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout is { } t) deadline.CancelAfter(t);
        try
        {
            while (await ArmAndWaitAsync(client, arm, deadline.Token).ConfigureAwait(false)) { }
            return true;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return false; }
    }

    public static void ThrowIfEnded(CoordinationClient client)
    {
        if (client.State.IsTerminal()) throw new SessionExpiredException(null, $"client is {client.State}");
    }

    /// <summary>Waits until the client is connected again (after a restart when it expired), or <paramref name="ct"/>.</summary>
    public static async Task WaitUntilConnectedAsync(CoordinationClient client, CancellationToken ct)
    {
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnState(ConnectionState s) { if (s.IsConnected()) connected.TrySetResult(); }
        client.ConnectionStateChanged += OnState;
        try
        {
            if (client.State.IsConnected()) return;
            using var reg = ct.Register(() => connected.TrySetCanceled(ct));
            await connected.Task.ConfigureAwait(false);
        }
        finally { client.ConnectionStateChanged -= OnState; }
    }

    public static IRetryPolicy DefaultRetry() => new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromSeconds(1));

    /// <summary>A retry loop over the recipe's policy (idempotent reads and creates/deletes that tolerate a replay).</summary>
    public static Task<T> Retry<T>(IRetryPolicy policy, Func<CancellationToken, Task<T>> op, CancellationToken ct) => RetryLoop.RunAsync(policy, op, ct);
    public static Task Retry(IRetryPolicy policy, Func<CancellationToken, Task> op, CancellationToken ct) => RetryLoop.RunAsync(policy, op, ct);
}
