using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Coordination.TestKit;

public enum ServerKind
{
    /// <summary>Coordination.Server (this repository), run with <c>dotnet Coordination.Server.dll</c>.</summary>
    Ours,
    /// <summary>Apache ZooKeeper 3.8 from Debian's zookeeper package (ZooKeeperServerMain, standalone).</summary>
    Apache,
}

public sealed record ServerProcessOptions
{
    /// <summary>Tick time (ms); the session timeout is negotiated between 2 and 20 ticks.</summary>
    public int TickTimeMs { get; init; } = 500;
    /// <summary>Fixed client port; 0 picks a free one on 127.0.0.1.</summary>
    public int Port { get; init; }
    /// <summary>Existing data directory to use (kept on dispose). Null creates a temporary one (deleted on dispose).</summary>
    public string? DataDir { get; init; }
    /// <summary>Extra HOCON appended to our server's config file.</summary>
    public string? ExtraHocon { get; init; }
    /// <summary>Extra zoo.cfg lines for Apache ZooKeeper.</summary>
    public IReadOnlyList<string> ExtraZooCfg { get; init; } = [];
    /// <summary>Extra JVM options for Apache ZooKeeper (e.g. "-Xmx1g").</summary>
    public IReadOnlyList<string> JavaOptions { get; init; } = [];
    /// <summary>Apache ZooKeeper's main class: ZooKeeperServerMain (standalone) or, for an ensemble member whose
    /// ExtraZooCfg lists server.N lines (and whose data dir holds myid), QuorumPeerMain.</summary>
    public string ApacheMainClass { get; init; } = "org.apache.zookeeper.server.ZooKeeperServerMain";
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Receives every stdout/stderr line of the server (e.g. a test output helper). Exceptions are swallowed.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>The address the client port binds and readiness checks connect to.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>A command the server is started through, e.g. <c>ip netns exec NAME</c> (it must exec the server in place, so that its pid is the server's).</summary>
    public IReadOnlyList<string> LaunchPrefix { get; init; } = [];
    /// <summary>Creates the sockets of readiness checks (e.g. in a network namespace that reaches <see cref="Host"/>); plain ones when null.</summary>
    public Func<Socket>? SocketFactory { get; init; }
    /// <summary>Extra environment variables of the server process.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
    /// <summary>No plain client port (ours: client-port = off; Apache: no clientPort in zoo.cfg). The server is then
    /// ready when <see cref="ReadyProbe"/> says so, which such a test must give.</summary>
    public bool PlainPortOff { get; init; }
    /// <summary>Replaces the readiness check (ruok and a session on the plain port), e.g. a session over TLS.</summary>
    public Func<CancellationToken, Task<bool>>? ReadyProbe { get; init; }
}

/// <summary>
/// Runs a ZooKeeper-compatible server as a child process on 127.0.0.1 with its own data directory: our server
/// (the Coordination.Server build output, found by walking up to Coordination.Akka.sln; Release preferred, then Debug;
/// override with COORDINATION_SERVER_DLL) or Apache ZooKeeper (classpath from ZOOKEEPER_CLASSPATH or
/// /usr/share/java/zookeeper.jar). Ready when it answers ruok with imok.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly ServerKind _kind;
    private readonly ServerProcessOptions _options;
    private readonly string _root;
    private readonly bool _ownsRoot;
    private readonly LinkedList<string> _tail = new();
    private const int TailLines = 400;
    private Process? _process;

    public ServerKind Kind => _kind;
    public int Port { get; private set; }
    public string Host => _options.Host;
    public string ConnectString => $"{Host}:{Port}";
    public string DataDir { get; }
    public string ConfigFile { get; }
    public int Pid => _process?.Id ?? -1;
    public bool HasExited => _process is null || _process.HasExited;
    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    private ServerProcess(ServerKind kind, ServerProcessOptions options)
    {
        _kind = kind;
        _options = options;
        if (options.DataDir is null)
        {
            _root = Path.Combine(Path.GetTempPath(), $"coord-{kind.ToString().ToLowerInvariant()}-{Guid.NewGuid():N}"[..28]);
            _ownsRoot = true;
            DataDir = Path.Combine(_root, "data");
        }
        else
        {
            DataDir = Path.GetFullPath(options.DataDir);
            _root = Path.Combine(Path.GetTempPath(), $"coord-cfg-{Guid.NewGuid():N}"[..24]);
            _ownsRoot = true; // the config dir is ours; the data dir is the caller's
        }
        Directory.CreateDirectory(DataDir);
        Directory.CreateDirectory(_root);
        ConfigFile = Path.Combine(_root, kind == ServerKind.Ours ? "server.conf" : "zoo.cfg");
    }

    /// <summary>"ours" or "apache" (as used by test theories).</summary>
    public static ServerKind ParseKind(string target) => target.Trim().ToLowerInvariant() switch
    {
        "ours" or "coordination" or "akka" => ServerKind.Ours,
        "apache" or "zookeeper" or "zk" => ServerKind.Apache,
        _ => throw new ArgumentException($"unknown server target '{target}' (ours|apache)"),
    };

    public static Task<ServerProcess> StartAsync(string target, ServerProcessOptions? options = null, CancellationToken ct = default) =>
        StartAsync(ParseKind(target), options, ct);

    public static async Task<ServerProcess> StartAsync(ServerKind kind, ServerProcessOptions? options = null, CancellationToken ct = default)
    {
        options ??= new ServerProcessOptions();
        var server = new ServerProcess(kind, options);
        try
        {
            await server.StartProcessAsync(options.Port, ct).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartProcessAsync(int fixedPort, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            Port = fixedPort != 0 ? fixedPort : FreeLoopbackPort();
            WriteConfig();
            Launch();
            try
            {
                await WaitUntilReadyAsync(ct).ConfigureAwait(false);
                return;
            }
            catch (ServerStartException e) when (fixedPort == 0 && attempt < 3 && e.Output.Contains("ddress already in use", StringComparison.Ordinal))
            {
                // Lost the race for the free port: pick another.
            }
        }
    }

    /// <summary>Kills the process if it still runs and starts it again on the same port and data directory.</summary>
    public async Task RestartAsync(CancellationToken ct = default)
    {
        Kill();
        await StartProcessAsync(Port, ct).ConfigureAwait(false);
    }

    /// <summary>Distinct free loopback ports, all bound at once so that none is handed out twice: two calls of
    /// <see cref="FreeLoopbackPort"/> in a row can return the same port (two nodes of one test bound the same member
    /// port so in CI, session 27).</summary>
    public static int[] FreeLoopbackPorts(int count)
    {
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                sockets.Add(s);
            }
            return sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port).ToArray();
        }
        finally
        {
            foreach (var s in sockets) s.Dispose();
        }
    }

    /// <summary>A loopback port free at the moment of the call (another process may still take it before it is bound).</summary>
    public static int FreeLoopbackPort() => FreeLoopbackPorts(1)[0];

    private void WriteConfig()
    {
        if (_kind == ServerKind.Ours)
        {
            var hocon = new StringBuilder();
            hocon.AppendLine("coordination {");
            hocon.AppendLine($"  tick-time = {_options.TickTimeMs}ms");
            hocon.AppendLine("  four-letter-words = [\"*\"]");
            hocon.AppendLine("  max-client-connections = 0");   // as maxClientCnxns=0 below: tests open many connections from 127.0.0.1
            hocon.AppendLine("}");
            if (_options.ExtraHocon is not null) hocon.AppendLine(_options.ExtraHocon);
            File.WriteAllText(ConfigFile, hocon.ToString());
        }
        else
        {
            var cfg = new StringBuilder();
            cfg.AppendLine($"tickTime={_options.TickTimeMs}");
            cfg.AppendLine($"dataDir={DataDir}");
            if (!_options.PlainPortOff)
            {
                cfg.AppendLine($"clientPort={Port}");
                cfg.AppendLine($"clientPortAddress={Host}");
            }
            cfg.AppendLine("4lw.commands.whitelist=*");
            cfg.AppendLine("admin.enableServer=false");
            cfg.AppendLine("maxClientCnxns=0"); // default is 60 per client IP; the scale test opens 1,000 from 127.0.0.1
            foreach (var line in _options.ExtraZooCfg) cfg.AppendLine(line);
            File.WriteAllText(ConfigFile, cfg.ToString());
        }
    }

    private void Launch()
    {
        lock (_tail) _tail.Clear();
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            WorkingDirectory = _root,
        };
        if (_kind == ServerKind.Ours)
        {
            psi.FileName = "dotnet";
            psi.ArgumentList.Add(FindServerDll());
            psi.ArgumentList.Add("--client-port");
            psi.ArgumentList.Add(_options.PlainPortOff ? "off" : Port.ToString());
            psi.ArgumentList.Add("--client-address");
            psi.ArgumentList.Add(Host);
            psi.ArgumentList.Add("--data-dir");
            psi.ArgumentList.Add(DataDir);
            psi.ArgumentList.Add("--config");
            psi.ArgumentList.Add(ConfigFile);
        }
        else
        {
            psi.FileName = System.Environment.GetEnvironmentVariable("JAVA") ?? "java";
            foreach (var o in _options.JavaOptions) psi.ArgumentList.Add(o);
            psi.ArgumentList.Add("-cp");
            psi.ArgumentList.Add(FindZooKeeperClasspath());
            psi.ArgumentList.Add(_options.ApacheMainClass);
            psi.ArgumentList.Add(ConfigFile);
        }
        foreach (var (k, v) in _options.Environment) psi.Environment[k] = v;
        if (_options.LaunchPrefix.Count > 0)
        {
            psi.ArgumentList.Insert(0, psi.FileName);
            for (var i = _options.LaunchPrefix.Count - 1; i >= 1; i--) psi.ArgumentList.Insert(0, _options.LaunchPrefix[i]);
            psi.FileName = _options.LaunchPrefix[0];
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        if (!process.Start()) throw new ServerStartException($"could not start {psi.FileName}", "");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.AddLast(line);
            if (_tail.Count > TailLines) _tail.RemoveFirst();
        }
        try { _options.Log?.Invoke(line); } catch { }
    }

    /// <summary>The last few hundred lines the server printed (stdout and stderr interleaved).</summary>
    public string OutputTail
    {
        get { lock (_tail) return string.Join('\n', _tail); }
    }

    private async Task WaitUntilReadyAsync(CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var waitingFor = "ruok -> imok";
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (_process!.HasExited)
            {
                _process.WaitForExit(); // drain the output
                throw new ServerStartException(
                    $"{_kind} server exited with code {_process.ExitCode} during startup on port {Port}. Last output:\n{Tail(60)}", OutputTail);
            }
            if (_options.ReadyProbe is { } probe)
            {
                waitingFor = "the ready probe";
                if (await probe(ct).ConfigureAwait(false)) return;
            }
            // Apache answers ruok before its database is loaded and closes client connections until then, so a
            // server is ready only when ruok says imok and a session handshake succeeds.
            else if (await FourLetterWord.IsOkAsync(Host, Port, TimeSpan.FromSeconds(2), ct, _options.SocketFactory).ConfigureAwait(false))
            {
                waitingFor = "a session handshake (ruok already answers imok)";
                if (await CanOpenSessionAsync(ct).ConfigureAwait(false)) return;
            }
            if (deadline.Elapsed > _options.StartTimeout)
            {
                Kill();
                throw new ServerStartException(
                    $"{_kind} server not ready within {_options.StartTimeout.TotalSeconds:F0} s on port {Port}: no {waitingFor}. Last output:\n{Tail(60)}", OutputTail);
            }
            await Task.Delay(150, ct).ConfigureAwait(false);
        }
    }

    private string Tail(int lines)
    {
        lock (_tail) return string.Join('\n', _tail.Skip(Math.Max(0, _tail.Count - lines)));
    }

    private async Task<bool> CanOpenSessionAsync(CancellationToken ct)
    {
        try
        {
            var client = await WireClient.ConnectAsync(Host, Port, new WireClientOptions
            {
                ConnectTimeout = TimeSpan.FromSeconds(5), AutoPing = false, EventChannel = false, SocketFactory = _options.SocketFactory,
            }, ct).ConfigureAwait(false);
            await client.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            return true;
        }
        catch (WireConnectionException) { return false; }
    }

    /// <summary>
    /// Finds Coordination.Server.dll: $COORDINATION_SERVER_DLL, else the server built in the same configuration as
    /// the running tests (so `dotnet test -c Release` never picks up a stale Debug build, or the reverse), else the other.
    /// </summary>
    public static string FindServerDll()
    {
        var env = System.Environment.GetEnvironmentVariable("COORDINATION_SERVER_DLL");
        if (!string.IsNullOrEmpty(env))
        {
            if (!File.Exists(env)) throw new FileNotFoundException($"COORDINATION_SERVER_DLL points to a missing file: {env}");
            return env;
        }
        var root = FindRepositoryRoot();
        var tried = new List<string>();
        var own = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        foreach (var configuration in new[] { own, own == "Release" ? "Debug" : "Release" })
        {
            var candidate = Path.Combine(root, "src", "Coordination.Server", "bin", configuration, "net10.0", "Coordination.Server.dll");
            tried.Add(candidate);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException(
            "Coordination.Server.dll not found; build it first (dotnet build src/Coordination.Server -c Release). Tried: " + string.Join(", ", tried));
    }

    /// <summary>The directory holding Coordination.Akka.sln, found by walking up from the running assembly.</summary>
    public static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Coordination.Akka.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Coordination.Akka.sln above {AppContext.BaseDirectory}");
    }

    public static string FindZooKeeperClasspath()
    {
        var env = System.Environment.GetEnvironmentVariable("ZOOKEEPER_CLASSPATH");
        if (!string.IsNullOrEmpty(env)) return env;
        // Debian's zookeeper.jar carries a Class-Path manifest naming its dependencies in /usr/share/java.
        // It leaves out Netty's codec and resolver, which the Netty connection factory (and so TLS) needs.
        foreach (var candidate in new[] { "/usr/share/java/zookeeper.jar", "/usr/share/zookeeper/zookeeper.jar" })
            if (File.Exists(candidate))
                return string.Join(':', new[] { "netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar", "servlet-api.jar" }
                    .Select(jar => Path.Combine(Path.GetDirectoryName(candidate)!, jar)).Where(File.Exists).Prepend(candidate));
        throw new FileNotFoundException("Apache ZooKeeper not found: apt-get install zookeeper, or set ZOOKEEPER_CLASSPATH");
    }

    /// <summary>True when Apache ZooKeeper and java are installed (tests may skip the "apache" target otherwise).</summary>
    public static bool ApacheAvailable()
    {
        try { FindZooKeeperClasspath(); return true; }
        catch (FileNotFoundException) { return false; }
    }

    // ---------------------------------------------------------------- stats and control

    /// <summary>Resident set size (VmRSS) of the server process in bytes, -1 when unavailable.</summary>
    public long RssBytes => _process is { HasExited: false } p ? ProcStats.ReadRssBytes(p.Id) : -1;

    /// <summary>User + system CPU time consumed by the server process so far.</summary>
    public TimeSpan? CpuTime => _process is { HasExited: false } p ? ProcStats.ReadCpuTime(p.Id) : null;

    public int OpenFiles => _process is { HasExited: false } p ? ProcStats.CountOpenFiles(p.Id) : -1;

    /// <summary>SIGKILL, then wait for the process to be gone.</summary>
    public void Kill()
    {
        var p = _process;
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: false); // SIGKILL on Unix
                p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException) { }
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int SysKill(int pid, int sig);

    /// <summary>SIGTERM, wait up to <paramref name="grace"/>, then SIGKILL.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        var p = _process;
        if (p is null || p.HasExited) return;
        try
        {
            if (OperatingSystem.IsLinux()) SysKill(p.Id, 15);
            using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(10));
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        catch (Exception) { }
        Kill();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        _process?.Dispose();
        _process = null;
        if (_ownsRoot)
        {
            for (var i = 0; i < 3; i++)
            {
                try
                {
                    if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
                    break;
                }
                catch (IOException) { await Task.Delay(200).ConfigureAwait(false); }
                catch (UnauthorizedAccessException) { break; }
            }
        }
    }

    public override string ToString() => $"{_kind} server pid {Pid} on {ConnectString}";
}

public sealed class ServerStartException(string message, string output) : Exception(message)
{
    public string Output { get; } = output;
}
