using System.Diagnostics;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

public sealed class BackupTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Backup_of_a_running_server_restores_into_a_new_one(string journal)
    {
        await using var server = await Servers.StartAsync(output, $"coordination.persistence {{ journal = {journal}, snapshot-every-txns = 150 }}");
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
        {
            await client.CreateAsync("/b", null).OkAsync();
            for (var i = 0; i < 400; i++)
            {
                if (i < 50) await client.CreateAsync($"/b/n{i}", Encoding.UTF8.GetBytes($"v{i}")).OkAsync();
                else await client.SetDataAsync($"/b/n{i % 50}", Encoding.UTF8.GetBytes($"v{i}")).OkAsync();
            }
        }

        // While the server runs: the backup verb reads the newest snapshot and the journal beside it.
        var backup = Path.Combine(Servers.TempDir("backup"), "backup.snap");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { ServerProcess.FindServerDll(), "backup", "--config", server.ConfigFile, "--data-dir", server.DataDir, "--out", backup }) psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
            output.WriteLine(await stdout);
            Assert.True(p.ExitCode == 0, $"backup failed ({p.ExitCode}): {await stderr}");
        }
        Assert.True(File.Exists(backup));

        // The original keeps serving; writes after the backup are not in it.
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            await client.CreateAsync("/after-backup", null).OkAsync();

        var restoredDir = Servers.TempDir("restored");
        await using var restored = await Servers.StartAsync(output, $"coordination.persistence.restore-from = \"{backup}\"", dataDir: restoredDir);
        await using (var client = await WireClient.ConnectAsync(restored.ConnectString))
        {
            for (var i = 0; i < 50; i++)
            {
                var r = (GetDataResponse)(await client.GetDataAsync($"/b/n{i}").OkAsync())!;
                Assert.Equal($"v{350 + i}", Encoding.UTF8.GetString(r.Data!));
            }
            Assert.Equal(ErrorCode.NoNode, (await client.ExistsAsync("/after-backup")).Header.Err);
            // New writes continue the zxid sequence of the backup.
            var (h, _) = await client.CreateAsync("/restored-write", null);
            Assert.Equal(ErrorCode.Ok, h.Err);
        }
        // Restarting the restored server (restore-from still set) keeps its data instead of refusing or re-seeding:
        // the data dir now holds data, so the restore is refused; a real deployment drops the option after the first start.
        restored.Kill();
        var e = await Assert.ThrowsAsync<ServerStartException>(() => restored.RestartAsync());
        Assert.Contains("already holds data", e.Output);
    }
}
