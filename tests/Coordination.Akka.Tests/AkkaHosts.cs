using Akka.Hosting;
using Coordination.Client.Tests;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>Generic Hosts whose ActorSystem is configured only through Akka.Hosting, logging to the test output.</summary>
public static class AkkaHosts
{
    public static async Task<IHost> StartAsync(ITestOutputHelper output, string name, string systemName, Action<AkkaConfigurationBuilder> configure)
    {
        var host = new HostBuilder()
            .ConfigureLogging(logging => logging.AddProvider(new OutputLoggerProvider(output, name)))
            .ConfigureServices(services => services.AddAkka(systemName, builder =>
            {
                builder.ConfigureLoggers(loggers =>
                {
                    loggers.LogLevel = global::Akka.Event.LogLevel.InfoLevel;
                    loggers.ClearLoggers().AddLoggerFactory();
                });
                configure(builder);
            }))
            .Build();
        await host.StartAsync().Within(30);
        return host;
    }
}

/// <summary>Writes a host's log (Akka's, through Akka.Hosting's logger) to the test output, tagged with the node's name.</summary>
public sealed class OutputLoggerProvider(ITestOutputHelper output, string node, LogLevel minimum = LogLevel.Information) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new OutputLogger(output, node, minimum);
    public void Dispose() { }

    private sealed class OutputLogger(ITestOutputHelper output, string node, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {node} {logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}"); }
            catch (InvalidOperationException) { /* the test has finished */ }
        }
    }
}
