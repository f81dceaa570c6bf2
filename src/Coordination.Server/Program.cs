using Akka.Configuration;
using Coordination.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// Coordination.Server [--config FILE] [--client-port N] [--data-dir DIR] [--restore SNAPSHOT] [--set 'HOCON LINE']...
// Coordination.Server backup --out FILE [--config FILE] [--data-dir DIR]
// Settings come from the command line, then FILE (HOCON), then the embedded reference.conf.
string? configFile = null;
string? backupOut = null;
var backup = args.Length > 0 && args[0] == "backup";
var overrides = new List<string>();
static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
for (var i = backup ? 1 : 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--config": configFile = Next(); break;
        case "--client-port": overrides.Add($"coordination.client-port = {ClientPort(Next())}"); break;
        case "--client-address": overrides.Add($"coordination.client-address = \"{Next()}\""); break;
        case "--data-dir": overrides.Add($"coordination.data-dir = {Quote(Next())}"); break;
        case "--restore": overrides.Add($"coordination.persistence.restore-from = {Quote(Path.GetFullPath(Next()))}"); break;
        case "--set": overrides.Add(Next()); break;   // any HOCON line, e.g. --set 'coordination.metrics.enabled = on'
        case "--out" when backup: backupOut = Next(); break;
        case "-h" or "--help":
            Console.WriteLine("Usage: Coordination.Server [--config FILE] [--client-port N] [--client-address IP] [--data-dir DIR] [--restore SNAPSHOT] [--set 'HOCON LINE']...");
            Console.WriteLine("       Coordination.Server backup --out FILE [--config FILE] [--data-dir DIR]   (consistent snapshot of a running or stopped server)");
            Console.WriteLine("Settings and their defaults: hocon/standalone.conf");
            return 0;
        default:
            Console.Error.WriteLine($"Unknown argument {args[i]} (try --help)");
            return 2;
    }
}

// A port number, or off (only the secure client port serves).
static string ClientPort(string value) => value == "off" ? value : int.Parse(value).ToString();

var config = ConfigurationFactory.ParseString(string.Join("\n", overrides));
if (configFile is not null)
{
    if (!File.Exists(configFile)) { Console.Error.WriteLine($"Config file {configFile} not found"); return 2; }
    config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(configFile)));
}

if (backup)
{
    if (backupOut is null) { Console.Error.WriteLine("backup needs --out FILE"); return 2; }
    try
    {
        var zxid = CoordinationServer.Backup(config, backupOut);
        Console.WriteLine($"Backup written to {Path.GetFullPath(backupOut)} (zxid 0x{zxid:x})");
        return 0;
    }
    catch (Coordination.Server.Persistence.RecoveryException e)
    {
        Console.Error.WriteLine($"Backup failed: {e.Message}");
        return 1;
    }
}

// The server runs on the Generic Host: its lifetime (SIGTERM, SIGINT) and shutdown come from the host; the settings
// stay HOCON. An ensemble member restarts itself in-process after a quarantine or journal failure (CoordinationNode);
// a node that ends by itself stops the host.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
builder.Services.AddCoordinationServer(config);
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
using var host = builder.Build();
try
{
    await host.StartAsync();
}
catch (Coordination.Server.Persistence.RecoveryException e)
{
    Console.Error.WriteLine($"FATAL: {e.Message}");
    return 3;
}
catch (ConfigurationException e)
{
    Console.Error.WriteLine($"Configuration error: {e.Message}");
    return 2;
}
host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => Console.Error.WriteLine("Shutting down"));
await host.WaitForShutdownAsync();
// A node that ended by itself (an unrecoverable failure, NodeActor) is a failure for the service manager too.
return host.Services.GetServices<IHostedService>().OfType<Coordination.Server.Hosting.CoordinationServerService>().Any(s => s.EndedByItself) ? 1 : 0;
