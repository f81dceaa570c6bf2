using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server;
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
    /// Each append is answered with the batch it carried, to its own sender and in order, as the file journal answers
    /// (appends from two senders share writes), and what the journal's writer thread serialized into the log
    /// (<see cref="TxnBatchEvent"/> writes itself there) recovers, after a restart, into the tree those txns make.
    /// </summary>
    [Fact]
    public async Task Each_append_is_answered_with_its_own_batch_and_a_restart_recovers_every_txn_as_it_was_sent()
    {
        var dataDir = Servers.TempDir("ownbatch");
        var settings = new PersistenceSettings { Journal = "persistent-file", DataDir = dataDir };
        var config = JournalSetup.EventLogConfig(settings, readOnly: false).WithFallback(ServerSettings.Reference);
        // 40 appends: each creates a node with data of 0 B to 40 KB; every other one also sets the node's data.
        long zxid = 0;
        var appends = new List<LogAppend>();
        var expected = new Dictionary<string, byte[]>();
        for (var i = 0; i < 40; i++)
        {
            var path = $"/n{i}";
            var data = Enumerable.Repeat((byte)i, i * i * 25).ToArray();
            var batch = new List<Proposal> { new(new TxnHeader(1, (int)++zxid, zxid, 0, OpCode.Create), new CreateTxn(path, data, Acl.OpenAclUnsafe, 0, i)) };
            if (i % 2 == 0)
                batch.Add(new(new TxnHeader(1, (int)++zxid, zxid, 0, OpCode.SetData), new SetDataTxn(path, data = [(byte)zxid], 0)));
            expected[path] = data;
            appends.Add(new LogAppend(batch.ToArray()));
        }

        var system = ActorSystem.Create("ownbatch", config);
        try
        {
            var sink = new RecoverySink(new DataTree(), 0);
            var log = JournalTxnLogRef.Start(system, settings, sink, "txnlog");
            await sink.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            var collectors = new[] { 0, 1 }.Select(i =>
            {
                var done = new TaskCompletionSource<List<object>>(TaskCreationOptions.RunContinuationsAsynchronously);
                var txns = appends.Where((_, k) => k % 2 == i).Sum(a => a.Batch.Count);
                return (Ref: system.ActorOf(Props.Create(() => new ReplyCollector(txns, done)), $"sender{i}"), Done: done);
            }).ToArray();
            for (var k = 0; k < appends.Count; k++) log.Tell(appends[k], collectors[k % 2].Ref);
            for (var i = 0; i < 2; i++)
            {
                var answers = await collectors[i].Done.Task.WaitAsync(TimeSpan.FromSeconds(30));
                var sent = appends.Where((_, k) => k % 2 == i).ToList();
                Assert.Equal(sent.Count, answers.Count);
                for (var k = 0; k < sent.Count; k++) Assert.Same(sent[k].Batch, Assert.IsType<LogAppended>(answers[k]).Batch);
            }
            output.WriteLine($"{appends.Count} appends ({zxid} txns) in {ServerMetrics.For(system).FsyncTime.Count} journal writes");
        }
        finally
        {
            await system.Terminate();
        }

        var restarted = ActorSystem.Create("ownbatch2", config);
        try
        {
            var tree = new DataTree();
            var sink = new RecoverySink(tree, 0);
            JournalTxnLogRef.Start(restarted, settings, sink, "txnlog");
            var outcome = await sink.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(zxid, outcome.TxnsReplayed);
            Assert.Equal(zxid, tree.LastZxid);
            foreach (var (path, data) in expected) Assert.Equal(data, tree.Find(path)?.Data);
        }
        finally
        {
            await restarted.Terminate();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>
    /// The change feed's journal floor scans the log's records for the txn zxids of the undeleted events instead of
    /// decoding every event through Akka.Persistence.Query: both must name the same zxids, after a purge deleted the
    /// oldest events and, on an ensemble member's Zab log, after a truncation dropped proposals.
    /// </summary>
    [Fact]
    public async Task The_floor_scan_names_the_zxids_a_query_of_the_undeleted_events_gives()
    {
        static List<(LogRecordKind, long)> Scan(string dir, string pid)
        {
            var scanned = new List<(LogRecordKind, long)>();
            Assert.True(FileEventJournal.ScanTxnZxids(dir, pid, (kind, zxid) => scanned.Add((kind, zxid))));
            return scanned;
        }
        static List<(LogRecordKind, long)> Query(ActorSystem system, string pid)
        {
            var read = new List<(LogRecordKind, long)>();
            new Coordination.Server.Feed.QueryJournalRecords(system, FileEventReadJournal.PluginId, pid).Read((kind, zxid, _) => read.Add((kind, zxid)));
            return read;
        }

        await WithRecoveredJournalAsync("floorscan", async (system, log) =>
        {
            var settings = new PersistenceSettings { Journal = "persistent-file" };
            for (long zxid = 1; zxid <= 30; zxid++) Assert.IsType<LogAppended>(await log.Ask<object>(Append(zxid), TimeSpan.FromSeconds(10)));
            var eventLog = system.Settings.Config.GetString("akka.persistence.journal.coordination-file.dir");
            Assert.Equal(Enumerable.Range(1, 30).Select(z => (LogRecordKind.Txn, (long)z)), Scan(eventLog, settings.PersistenceId));

            // A purge deletes the events up to zxid 12; the deletion marker is written after them.
            log.Tell(new PurgeJournal(12));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (Scan(eventLog, settings.PersistenceId)[0].Item2 <= 12 && clock.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
            var scanned = Scan(eventLog, settings.PersistenceId);
            Assert.Equal(13L, scanned[0].Item2);
            Assert.Equal(Query(system, settings.PersistenceId), scanned);
        });

        await WithRecoveredZabLogAsync("floorscanzab", async (zabSystem, zabLog, zab) =>
        {
            async Task AppendAsync(params long[] zxids)
            {
                var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                zabLog.Tell(new Coordination.Server.Ensemble.AppendToLog(zxids.Select(z => new Coordination.Core.Zab.LogEntry(z, Txns.Serialize(
                    new TxnHeader(1, (int)z, z, 0, OpCode.SetData), new SetDataTxn("/a", [1], 0)))).ToList(), durable));
                await durable.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }
            // An epoch's proposals 1-6, of which 5 and 6 are truncated; the next epoch's start after 4 (a jump).
            await AppendAsync(1, 2, 3);
            await AppendAsync(4, 5, 6);
            var truncated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            zabLog.Tell(new Coordination.Server.Ensemble.TruncateLogAfter(4, truncated));
            await truncated.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await AppendAsync(1L << 32 | 1, 1L << 32 | 2);
            var scanned = Scan(zab.EventLogDirectory, zab.ZabPersistenceId);
            Assert.Contains((LogRecordKind.Truncate, 4L), scanned);
            Assert.Equal(Query(zabSystem, zab.ZabPersistenceId), scanned);
        });
    }

    /// <summary>
    /// An ensemble member's Zab log on persistent-file reports its writes as the file journal's writer does (mntr's
    /// fsynctime, sync_processor_batch_size and commit_count): they read 0 on such a member before session 23.
    /// </summary>
    [Fact]
    public async Task The_Zab_log_records_each_journal_write_in_the_server_metrics()
    {
        await WithRecoveredZabLogAsync("zabmetrics", async (system, log, _) =>
        {
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var entries = Enumerable.Range(1, 3).Select(z => new Coordination.Core.Zab.LogEntry(z, Txns.Serialize(
                new TxnHeader(1, z, z, 0, OpCode.SetData), new SetDataTxn("/a", [1], z)))).ToList();
            log.Tell(new Coordination.Server.Ensemble.AppendToLog(entries, durable));
            await durable.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var metrics = ServerMetrics.For(system);
            Assert.Equal(1, metrics.FsyncTime.Count);
            Assert.Equal(3, metrics.Commits);
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

    /// <summary>
    /// The write path crosses two threads, as the file journal's does (docs/architecture.md §6): the append reaches
    /// the plugin on the sender's thread and the persistent actor answers from the log's writer thread, right after
    /// the fdatasync, with no thread-pool work item between (on the thread pool's dispatcher the answer comes from a
    /// pool thread, after three work items per write).
    /// </summary>
    [Fact]
    public async Task A_write_is_answered_from_the_log_writer_thread_without_thread_pool_work()
    {
        // No fdatasync: the writes take a few milliseconds, so that little else runs on the thread pool meanwhile.
        await WithRecoveredJournalAsync("inlinepath", (_, log) =>
        {
            var self = Environment.CurrentManagedThreadId;
            const int writes = 200;
            var replies = new ThreadRecordingRef();
            log.Tell(Append(1), replies);
            Assert.True(replies.Answered.Wait(TimeSpan.FromSeconds(10)));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var before = ThreadPool.CompletedWorkItemCount;
            for (var zxid = 2; zxid <= writes + 1; zxid++)
            {
                replies.Answered.Reset();
                log.Tell(Append(zxid), replies);
                Assert.True(replies.Answered.Wait(TimeSpan.FromSeconds(10)), $"append {zxid} not answered");
            }
            var workItems = ThreadPool.CompletedWorkItemCount - before;
            var elapsed = clock.Elapsed;
            // What the rest of the process (the test host) runs on the pool in as long, without writes.
            var idleBefore = ThreadPool.CompletedWorkItemCount;
            Thread.Sleep(elapsed);
            var idle = ThreadPool.CompletedWorkItemCount - idleBefore;
            output.WriteLine($"{writes} writes in {elapsed.TotalMilliseconds:F0} ms: answered on {string.Join(", ", replies.Threads.Select(t => t.Id == self ? "this thread" : t.Name).Distinct())}; " +
                $"{workItems} thread-pool work items ({idle} in as long idle)");
            Assert.All(replies.Messages, m => Assert.IsType<LogAppended>(m));
            // The writer thread, or this one when the write was durable before this thread's own run of the actor
            // ended (then the answer waited in its mailbox for this thread to take it): never a third thread.
            Assert.All(replies.Threads, t => Assert.True(t.Name == "txnlog-writer" || t.Id == self, $"answered on {t.Name}"));
            // Less than one a write, with room for the test host's own work; on the thread pool's dispatcher, 3 a write.
            Assert.True(workItems - idle < writes, $"{workItems} thread-pool work items for {writes} writes ({idle} idle)");
            return Task.CompletedTask;
        }, forceSync: false);
    }

    /// <summary>
    /// A persistent actor that fails while it runs on the log's writer thread (here its reply throws) fails to its
    /// supervisor, which restarts it as after any failure; the writer thread is not the one that hears of it and goes
    /// on serving the next writer.
    /// </summary>
    [Fact]
    public async Task A_failure_of_the_writer_on_the_log_thread_restarts_the_writer_and_not_the_log_thread()
    {
        await WithRecoveredJournalAsync("inlinefailure", async (system, log) =>
        {
            var timeout = TimeSpan.FromSeconds(10);
            var throwing = new ThreadRecordingRef { Throw = true };
            log.Tell(Append(1), throwing);
            Assert.True(throwing.Answered.Wait(timeout));
            Assert.Equal("txnlog-writer", throwing.Threads[0].Name);

            // The failed writer is stopped by its supervisor and a new one is started after the backoff; zxid 1 was
            // made durable before the reply failed, so the next writer continues at 2, on the same log thread. (An
            // append told while the failed writer is suspended, before it stops, goes to dead letters unanswered, on
            // any dispatcher: so wait for the new writer first.)
            var clock = System.Diagnostics.Stopwatch.StartNew();
            IActorRef? second = null;
            while (second is null && clock.Elapsed < timeout)
            {
                await Task.Delay(50);
                try { second = await system.ActorSelection("/user/txnlog/writer-2").ResolveOne(TimeSpan.FromSeconds(1)); }
                catch (ActorNotFoundException) { }
            }
            Assert.NotNull(second);
            object answer;
            do answer = await log.Ask<object>(Append(2), timeout);
            while (answer is LogAppendFailed && clock.Elapsed < timeout && await Task.Delay(50).ContinueWith(_ => true));
            Assert.Equal(2L, Assert.IsType<LogAppended>(answer).Batch[0].Header.Zxid);
            output.WriteLine($"writer-2 took appends after {clock.ElapsedMilliseconds} ms");
        });
    }

    /// <summary>A reply target with no mailbox: records the thread each answer is told on (and may throw there).</summary>
    private sealed class ThreadRecordingRef : MinimalActorRef
    {
        public readonly ManualResetEventSlim Answered = new();
        public readonly List<(string? Name, int Id)> Threads = new();
        public readonly List<object> Messages = new();
        public bool Throw { get; init; }
        public override ActorPath Path { get; } = new RootActorPath(Address.AllSystems) / "thread-recorder";
        public override IActorRefProvider Provider => throw new NotSupportedException();

        protected override void TellInternal(object message, IActorRef sender)
        {
            lock (Threads)
            {
                Threads.Add((Thread.CurrentThread.Name, Environment.CurrentManagedThreadId));
                Messages.Add(message);
            }
            Answered.Set();
            if (Throw && message is LogAppended) throw new InvalidOperationException("reply target failed (test)");
        }
    }

    /// <summary>A fresh ensemble member's Zab log on persistent-file (in a system of its own), recovered, for <paramref name="test"/>.</summary>
    private static async Task WithRecoveredZabLogAsync(string name, Func<ActorSystem, IActorRef, PersistenceSettings, Task> test)
    {
        var dataDir = Servers.TempDir(name);
        var settings = new PersistenceSettings { Journal = "persistent-file", DataDir = dataDir };
        var system = ActorSystem.Create(name, JournalSetup.EventLogConfig(settings, readOnly: false).WithFallback(ServerSettings.Reference));
        try
        {
            var recovery = new Coordination.Server.Ensemble.ZabLogRecovery(0);
            var log = system.ActorOf(Coordination.Server.Ensemble.ZabJournalActor.Props(settings, recovery), "zablog");
            await recovery.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            await test(system, log, settings);
        }
        finally
        {
            await system.Terminate();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    /// <summary>A fresh persistent-file journal as recovery starts it (in a system of its own), recovered, for <paramref name="test"/>.</summary>
    private static async Task WithRecoveredJournalAsync(string name, Func<ActorSystem, JournalTxnLogRef, Task> test, bool forceSync = true)
    {
        var dataDir = Servers.TempDir(name);
        var settings = new PersistenceSettings { Journal = "persistent-file", DataDir = dataDir, ForceSync = forceSync };
        // As the server creates it: its reference.conf holds the journal's dispatcher.
        var system = ActorSystem.Create(name, JournalSetup.EventLogConfig(settings, readOnly: false).WithFallback(ServerSettings.Reference));
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
