using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Coordination.Compat.Tests;

/// <summary>
/// One process per target and client for the catalogue's checks (`ZkChecks HOSTS --serve`, `kazoo_checks.py --hosts
/// HOSTS --serve`): a JVM start with ZooKeeper's classes, or a Python start importing kazoo, cost more CPU than most
/// checks, and the suite ran 80 JVMs and 172 Pythons. Each test still sends its own check and gets that check's
/// output and verdict alone, ended by the done line; every check keeps its own watchdog window in the process and
/// its own hard timeout here. A process that dies or hangs fails the check it was running and is replaced by a fresh
/// one at the next check.
/// </summary>
public sealed class CheckServer(Func<string, Task<(string File, List<string> Args)>> command) : IAsyncDisposable
{
    /// <summary>Both check programs end each check's output with "@@check-done NAME PASS|FAIL".</summary>
    private const string DoneMarker = "@@check-done";

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _process;
    private string? _hosts;
    /// <summary>The running process's stdout and stderr lines; completed when its stdout ends.</summary>
    private Channel<string>? _lines;

    /// <summary>Runs one check against <paramref name="hosts"/>; checks of one target run one at a time.</summary>
    public async Task<ProcessResult> RunAsync(string hosts, string check, TimeSpan timeout, IDictionary<string, string> environment)
    {
        await _gate.WaitAsync();
        try
        {
            var sw = Stopwatch.StartNew();
            var output = new StringBuilder();
            if (_process is null || _process.HasExited || _hosts != hosts)
            {
                Stop();
                var started = await StartAsync(hosts, environment);
                if (started is not null)
                {
                    return new ProcessResult(-1, started, false, sw.Elapsed);
                }
            }
            var lines = _lines!;
            try
            {
                await _process!.StandardInput.WriteLineAsync(check);
                await _process.StandardInput.FlushAsync();
            }
            catch (IOException e)
            {
                // It died since the last check ended; its output so far says why.
                while (lines.Reader.TryRead(out var line)) output.AppendLine(line);
                output.AppendLine($"--- the check process (exit code {(_process!.HasExited ? _process.ExitCode : -1)}) took no check: {e.Message} ---");
                Stop();
                return new ProcessResult(-1, output.ToString(), false, sw.Elapsed);
            }
            using var cts = new CancellationTokenSource(timeout);
            while (true)
            {
                string line;
                try
                {
                    line = await lines.Reader.ReadAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    Stop();
                    return new ProcessResult(-1, output.ToString(), true, sw.Elapsed);
                }
                catch (ChannelClosedException)
                {
                    // The process ended before the check did (its watchdog ends it with 1 after a stack dump).
                    var exitCode = _process.WaitForExit(5000) ? _process.ExitCode : -1;
                    output.AppendLine($"--- the check process exited with code {exitCode} before the check ended ---");
                    Stop();
                    return new ProcessResult(exitCode == 0 ? -1 : exitCode, output.ToString(), false, sw.Elapsed);
                }
                if (line.StartsWith($"{DoneMarker} {check} ", StringComparison.Ordinal))
                {
                    return new ProcessResult(line.EndsWith(" PASS", StringComparison.Ordinal) ? 0 : 1, output.ToString(), false, sw.Elapsed);
                }
                output.AppendLine(line);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts the process; null, or why it could not be started.</summary>
    private async Task<string?> StartAsync(string hosts, IDictionary<string, string> environment)
    {
        var (file, args) = await command(hosts);
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in environment)
        {
            psi.Environment[k] = v;
        }
        var lines = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) lines.Writer.TryComplete();
            else lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Writer.TryWrite(e.Data); };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            process.Dispose();
            return $"could not start {file}: {e.Message}";
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        _lines = lines;
        _hosts = hosts;
        return null;
    }

    private void Stop()
    {
        if (_process is null)
        {
            return;
        }
        ProcessRunner.KillTree(_process);
        _process.WaitForExit(5000);
        _process.Dispose();
        _process = null;
        _lines = null;
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_process is { HasExited: false })
            {
                // End of stdin ends the serve loop; kill only what does not stop by itself.
                try { _process.StandardInput.Close(); } catch (IOException) { }
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try { await _process.WaitForExitAsync(cts.Token); } catch (OperationCanceledException) { }
            }
            Stop();
        }
        finally
        {
            _gate.Release();
        }
    }
}
