using Coordination.TestKit;
using Xunit;

namespace Coordination.Cli.Tests;

/// <summary>coord backup / snapshot / restore drive the real server binary against a running server's data dir.</summary>
[Collection("cli")]
public sealed class BackupRestoreTests(ServerFixture fx)
{
    readonly string _root = "/bk" + Guid.NewGuid().ToString("N")[..8];
    readonly string _serverDll = ServerProcess.FindServerDll();

    static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "coord-backup-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [Fact]
    public async Task Backup_of_a_running_server_restores_into_a_new_data_dir_that_serves_the_same_znodes()
    {
        var dir = TempDir();
        try
        {
            foreach (var (path, data) in new[] { (_root, "root"), ($"{_root}/a", "alpha"), ($"{_root}/b", "beta") })
                Assert.Equal(0, (await Coord.RunAsync(["-S", fx.ConnectString, "create", path, data])).ExitCode);

            var file = Path.Combine(dir, "backup.snap");
            var backup = await Coord.RunAsync(["--json", "snapshot", "--data-dir", fx.Server.DataDir, "--out", file, "--server-dll", _serverDll], timeoutSeconds: 60);
            Assert.True(backup.ExitCode == 0, backup.ToString());
            Assert.StartsWith("0x", backup.Json.GetProperty("zxid").GetString());
            Assert.True(backup.Json.GetProperty("bytes").GetInt64() > 0);

            var restored = Path.Combine(dir, "restored");
            var restore = await Coord.RunAsync(["restore", "--data-dir", restored, "--from", file, "--server-dll", _serverDll], timeoutSeconds: 90);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.Contains("Restored", restore.Stdout);
            Assert.Contains("Restore of backup.snap", restore.Stderr);   // the stages, one line each on a redirected stderr
            Assert.Contains("restored and recovered", restore.Stderr);

            // A second restore into the now non-empty data dir is refused, with the server's reason.
            var again = await Coord.RunAsync(["restore", "--data-dir", restored, "--from", file, "--server-dll", _serverDll], timeoutSeconds: 90);
            Assert.Equal(1, again.ExitCode);
            Assert.Contains("already holds data", again.Stderr);

            await using var server = await ServerProcess.StartAsync("ours", new ServerProcessOptions { DataDir = restored, StartTimeout = TimeSpan.FromSeconds(30) });
            var get = await Coord.RunAsync(["-S", server.ConnectString, "get", $"{_root}/b"]);
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Equal("beta", get.Stdout.Trim());
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Backup_and_restore_report_usage_errors_with_exit_code_2()
    {
        var noOut = await Coord.RunAsync(["backup", "--data-dir", "/tmp"]);
        Assert.Equal(2, noOut.ExitCode);
        Assert.Contains("--out", noOut.Stderr);
        var missing = await Coord.RunAsync(["restore", "--data-dir", "/tmp/x", "--from", "/nonexistent.snap", "--server-dll", _serverDll]);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("no such file", missing.Stderr);
    }
}
