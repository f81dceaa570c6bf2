namespace Coordination.Server.Metrics;

/// <summary>
/// How often each client-port bound (README "Resource bounds") acted, under ZooKeeper's metric names where it has
/// one. Reported by mntr (with the zk_ prefix) and so by /metrics. One set per server (see <see cref="ServerMetrics"/>).
/// </summary>
public sealed class ClientPortMetrics
{
    private long _connectionRejected;
    private long _totalLimitRejected;
    private long _sessionlessExpired;
    private long _queueLimitDrops;
    private long _flushTimeoutDrops;
    private long _throttleWaits;
    private long _largeResponsesRejected;
    private long _acceptFailures;
    private long _linearizableReads;

    /// <summary>Connections closed at accept because of max-connections or max-client-connections (ZooKeeper's name, both causes).</summary>
    public long ConnectionRejected => Interlocked.Read(ref _connectionRejected);
    /// <summary>Of those, the ones closed because max-connections were open in total.</summary>
    public long TotalLimitRejected => Interlocked.Read(ref _totalLimitRejected);
    /// <summary>Connections closed because they did not complete the handshake in time (ZooKeeper's name).</summary>
    public long SessionlessConnectionsExpired => Interlocked.Read(ref _sessionlessExpired);
    /// <summary>Connections closed because more than max-queued-bytes-per-connection was queued to them.</summary>
    public long QueueLimitDrops => Interlocked.Read(ref _queueLimitDrops);
    /// <summary>Connections closed because a socket write did not complete within flush-timeout.</summary>
    public long FlushTimeoutDrops => Interlocked.Read(ref _flushTimeoutDrops);
    /// <summary>Times a connection stopped reading because global-outstanding-limit was reached (ZooKeeper's name).</summary>
    public long RequestThrottleWaits => Interlocked.Read(ref _throttleWaits);
    /// <summary>Reads refused with MarshallingError because their response would exceed max-response-size.</summary>
    public long LargeResponsesRejected => Interlocked.Read(ref _largeResponsesRejected);
    /// <summary>Failed accepts (e.g. out of file descriptors); the accept loop pauses after each.</summary>
    public long AcceptFailures => Interlocked.Read(ref _acceptFailures);

    public void ConnectionRejectedOnce(bool totalLimit)
    {
        Interlocked.Increment(ref _connectionRejected);
        if (totalLimit) Interlocked.Increment(ref _totalLimitRejected);
    }
    public void SessionlessExpiredOnce() => Interlocked.Increment(ref _sessionlessExpired);
    public void QueueLimitDropOnce() => Interlocked.Increment(ref _queueLimitDrops);
    public void FlushTimeoutDropOnce() => Interlocked.Increment(ref _flushTimeoutDrops);
    public void ThrottleWaitOnce() => Interlocked.Increment(ref _throttleWaits);
    public void LargeResponseRejectedOnce() => Interlocked.Increment(ref _largeResponsesRejected);
    public void AcceptFailureOnce() => Interlocked.Increment(ref _acceptFailures);
    /// <summary>Linearizable reads received (op LinearizableRead, a Coordination.Akka extension).</summary>
    public long LinearizableReads => Interlocked.Read(ref _linearizableReads);
    public void LinearizableReadOnce() => Interlocked.Increment(ref _linearizableReads);

    private Func<long>? _outstanding;
    private Func<long>? _outstandingBytes;
    /// <summary>Requests read from clients and not yet answered, server-wide: the count global-outstanding-limit bounds (a gauge).</summary>
    public long ClientRequestsOutstanding => _outstanding?.Invoke() ?? 0;
    /// <summary>Their bytes as framed, the requests to the replica only: what global-outstanding-bytes bounds (a gauge).</summary>
    public long ClientRequestBytesOutstanding => _outstandingBytes?.Invoke() ?? 0;
    internal void TrackOutstanding(Func<long> outstanding, Func<long> bytes) => (_outstanding, _outstandingBytes) = (outstanding, bytes);

    /// <summary>The mntr lines (name without zk_, value); all but the client_request*_outstanding gauges are counters.</summary>
    public IEnumerable<(string Name, long Value)> Values()
    {
        yield return ("connection_rejected", ConnectionRejected);
        yield return ("connection_rejected_max_connections", TotalLimitRejected);
        yield return ("sessionless_connections_expired", SessionlessConnectionsExpired);
        yield return ("connections_dropped_queue_full", QueueLimitDrops);
        yield return ("connections_dropped_flush_timeout", FlushTimeoutDrops);
        yield return ("request_throttle_wait_count", RequestThrottleWaits);
        yield return ("large_responses_rejected", LargeResponsesRejected);
        yield return ("accept_failures", AcceptFailures);
        yield return ("linearizable_reads", LinearizableReads);
        yield return ("client_requests_outstanding", ClientRequestsOutstanding);
        yield return ("client_request_bytes_outstanding", ClientRequestBytesOutstanding);
        foreach (var value in Feed.Values()) yield return value;
    }

    /// <summary>The change feed served on the client port (its values are among <see cref="Values"/>).</summary>
    public ChangeFeedMetrics Feed { get; } = new();

    /// <summary>The counters among <see cref="Values"/>, for the Prometheus TYPE line.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string>
    {
        "connection_rejected", "connection_rejected_max_connections", "sessionless_connections_expired", "connections_dropped_queue_full",
        "connections_dropped_flush_timeout", "request_throttle_wait_count", "large_responses_rejected", "accept_failures",
        "linearizable_reads", "change_feed_events_sent", "change_feed_compacted",
    };
}
