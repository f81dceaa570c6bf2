using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

/// <summary>
/// An ephemeral node that stays there as long as this object is open (Curator's PersistentNode in ephemeral mode):
/// it is created again on a new session (after expiry and client restart), after a reconnect when it is missing,
/// and when someone deletes it. A leftover node of our previous, dying session is replaced, so the node always
/// belongs to the live session. Used for group members and service registrations.
/// </summary>
public sealed class PersistentEphemeralNode : IAsyncDisposable
{
    private readonly CoordinationClient _client;
    private readonly IRetryPolicy _retry;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile byte[] _data;
    private volatile bool _closed;

    public PersistentEphemeralNode(CoordinationClient client, string path, byte[] data, IRetryPolicy? retry = null)
    {
        _client = client;
        Path = path;
        _data = data;
        _retry = retry ?? Waits.DefaultRetry();
    }

    public string Path { get; }
    public byte[] Data => _data;

    public async Task StartAsync(CancellationToken ct = default)
    {
        _client.ConnectionStateChanged += OnState;
        await EnsureAsync(ct).ConfigureAwait(false);
    }

    private void OnState(ConnectionState state)
    {
        if (state is ConnectionState.Connected or ConnectionState.Reconnected) _ = EnsureQuietlyAsync();
    }

    private void OnWatch(WatchedEvent e)
    {
        if (e.Type != EventType.None) _ = EnsureQuietlyAsync(); // deleted (recreate) or changed (re-arm)
    }

    private async Task EnsureQuietlyAsync()
    {
        try { await EnsureAsync(_closeToken.Token).ConfigureAwait(false); }
        catch (Exception) { /* the next state change tries again */ }
    }

    private readonly CancellationTokenSource _closeToken = new();

    /// <summary>Makes sure the node exists, owned by the current session, with the current data; re-arms the watch.</summary>
    private async Task EnsureAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            while (!_closed)
            {
                var stat = await Waits.Retry(_retry, c => _client.ExistsAsync(Path, OnWatch, c), ct).ConfigureAwait(false);
                if (stat is { } s && s.EphemeralOwner == _client.SessionId) return;
                try
                {
                    if (stat is { } old) await _client.DeleteAsync(Path, old.Version, ct).ConfigureAwait(false); // a previous session's leftover
                    await Waits.Retry(_retry, c => _client.CreateAsync(Path, _data, CreateMode.Ephemeral, ct: c), ct).ConfigureAwait(false);
                }
                catch (NoNodeException)
                {
                    await Waits.Retry(_retry, c => _client.CreateRecursiveAsync(Paths.Parent(Path), ct: c), ct).ConfigureAwait(false);
                }
                catch (NodeExistsException) { }
                catch (BadVersionException) { }
            }
        }
        finally { _gate.Release(); }
    }

    /// <summary>Changes the node's data (kept for re-creations).</summary>
    public async Task SetDataAsync(byte[] data, CancellationToken ct = default)
    {
        _data = data;
        try { await Waits.Retry(_retry, c => _client.SetDataAsync(Path, data, ct: c), ct).ConfigureAwait(false); }
        catch (NoNodeException) { await EnsureAsync(ct).ConfigureAwait(false); }
    }

    /// <summary>Deletes the node and stops re-creating it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_closed) return;
        _closed = true;
        _client.ConnectionStateChanged -= OnState;
        _closeToken.Cancel();
        if (!_client.State.IsTerminal()) await SequentialNodes.DeleteQuietlyAsync(_client, Path, _retry).ConfigureAwait(false);
    }
}
