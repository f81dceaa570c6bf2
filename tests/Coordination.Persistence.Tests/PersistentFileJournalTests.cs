using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Metrics;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The "persistent-file" journal (a persistent actor on FileEventJournal) as a server runs it; its crash rules are
/// covered with the file journal's in CrashTests, CorruptionTests and BackupTests.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class PersistentFileJournalTests(ITestOutputHelper output)
{
    /// <summary>
    /// Group commit in the persistent actor: appends that arrive while a journal write is in flight are held and
    /// persisted together, as one event and one fdatasync, when it completes. Every append is told before the actor
    /// handles the first, so all but the first arrive while the first write is in flight: two writes in all.
    /// </summary>
    [Fact]
    public async Task Appends_that_arrive_while_a_journal_write_is_in_flight_share_the_next_one()
    {
        await WithRecoveredJournalAsync("groupcommit", async (system, log) =>
        {
            const int appends = 50;
            var replies = new TaskCompletionSource<List<object>>(TaskCreationOptions.RunContinuationsAsynchronously);
            var sender = system.ActorOf(Props.Create(() => new ReplyCollector(appends, replies)), "sender");
            for (var zxid = 1; zxid <= appends; zxid++)
                log.Tell(Append(zxid), sender);
            var answered = await replies.Task.WaitAsync(TimeSpan.FromSeconds(30));

            // Each append is answered durable, in order (one answer per run of appends from one sender).
            Assert.Equal(Enumerable.Range(1, appends).Select(z => (long)z), answered.SelectMany(a => Assert.IsType<LogAppended>(a).Batch).Select(p => p.Header.Zxid));
            var metrics = ServerMetrics.For(system);
            output.WriteLine($"{appends} appends in {metrics.FsyncTime.Count} journal writes");
            Assert.Equal(2, metrics.FsyncTime.Count);
        });
    }

    /// <summary>
    /// The replica holds a ref with no mailbox that hands appends straight to the persistent actor. When that actor
    /// stops (as Akka stops it after a failed write), appends are failed at once rather than lost, and the next writer
    /// its supervisor starts after the backoff takes them again, continuing from the last durable zxid.
    /// </summary>
    [Fact]
    public async Task Appends_fail_at_once_while_the_writer_restarts_and_succeed_after()
    {
        await WithRecoveredJournalAsync("writerrestart", async (system, log) =>
        {
            var timeout = TimeSpan.FromSeconds(10);

            Assert.IsType<LogAppended>(await log.Ask<object>(Append(1), timeout));
            var writer = await system.ActorSelection("/user/txnlog/writer-1").ResolveOne(timeout);
            Assert.True(await writer.GracefulStop(timeout));

            var failed = Assert.IsType<LogAppendFailed>(await log.Ask<object>(Append(2), timeout));
            output.WriteLine($"while restarting: {failed.Cause.Message}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            object answer;
            do
            {
                await Task.Delay(50);
                answer = await log.Ask<object>(Append(2), timeout);
            }
            while (answer is LogAppendFailed && clock.Elapsed < timeout);
            Assert.Equal(2L, Assert.IsType<LogAppended>(answer).Batch[0].Header.Zxid);
            output.WriteLine($"appends taken again after {clock.ElapsedMilliseconds} ms");
        });
    }

    /// <summary>A fresh persistent-file journal as recovery starts it (in a system of its own), recovered, for <paramref name="test"/>.</summary>
    private static async Task WithRecoveredJournalAsync(string name, Func<ActorSystem, JournalTxnLogRef, Task> test)
    {
        var dataDir = Servers.TempDir(name);
        var settings = new PersistenceSettings { Journal = "persistent-file", DataDir = dataDir };
        var system = ActorSystem.Create(name, JournalSetup.EventLogConfig(settings, readOnly: false));
        try
        {
            var sink = new RecoverySink(new DataTree(), 0);
            var log = JournalTxnLogRef.Start(system, settings, sink, "txnlog");
            await sink.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            await test(system, log);
        }
        finally
        {
            await system.Terminate();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private static LogAppend Append(long zxid) =>
        new([new Proposal(new TxnHeader(1, (int)zxid, zxid, 0, OpCode.CreateSession), new CreateSessionTxn(1000))]);

    /// <summary>Collects what the log answers, in order, until it has answered <c>expected</c> proposals.</summary>
    private sealed class ReplyCollector : ReceiveActor
    {
        public ReplyCollector(int expected, TaskCompletionSource<List<object>> done)
        {
            var received = new List<object>();
            var proposals = 0;
            ReceiveAny(m =>
            {
                received.Add(m);
                proposals += m switch { LogAppended a => a.Batch.Count, LogAppendFailed f => f.Batch.Count, _ => 1 };
                if (proposals >= expected) done.TrySetResult(received);
            });
        }
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
}
