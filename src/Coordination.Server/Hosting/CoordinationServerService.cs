using Akka.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Coordination.Server.Hosting;

/// <summary>
/// Runs a <see cref="CoordinationNode"/> inside a Generic Host: started with the host (a recovery or configuration
/// error fails the host's start), disposed when it stops; a node that ends by itself (standalone termination, member
/// restarts exhausted) stops the application. The configuration stays HOCON.
/// </summary>
public sealed class CoordinationServerService(Config config, IHostApplicationLifetime lifetime, ILogger<CoordinationServerService> logger)
    : IHostedService, IAsyncDisposable
{
    private volatile bool _stopping;

    /// <summary>The node ended without being asked to (a failure it could not recover from): the process exits with 1.</summary>
    public bool EndedByItself { get; private set; }

    /// <summary>The node (null before the host started).</summary>
    public CoordinationNode? Node { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var node = CoordinationNode.Start(config);
        Node = node;
        node.Stopped.ContinueWith(_ =>
        {
            if (_stopping) return;
            EndedByItself = true;
            logger.LogCritical("The coordination server ended by itself; stopping the application");
            lifetime.StopApplication();
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (Node is { } node) await node.DisposeAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => Node?.DisposeAsync() ?? ValueTask.CompletedTask;
}
