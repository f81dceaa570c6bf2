using Akka.Configuration;
using Coordination.Server.Persistence;

namespace Coordination.Server;

/// <summary>
/// A server process's host: starts the <see cref="CoordinationServer"/> and, for an ensemble member, starts a fresh
/// incarnation whenever its ActorSystem ends by itself — quarantined by a peer (Akka.Remote's point of no return),
/// or stopped by a failing journal or any other failed actor of the node (NodeActor: fail fast). The new incarnation recovers from the data dir and rejoins through Zab
/// synchronisation, so a member never needs an operator (or a process supervisor) to come back. A standalone
/// server's termination ends the node: its server is disposed (client port and admin endpoints closed) and
/// <see cref="Stopped"/> completes, which stops the process (exit code 1, see Program).
/// </summary>
public sealed class CoordinationNode : IAsyncDisposable
{
    private static readonly TimeSpan RestartDelay = TimeSpan.FromSeconds(1);
    private const int MaxFailedRestarts = 30;

    private readonly Config _config;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile CoordinationServer? _current;
    private int _restarts;

    private CoordinationNode(Config config, CoordinationServer first)
    {
        _config = config;
        _current = first;
        _ = SuperviseAsync();
    }

    /// <summary>Starts the server (throws as <see cref="CoordinationServer.Start"/> does) and watches over it.</summary>
    public static CoordinationNode Start(Config config) => new(config, CoordinationServer.Start(config));

    /// <summary>The running incarnation (null between a termination and the restart).</summary>
    public CoordinationServer? Current => _current;
    /// <summary>How many times the member was restarted in this process.</summary>
    public int Restarts => Volatile.Read(ref _restarts);
    /// <summary>Completes when the node will not run again: standalone termination, restarts exhausted, or disposal.</summary>
    public Task Stopped => _stopped.Task;

    private async Task SuperviseAsync()
    {
        try
        {
            while (_current is { } server)
            {
                await Task.WhenAny(server.System.WhenTerminated, Task.Delay(Timeout.Infinite, _stopping.Token)).ConfigureAwait(false);
                if (_stopping.IsCancellationRequested) return;
                _current = null;
                await server.DisposeAsync().ConfigureAwait(false);
                if (server.Ensemble is null) return;
                Console.Error.WriteLine($"Server {server.Settings.ServerId}: the node's ActorSystem terminated; starting a fresh incarnation");
                _current = await RestartAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    private async Task<CoordinationServer?> RestartAsync()
    {
        for (var attempt = 1; attempt <= MaxFailedRestarts && !_stopping.IsCancellationRequested; attempt++)
        {
            try
            {
                await Task.Delay(RestartDelay, _stopping.Token).ConfigureAwait(false);
                var server = CoordinationServer.Start(_config);
                Interlocked.Increment(ref _restarts);
                return server;
            }
            catch (OperationCanceledException)
            {
                return null;
            }
            catch (Exception e) when (e is not RecoveryException)
            {
                // Typically the remoting or client port of the old incarnation is not free yet.
                Console.Error.WriteLine($"Restart attempt {attempt} failed: {e.GetBaseException().Message}");
            }
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        await _stopped.Task.ConfigureAwait(false);
        if (_current is { } server)
        {
            _current = null;
            await server.DisposeAsync().ConfigureAwait(false);
        }
    }
}
