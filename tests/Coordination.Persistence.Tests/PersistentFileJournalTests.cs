using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The "persistent-file" journal (a persistent actor on FileEventJournal) as a server runs it; its crash rules are
/// covered with the file journal's in CrashTests, CorruptionTests and BackupTests.
/// </summary>
public sealed class PersistentFileJournalTests(ITestOutputHelper output)
{
    /// <summary>
    /// Group commit: writes that arrive while a journal write is in flight share the next one (one fdatasync), for
    /// the file journal and for the persistent actor, which keeps one event in flight and buffers the rest.
    /// </summary>
    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Writes_that_arrive_while_a_journal_write_is_in_flight_share_the_next_one(string journal)
    {
        var metricsPort = FreePort();
        await using var server = await Servers.StartAsync(output, $$"""
            coordination.persistence.journal = {{journal}}
            coordination.metrics { enabled = on, port = {{metricsPort}} }
            """);
        const int sessions = 8, perSession = 100;
        var clients = new List<WireClient>();
        for (var s = 0; s < sessions; s++) clients.Add(await WireClient.ConnectAsync(server.ConnectString));
        await clients[0].CreateAsync("/g", null).OkAsync();
        var before = await JournalMetricsAsync(metricsPort);

        // Every session pipelines its writes: at any moment many are waiting for the write in flight.
        var writes = new List<Task>();
        foreach (var client in clients)
            for (var i = 0; i < perSession; i++)
                writes.Add(client.SetDataAsync("/g", [(byte)i]).OkAsync());
        await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(60));

        var after = await JournalMetricsAsync(metricsPort);
        var journalWrites = after.Writes - before.Writes;
        var txns = after.Txns - before.Txns;
        output.WriteLine($"{journal}: {txns} txns in {journalWrites} journal writes");
        Assert.Equal(sessions * perSession, txns);
        Assert.True(journalWrites <= txns / 4, $"{txns} txns took {journalWrites} journal writes: writes are not grouped");
        foreach (var client in clients) await client.DisposeAsync();
    }

    /// <summary>The two file journals keep different records: a data dir written by one refuses to start with the
    /// other (it would start empty and leave every acknowledged write behind), and starts again with its own.</summary>
    [Theory]
    [InlineData("file", "persistent-file", "txnlog")]
    [InlineData("persistent-file", "file", "eventlog")]
    public async Task A_data_dir_refuses_the_other_file_journal(string written, string other, string directory)
    {
        await using var server = await Servers.StartAsync(output, $"coordination.persistence.journal = {written}");
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
            await client.CreateAsync("/kept", [7]).OkAsync();
        server.Kill();

        var refused = await RefusedAsync($"coordination.persistence.journal = {other}", server.DataDir);
        output.WriteLine(refused.Message);
        Assert.Contains(Path.Combine(server.DataDir, directory), refused.Output);
        Assert.Contains($"journal = {written}", refused.Output);

        await server.RestartAsync();
        await using (var client = await WireClient.ConnectAsync(server.ConnectString))
        {
            var r = (GetDataResponse)(await client.GetDataAsync("/kept").OkAsync())!;
            Assert.Equal([7], r.Data);
        }
    }

    private async Task<ServerStartException> RefusedAsync(string hocon, string dataDir)
    {
        try
        {
            await using var started = await Servers.StartAsync(output, hocon, dataDir: dataDir);
        }
        catch (ServerStartException e)
        {
            return e;
        }
        throw new Xunit.Sdk.XunitException($"the server started on {dataDir} with {hocon}");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Journal writes (fsynctime_count: one per fdatasync) and the txns they held (sync_processor_batch_size_sum).</summary>
    private static async Task<(long Writes, long Txns)> JournalMetricsAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        long Sample(string name)
        {
            var line = text.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
            return (long)double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
        }
        return (Sample("fsynctime_count"), Sample("sync_processor_batch_size_sum"));
    }
}
