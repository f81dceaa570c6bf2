namespace Coordination.Client;

public sealed record CoordinationClientOptions
{
    /// <summary><c>host:port[,host:port...][/chroot]</c>.</summary>
    public required string ConnectString { get; init; }
    /// <summary>Requested session timeout; the server negotiates it into [2, 20] ticks.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Timeout of one TCP connect plus handshake; default: session timeout / number of hosts (as ZooKeeper's client).
    /// Once a session exists an attempt is also bounded by a third of its negotiated timeout, so that a server that
    /// accepts and never answers leaves time to retry before the session expires.</summary>
    public TimeSpan? ConnectionTimeout { get; init; }
    /// <summary>
    /// Governs the initial connect (rounds over the host list) and the sleep between reconnect rounds. Once a session
    /// exists the client keeps trying until the session timeout has passed without a connection, then reports Expired.
    /// </summary>
    public IRetryPolicy RetryPolicy { get; init; } = new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(100), 10, TimeSpan.FromSeconds(2));
    /// <summary>Sent on every (re)connect before any request.</summary>
    public IReadOnlyList<AuthInfo> AuthInfo { get; init; } = [];
    /// <summary>Accept read-only servers (reported as <see cref="ConnectionState.ConnectedReadOnly"/>).</summary>
    public bool CanBeReadOnly { get; init; }
    /// <summary>Re-attach to an existing session (with <see cref="SessionPassword"/>); 0 for a new session.</summary>
    public long SessionId { get; init; }
    public byte[]? SessionPassword { get; init; }
    /// <summary>Connect over TLS (to servers' secure client ports); null = plain TCP.</summary>
    public ClientTlsOptions? Tls { get; init; }
    /// <summary>
    /// How reads (exists, getData, getChildren, getACL, getAllChildrenNumber, getEphemerals) are served.
    /// <see cref="ReadConsistency.Local"/> (ZooKeeper's reads): from the connected server's state, which may miss a
    /// write acknowledged elsewhere. <see cref="ReadConsistency.Linearizable"/>: each read sees every write acknowledged
    /// before it was sent, on any member, without a separate sync (a Coordination.Akka extension: an Apache ZooKeeper
    /// server answers it with Unimplemented).
    /// </summary>
    public ReadConsistency Reads { get; init; } = ReadConsistency.Local;
    /// <summary>
    /// Follow the ensemble's configuration: read <c>/zookeeper/config</c> with a watch on each new session and, when a
    /// reconfiguration commits, replace the host list by the members' client addresses and rebalance
    /// (<see cref="CoordinationClient.UpdateHosts"/>). Off by default, as ZooKeeper's client only updates when the
    /// application calls updateServerList: the configuration names the members' own client addresses, which a client
    /// behind NAT, a load balancer, a DNS name or TLS (the configuration has no secure port) cannot use.
    /// </summary>
    public bool UpdateHostsFromConfig { get; init; }
    /// <summary>Largest reply frame accepted (jute.maxbuffer).</summary>
    public int MaxFrameBytes { get; init; } = Coordination.Protocol.Framing.DefaultMaxFrame;
    /// <summary>Diagnostics (connects, disconnects, protocol errors) as text. Exceptions thrown by it are swallowed.
    /// Kept beside <see cref="Logger"/> for code written before it; either, both or neither may be set.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Diagnostics (connects at Information, disconnects and expiry at Warning, handler failures at Error).</summary>
    public Microsoft.Extensions.Logging.ILogger? Logger { get; init; }
    /// <summary>
    /// Opens a connection without a socket: a duplex stream straight to a server in this process (an ensemble member
    /// embedded in the application's ActorSystem, <c>CoordinationServer.ConnectInProcess</c>). Every (re)connect calls
    /// it instead of dialing; the stream carries the same frames as the client port, so sessions, ephemerals, watches
    /// and FIFO order are the port's own. The connect string's hosts are then unused (its chroot still applies).
    /// Null (the default): TCP to the connect string's hosts.
    /// </summary>
    public Func<CancellationToken, ValueTask<Stream>>? Connector { get; init; }
}

/// <summary>See <see cref="CoordinationClientOptions.Reads"/>.</summary>
public enum ReadConsistency
{
    /// <summary>ZooKeeper's reads: local to the connected server, possibly stale; call sync first for a fresh one.</summary>
    Local,
    /// <summary>Every read sees every write acknowledged before it was sent (one leader confirmation, shared by the reads waiting at once).</summary>
    Linearizable,
}
