using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Coordination.Server.Hosting;

/// <summary>
/// Readiness of the embedded server (<see cref="Admin.ServerHealth"/>: serving, in quorum, leader known, data dir
/// writable); the registration's failure status before it started, while a member restarts, or when not ready.
/// </summary>
public sealed class CoordinationServerHealthCheck(CoordinationServerService service) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (service.Node is not { } node) return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, "not started"));
        if (node.Current is not { } server) return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, "restarting"));
        var readiness = server.Health.Check();
        return Task.FromResult(readiness.Ready
            ? HealthCheckResult.Healthy(readiness.Reason, readiness.Data)
            : new HealthCheckResult(context.Registration.FailureStatus, readiness.Reason, data: readiness.Data));
    }
}
