using System.Net.Sockets;
using Akka.Hosting;
using Coordination.Client.Tests;
using Coordination.TestKit;
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
        try
        {
            await host.StartAsync().Within(30);
        }
        catch
        {
            host.Dispose();
            throw;
        }
        return host;
    }

    /// <summary>
    /// Starts something that binds a loopback port chosen here, choosing again when the bind finds the port taken: a
    /// port <see cref="ServerProcess.FreeLoopbackPort"/> found free can be handed to any other socket before it is
    /// bound (e.g. as the source port of another test's outgoing connection; CI saw "Address already in use" so).
    /// <paramref name="start"/> must clean up what it made before it throws.
    /// </summary>
    public static async Task<T> OnFreePortAsync<T>(Func<int, Task<T>> start, int attempts = 3)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await start(ServerProcess.FreeLoopbackPort());
            }
            catch (Exception e) when (attempt < attempts && IsAddressInUse(e))
            {
                // Lost the race for the port: another one.
            }
        }
    }

    private static bool IsAddressInUse(Exception e) =>
        e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }
        || (e is AggregateException aggregate ? aggregate.InnerExceptions.Any(IsAddressInUse) : e.InnerException is { } inner && IsAddressInUse(inner));
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
