namespace Coordination.Client;

/// <summary>
/// Decides whether another attempt is allowed and how long to sleep first. Used for connection attempts (between
/// rounds over the host list) and by <see cref="RetryLoop"/> for operations that failed with a retriable error.
/// </summary>
public interface IRetryPolicy
{
    /// <param name="retryCount">0 for the first retry.</param>
    /// <param name="elapsed">Time since the first attempt.</param>
    bool AllowRetry(int retryCount, TimeSpan elapsed, out TimeSpan sleep);
}

/// <summary>Exponential backoff with jitter: sleep a random time in [base·2ⁿ/2, base·2ⁿ], capped at maxSleep, at most maxRetries times.</summary>
public sealed class ExponentialBackoffRetry : IRetryPolicy
{
    public TimeSpan BaseSleep { get; }
    public TimeSpan MaxSleep { get; }
    public int MaxRetries { get; }

    public ExponentialBackoffRetry(TimeSpan baseSleep, int maxRetries, TimeSpan? maxSleep = null)
    {
        if (baseSleep <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(baseSleep));
        if (maxRetries < 0) throw new ArgumentOutOfRangeException(nameof(maxRetries));
        BaseSleep = baseSleep;
        MaxRetries = maxRetries;
        MaxSleep = maxSleep ?? TimeSpan.FromSeconds(30);
    }

    public bool AllowRetry(int retryCount, TimeSpan elapsed, out TimeSpan sleep)
    {
        sleep = TimeSpan.Zero;
        if (retryCount >= MaxRetries) return false;
        var ceiling = BaseSleep.TotalMilliseconds * Math.Pow(2, Math.Min(retryCount, 30));
        ceiling = Math.Min(ceiling, MaxSleep.TotalMilliseconds);
        sleep = TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
        return true;
    }

    public override string ToString() => $"ExponentialBackoffRetry(base {BaseSleep}, max {MaxSleep}, {MaxRetries} retries)";
}

/// <summary>Retries until a total time has elapsed, sleeping a fixed time (with ±20% jitter) between attempts.</summary>
public sealed class RetryUntilElapsed(TimeSpan maxElapsed, TimeSpan sleepBetween) : IRetryPolicy
{
    public TimeSpan MaxElapsed { get; } = maxElapsed;
    public TimeSpan SleepBetween { get; } = sleepBetween;

    public bool AllowRetry(int retryCount, TimeSpan elapsed, out TimeSpan sleep)
    {
        sleep = TimeSpan.FromMilliseconds(SleepBetween.TotalMilliseconds * (0.8 + 0.4 * Random.Shared.NextDouble()));
        if (elapsed + sleep > MaxElapsed) { sleep = TimeSpan.Zero; return false; }
        return true;
    }

    public override string ToString() => $"RetryUntilElapsed({MaxElapsed}, sleep {SleepBetween})";
}

/// <summary>Never retries.</summary>
public sealed class RetryNever : IRetryPolicy
{
    public static readonly RetryNever Instance = new();
    public bool AllowRetry(int retryCount, TimeSpan elapsed, out TimeSpan sleep) { sleep = TimeSpan.Zero; return false; }
}

/// <summary>Runs an operation, retrying it under a policy when it fails with a retriable <see cref="KeeperException"/> (ConnectionLoss, OperationTimeout...).</summary>
public static class RetryLoop
{
    public static async Task<T> RunAsync<T>(IRetryPolicy policy, Func<CancellationToken, Task<T>> operation, CancellationToken ct = default)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        for (var retry = 0; ; retry++)
        {
            ct.ThrowIfCancellationRequested();
            try { return await operation(ct).ConfigureAwait(false); }
            catch (KeeperException e) when (e.IsRetriable && policy.AllowRetry(retry, started.Elapsed, out var sleep))
            {
                await Task.Delay(sleep, ct).ConfigureAwait(false);
            }
        }
    }

    public static Task RunAsync(IRetryPolicy policy, Func<CancellationToken, Task> operation, CancellationToken ct = default) =>
        RunAsync<bool>(policy, async c => { await operation(c).ConfigureAwait(false); return true; }, ct);
}
