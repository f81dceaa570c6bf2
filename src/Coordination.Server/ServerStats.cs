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

    /// <summary>Records a request's latency and returns it in milliseconds.</summary>
    public static long RecordLatency(long receivedTicks)
    {
        var micros = (long)Stopwatch.GetElapsedTime(receivedTicks).TotalMicroseconds;
        Interlocked.Increment(ref _latencyCount);
        Interlocked.Add(ref _latencySumMicros, micros);
        long current;
        while (micros < (current = Volatile.Read(ref _latencyMinMicros)) && Interlocked.CompareExchange(ref _latencyMinMicros, micros, current) != current) { }
        while (micros > (current = Volatile.Read(ref _latencyMaxMicros)) && Interlocked.CompareExchange(ref _latencyMaxMicros, micros, current) != current) { }
        return micros / 1000;
    }

    /// <summary>ZooKeeper's four-letter abbreviations of ops, shown as lop= by cons.</summary>
    public static string Abbreviation(Protocol.OpCode op) => op switch
    {
        Protocol.OpCode.Create or Protocol.OpCode.Create2 or Protocol.OpCode.CreateContainer or Protocol.OpCode.CreateTtl => "CREA",
        Protocol.OpCode.Delete => "DELE",
        Protocol.OpCode.Exists => "EXIS",
        Protocol.OpCode.GetData => "GETD",
        Protocol.OpCode.SetData => "SETD",
        Protocol.OpCode.GetAcl => "GETA",
        Protocol.OpCode.SetAcl => "SETA",
        Protocol.OpCode.GetChildren => "GETC",
        Protocol.OpCode.GetChildren2 => "GETC",
        Protocol.OpCode.Sync => "SYNC",
        Protocol.OpCode.Ping => "PING",
        Protocol.OpCode.Multi => "MULT",
        Protocol.OpCode.MultiRead => "MLTR",
        Protocol.OpCode.SetWatches or Protocol.OpCode.SetWatches2 => "SETW",
        Protocol.OpCode.AddWatch => "ADDW",
        Protocol.OpCode.CloseSession => "CLOS",
        Protocol.OpCode.WhoAmI => "HOMI",
        Protocol.OpCode.CheckWatches => "CHKW",
        Protocol.OpCode.RemoveWatches => "REMW",
        Protocol.OpCode.GetEphemerals => "GETE",
        Protocol.OpCode.GetAllChildrenNumber => "GETACN",
        Protocol.OpCode.Check => "CHEC",
        Protocol.OpCode.LinearizableRead => "LINR",
        Protocol.OpCode.WatchChanges => "WCHG",
        Protocol.OpCode.StopChanges => "SCHG",
        _ => "NA",
    };

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
