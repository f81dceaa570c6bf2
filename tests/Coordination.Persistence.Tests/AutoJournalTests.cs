using Akka.Configuration;
using Coordination.Protocol;
using Coordination.Server;
using Coordination.Server.Persistence;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// <c>coordination.persistence.journal = auto</c>: a data dir keeps the journal it holds, a new one gets
/// persistent-file (an embedded member's: file), and one that holds two journals is refused.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class AutoJournalTests(ITestOutputHelper output)
{
    private const string Auto = "coordination.persistence.journal = auto";

    [Fact]
    public async Task A_new_data_dir_gets_the_persistent_file_journal_and_keeps_it_across_a_restart()
    {
        await using var server = await Servers.StartAsync(output, Auto);
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            await client.CreateAsync("/kept", [7]).OkAsync();
        Assert.NotEmpty(FileTxnLog.List(Path.Combine(server.DataDir, "eventlog")));
        Assert.Empty(FileTxnLog.List(Path.Combine(server.DataDir, "txnlog")));
        server.Kill();

        await server.RestartAsync();
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            Assert.Equal([7], ((GetDataResponse)(await client.GetDataAsync("/kept").OkAsync())!).Data);
        Assert.Empty(FileTxnLog.List(Path.Combine(server.DataDir, "txnlog")));
    }

    [Fact]
    public async Task A_data_dir_of_the_file_journal_keeps_the_file_journal()
    {
        await using var first = await FileJournalServerWithAsync("/kept", [8]);
        var dataDir = first.DataDir;

        await using var second = await Servers.StartAsync(output, Auto, dataDir: dataDir);
        await using (var client = await WireClient.ConnectAsync(second.ConnectString))
        {
            Assert.Equal([8], ((GetDataResponse)(await client.GetDataAsync("/kept").OkAsync())!).Data);
            await client.CreateAsync("/more", [9]).OkAsync();
        }
        Assert.Empty(FileTxnLog.List(Path.Combine(dataDir, "eventlog")));
        Assert.NotEmpty(FileTxnLog.List(Path.Combine(dataDir, "txnlog")));
    }

    [Fact]
    public async Task A_data_dir_that_holds_two_journals_is_refused_naming_both()
    {
        await using var server = await FileJournalServerWithAsync("/kept", [7]);
        // A persistent-file journal beside it (as if two servers had shared the data dir).
        var eventLog = Path.Combine(server.DataDir, "eventlog");
        Directory.CreateDirectory(eventLog);
        var segment = FileTxnLog.List(Path.Combine(server.DataDir, "txnlog"))[0].Path;
        File.Copy(segment, Path.Combine(eventLog, Path.GetFileName(segment)));

        ServerStartException? refused = null;
        try { await using var started = await Servers.StartAsync(output, Auto, dataDir: server.DataDir); }
        catch (ServerStartException e) { refused = e; }
        Assert.NotNull(refused);
        output.WriteLine(refused.Message);
        Assert.Contains(Path.Combine(server.DataDir, "txnlog"), refused.Output);
        Assert.Contains(eventLog, refused.Output);
    }

    /// <summary>A server on the file journal that created <paramref name="path"/>, then was killed (its data dir kept).</summary>
    private async Task<ServerProcess> FileJournalServerWithAsync(string path, byte[] data)
    {
        var server = await Servers.StartAsync(output, "coordination.persistence.journal = file");
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            await client.CreateAsync(path, data).OkAsync();
        server.Kill();
        return server;
    }

    [Fact]
    public void Auto_names_the_journal_a_data_dir_holds_and_the_one_a_new_data_dir_gets()
    {
        var dir = Servers.TempDir("autojournal");
        try
        {
            var config = ConfigurationFactory.ParseString(Auto).WithFallback(ServerSettings.Reference);
            Assert.Equal("persistent-file", PersistenceSettings.Create(config, dir).Journal);
            Assert.Equal("file", PersistenceSettings.Create(config, dir, newDataDirJournal: "file").Journal);
            Assert.Equal("sql", PersistenceSettings.Create(ConfigurationFactory.ParseString("coordination.persistence.journal = sql").WithFallback(config), dir).Journal);

            // An empty SQLite file (created, never written) holds no journal; a written one does.
            var db = Path.Combine(dir, "journal.db");
            File.WriteAllBytes(db, []);
            Assert.Equal("persistent-file", PersistenceSettings.Create(config, dir).Journal);
            File.WriteAllBytes(db, [1]);
            Assert.Equal("sql", PersistenceSettings.Create(config, dir, newDataDirJournal: "file").Journal);
            // Not the journal when the journal is elsewhere.
            var elsewhere = ConfigurationFactory.ParseString("coordination.persistence.connection-string = \"Data Source=/nowhere/other.db\"").WithFallback(config);
            Assert.Equal("persistent-file", PersistenceSettings.Create(elsewhere, dir).Journal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
