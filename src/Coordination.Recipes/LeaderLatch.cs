using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>
/// Leader election (Curator's LeaderLatch): every participant adds an ephemeral-sequential node under
/// <c>latchPath</c>; the lowest is the leader, the others watch their predecessor. Leadership is given up — and
/// <see cref="LeadershipChanged"/>(false) raised, <see cref="LeadershipToken"/> cancelled — as soon as the
/// connection is Suspended (the session may be expiring and another participant may take over), when the session
/// expires, and on <see cref="CloseAsync"/>. After a reconnect or a new session (client restart) the latch checks
/// again and re-joins with a new node when its old one is gone.
/// </summary>
public sealed class LeaderLatch : IAsyncDisposable
{
    private readonly CoordinationClient _client;
    private readonly string _latchPath;
    private readonly byte[] _participantId;
    private readonly IRetryPolicy _retry;
    private readonly Guid _id = Guid.NewGuid();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly object _lock = new();
    private string? _node;
    private bool _started, _closed, _leader;
    private CancellationTokenSource _leadership = CancelledSource();
    private TaskCompletionSource _becameLeader = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public const string LatchName = "latch-";

    public LeaderLatch(CoordinationClient client, string latchPath, string participantId = "", IRetryPolicy? retry = null)
    {
        _client = client;
        _latchPath = latchPath;
        _participantId = System.Text.Encoding.UTF8.GetBytes(participantId);
        _retry = retry ?? new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromSeconds(1));
    }

    /// <summary>Raised with true when this participant becomes leader and false when it stops being leader.</summary>
    public event Action<bool>? LeadershipChanged;

    public bool HasLeadership { get { lock (_lock) return _leader; } }
    /// <summary>Valid while leading; cancelled the moment leadership is lost. Take it after becoming leader.</summary>
    public CancellationToken LeadershipToken { get { lock (_lock) return _leadership.Token; } }
    public string? NodePath => _node;

    /// <summary>
    /// While leader, the fencing token of this leadership: the creation zxid (czxid) of our latch node (0 when not
    /// leader). A later leader's node was created after ours, so its token is greater; a resource that refuses tokens
    /// lower than the highest it has accepted rejects a leader that lost its session without knowing yet.
    /// </summary>
    public long FencingToken { get { lock (_lock) return _leader ? _fencingToken : 0; } }
    private long _fencingToken;

    private static CancellationTokenSource CancelledSource() { var c = new CancellationTokenSource(); c.Cancel(); return c; }

    public async Task StartAsync(CancellationToken ct = default)
    {
        lock (_lock)
        {
            if (_started) throw new InvalidOperationException("already started");
            _started = true;
        }
        _client.ConnectionStateChanged += OnState;
        await CheckAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Waits until this participant is leader.</summary>
    public Task WaitForLeadershipAsync(CancellationToken ct = default)
    {
        Task task;
        lock (_lock) task = _becameLeader.Task;
        return task.WaitAsync(ct);
    }

    private void OnState(ConnectionState state)
    {
        switch (state)
        {
            case ConnectionState.Suspended:
            case ConnectionState.Expired:
            case ConnectionState.AuthFailed:
            case ConnectionState.Closed:
                SetLeader(false);
                if (state != ConnectionState.Suspended) _node = null;
                break;
            case ConnectionState.Reconnected:
            case ConnectionState.Connected:
                _ = CheckQuietlyAsync();
                break;
        }
    }

    private async Task CheckQuietlyAsync()
    {
        try { await CheckAsync(CancellationToken.None).ConfigureAwait(false); }
        catch (Exception) { /* the next state change checks again */ }
    }

    /// <summary>Makes sure our node exists and decides whether we lead; otherwise watches the predecessor.</summary>
    private async Task CheckAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_closed || !_client.State.IsConnected()) return;
            _node ??= await SequentialNodes.CreateAsync(_client, _latchPath, _id, LatchName, _participantId, _retry, ct).ConfigureAwait(false);
            var name = _node[(_node.LastIndexOf('/') + 1)..];
            var sorted = await RetryLoop.RunAsync(_retry, c => SequentialNodes.SortedAsync(_client, _latchPath, LatchName, c), ct).ConfigureAwait(false);
            var index = sorted.IndexOf(name);
            if (index < 0)
            {
                // Our node is gone (a previous session): join again.
                _node = null;
                _ = CheckQuietlyAsync();
                return;
            }
            if (index == 0)
            {
                var node = _node;
                if (await RetryLoop.RunAsync(_retry, c => _client.ExistsAsync(node, ct: c), ct).ConfigureAwait(false) is not { } own)
                {
                    _ = CheckQuietlyAsync(); // gone meanwhile: the next check joins again
                    return;
                }
                Volatile.Write(ref _fencingToken, own.Czxid);
                SetLeader(true);
                return;
            }
            SetLeader(false);
            var predecessor = _latchPath + "/" + sorted[index - 1];
            // Any event on the predecessor (deleted, or changed, which consumed the watch) means: look again.
            var stat = await RetryLoop.RunAsync(_retry, c => _client.ExistsAsync(predecessor, e => { _ = CheckQuietlyAsync(); }, c), ct).ConfigureAwait(false);
            if (stat is null) _ = CheckQuietlyAsync();
        }
        finally { _gate.Release(); }
    }

    private void SetLeader(bool leader)
    {
        lock (_lock)
        {
            if (_leader == leader) return;
            if (leader && _closed) return;
            _leader = leader;
            if (leader)
            {
                _leadership = new CancellationTokenSource();
                _becameLeader.TrySetResult();
            }
            else
            {
                _leadership.Cancel();
                _becameLeader = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
        try { LeadershipChanged?.Invoke(leader); } catch { }
    }

    /// <summary>Leaves the election: leadership (if any) is given up and our node deleted.</summary>
    public async Task CloseAsync()
    {
        lock (_lock)
        {
            if (_closed) return;
            _closed = true;
        }
        _client.ConnectionStateChanged -= OnState;
        SetLeader(false);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_node is { } node)
            {
                _node = null;
                if (!_client.State.IsTerminal()) await SequentialNodes.DeleteQuietlyAsync(_client, node, _retry).ConfigureAwait(false);
            }
        }
        finally { _gate.Release(); }
    }

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);
}
