using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Spectre.Console;

namespace Coordination.Cli;

/// <summary>
/// The data-dir admin verbs, wrapping the server binary's own features so that there is one implementation:
/// <c>backup</c> (alias <c>snapshot</c>) runs <c>Coordination.Server backup --data-dir D --out F</c> (a consistent
/// snapshot of a running or stopped server), and <c>restore</c> seeds an empty data dir from such a file by
/// starting the server once with <c>--restore F</c> on a free loopback port, waiting until it serves, and stopping
/// it. Both show their stages on stderr: a Spectre.Console progress display on a terminal, one line per stage otherwise.
/// </summary>
public static partial class DataDirVerbs
{
    public static async Task<int> BackupAsync(Args a, CliSettings settings, TextWriter stdout)
    {
        var dataDir = a.Text("--data-dir") ?? throw new UsageException("backup needs --data-dir DIR (the server's data dir)");
        var outFile = a.Text("--out") ?? throw new UsageException("backup needs --out FILE");
        var (serverDll, config) = (FindServerDll(a.Text("--server-dll")), a.Text("--config"));
        a.End();
        var argv = new List<string> { "backup", "--data-dir", dataDir, "--out", outFile };
        if (config is not null) argv.AddRange(["--config", config]);

        ServerRun run = null!;
        await WithProgressAsync(settings, $"Backup of {dataDir}", async update => run = await RunServerAsync(serverDll, argv, update, serving: null));
        if (run.ExitCode != 0) return Fail(settings, "backup failed", run);
        var zxid = ZxidPattern().Match(run.Output) is { Success: true } m ? m.Groups[1].Value : "?";
        var bytes = new FileInfo(outFile).Length;
        if (settings.Json) stdout.WriteLine(JsonSerializer.Serialize(new { file = Path.GetFullPath(outFile), zxid = "0x" + zxid, bytes }));
        else stdout.WriteLine($"Backup written to {Path.GetFullPath(outFile)} ({bytes:N0} bytes, zxid 0x{zxid})");
        return ExitCodes.Ok;
    }

    public static async Task<int> RestoreAsync(Args a, CliSettings settings, TextWriter stdout)
    {
        var dataDir = a.Text("--data-dir") ?? throw new UsageException("restore needs --data-dir DIR (an empty or new data dir)");
        var from = a.Text("--from") ?? throw new UsageException("restore needs --from FILE (a backup or snapshot file)");
        var (serverDll, config) = (FindServerDll(a.Text("--server-dll")), a.Text("--config"));
        a.End();
        if (!File.Exists(from)) throw new UsageException($"{from}: no such file");
        var port = FreeLoopbackPort();
        var argv = new List<string> { "--data-dir", dataDir, "--restore", from, "--client-port", port.ToString(), "--client-address", "127.0.0.1" };
        if (config is not null) argv.InsertRange(0, ["--config", config]);

        ServerRun run = null!;
        await WithProgressAsync(settings, $"Restore of {Path.GetFileName(from)} into {dataDir}", async update =>
            run = await RunServerAsync(serverDll, argv, update, serving: port));
        if (!run.Served) return Fail(settings, "restore failed", run);
        var snapshot = Directory.EnumerateFiles(dataDir, "snapshot.*").Select(Path.GetFileName).OrderBy(n => n).LastOrDefault();
        if (settings.Json) stdout.WriteLine(JsonSerializer.Serialize(new { dataDir = Path.GetFullPath(dataDir), from = Path.GetFullPath(from), snapshot }));
        else stdout.WriteLine($"Restored {Path.GetFullPath(from)} into {Path.GetFullPath(dataDir)} ({snapshot}); start the server on that data dir without --restore");
        return ExitCodes.Ok;
    }

    private static int Fail(CliSettings settings, string what, ServerRun run)
    {
        var detail = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.Contains("FATAL") || l.Contains("failed") || l.Contains("refus")) ?? $"server exited with code {run.ExitCode}";
        Console.Error.WriteLine(settings.Json ? JsonSerializer.Serialize(new { error = what, detail, exitCode = run.ExitCode }) : $"coord: {what}: {detail}");
        return ExitCodes.Error;
    }

    private sealed record ServerRun(int ExitCode, bool Served, string Output);

    /// <summary>
    /// Runs the server binary, reporting each line it prints as the current stage. With <paramref name="serving"/>
    /// it is a restore: once that port answers ruok the data dir is seeded and recovered, and the server is stopped.
    /// </summary>
    private static async Task<ServerRun> RunServerAsync(string serverDll, IReadOnlyList<string> argv, Action<string, double> update, int? serving)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(serverDll);
        foreach (var arg in argv) psi.ArgumentList.Add(arg);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
        var output = new System.Text.StringBuilder();
        void OnLine(string? line)
        {
            if (string.IsNullOrWhiteSpace(line)) return;
            lock (output) output.AppendLine(line);
            update(Stage(line), 0);
        }
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        update("starting the server binary", 10);

        var served = false;
        if (serving is { } port)
        {
            while (!process.HasExited && !served)
            {
                await Task.Delay(200);
                served = await AnswersRuokAsync(port);
            }
            if (served)
            {
                update("restored and recovered; stopping the server", 90);
                Terminate(process);
            }
        }
        await process.WaitForExitAsync();
        update("done", 100);
        lock (output) return new ServerRun(process.ExitCode, served, output.ToString());
    }

    /// <summary>The stage a server log line stands for (its message without the timestamp and category).</summary>
    private static string Stage(string line)
    {
        var at = line.IndexOf(": ", StringComparison.Ordinal);
        var message = at >= 0 && at < 120 ? line[(at + 2)..] : line;
        message = LogCategoryPrefix().Replace(message, "");
        return message.Length > 70 ? message[..70] + "…" : message;
    }

    private static async Task WithProgressAsync(CliSettings settings, string title, Func<Action<string, double>, Task> body)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        if (settings.Json) { await body((_, _) => { }); return; }
        if (!console.Profile.Capabilities.Interactive)
        {
            // Spectre's non-interactive progress samples once a second, so a fast restore printed nothing at all;
            // a redirected stderr (CI, scripts, logs) gets every stage as its own line instead.
            string? last = null;
            await body((stage, _) =>
            {
                lock (console)
                {
                    if (stage == last) return;
                    last = stage;
                    Console.Error.WriteLine($"{title}: {stage}");
                }
            });
            return;
        }
        await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 100);
                task.IsIndeterminate = true;
                await body((stage, percent) =>
                {
                    task.Description = Markup.Escape($"{title}: {stage}");
                    if (percent > 0) { task.IsIndeterminate = false; task.Value = Math.Max(task.Value, percent); }
                });
                task.StopTask();
            });
    }

    private static async Task<bool> AnswersRuokAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            var stream = client.GetStream();
            await stream.WriteAsync("ruok"u8.ToArray(), cts.Token);
            var buffer = new byte[4];
            var read = await stream.ReadAtLeastAsync(buffer, 4, throwOnEndOfStream: false, cts.Token);
            return read == 4 && buffer.AsSpan().SequenceEqual("imok"u8);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException) { return false; }
    }

    /// <summary>SIGTERM, so that the server shuts down cleanly; a kill if it does not stop within 10 s.</summary>
    private static void Terminate(Process process)
    {
        try { Process.Start("kill", ["-TERM", process.Id.ToString()])?.WaitForExit(5000); }
        catch (System.ComponentModel.Win32Exception) { /* no kill(1): fall through */ }
        if (!process.WaitForExit(10_000)) process.Kill(entireProcessTree: true);
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>--server-dll, else $COORDINATION_SERVER_DLL, else beside coord.dll, else the repository's build output.</summary>
    private static string FindServerDll(string? option)
    {
        var explicitPath = option ?? Environment.GetEnvironmentVariable("COORDINATION_SERVER_DLL");
        if (!string.IsNullOrEmpty(explicitPath))
            return File.Exists(explicitPath) ? explicitPath : throw new UsageException($"server binary {explicitPath} not found");
        var beside = Path.Combine(AppContext.BaseDirectory, "Coordination.Server.dll");
        if (File.Exists(beside)) return beside;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            foreach (var configuration in new[] { "Release", "Debug" })
            {
                var candidate = Path.Combine(dir.FullName, "src", "Coordination.Server", "bin", configuration, "net10.0", "Coordination.Server.dll");
                if (File.Exists(candidate)) return candidate;
            }
        throw new UsageException("cannot find Coordination.Server.dll: pass --server-dll PATH or set COORDINATION_SERVER_DLL");
    }

    [GeneratedRegex(@"\(zxid 0x([0-9a-f]+)\)")]
    private static partial Regex ZxidPattern();

    /// <summary>The logger's "Some.Category[0] " before a message.</summary>
    [GeneratedRegex(@"^[\w.`]+\[\d+\]\s+")]
    private static partial Regex LogCategoryPrefix();
}
