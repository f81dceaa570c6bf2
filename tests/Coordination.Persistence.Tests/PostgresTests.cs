using Coordination.TestKit;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// A private PostgreSQL cluster in a temp dir on a free 127.0.0.1 port (Debian's <c>postgresql</c> package:
/// initdb/pg_ctl). As root, the cluster runs as the unprivileged user <c>nobody</c>, since PostgreSQL refuses root.
/// </summary>
public sealed class PostgresCluster : IAsyncDisposable
{
    public int Port { get; }
    public string Dir { get; }
    private readonly string _bin;
    private readonly bool _asNobody;

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true";

    private PostgresCluster(string bin, string dir, int port, bool asNobody)
    {
        _bin = bin;
        Dir = dir;
        Port = port;
        _asNobody = asNobody;
    }

    public static string? FindBinaries()
    {
        foreach (var dir in new[] { "/usr/local/bin", "/usr/bin" })
            if (File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl"))) return dir;
        if (Directory.Exists("/usr/lib/postgresql"))
            foreach (var version in Directory.GetDirectories("/usr/lib/postgresql").OrderDescending())
                if (File.Exists(Path.Combine(version, "bin", "initdb"))) return Path.Combine(version, "bin");
        return null;
    }

    public static async Task<PostgresCluster> StartAsync(string bin)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"coord-pg-{Guid.NewGuid():N}"[..24]);
        Directory.CreateDirectory(dir);
        var asNobody = Environment.UserName == "root";
        if (asNobody) await RunAsync("chown", ["nobody", dir], asNobody: false);
        var port = ServerProcess.FreeLoopbackPort();
        var cluster = new PostgresCluster(bin, dir, port, asNobody);
        var data = Path.Combine(dir, "data");
        await cluster.PgAsync("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        await cluster.PgAsync("pg_ctl", ["-D", data, "-l", Path.Combine(dir, "log"), "-w", "-t", "60", "-o",
            $"-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on", "start"]);
        return cluster;
    }

    private Task PgAsync(string tool, IEnumerable<string> args) =>
        _asNobody ? RunAsync("runuser", ["-u", "nobody", "--", Path.Combine(_bin, tool), .. args], false) : RunAsync(Path.Combine(_bin, tool), args, false);

    private static async Task RunAsync(string file, IEnumerable<string> args, bool asNobody)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', psi.ArgumentList)} failed ({p.ExitCode}): {await stdout} {await stderr}");
    }

    public async ValueTask DisposeAsync()
    {
        try { await PgAsync("pg_ctl", ["-D", Path.Combine(Dir, "data"), "-m", "immediate", "-w", "stop"]); } catch (Exception) { }
        try { Directory.Delete(Dir, recursive: true); } catch (Exception) { }
    }
}

[Collection(LoadAndTimingCollection.Name)]
public sealed class PostgresTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task Crash_test_with_the_journal_on_PostgreSQL()
    {
        var bin = PostgresCluster.FindBinaries();
        var required = Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_POSTGRES") == "1";
        if (bin is null)
        {
            if (required) Assert.Fail("COORDINATION_REQUIRE_POSTGRES=1 but initdb/pg_ctl were not found (apt-get install -y postgresql)");
            Skip.If(true, "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql package to run this test");
        }
        await using var pg = await PostgresCluster.StartAsync(bin!);
        output.WriteLine($"PostgreSQL on 127.0.0.1:{pg.Port}");
        await using var server = await Servers.StartAsync(output, $$"""
            coordination.persistence {
              journal = sql
              provider-name = "PostgreSQL"
              connection-string = "{{pg.ConnectionString}}"
              snapshot-every-txns = 400, snapshot-chunk-nodes = 20, snapshots-retained = 2
            }
            """);
        await TestSeed.RunAsync(Environment.TickCount, "tests/Coordination.Persistence.Tests", $"{nameof(PostgresTests)}.{nameof(Crash_test_with_the_journal_on_PostgreSQL)}",
            output.WriteLine, async seed =>
            {
                var workload = new CrashWorkload(server, output, seed);
                await workload.RunAsync(kills: 5, TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(2000));
                Assert.True(workload.AckedWrites > 50, $"only {workload.AckedWrites} writes were acknowledged");
            });
        Assert.False(File.Exists(Path.Combine(server.DataDir, "journal.db")), "the SQLite journal was used instead of PostgreSQL");
    }
}
