using Coordination.Client.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

// In the namespace of IServiceCollection, as Microsoft.Extensions' own Add* methods, so that no using is needed.
namespace Microsoft.Extensions.DependencyInjection;

public static class CoordinationServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="Coordination.Client.CoordinationClient"/> for the application, configured from
    /// <paramref name="configuration"/> (e.g. <c>configuration.GetSection("Coordination")</c>, bound to
    /// <see cref="CoordinationOptions"/> and validated at start-up), logging through ILogger, its session run by a
    /// hosted service.
    /// </summary>
    public static IServiceCollection AddCoordinationClient(this IServiceCollection services, IConfiguration configuration) =>
        services.AddCoordinationClient(builder => builder.Bind(configuration));

    /// <summary>As <see cref="AddCoordinationClient(IServiceCollection, IConfiguration)"/>, configured in code.</summary>
    public static IServiceCollection AddCoordinationClient(this IServiceCollection services, Action<CoordinationOptions> configure) =>
        services.AddCoordinationClient(builder => builder.Configure(configure));

    private static IServiceCollection AddCoordinationClient(this IServiceCollection services, Action<OptionsBuilder<CoordinationOptions>> configure)
    {
        configure(services.AddOptions<CoordinationOptions>().ValidateOnStart());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CoordinationOptions>, CoordinationOptionsValidator>());
        services.TryAddSingleton<CoordinationClientService>();
        services.TryAddSingleton(sp => sp.GetRequiredService<CoordinationClientService>().Client);
        services.AddHostedService(sp => sp.GetRequiredService<CoordinationClientService>());
        return services;
    }

    /// <summary>Adds <see cref="CoordinationClientHealthCheck"/> for the client registered by AddCoordinationClient.</summary>
    public static IHealthChecksBuilder AddCoordinationClient(this IHealthChecksBuilder builder, string name = "coordination-client",
        HealthStatus? failureStatus = null, IEnumerable<string>? tags = null) =>
        builder.Add(new HealthCheckRegistration(name,
            sp => new CoordinationClientHealthCheck(sp.GetRequiredService<Coordination.Client.CoordinationClient>()), failureStatus, tags));
}
