using System.Diagnostics;
using System.Text;

namespace Coordination.Compat.Tests;

/// <summary>
/// A server under test, run as a child process on a free 127.0.0.1 port with a temporary data
/// directory. It starts lazily, on the first test that needs it, so that a target that cannot start
/// (for example our server before it is built) fails only its own tests, with a clear message,
/// and the other target's tests still run. The failure is cached: the start is tried once per run.
/// </summary>
public abstract class ServerFixture : IAsyncLifetime
{
    private readonly Lazy<Task<string>> _start;
    private readonly LinkedList<string> _logTail = new();
    private const int LogTailLines = 200;
    private Process? _process;
    private StreamWriter? _logFile;

    protected ServerFixture()
    {
        _start = new Lazy<Task<string>>(StartAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Short name used in test names and messages: "apache" or "ours".</summary>
    public abstract string Target { get; }

    /// <summary>What srvr/stat/mntr report as the server's mode.</summary>
    public virtual string ExpectedMode => "standalone";

    /// <summary>How long to wait for "ruok" to answer "imok".</summary>
    protected virtual TimeSpan StartupTimeout => TimeSpan.FromSeconds(60);

    public int Port { get; private set; }

    /// <summary>Temporary directory of this server (config, data, log); deleted on dispose.</summary>
    public string? WorkDir { get; private set; }

    public string? LogPath => WorkDir is null ? null : Path.Combine(WorkDir, "server.log");

    /// <summary>The JVM that runs this target's Java-client checks, started at the first one.</summary>
    public CheckServer JavaChecks { get; } = new(async hosts => (CompatEnvironment.Java, await JavaChecksBuild.JavaArgsAsync(hosts, "--serve")));

    /// <summary>The Python that runs this target's kazoo checks, started at the first one.</summary>
    public CheckServer KazooChecks { get; } = new(hosts => Task.FromResult(
        (CompatEnvironment.Python, new List<string> { CompatEnvironment.KazooScript, "--hosts", hosts, "--serve", "--timeout", "55" })));

    /// <summary>Starts the server if needed and returns its connect string, "127.0.0.1:PORT".</summary>
    public async Task<string> GetHostsAsync()
    {
        var hosts = await _start.Value;
        if (_process is { HasExited: true })
        {
            throw new InvalidOperationException(
                $"The {Target} server (pid {_process.Id}) exited with code {_process.ExitCode} during the run.\n" +
                $"--- last lines of its log ({LogPath}) ---\n{LogTail()}");
        }
        return hosts;
    }

    /// <summary>Builds the command line and writes config files into <paramref name="workDir"/>.</summary>
    protected abstract ProcessStartInfo CreateStartInfo(string workDir, int port);

    /// <summary>The last lines the server wrote to stdout and stderr.</summary>
    public string LogTail(int lines = 60)
    {
        lock (_logTail)
        {
            return string.Join("\n", _logTail.Skip(Math.Max(0, _logTail.Count - lines)));
        }
    }

    private async Task<string> StartAsync()
    {
        WorkDir = CompatEnvironment.CreateTempDir("compat-" + Target);
        Port = CompatEnvironment.FreePort();
        var psi = CreateStartInfo(WorkDir, Port);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        psi.WorkingDirectory = WorkDir;
        _logFile = new StreamWriter(LogPath!, append: false, Encoding.UTF8) { AutoFlush = true };

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLogLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLogLine(e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            throw new InvalidOperationException(
                $"Could not start the {Target} server ({psi.FileName} {string.Join(' ', psi.ArgumentList)}): {e.Message}", e);
        }
        _process = process;
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var sw = Stopwatch.StartNew();
        string? lastAnswer = null;
        while (sw.Elapsed < StartupTimeout)
        {
            if (process.HasExited)
            {
                process.WaitForExit(2000);
                throw new InvalidOperationException(
                    $"The {Target} server exited with code {process.ExitCode} before answering ruok.\n" +
                    $"Command: {psi.FileName} {string.Join(' ', psi.ArgumentList)}\n--- its output ---\n{LogTail(100)}");
            }
            try
            {
                lastAnswer = await CompatEnvironment.FourLetterWordAsync(Port, "ruok", TimeSpan.FromSeconds(2));
                if (lastAnswer == "imok")
                {
                    // ruok can answer before the server accepts sessions (Apache ZooKeeper does):
                    // keep polling until a session handshake works too
                    var handshakeError = await TrySessionHandshakeAsync();
                    if (handshakeError is null)
                    {
                        return $"127.0.0.1:{Port}";
                    }
                    lastAnswer = "imok, but a client session handshake (connect + closeSession) failed: " + handshakeError;
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
                lastAnswer = e.GetType().Name + ": " + e.Message;
            }
            await Task.Delay(200);
        }
        ProcessRunner.KillTree(process);
        throw new InvalidOperationException(
            $"The {Target} server did not answer ruok with imok within {StartupTimeout.TotalSeconds:0} s " +
            $"(last answer: {lastAnswer}).\n--- its output ---\n{LogTail(100)}");
    }

    /// <summary>
    /// Opens and closes one session with a raw jute handshake, so that a server which answers ruok but
    /// cannot serve clients fails every test at once with one clear message instead of each check
    /// timing out on its own.
    /// </summary>
    private async Task<string?> TrySessionHandshakeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var client = new System.Net.Sockets.TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, Port, cts.Token);
            var stream = client.GetStream();
            // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 bytes)
            var connect = new byte[4 + 4 + 8 + 4 + 8 + 4 + 16];
            var w = new Span<byte>(connect);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(w, connect.Length - 4);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(w[16..], 10000);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(w[28..], 16);
            await stream.WriteAsync(connect, cts.Token);
            var response = await ReadFrameAsync(stream, cts.Token);
            if (response.Length < 4 + 4 + 8 + 4)
            {
                throw new InvalidOperationException($"ConnectResponse too short ({response.Length} bytes)");
            }
            var timeout = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(response.AsSpan(4));
            var sessionId = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(response.AsSpan(8));
            if (timeout <= 0 || sessionId == 0)
            {
                throw new InvalidOperationException($"ConnectResponse refused the session (timeout {timeout}, session 0x{sessionId:x})");
            }
            // closeSession: xid 1, type -11
            var close = new byte[12];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(close, 8);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(close.AsSpan(4), 1);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(close.AsSpan(8), -11);
            await stream.WriteAsync(close, cts.Token);
            await ReadFrameAsync(stream, cts.Token);
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    private static async Task<byte[]> ReadFrameAsync(System.Net.Sockets.NetworkStream stream, CancellationToken ct)
    {
        var header = new byte[4];
        await stream.ReadExactlyAsync(header, ct);
        var len = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header);
        if (len < 0 || len > 1 << 20)
        {
            throw new InvalidOperationException($"Connect/close response frame has a bad length {len}");
        }
        var body = new byte[len];
        await stream.ReadExactlyAsync(body, ct);
        return body;
    }

    private void OnLogLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_logTail)
        {
            _logTail.AddLast(line);
            if (_logTail.Count > LogTailLines)
            {
                _logTail.RemoveFirst();
            }
            try
            {
                _logFile?.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // shutting down
            }
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        await JavaChecks.DisposeAsync();
        await KazooChecks.DisposeAsync();
        if (_process is not null)
        {
            ProcessRunner.KillTree(_process);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                // leave it; the OS reaps it with us
            }
            _process.Dispose();
        }
        lock (_logTail)
        {
            _logFile?.Dispose();
            _logFile = null;
        }
        if (Environment.GetEnvironmentVariable("COMPAT_KEEP_TEMP") != "1")
        {
            CompatEnvironment.TryDeleteDir(WorkDir);
        }
    }
}

/// <summary>
/// Apache ZooKeeper 3.8 standalone (Debian's zookeeper package), launched directly with
/// ZooKeeperServerMain and a generated zoo.cfg: tickTime 500 ms, all four-letter words, no admin
/// server, TTL nodes enabled, containers checked every second, super user super:super.
/// </summary>
public class ApacheZooKeeperFixture : ServerFixture
{
    /// <summary>More zoo.cfg lines (written into <paramref name="workDir"/>'s config).</summary>
    protected virtual IEnumerable<string> ExtraConfig(string workDir) => [];

    /// <summary>More JVM options (system properties) for the server.</summary>
    protected virtual IEnumerable<string> ExtraJvmOptions => [];

    public override string Target => "apache";

    protected override ProcessStartInfo CreateStartInfo(string workDir, int port)
    {
        if (!File.Exists(CompatEnvironment.ZooKeeperJar))
        {
            throw new InvalidOperationException(
                $"{CompatEnvironment.ZooKeeperJar} not found: install the Debian packages zookeeper zookeeper-bin " +
                "python3-kazoo (or set ZOOKEEPER_JAR).");
        }
        var dataDir = Path.Combine(workDir, "data");
        Directory.CreateDirectory(dataDir);
        var cfg = Path.Combine(workDir, "zoo.cfg");
        // min/max session timeout stay at ZooKeeper's defaults (2 and 20 ticks): 1 s and 10 s, the same
        // as our server's defaults for the same tick time.
        File.WriteAllText(cfg, string.Join("\n", (string[])[
            $"tickTime={CompatEnvironment.TickTimeMs}",
            $"dataDir={dataDir}",
            $"clientPort={port}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "autopurge.purgeInterval=0",
            .. ExtraConfig(workDir),
            ""]));
        var psi = new ProcessStartInfo(CompatEnvironment.Java);
        foreach (var arg in (string[])[
                     "-Xmx512m", "-XX:+UseSerialGC",
                     "-Dzookeeper.extendedTypesEnabled=true",
                     $"-Dznode.container.checkIntervalMs={CompatEnvironment.ContainerCheckIntervalMs}",
                     $"-Dzookeeper.DigestAuthenticationProvider.superDigest={CompatEnvironment.SuperDigest}",
                     "-Dzookeeper.admin.enableServer=false",
                     "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                     "-Dzookeeper.jmx.log4j.disable=true",
                     .. ExtraJvmOptions,
                     "-cp", CompatEnvironment.ServerClasspath(),
                     "org.apache.zookeeper.server.ZooKeeperServerMain", cfg,
                 ])
        {
            psi.ArgumentList.Add(arg);
        }
        return psi;
    }
}

/// <summary>
/// Our server, src/Coordination.Server, as built (Release or Debug, whichever is newer; or
/// COORDINATION_SERVER_DLL), run with dotnet and a HOCON file setting the same tick time, four-letter
/// words, super user and container interval as the Apache fixture.
/// </summary>
public sealed class CoordinationServerFixture : ServerFixture
{
    public override string Target => "ours";

    public static string? FindServerDll()
    {
        var env = Environment.GetEnvironmentVariable("COORDINATION_SERVER_DLL");
        if (!string.IsNullOrWhiteSpace(env))
        {
            return File.Exists(env) ? env : null;
        }
        var bin = Path.Combine(CompatEnvironment.RepoRoot, "src", "Coordination.Server", "bin");
        return new[] { "Release", "Debug" }
            .Select(c => Path.Combine(bin, c, "net10.0", "Coordination.Server.dll"))
            .Where(File.Exists)
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault();
    }

    protected override ProcessStartInfo CreateStartInfo(string workDir, int port) => StartInfo(workDir, port, "");

    /// <summary>The command line of one of our servers, with the compat settings plus <paramref name="extraHocon"/>.</summary>
    public static ProcessStartInfo StartInfo(string workDir, int port, string extraHocon)
    {
        var dll = FindServerDll() ?? throw new InvalidOperationException(
            "Coordination.Server.dll not found under src/Coordination.Server/bin/{Release,Debug}/net10.0 " +
            "(build it first: dotnet build src/Coordination.Server -c Release; or set COORDINATION_SERVER_DLL).");
        var dataDir = Path.Combine(workDir, "data");
        Directory.CreateDirectory(dataDir);
        var conf = Path.Combine(workDir, "compat.conf");
        File.WriteAllText(conf, $$"""
            # written by Coordination.Compat.Tests: the same settings as the Apache ZooKeeper fixture
            coordination {
              tick-time = {{CompatEnvironment.TickTimeMs}}ms
              four-letter-words = ["*"]
              max-client-connections = 0
              super-digest = "{{CompatEnvironment.SuperDigest}}"
              container-check-interval = {{CompatEnvironment.ContainerCheckIntervalMs}}ms
            }
            {{extraHocon}}

            """);
        var psi = new ProcessStartInfo("dotnet");
        foreach (var arg in new[]
                 {
                     dll, "--client-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--data-dir", dataDir, "--config", conf,
                 })
        {
            psi.ArgumentList.Add(arg);
        }
        psi.Environment["DOTNET_gcServer"] = "0";
        return psi;
    }
}

/// <summary>
/// A 3-server ensemble of ours (three processes of the real binary). The checks talk to member 1, which the
/// election makes a follower on a fresh ensemble (equal zxids: the highest id leads), so every write of every
/// check is forwarded to the leader and committed through Zab before member 1 answers it.
/// </summary>
public class CoordinationEnsembleFixture : ServerFixture
{
    private readonly List<Process> _others = new();

    public override string Target => "ours-ensemble";

    /// <summary>More <c>coordination</c> settings for every member.</summary>
    protected virtual string ExtraSettings => "";

    public override string ExpectedMode => "follower";

    protected override TimeSpan StartupTimeout => TimeSpan.FromSeconds(120);

    protected override ProcessStartInfo CreateStartInfo(string workDir, int port)
    {
        var remoting = Enumerable.Range(0, 3).Select(_ => CompatEnvironment.FreePort()).ToArray();
        var secret = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        string Member(int id) => $$"""
            coordination {
              server-id = {{id}}
              ensemble.voters { 1 = "127.0.0.1:{{remoting[0]}}", 2 = "127.0.0.1:{{remoting[1]}}", 3 = "127.0.0.1:{{remoting[2]}}" }
              ensemble.auth.secret = "{{secret}}"
              {{ExtraSettings}}
            }
            akka.loglevel = WARNING
            """;
        for (var id = 2; id <= 3; id++)
        {
            var dir = Path.Combine(workDir, $"member{id}");
            Directory.CreateDirectory(dir);
            var psi = CoordinationServerFixture.StartInfo(dir, CompatEnvironment.FreePort(), Member(id));
            psi.UseShellExecute = false;
            psi.WorkingDirectory = dir;
            _others.Add(Process.Start(psi) ?? throw new InvalidOperationException($"could not start ensemble member {id}"));
        }
        return CoordinationServerFixture.StartInfo(workDir, port, Member(1));
    }

    public override async Task DisposeAsync()
    {
        foreach (var other in _others)
        {
            ProcessRunner.KillTree(other);
            other.Dispose();
        }
        await base.DisposeAsync();
    }
}
