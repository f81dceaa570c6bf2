using System.Runtime.InteropServices;
using Akka.Configuration;
using Coordination.Server;

// Coordination.Server [--config FILE] [--client-port N] [--data-dir DIR]
// Settings come from the command line, then FILE (HOCON), then the embedded reference.conf.
string? configFile = null;
var overrides = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--config": configFile = Next(); break;
        case "--client-port": overrides.Add($"coordination.client-port = {int.Parse(Next())}"); break;
        case "--client-address": overrides.Add($"coordination.client-address = \"{Next()}\""); break;
        case "--data-dir": overrides.Add($"coordination.data-dir = \"{Next().Replace("\\", "\\\\").Replace("\"", "\\\"")}\""); break;
        case "-h" or "--help":
            Console.WriteLine("Usage: Coordination.Server [--config FILE] [--client-port N] [--client-address IP] [--data-dir DIR]");
            Console.WriteLine("Settings and their defaults: hocon/standalone.conf");
            return 0;
        default:
            Console.Error.WriteLine($"Unknown argument {args[i]} (try --help)");
            return 2;
    }
}

var config = ConfigurationFactory.ParseString(string.Join("\n", overrides));
if (configFile is not null)
{
    if (!File.Exists(configFile)) { Console.Error.WriteLine($"Config file {configFile} not found"); return 2; }
    config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(configFile)));
}

await using var server = CoordinationServer.Start(config);
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
await Task.WhenAny(stop.Task, server.System.WhenTerminated);
Console.Error.WriteLine("Shutting down");
return 0;
