using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Coordination.Hosting.Tests;

/// <summary>A Generic Host builder with a standalone server embedded through AddCoordinationServer.</summary>
internal static class EmbeddedServer
{
    public static HostApplicationBuilder Builder(int port, string dataDir)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddCoordinationServer($$"""
            coordination { client-port = {{port}}, data-dir = "{{dataDir}}" }
            akka.loglevel = WARNING
            """);
        return builder;
    }
}
