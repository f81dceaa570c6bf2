namespace Coordination.Compat.Tests;

/// <summary>Compiles tests/compat/java/ZkChecks.java (with ZkTlsChecks, ZkReadOnly and ZkReconfig) once per test run into a temporary directory.</summary>
public static class JavaChecksBuild
{
    private static readonly Lazy<Task<string>> Compiled = new(CompileAsync, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The directory holding ZkChecks*.class.</summary>
    public static Task<string> GetClassesDirAsync() => Compiled.Value;

    /// <summary>Arguments for `java` that run ZkChecks with the given arguments.</summary>
    public static Task<List<string>> JavaArgsAsync(params string[] args) => MainArgsAsync("ZkChecks", args);

    /// <summary>Arguments for `java` that run one of the compiled programs (ZkChecks, ZkTlsChecks, ZkReadOnly, ZkReconfig).</summary>
    public static async Task<List<string>> MainArgsAsync(string mainClass, params string[] args)
    {
        var classes = await GetClassesDirAsync();
        var list = new List<string>
        {
            "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m",
            "-cp", CompatEnvironment.ClientClasspath(classes), mainClass,
        };
        list.AddRange(args);
        return list;
    }

    private static async Task<string> CompileAsync()
    {
        if (!File.Exists(CompatEnvironment.ZooKeeperJar))
        {
            throw new InvalidOperationException($"{CompatEnvironment.ZooKeeperJar} not found (apt-get install zookeeper).");
        }
        var dir = CompatEnvironment.CreateTempDir("compat-zkchecks");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => CompatEnvironment.TryDeleteDir(dir);
        var r = await ProcessRunner.RunAsync(
            CompatEnvironment.Javac,
            new[] { "-nowarn", "-encoding", "UTF-8", "-cp", CompatEnvironment.ZooKeeperJar, "-d", dir, CompatEnvironment.JavaSource,
                Path.Combine(CompatEnvironment.CompatDir, "java", "ZkTlsChecks.java"), Path.Combine(CompatEnvironment.CompatDir, "java", "ZkReadOnly.java"),
                Path.Combine(CompatEnvironment.CompatDir, "java", "ZkReconfig.java") },
            TimeSpan.FromSeconds(180));
        if (!r.Succeeded || !File.Exists(Path.Combine(dir, "ZkChecks.class")))
        {
            throw new InvalidOperationException(
                $"javac of {CompatEnvironment.JavaSource} failed (exit {r.ExitCode}, timed out: {r.TimedOut}):\n{r.Output}");
        }
        return dir;
    }
}
