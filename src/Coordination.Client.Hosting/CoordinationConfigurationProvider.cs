using System.Text;
using System.Threading.Channels;
using Coordination.Protocol;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Coordination.Client.Hosting;

/// <summary>
/// Where <see cref="CoordinationConfigurationProvider"/> reads: a znode subtree (<see cref="Root"/>) of the server(s)
/// in <see cref="Client"/>. Added with <c>configuration.AddCoordination(...)</c>.
/// </summary>
public sealed class CoordinationConfigurationSource : IConfigurationSource
{
    /// <summary>The provider's own client (configuration is built before dependency injection, so it cannot share one).</summary>
    public CoordinationClientOptions Client { get; set; } = new() { ConnectString = "" };
    /// <summary>The subtree's root: <c>/app/config/Db/Timeout</c> under root <c>/app/config</c> is the key <c>Db:Timeout</c>.</summary>
    public string Root { get; set; } = "/config";
    /// <summary>
    /// When false (the default) building the configuration throws if the subtree cannot be read within
    /// <see cref="InitialLoadTimeout"/>. When true it starts empty and loads (raising a reload) once a server answers.
    /// </summary>
    public bool Optional { get; set; }
    /// <summary>How long the first load waits for a server.</summary>
    public TimeSpan InitialLoadTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public IConfigurationProvider Build(IConfigurationBuilder builder) => new CoordinationConfigurationProvider(this);
}

/// <summary>
/// Configuration from a znode subtree: a key per znode that has data (its path below the root, <c>/</c> turned into
/// <c>:</c>), the value its data as UTF-8. A persistent recursive watch on the root reloads the subtree on every
/// change, and after a reconnect or a new session, so <c>IOptionsMonitor&lt;T&gt;</c> and reload tokens see changes
/// written by any client. While no server answers, the values stay the last ones read.
/// </summary>
public sealed class CoordinationConfigurationProvider : ConfigurationProvider, IDisposable
{
    private readonly CoordinationConfigurationSource _source;
    private readonly CoordinationClient _client;
    private readonly string _root;
    private readonly CancellationTokenSource _lifetime = new();
    /// <summary>"Read the subtree again": coalesced, so a burst of changes costs one reload after the first.</summary>
    private readonly Channel<bool> _reload = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private long _watchedSession;
    private Task? _maintain;

    public CoordinationConfigurationProvider(CoordinationConfigurationSource source)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        if (Paths.Validate(source.Root, false) is { } reason) throw new ArgumentException($"invalid root '{source.Root}': {reason}", nameof(source));
        if (string.IsNullOrWhiteSpace(source.Client.ConnectString)) throw new ArgumentException("the source's Client.ConnectString is required", nameof(source));
        _root = source.Root;
        _client = new CoordinationClient(source.Client);
        _client.ConnectionStateChanged += state =>
        {
            // A reconnect may have missed changes (a persistent watch is re-registered without replaying them); a
            // new session needs the watch again; a dead client is restarted by the loop.
            if (state is ConnectionState.Connected or ConnectionState.Reconnected or ConnectionState.ConnectedReadOnly || state.IsTerminal())
                _reload.Writer.TryWrite(true);
        };
    }

    /// <summary>The provider's client (its state tells whether the values are live).</summary>
    public CoordinationClient Client => _client;

    public override void Load()
    {
        if (_maintain is not null)
        {
            _reload.Writer.TryWrite(true); // IConfigurationRoot.Reload(): read again in the background
            return;
        }
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
            timeout.CancelAfter(_source.InitialLoadTimeout);
            _client.StartAsync(timeout.Token).GetAwaiter().GetResult();
            Data = ReadAsync(timeout.Token).GetAwaiter().GetResult();
        }
        catch (Exception e) when (_source.Optional)
        {
            Log($"configuration under {_root} not loaded yet ({e.GetType().Name}: {e.Message}); starting empty and retrying");
            _reload.Writer.TryWrite(true);
        }
        catch (Exception e)
        {
            Dispose();
            throw new InvalidOperationException(
                $"configuration under {_root} from {_source.Client.ConnectString} could not be loaded within {_source.InitialLoadTimeout} " +
                $"({e.GetType().Name}: {e.Message}); set Optional to start without it", e);
        }
        _maintain = Task.Run(() => MaintainAsync(_lifetime.Token));
    }

    /// <summary>Arms the watch for the current session (if not yet) and reads the whole subtree.</summary>
    private async Task<Dictionary<string, string?>> ReadAsync(CancellationToken ct)
    {
        var session = _client.SessionId;
        if (Volatile.Read(ref _watchedSession) != session)
        {
            await _client.AddWatchAsync(_root, OnChange, AddWatchMode.PersistentRecursive, ct).ConfigureAwait(false);
            Volatile.Write(ref _watchedSession, session);
        }
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        await ReadNodeAsync(_root, null, data, ct).ConfigureAwait(false);
        return data;
    }

    private void OnChange(WatchedEvent e)
    {
        if (e.Type is EventType.NodeCreated or EventType.NodeDeleted or EventType.NodeDataChanged) _reload.Writer.TryWrite(true);
    }

    private async Task ReadNodeAsync(string path, string? key, Dictionary<string, string?> data, CancellationToken ct)
    {
        DataResult node;
        ChildrenResult children;
        try
        {
            node = await _client.GetDataAsync(path, ct: ct).ConfigureAwait(false);
            children = await _client.GetChildrenAsync(path, ct: ct).ConfigureAwait(false);
        }
        catch (NoNodeException) { return; } // not there (yet), or deleted while we read: the watch brings the next state
        if (key is not null && node.Data is { } bytes) data[key] = Encoding.UTF8.GetString(bytes);
        foreach (var child in children.Children)
            await ReadNodeAsync(Paths.Join(path, child), key is null ? child : ConfigurationPath.Combine(key, child), data, ct).ConfigureAwait(false);
    }

    /// <summary>Reloads on each signal; restarts a client whose session ended; on failure keeps the last values and tries again.</summary>
    private async Task MaintainAsync(CancellationToken ct)
    {
        try
        {
            while (await _reload.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                _reload.Reader.TryRead(out _);
                try
                {
                    using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    attempt.CancelAfter(_source.InitialLoadTimeout);
                    if (_client.State.IsTerminal()) await _client.RestartAsync(attempt.Token).ConfigureAwait(false);
                    if (!_client.State.IsConnected()) continue; // the next Connected/Reconnected signals again
                    var data = await ReadAsync(attempt.Token).ConfigureAwait(false);
                    if (!SameAs(data))
                    {
                        Data = data;
                        OnReload();
                    }
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Log($"reloading configuration under {_root} failed ({e.GetType().Name}: {e.Message}); keeping the last values");
                    await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                    _reload.Writer.TryWrite(true);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    private bool SameAs(Dictionary<string, string?> data) =>
        data.Count == Data.Count && data.All(kv => Data.TryGetValue(kv.Key, out var v) && string.Equals(v, kv.Value, StringComparison.Ordinal));

    private void Log(string message)
    {
        try { _source.Client.Log?.Invoke(message); } catch { }
        try { _source.Client.Logger?.LogWarning("{Message}", message); } catch { }
    }

    public void Dispose()
    {
        if (_lifetime.IsCancellationRequested) return;
        _lifetime.Cancel();
        try { _maintain?.Wait(TimeSpan.FromSeconds(5)); } catch { }
        try { _client.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5)); } catch { }
    }

    public override string ToString() => $"{nameof(CoordinationConfigurationProvider)}({_source.Client.ConnectString}{_root})";
}
