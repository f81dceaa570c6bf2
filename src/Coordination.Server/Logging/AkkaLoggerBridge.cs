using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;
using Microsoft.Extensions.Logging;
using MelLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Coordination.Server.Logging;

/// <summary>
/// Akka's logger (<c>akka.loggers</c>): writes Akka's log events to the server's <see cref="ILoggerFactory"/>, one
/// category per logging class. The properties of a semantic template (<c>"Session {SessionId} closed"</c>) become
/// structured fields, with the actor path as LogSource.
/// </summary>
public sealed class AkkaLoggerBridge : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private readonly ILoggerFactory _factory = ServerLogging.For(Context.System).Factory;
    private readonly Dictionary<Type, ILogger> _loggers = new();

    public AkkaLoggerBridge()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(Write);
    }

    private void Write(LogEvent e)
    {
        var level = e.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => MelLogLevel.Debug,
            Akka.Event.LogLevel.InfoLevel => MelLogLevel.Information,
            Akka.Event.LogLevel.WarningLevel => MelLogLevel.Warning,
            _ => MelLogLevel.Error,
        };
        var type = e.LogClass ?? typeof(AkkaLoggerBridge);
        if (!_loggers.TryGetValue(type, out var logger)) _loggers[type] = logger = _factory.CreateLogger(type.FullName ?? type.Name);
        if (!logger.IsEnabled(level)) return;
        logger.Log(level, default, new LogState(e), e.Cause, static (state, _) => state.Message);
    }

    /// <summary>The structured state of one event: the template's properties, LogSource and {OriginalFormat}.</summary>
    private sealed class LogState : IReadOnlyList<KeyValuePair<string, object?>>
    {
        private readonly List<KeyValuePair<string, object?>> _fields = new();
        public string Message { get; }

        public LogState(LogEvent e)
        {
            Message = e.Message?.ToString() ?? "";
            if (e.Message is LogMessage m)
            {
                var names = m.PropertyNames.ToList();
                var values = m.Parameters().ToList();
                for (var i = 0; i < names.Count && i < values.Count; i++) _fields.Add(new(names[i], values[i]));
                _fields.Add(new("{OriginalFormat}", m.Format));
            }
            _fields.Add(new("LogSource", e.LogSource));
        }

        public KeyValuePair<string, object?> this[int index] => _fields[index];
        public int Count => _fields.Count;
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => _fields.GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        public override string ToString() => Message;
    }
}
