using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// New log segments, purges and snapshot renames are made durable in their directory: strace, attached to a real
/// server process, must see the server open the journal's log directory (txnlog/ or eventlog/) and the data directory and fsync those very file
/// descriptors. (.NET refuses to open a directory as a file, so a call through FileStream or File.OpenHandle is a
/// silent no-op; only the system calls show it happened.) Needs Linux and strace; skipped otherwise unless
/// COORDINATION_REQUIRE_STRACE=1.
/// </summary>
public sealed partial class DirectorySyncTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("file", "txnlog")]
    [InlineData("persistent-file", "eventlog")]
    public async Task New_segments_purges_and_snapshot_renames_fsync_their_directory(string journal, string logDirName)
    {
        var required = Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_STRACE") == "1";
        var strace = OperatingSystem.IsLinux() ? new[] { "/usr/bin/strace", "/bin/strace" }.FirstOrDefault(File.Exists) : null;
        if (strace is null)
        {
            if (required) Assert.Fail("COORDINATION_REQUIRE_STRACE=1 but strace is not installed (Linux only)");
            Skip.If(true, "needs Linux and strace");
        }

        // Snapshots every 20 txns: each one is renamed into the data dir, purges old segments and starts a new one.
        await using var server = await Servers.StartAsync(output, $$"""
            coordination.persistence { journal = {{journal}}, snapshot-every-txns = 20, snapshot-chunk-nodes = 10, snapshots-retained = 1 }
            """);
        var traceFile = Path.Combine(Path.GetTempPath(), $"coord-dirsync-{Guid.NewGuid():N}.trace");
        var tracer = Process.Start(new ProcessStartInfo(strace!, ["-f", "-p", server.Pid.ToString(), "-e", "trace=openat,fsync,close", "-o", traceFile])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        try
        {
            // strace says "attached with N threads" once every thread is traced.
            var attached = Task.Run(() =>
            {
                while (tracer.StandardError.ReadLine() is { } line)
                    if (line.Contains("attached")) return true;
                return false;
            });
            Assert.True(await attached.WaitAsync(TimeSpan.FromSeconds(30)), "strace could not attach to the server");
            _ = tracer.StandardError.ReadToEndAsync();

            await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            {
                for (var i = 0; i < 100; i++)
                    await client.CreateAsync($"/n{i}", Encoding.UTF8.GetBytes($"v{i}")).OkAsync();
            }
            var logDir = Path.GetFullPath(Path.Combine(server.DataDir, logDirName));
            var dataDir = Path.GetFullPath(server.DataDir);
            // The snapshot writer runs in the background: wait (bounded) until both directories were synced.
            var deadline = Stopwatch.StartNew();
            string trace;
            while (true)
            {
                trace = File.Exists(traceFile) ? await File.ReadAllTextAsync(traceFile) : "";
                if ((DirectoryFsyncs(trace, logDir) > 0 && DirectoryFsyncs(trace, dataDir) > 0) || deadline.Elapsed > TimeSpan.FromSeconds(30)) break;
                await Task.Delay(200);
            }
            output.WriteLine($"{logDirName} dir fsyncs: {DirectoryFsyncs(trace, logDir)}, data dir fsyncs: {DirectoryFsyncs(trace, dataDir)}");
            Assert.True(DirectoryFsyncs(trace, logDir) > 0, $"no fsync of a file descriptor opened on {logDir}");
            Assert.True(DirectoryFsyncs(trace, dataDir) > 0, $"no fsync of a file descriptor opened on {dataDir}");
        }
        finally
        {
            using (var stop = Process.Start("kill", ["-INT", tracer.Id.ToString()])) stop.WaitForExit(5_000);
            if (!tracer.WaitForExit(10_000)) tracer.Kill();
            tracer.Dispose();
            try { File.Delete(traceFile); } catch (IOException) { }
        }
    }

    /// <summary>How many times a file descriptor that openat returned for <paramref name="dir"/> was then fsynced (before its close).</summary>
    private static int DirectoryFsyncs(string trace, string dir)
    {
        var open = new Regex($@"^(\d+)\s+openat\([^,]*, ""{Regex.Escape(dir)}/?"", [^)]*\)\s+= (\d+)");
        var openFds = new HashSet<string>();
        var count = 0;
        foreach (var line in trace.Split('\n'))
        {
            if (open.Match(line) is { Success: true } o) openFds.Add(o.Groups[2].Value);
            else if (Fsync().Match(line) is { Success: true } f && openFds.Remove(f.Groups[1].Value)) count++;
            else if (Close().Match(line) is { Success: true } c) openFds.Remove(c.Groups[1].Value);   // closed unsynced: the fd may be reused
        }
        return count;
    }

    [GeneratedRegex(@"^\d+\s+fsync\((\d+)")]
    private static partial Regex Fsync();

    [GeneratedRegex(@"^\d+\s+close\((\d+)")]
    private static partial Regex Close();
}
