using Coordination.TestKit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

internal static class Servers
{
    /// <summary>Starts our server with the given extra HOCON in a fresh (or the given) data dir.</summary>
    public static Task<ServerProcess> StartAsync(ITestOutputHelper output, string extraHocon = "", string? dataDir = null, int tickMs = 500) =>
        ServerProcess.StartAsync(ServerKind.Ours, new ServerProcessOptions
        {
            TickTimeMs = tickMs,
            DataDir = dataDir,
            ExtraHocon = extraHocon,
            StartTimeout = TimeSpan.FromSeconds(90),
        });

    public static long DirectorySize(string dir) =>
        new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    public static string TempDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"coord-pt-{name}-{Guid.NewGuid():N}"[..32]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
