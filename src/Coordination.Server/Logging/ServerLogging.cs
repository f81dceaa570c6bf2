using System.Text.Json;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Coordination.Server.Logging;

/// <summary>Hands an <see cref="ILoggerFactory"/> of the host's to the server (through <c>ActorSystemSetup</c>)
/// instead of the console one built from <c>coordination.logging</c>.</summary>
public sealed class LoggerFactorySetup(ILoggerFactory factory) : Setup
{
    public ILoggerFactory Factory { get; } = factory;
}

/// <summary>
/// The server's logging, per ActorSystem (an Akka extension): the <see cref="ILoggerFactory"/> that Akka's log events
/// (through <see cref="AkkaLoggerBridge"/>) and the audit log write to. Configured by
/// <c>coordination.logging { level, format = text|json }</c>: one line per event on stdout, as text or as JSON with
/// the event's structured fields (SessionId, Zxid, Op, ... wherever a log call names them) under "State".
/// </summary>
public sealed class ServerLogging : IExtension, IDisposable
{
    private readonly bool _ownsFactory;

    public ILoggerFactory Factory { get; }

    private ServerLogging(ILoggerFactory factory, bool ownsFactory)
    {
        Factory = factory;
        _ownsFactory = ownsFactory;
    }

    public static ServerLogging For(ActorSystem system) => system.WithExtension<ServerLogging, ServerLoggingProvider>();

    internal static ServerLogging Create(ExtendedActorSystem system)
    {
        if (system.Settings.Setup.Get<LoggerFactorySetup>() is { HasValue: true } setup) return new ServerLogging(setup.Value.Factory, false);
        var config = system.Settings.Config.GetConfig("coordination.logging");
        var factory = CreateConsoleFactory(ParseLevel(config.GetString("level", "INFO")), config.GetString("format", "text"));
        var logging = new ServerLogging(factory, true);
        system.RegisterOnTermination(logging.Dispose);   // flushes the console logger's queue
        return logging;
    }

    public static ILoggerFactory CreateConsoleFactory(LogLevel level, string format) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(level);
        if (string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
            builder.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
            });
        else
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            });
    });

    /// <summary>Akka's level names (DEBUG, INFO, WARNING, ERROR) and Microsoft's (Trace, Warning, None, ...).</summary>
    public static LogLevel ParseLevel(string level) => level.Trim().ToUpperInvariant() switch
    {
        "TRACE" => LogLevel.Trace,
        "DEBUG" => LogLevel.Debug,
        "INFO" or "INFORMATION" => LogLevel.Information,
        "WARN" or "WARNING" => LogLevel.Warning,
        "ERROR" => LogLevel.Error,
        "CRITICAL" => LogLevel.Critical,
        "OFF" or "NONE" => LogLevel.None,
        _ => throw new ConfigurationException($"coordination.logging.level: unknown level '{level}' (DEBUG, INFO, WARNING, ERROR or OFF)"),
    };

    /// <summary>
    /// Puts <c>coordination.logging.level</c> in force for Akka (<c>akka.loglevel</c>, so that events below it are not
    /// even built) and installs the bridge as Akka's logger. <paramref name="full"/> has the reference config as fallback.
    /// </summary>
    public static Config ApplyTo(Config full)
    {
        var akkaLevel = ParseLevel(full.GetString("coordination.logging.level", "INFO")) switch
        {
            LogLevel.Trace or LogLevel.Debug => "DEBUG",
            LogLevel.Information => "INFO",
            LogLevel.Warning => "WARNING",
            LogLevel.None => "OFF",
            _ => "ERROR",
        };
        return ConfigurationFactory.ParseString(
            $"akka.loglevel = {akkaLevel}\nakka.loggers = [\"{typeof(AkkaLoggerBridge).FullName}, {typeof(AkkaLoggerBridge).Assembly.GetName().Name}\"]")
            .WithFallback(full);
    }

    public void Dispose()
    {
        if (_ownsFactory) Factory.Dispose();
    }
}

public sealed class ServerLoggingProvider : ExtensionIdProvider<ServerLogging>
{
    public override ServerLogging CreateExtension(ExtendedActorSystem system) => ServerLogging.Create(system);
}
