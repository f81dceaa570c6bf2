using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// A barrier (Curator's DistributedBarrier): while the barrier node exists, <see cref="WaitOnBarrierAsync"/> blocks;
/// removing the node releases every waiter at once (they all watch the one node, which is the point of a barrier).
/// </summary>
public sealed class DistributedBarrier(CoordinationClient client, string barrierPath, IRetryPolicy? retry = null)
{
    private readonly IRetryPolicy _retry = retry ?? Waits.DefaultRetry();

    public string BarrierPath => barrierPath;

    /// <summary>Raises the barrier (idempotent).</summary>
    public async Task SetBarrierAsync(CancellationToken ct = default)
    {
        try { await Waits.Retry(_retry, c => client.CreateRecursiveAsync(barrierPath, ct: c), ct).ConfigureAwait(false); }
        catch (NodeExistsException) { }
    }

    /// <summary>Lowers the barrier, releasing the waiters (idempotent).</summary>
    public async Task RemoveBarrierAsync(CancellationToken ct = default)
    {
        try { await Waits.Retry(_retry, c => client.DeleteAsync(barrierPath, ct: c), ct).ConfigureAwait(false); }
        catch (NoNodeException) { }
    }

    /// <summary>Waits until the barrier is down; false when <paramref name="timeout"/> passed first.</summary>
    public Task<bool> WaitOnBarrierAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        Waits.UntilAsync(client, async (watcher, c) =>
            await Waits.Retry(_retry, cc => client.ExistsAsync(barrierPath, watcher, cc), c).ConfigureAwait(false) is not null, timeout, ct);
}

/// <summary>
/// A double barrier (Curator's DistributedDoubleBarrier): <see cref="EnterAsync"/> blocks until
/// <c>memberCount</c> members have entered (each an ephemeral node; the last one in creates <c>ready</c>), and
/// <see cref="LeaveAsync"/> blocks until every member has left. Leaving follows the ZooKeeper recipe: the lowest
/// member waits for the highest, every other member deletes its node and waits for the lowest, so each departure
/// wakes one member. The last member out deletes <c>ready</c>, so the path can be used for another round.
/// </summary>
public sealed class DistributedDoubleBarrier
{
    private const string ReadyName = "ready";
    private readonly CoordinationClient _client;
    private readonly string _path;
    private readonly int _memberCount;
    private readonly IRetryPolicy _retry;
    private readonly string _ourName;

    public DistributedDoubleBarrier(CoordinationClient client, string barrierPath, int memberCount, string? memberId = null, IRetryPolicy? retry = null)
    {
        if (memberCount < 1) throw new ArgumentOutOfRangeException(nameof(memberCount));
        _client = client;
        _path = barrierPath;
        _memberCount = memberCount;
        _ourName = memberId ?? Guid.NewGuid().ToString("N");
        _retry = retry ?? Waits.DefaultRetry();
    }

    private string ReadyPath => Paths.Join(_path, ReadyName);
    private string OurPath => Paths.Join(_path, _ourName);

    /// <summary>Enters and waits for the others; false (and our node removed) when <paramref name="timeout"/> passed first.</summary>
    public async Task<bool> EnterAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        try { await Waits.Retry(_retry, c => _client.CreateAsync(OurPath, [], CreateMode.Ephemeral, ct: c), ct).ConfigureAwait(false); }
        catch (NoNodeException)
        {
            await CreateQuietlyAsync(_path, CreateMode.Persistent, ct).ConfigureAwait(false);
            await Waits.Retry(_retry, c => _client.CreateAsync(OurPath, [], CreateMode.Ephemeral, ct: c), ct).ConfigureAwait(false);
        }
        catch (NodeExistsException) { } // our own create whose reply was lost
        var entered = await Waits.UntilAsync(_client, async (watcher, c) =>
        {
            if (await Waits.Retry(_retry, cc => _client.ExistsAsync(ReadyPath, watcher, cc), c).ConfigureAwait(false) is not null) return false;
            if ((await MembersAsync(c).ConfigureAwait(false)).Count < _memberCount) return true;
            await CreateQuietlyAsync(ReadyPath, CreateMode.Persistent, c).ConfigureAwait(false);
            return false;
        }, timeout, ct).ConfigureAwait(false);
        if (!entered) await SequentialNodes.DeleteQuietlyAsync(_client, OurPath, _retry).ConfigureAwait(false);
        return entered;
    }

    /// <summary>Leaves and waits until every member has left; false when <paramref name="timeout"/> passed first.</summary>
    public Task<bool> LeaveAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        Waits.UntilAsync(_client, async (watcher, c) =>
        {
            var members = await MembersAsync(c).ConfigureAwait(false);
            var ourIndex = members.IndexOf(_ourName);
            if (members.Count == 0 || (members.Count == 1 && ourIndex == 0))
            {
                if (ourIndex == 0) await SequentialNodes.DeleteQuietlyAsync(_client, OurPath, _retry).ConfigureAwait(false);
                await SequentialNodes.DeleteQuietlyAsync(_client, ReadyPath, _retry).ConfigureAwait(false);
                return false;
            }
            string waitFor;
            if (ourIndex == 0) waitFor = members[^1];
            else
            {
                if (ourIndex > 0) await SequentialNodes.DeleteQuietlyAsync(_client, OurPath, _retry).ConfigureAwait(false);
                waitFor = members[0];
            }
            return await Waits.Retry(_retry, cc => _client.ExistsAsync(Paths.Join(_path, waitFor), watcher, cc), c).ConfigureAwait(false) is not null;
        }, timeout, ct);

    private async Task<List<string>> MembersAsync(CancellationToken ct)
    {
        try
        {
            var children = await Waits.Retry(_retry, c => _client.GetChildrenAsync(_path, ct: c), ct).ConfigureAwait(false);
            return children.Children.Where(n => n != ReadyName).Order(StringComparer.Ordinal).ToList();
        }
        catch (NoNodeException) { return []; }
    }

    private async Task CreateQuietlyAsync(string path, CreateMode mode, CancellationToken ct)
    {
        try { await Waits.Retry(_retry, c => _client.CreateAsync(path, [], mode, ct: c), ct).ConfigureAwait(false); }
        catch (NodeExistsException) { }
        catch (NoNodeException) { await Waits.Retry(_retry, c => _client.CreateRecursiveAsync(path, ct: c), ct).ConfigureAwait(false); }
    }
}
