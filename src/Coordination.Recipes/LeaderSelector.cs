using System.Text;
using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>One participant of a <see cref="LeaderSelector"/> election, in line order (the leader first).</summary>
public sealed record Participant(string Id, bool IsLeader);

/// <summary>
/// Leader election that runs a leadership body (Curator's LeaderSelector): participants queue on a
/// <see cref="DistributedLock"/>; the holder runs <c>takeLeadership(token)</c> and stays leader until the body
/// returns. The token is cancelled — and <see cref="LeadershipLost"/> raised — the moment leadership is lost
/// (connection Suspended, session expired, client closed, lock node deleted) or the selector is closed; the body
/// must stop its leader-only work then. With auto-requeue (the default) the participant queues again afterwards,
/// waiting for the client to be restarted when its session expired.
/// </summary>
public sealed class LeaderSelector : IAsyncDisposable
{
    private readonly CoordinationClient _client;
    private readonly Func<CancellationToken, Task> _takeLeadership;
    private readonly DistributedLock _lock;
    private readonly CancellationTokenSource _closing = new();
    private readonly bool _autoRequeue;
    private Task _loop = Task.CompletedTask;
    private volatile bool _leader;
    private int _started;

    public LeaderSelector(CoordinationClient client, string electionPath, Func<CancellationToken, Task> takeLeadership,
        string participantId = "", bool autoRequeue = true, IRetryPolicy? retry = null)
    {
        _client = client;
        _takeLeadership = takeLeadership;
        _autoRequeue = autoRequeue;
        ParticipantId = participantId;
        _lock = new DistributedLock(client, electionPath, retry, Encoding.UTF8.GetBytes(participantId));
    }

    public string ParticipantId { get; }
    public bool HasLeadership => _leader;
    /// <summary>While leader, the fencing token of this leadership (see <see cref="DistributedLock.FencingToken"/>); 0 otherwise.</summary>
    public long FencingToken => _leader ? _lock.FencingToken : 0;
    /// <summary>Raised when this participant starts leading (before the body runs).</summary>
    public event Action? LeadershipAcquired;
    /// <summary>Raised when leadership is taken away (connection or session trouble, lock node deleted), not when the body returns by itself.</summary>
    public event Action? LeadershipLost;
    /// <summary>Raised with the exception when the leadership body fails; the participant then gives up leadership (and requeues).</summary>
    public event Action<Exception>? LeadershipFailed;

    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0) throw new InvalidOperationException("already started");
        _loop = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        var ct = _closing.Token;
        do
        {
            try
            {
                await Waits.WaitUntilConnectedAsync(_client, ct).ConfigureAwait(false);
                if (!await _lock.AcquireAsync(null, ct).ConfigureAwait(false)) continue;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (KeeperException)
            {
                // Session trouble while queueing: wait for the connection (or a restart) and queue again.
                try { await Task.Delay(100, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
                continue;
            }
            await LeadAsync(ct).ConfigureAwait(false);
        }
        while (_autoRequeue && !ct.IsCancellationRequested);
    }

    private async Task LeadAsync(CancellationToken closing)
    {
        using var leadership = CancellationTokenSource.CreateLinkedTokenSource(_lock.LostToken, closing);
        var relinquished = 0;
        using var lostSignal = _lock.LostToken.Register(() =>
        {
            if (Interlocked.Exchange(ref relinquished, 1) == 0) { _leader = false; Raise(LeadershipLost); }
        });
        _leader = _lock.IsHeld;
        if (_leader) Raise(LeadershipAcquired);
        try { if (_leader) await _takeLeadership(leadership.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) when (leadership.IsCancellationRequested) { }
        catch (Exception e) { try { LeadershipFailed?.Invoke(e); } catch { } }
        finally
        {
            Interlocked.Exchange(ref relinquished, 1);
            _leader = false;
            try { await _lock.ReleaseAsync().ConfigureAwait(false); } catch (InvalidOperationException) { }
        }
    }

    private static void Raise(Action? handler) { try { handler?.Invoke(); } catch { } }

    /// <summary>The participants in line order; the first is the leader.</summary>
    public async Task<IReadOnlyList<Participant>> GetParticipantsAsync(CancellationToken ct = default)
    {
        var contenders = await _lock.GetContendersAsync(ct).ConfigureAwait(false);
        return contenders.Select((c, i) => new Participant(Encoding.UTF8.GetString(c.Data), i == 0)).ToList();
    }

    /// <summary>Leaves the election: a running leadership body is cancelled and leadership given up.</summary>
    public async Task CloseAsync()
    {
        if (_closing.IsCancellationRequested) return;
        _closing.Cancel();
        try { await _loop.ConfigureAwait(false); } catch { }
    }

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);
}
