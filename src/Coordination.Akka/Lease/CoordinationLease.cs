using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.Coordination;
using Akka.Event;
using Coordination.Client;
using Coordination.Protocol;
using Coordination.Recipes;

namespace Coordination.Akka.Lease;

/// <summary>The lease section (defaults in reference.conf under <c>akka.coordination.lease.coordination</c>).</summary>
public sealed record CoordinationLeaseSettings(ConnectionSettings Connection, string RootPath, TimeSpan OperationTimeout)
{
    public static CoordinationLeaseSettings Create(LeaseSettings settings)
    {
        var section = settings.LeaseConfig.WithFallback(CoordinationAkka.DefaultConfig().GetConfig("akka.coordination.lease.coordination"));
        var root = section.GetString("root-path", "/akka/leases").TrimEnd('/');
        if (Paths.Validate(root) is { } error) throw new ConfigurationException($"root-path '{root}': {error}");
        return new CoordinationLeaseSettings(ConnectionSettings.Create(section), root, settings.TimeoutSettings.OperationTimeout);
    }
}

/// <summary>
/// An <see cref="global::Akka.Coordination.Lease"/> backed by the coordination service: the lease is a
/// <see cref="DistributedLock"/> at <c>root-path/&lt;lease name&gt;</c> whose node holds the owner name.
/// <see cref="Acquire()"/> does not queue: it returns true when the lock is free (or already ours) and false when
/// another owner holds it, as Akka's lease users (SBR lease-majority, Singleton, Sharding) expect; they retry.
/// The lease is lost — <see cref="CheckLease"/> false and the leaseLostCallback called — when the session is
/// suspended or expires, or the lock node is deleted; the node is then removed (if the session still lives) so
/// that another owner can take over.
/// </summary>
public sealed class CoordinationLease : global::Akka.Coordination.Lease
{
    private readonly CoordinationLeaseSettings _settings;
    private readonly CoordinationClients _clients;
    private readonly ILoggingAdapter _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private DistributedLock? _lock;
    private CancellationTokenRegistration _lostRegistration;

    public CoordinationLease(LeaseSettings settings, ExtendedActorSystem system) : base(settings)
    {
        _settings = CoordinationLeaseSettings.Create(settings);
        _clients = CoordinationClients.Get(system);
        _log = Logging.GetLogger(system, $"coordination-lease-{settings.LeaseName}");
    }

    /// <summary>
    /// The lock node. Lease names may hold '/' (Cluster Singleton's is <c>{system}-singleton-{manager path}</c>), which a
    /// node name may not: '%' and '/' are percent-escaped, so distinct lease names keep distinct nodes.
    /// </summary>
    public string LockPath => $"{_settings.RootPath}/{Settings.LeaseName.Replace("%", "%25").Replace("/", "%2F")}";

    public override Task<bool> Acquire() => Acquire(null!);

    public override async Task<bool> Acquire(Action<Exception> leaseLostCallback)
    {
        using var timeout = new CancellationTokenSource(_settings.OperationTimeout);
        await _gate.WaitAsync(timeout.Token).ConfigureAwait(false);
        try
        {
            var mutex = await LockAsync().ConfigureAwait(false);
            if (mutex.IsHeld) return true;
            bool acquired;
            try { acquired = await mutex.AcquireAsync(TimeSpan.Zero, timeout.Token).ConfigureAwait(false); }
            catch (KeeperException e)
            {
                _log.Warning("acquiring lease {0} for {1} failed: {2}", Settings.LeaseName, Settings.OwnerName, e.Message);
                return false;
            }
            if (!acquired) return false;
            _lostRegistration.Dispose();
            _lostRegistration = mutex.LostToken.Register(() => OnLost(mutex, leaseLostCallback));
            _log.Info("lease {0} acquired by {1}", Settings.LeaseName, Settings.OwnerName);
            return true;
        }
        catch (OperationCanceledException e) { throw new LeaseTimeoutException($"acquiring lease {Settings.LeaseName} timed out after {_settings.OperationTimeout}", e); }
        finally { _gate.Release(); }
    }

    private void OnLost(DistributedLock mutex, Action<Exception>? callback)
    {
        // The token also fires on our own Release, which has already given the node up.
        if (mutex.NodePath is null) return;
        _log.Warning("lease {0} lost by {1}", Settings.LeaseName, Settings.OwnerName);
        _ = Task.Run(async () =>
        {
            try { callback?.Invoke(new LeaseException($"lease {Settings.LeaseName} lost by {Settings.OwnerName} (session suspended or expired, or lock node deleted)")); }
            catch (Exception e) { _log.Error(e, "leaseLostCallback failed"); }
            await ReleaseHeldAsync(mutex).ConfigureAwait(false);
        });
    }

    public override async Task<bool> Release()
    {
        using var timeout = new CancellationTokenSource(_settings.OperationTimeout);
        await _gate.WaitAsync(timeout.Token).ConfigureAwait(false);
        try
        {
            if (_lock is not { NodePath: not null } mutex) return false;
            await ReleaseHeldAsync(mutex).ConfigureAwait(false);
            _log.Info("lease {0} released by {1}", Settings.LeaseName, Settings.OwnerName);
            return true;
        }
        finally { _gate.Release(); }
    }

    private static async Task ReleaseHeldAsync(DistributedLock mutex)
    {
        try { await mutex.ReleaseAsync().ConfigureAwait(false); }
        catch (InvalidOperationException) { /* released already */ }
    }

    public override bool CheckLease() => _lock?.IsHeld ?? false;

    /// <summary>While the lease is held, its fencing token (the czxid of its lock node; 0 otherwise): a later holder's
    /// is greater, so a resource that refuses lower tokens than the highest it has seen rejects a stale holder.</summary>
    public long FencingToken => _lock is { IsHeld: true } mutex ? mutex.FencingToken : 0;

    private async Task<DistributedLock> LockAsync()
    {
        if (_lock is not null) return _lock;
        var client = await _clients.GetAsync(_settings.Connection).ConfigureAwait(false);
        return _lock = new DistributedLock(client, LockPath, data: Encoding.UTF8.GetBytes(Settings.OwnerName));
    }
}
