using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Coordination.Client.Hosting;

/// <summary>
/// Healthy while the session is connected (Degraded when only a read-only server answers); the registration's failure
/// status while it is suspended (no server reachable: the session may still live), connecting, expired, refused or closed.
/// </summary>
public sealed class CoordinationClientHealthCheck(CoordinationClient client) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = client.State;
        var data = new Dictionary<string, object> { ["state"] = state.ToString(), ["session"] = $"0x{client.SessionId:x}" };
        var result = state switch
        {
            ConnectionState.ConnectedReadOnly => HealthCheckResult.Degraded("connected to a read-only server", data: data),
            _ when state.IsConnected() => HealthCheckResult.Healthy($"session 0x{client.SessionId:x} connected", data),
            ConnectionState.Suspended => new HealthCheckResult(context.Registration.FailureStatus, "suspended: no server reachable, the session may still live", data: data),
            _ => new HealthCheckResult(context.Registration.FailureStatus, $"session {state}", data: data),
        };
        return Task.FromResult(result);
    }
}
