using System.Diagnostics;

namespace Coordination.Server;

/// <summary>
/// One server's counters for the srvr, stat and mntr four-letter words (packets and request latency). Held by its
/// <see cref="Metrics.ServerMetrics"/>, so servers sharing a process (the in-process TestEnsemble, an embedded
/// server) each report their own, as ZooKeeper's ServerStats does.
/// </summary>
public sealed class ServerStats
{
    private long _packetsReceived;
    private long _packetsSent;
    private long _latencyCount;
    private long _latencySumMicros;
    private long _latencyMinMicros = long.MaxValue;
    private long _latencyMaxMicros;

    public long PacketsReceived => Interlocked.Read(ref _packetsReceived);
    public long PacketsSent => Interlocked.Read(ref _packetsSent);
    public void AddPacketsReceived(long count) => Interlocked.Add(ref _packetsReceived, count);
    public void AddPacketsSent(long count) => Interlocked.Add(ref _packetsSent, count);

    /// <summary>Records a request's latency and returns it in milliseconds.</summary>
    public long RecordLatency(long receivedTicks)
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
    public (double Min, double Avg, double Max, long Count) Latency()
    {
        var count = Volatile.Read(ref _latencyCount);
        if (count == 0) return (0, 0, 0, 0);
        return (Volatile.Read(ref _latencyMinMicros) / 1000.0, Volatile.Read(ref _latencySumMicros) / 1000.0 / count,
            Volatile.Read(ref _latencyMaxMicros) / 1000.0, count);
    }

    public void Reset()
    {
        Interlocked.Exchange(ref _packetsReceived, 0);
        Interlocked.Exchange(ref _packetsSent, 0);
        Interlocked.Exchange(ref _latencyCount, 0);
        Interlocked.Exchange(ref _latencySumMicros, 0);
        Interlocked.Exchange(ref _latencyMaxMicros, 0);
        Interlocked.Exchange(ref _latencyMinMicros, long.MaxValue);
    }
}
