using Akka.Configuration;
using Coordination.Server.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;

// In the namespace of IServiceCollection, as Microsoft.Extensions' own Add* methods.
namespace Microsoft.Extensions.DependencyInjection;

public static class CoordinationServerServiceCollectionExtensions
{
    /// <summary>
    /// Embeds a coordination server in the application's host. <paramref name="config"/> is HOCON (the same settings as
    /// the server program's --config file: hocon/standalone.conf); the embedded reference.conf supplies the defaults.
    /// </summary>
    public static IServiceCollection AddCoordinationServer(this IServiceCollection services, Config config)
    {
        services.TryAddSingleton(sp => ActivatorUtilities.CreateInstance<CoordinationServerService>(sp, config));
        services.AddHostedService(sp => sp.GetRequiredService<CoordinationServerService>());
        return services;
    }

    /// <summary>As <see cref="AddCoordinationServer(IServiceCollection, Config)"/>, from HOCON text.</summary>
    public static IServiceCollection AddCoordinationServer(this IServiceCollection services, string hocon) =>
        services.AddCoordinationServer(ConfigurationFactory.ParseString(hocon));

    /// <summary>Adds <see cref="CoordinationServerHealthCheck"/> for the server registered by AddCoordinationServer.</summary>
    public static IHealthChecksBuilder AddCoordinationServer(this IHealthChecksBuilder builder, string name = "coordination-server",
        HealthStatus? failureStatus = null, IEnumerable<string>? tags = null) =>
        builder.Add(new HealthCheckRegistration(name,
            sp => new CoordinationServerHealthCheck(sp.GetRequiredService<CoordinationServerService>()), failureStatus, tags));
}
