namespace Coordination.Server.Network;

/// <summary>
/// A wake-up for async waiters: <see cref="WaitAsync"/> returns a task that the next <see cref="Set"/> completes.
/// Set costs one volatile read when nobody waits. A waiter takes the task first and then checks its condition
/// again, so a Set between the two is not lost.
/// </summary>
public sealed class AsyncSignal
{
    private TaskCompletionSource? _waiters;

    public Task WaitAsync()
    {
        var current = Volatile.Read(ref _waiters);
        if (current is not null) return current.Task;
        var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return (Interlocked.CompareExchange(ref _waiters, fresh, null) ?? fresh).Task;
    }

    public void Set()
    {
        if (Volatile.Read(ref _waiters) is not null) Interlocked.Exchange(ref _waiters, null)?.TrySetResult();
    }
}
