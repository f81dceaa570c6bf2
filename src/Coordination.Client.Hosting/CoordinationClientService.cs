using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Coordination.Client.Hosting;

/// <summary>
/// Owns the application's <see cref="CoordinationClient"/>: starts its session with the host without holding the
/// host's start up (requests made before the first connection wait for it), starts a new session after an expiry or a
/// failed first connect, and closes the session when the host stops.
/// </summary>
public sealed class CoordinationClientService : IHostedService, IAsyncDisposable
{
    private readonly CoordinationOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _supervisor;
    private int _disposed;

    public CoordinationClientService(IOptions<CoordinationOptions> options, ILogger<CoordinationClient> logger)
    {
        _options = options.Value;
        _logger = logger;
        Client = new CoordinationClient(_options.ToClientOptions(logger: logger));
        Client.ConnectionStateChanged += state => { if (state.IsTerminal()) _ended.TrySetResult(); };
    }

    public CoordinationClient Client { get; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _supervisor = Task.Run(() => SuperviseAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task SuperviseAsync(CancellationToken stopping)
    {
        var first = true;
        while (!stopping.IsCancellationRequested)
        {
            _ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            try
            {
                if (first) await Client.StartAsync(stopping).ConfigureAwait(false);
                else await Client.RestartAsync(stopping).ConfigureAwait(false);
                if (!Client.State.IsTerminal()) await _ended.Task.WaitAsync(stopping).ConfigureAwait(false);
                _logger.LogWarning("Coordination session ended ({State}); starting a new one in {Backoff}", Client.State, _options.RestartBackoff);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Coordination client could not connect to {ConnectString}; retrying in {Backoff}", _options.ConnectString, _options.RestartBackoff);
            }
            first = false;
            try { await Task.Delay(_options.RestartBackoff, stopping).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        if (_supervisor is { } s) await s.WaitAsync(cancellationToken).ConfigureAwait(false);
        await Client.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>Idempotent: the container disposes this instance once as itself and once as the hosted service.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stopping.Cancel();
        await Client.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
