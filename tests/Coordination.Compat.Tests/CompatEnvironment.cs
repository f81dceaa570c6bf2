using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Coordination.Compat.Tests;

/// <summary>
/// Where the tools and scripts of the compatibility suite are. Every location can be overridden by an
/// environment variable, so the suite also runs on machines laid out differently from Debian's packages.
/// </summary>
public static class CompatEnvironment
{
    /// <summary>The repository root: the directory holding Coordination.Akka.sln (or COMPAT_REPO_ROOT).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>tests/compat: kazoo_checks.py and java/ZkChecks.java.</summary>
    public static string CompatDir => Path.Combine(RepoRoot, "tests", "compat");

    public static string KazooScript => Path.Combine(CompatDir, "kazoo_checks.py");

    public static string KazooTlsScript => Path.Combine(CompatDir, "kazoo_tls.py");

    public static string JavaSource => Path.Combine(CompatDir, "java", "ZkChecks.java");

    /// <summary>A python3 that can import kazoo. Debian's python3-kazoo lives in the system interpreter.</summary>
    public static string Python { get; } =
        Env("COMPAT_PYTHON") ?? (File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

    public static string Java { get; } = JdkTool("java");

    public static string Javac { get; } = JdkTool("javac");

    /// <summary>Reads constants out of ZooKeeper's classes (ExtensionCodesTests).</summary>
    public static string Javap { get; } = JdkTool("javap");

    /// <summary>Apache ZooKeeper's jar; its manifest Class-Path pulls in jute, netty, slf4j-api and the rest.</summary>
    public static string ZooKeeperJar { get; } = Env("ZOOKEEPER_JAR") ?? "/usr/share/java/zookeeper.jar";

    /// <summary>zkCli.sh from the zookeeper package (used by the Java check "zkcli").</summary>
    public static string ZkCli { get; } = Env("ZKCLI") ?? "/usr/share/zookeeper/bin/zkCli.sh";

    /// <summary>Classpath for Java clients: ZooKeeper plus a silent slf4j binding if there is one.</summary>
    public static string ClientClasspath(string extra) =>
        string.Join(Path.PathSeparator, ((string[])[extra, ZooKeeperJar, OptionalJar("slf4j-nop.jar"), .. NettyJars()])
            .Where(s => !string.IsNullOrEmpty(s)));

    /// <summary>Classpath for the Apache server: ZooKeeper plus slf4j-simple so its log reaches stderr.</summary>
    public static string ServerClasspath() =>
        string.Join(Path.PathSeparator, ((string[])[ZooKeeperJar, OptionalJar("slf4j-simple.jar"), OptionalJar("servlet-api.jar"), .. NettyJars()])
            .Where(s => !string.IsNullOrEmpty(s)));

    /// <summary>
    /// The Netty jars that Debian's zookeeper.jar manifest leaves out but TLS needs (the Netty server connection
    /// factory and ClientCnxnSocketNetty use Netty's codec and resolver).
    /// </summary>
    private static string[] NettyJars() =>
        [OptionalJar("netty-codec.jar"), OptionalJar("netty-resolver.jar"), OptionalJar("netty-transport-native-unix-common.jar")];

    /// <summary>The super user both servers are configured with: super:super.</summary>
    public const string SuperUser = "super";

    public const string SuperPassword = "super";

    /// <summary>"super:" + base64(sha1("super:super")), ZooKeeper's DigestAuthenticationProvider format.</summary>
    public static string SuperDigest { get; } =
        SuperUser + ":" + Convert.ToBase64String(SHA1.HashData(Encoding.UTF8.GetBytes(SuperUser + ":" + SuperPassword)));

    /// <summary>Tick time of both servers under test; short so session expiry checks are quick.</summary>
    public const int TickTimeMs = 500;

    /// <summary>Container and TTL sweep interval of both servers under test.</summary>
    public const int ContainerCheckIntervalMs = 1000;

    /// <summary>
    /// Skips a check when the reference tools (Debian's zookeeper and python3-kazoo packages, a JDK) are missing,
    /// so that the README's test command works on a machine with only the .NET SDK. CI sets
    /// COORDINATION_REQUIRE_COMPAT=1, which turns a missing tool into a failure instead.
    /// </summary>
    public static void SkipUnlessAvailable(bool needsKazoo)
    {
        var missing = !File.Exists(ZooKeeperJar) ? $"{ZooKeeperJar} (Debian package zookeeper)"
            : !CommandWorks(Java, "-version") ? "java (a JDK)"
            : needsKazoo && !KazooAvailable.Value ? "kazoo for " + Python + " (Debian package python3-kazoo)"
            : null;
        if (missing is null) return;
        if (Env("COORDINATION_REQUIRE_COMPAT") == "1") Assert.Fail($"compatibility prerequisite missing: {missing}");
        Skip.If(true, $"compatibility prerequisite missing: {missing}");
    }

    private static readonly Lazy<bool> KazooAvailable = new(() => CommandWorks(Python, "-c", "import kazoo"));

    private static bool CommandWorks(string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) info.ArgumentList.Add(a);
            using var p = Process.Start(info)!;
            if (!p.WaitForExit(30_000)) { p.Kill(true); return false; }
            return p.ExitCode == 0;
        }
        catch (Exception) { return false; }
    }

    public static string CreateTempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void TryDeleteDir(string? dir)
    {
        if (dir is null)
        {
            return;
        }
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(200);
            }
            catch (UnauthorizedAccessException)
            {
                return;
            }
        }
    }

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Sends a four-letter word and reads the answer until the server closes the connection.</summary>
    public static async Task<string> FourLetterWordAsync(int port, string word, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(word), cts.Token);
        using var ms = new MemoryStream();
        var buf = new byte[4096];
        int n;
        while ((n = await stream.ReadAsync(buf, cts.Token)) > 0)
        {
            ms.Write(buf, 0, n);
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static string? Env(string name)
    {
        var v = Environment.GetEnvironmentVariable(name);
        return string.IsNullOrWhiteSpace(v) ? null : v;
    }

    private static string JdkTool(string tool)
    {
        var home = Env("JAVA_HOME");
        if (home is not null)
        {
            var p = Path.Combine(home, "bin", tool);
            if (File.Exists(p))
            {
                return p;
            }
        }
        return tool;
    }

    private static string OptionalJar(string name)
    {
        var p = Path.Combine(Path.GetDirectoryName(ZooKeeperJar) ?? "/usr/share/java", name);
        return File.Exists(p) ? p : "";
    }

    private static string FindRepoRoot()
    {
        var env = Env("COMPAT_REPO_ROOT");
        if (env is not null)
        {
            return env;
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Coordination.Akka.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException(
            $"Could not find Coordination.Akka.sln above {AppContext.BaseDirectory}; set COMPAT_REPO_ROOT.");
    }
}

/// <summary>Result of one subprocess run.</summary>
public sealed record ProcessResult(int ExitCode, string Output, bool TimedOut, TimeSpan Elapsed)
{
    public bool Succeeded => !TimedOut && ExitCode == 0;
}

/// <summary>Runs a subprocess with a hard timeout, capturing stdout and stderr interleaved.</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        TimeSpan timeout,
        IDictionary<string, string>? environment = null,
        string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                psi.Environment[k] = v;
            }
        }

        var output = new StringBuilder();
        var sw = Stopwatch.StartNew();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (output) { output.AppendLine(e.Data); } } };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            return new ProcessResult(-1, $"could not start {fileName}: {e.Message}", false, sw.Elapsed);
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                KillTree(process);
            }
        }
        // flush the asynchronous readers
        process.WaitForExit(5000);
        string text;
        lock (output)
        {
            text = output.ToString();
        }
        return new ProcessResult(timedOut ? -1 : process.ExitCode, text, timedOut, sw.Elapsed);
    }

    public static void KillTree(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }
}
