using System.Collections.Concurrent;

namespace Coordination.Server.Sessions;

/// <summary>
/// The negotiated timeouts of the sessions one <see cref="SessionTrackerActor"/> knows (global and local), and the
/// shortest of them over every tracker in the process: what a pause of the whole process (a memory trim, see
/// <see cref="MemoryTrimPolicy"/>) must stay well below, since every ping waits through it. Written by its tracker
/// only; <see cref="Shortest"/> is read from any thread.
/// </summary>
internal sealed class SessionTimeouts
{
    private static readonly ConcurrentDictionary<SessionTimeouts, byte> Live = new();

    private readonly Dictionary<long, int> _bySession = new();
    /// <summary>How many sessions have each timeout, shortest first.</summary>
    private readonly SortedDictionary<int, int> _counts = new();
    private int _shortestMs = int.MaxValue;

    /// <summary>The shortest timeout of this tracker's sessions, or null when it has none.</summary>
    public TimeSpan? Shortest => Volatile.Read(ref _shortestMs) is var ms && ms != int.MaxValue ? TimeSpan.FromMilliseconds(ms) : null;

    public void Opened(long sessionId, int timeoutMs)
    {
        if (_bySession.TryGetValue(sessionId, out var previous))
        {
            if (previous == timeoutMs) return;
            Remove(previous);
        }
        _bySession[sessionId] = timeoutMs;
        _counts[timeoutMs] = _counts.GetValueOrDefault(timeoutMs) + 1;
        Publish();
    }

    public void Closed(long sessionId)
    {
        if (!_bySession.Remove(sessionId, out var timeout)) return;
        Remove(timeout);
        Publish();
    }

    private void Remove(int timeoutMs)
    {
        if (--_counts[timeoutMs] == 0) _counts.Remove(timeoutMs);
    }

    private void Publish()
    {
        Volatile.Write(ref _shortestMs, _counts.Count > 0 ? _counts.Keys.First() : int.MaxValue);
    }

    /// <summary>Counted in <see cref="ShortestInProcess"/> from now on (the tracker's start) until <see cref="Unregister"/> (its stop).</summary>
    public void Register() => Live.TryAdd(this, 0);

    public void Unregister() => Live.TryRemove(this, out _);

    /// <summary>The shortest session timeout any running tracker of this process knows, or null when none has a session.</summary>
    public static TimeSpan? ShortestInProcess()
    {
        TimeSpan? shortest = null;
        foreach (var (timeouts, _) in Live)
            if (timeouts.Shortest is { } t && (shortest is null || t < shortest)) shortest = t;
        return shortest;
    }
}
