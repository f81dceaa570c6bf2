using System.Diagnostics;

namespace Coordination.Server;

/// <summary>Process-wide counters for the srvr, stat and mntr four-letter words.</summary>
public static class ServerStats
{
    public static long PacketsReceived;
    public static long PacketsSent;
    private static long _latencyCount;
    private static long _latencySumMicros;
    private static long _latencyMinMicros = long.MaxValue;
    private static long _latencyMaxMicros;

    public static void RecordLatency(long receivedTicks)
    {
        var micros = (long)Stopwatch.GetElapsedTime(receivedTicks).TotalMicroseconds;
        Interlocked.Increment(ref _latencyCount);
        Interlocked.Add(ref _latencySumMicros, micros);
        long current;
        while (micros < (current = Volatile.Read(ref _latencyMinMicros)) && Interlocked.CompareExchange(ref _latencyMinMicros, micros, current) != current) { }
        while (micros > (current = Volatile.Read(ref _latencyMaxMicros)) && Interlocked.CompareExchange(ref _latencyMaxMicros, micros, current) != current) { }
    }

    /// <summary>Min/avg/max latency in milliseconds, as ZooKeeper reports it.</summary>
    public static (double Min, double Avg, double Max, long Count) Latency()
    {
        var count = Volatile.Read(ref _latencyCount);
        if (count == 0) return (0, 0, 0, 0);
        return (Volatile.Read(ref _latencyMinMicros) / 1000.0, Volatile.Read(ref _latencySumMicros) / 1000.0 / count,
            Volatile.Read(ref _latencyMaxMicros) / 1000.0, count);
    }

    public static void Reset()
    {
        PacketsReceived = PacketsSent = 0;
        _latencyCount = _latencySumMicros = _latencyMaxMicros = 0;
        _latencyMinMicros = long.MaxValue;
    }
}
