using Akka.Actor;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The file journal's writer thread behind its actor ref: appends from many threads are logged in the order they were
/// handed over and each completes once durable; after a failed write a standalone log recovers by itself at the
/// next write, while an ensemble member's log (fail-stop) refuses everything after it.
/// </summary>
public sealed class FileLogWriterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("file-writer-").FullName;
    private readonly ActorSystem _system = ActorSystem.Create("file-writer-tests");

    public void Dispose()
    {
        _system.Terminate().Wait(TimeSpan.FromSeconds(10));
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private PersistenceSettings Settings => new() { DataDir = _dir, LogPreallocateBytes = 1 << 16 };

    private static Task Append(IActorRef journal, long zxid)
    {
        var durable = new TaskCompletionSource();
        journal.Tell(new AppendToLog([new LogEntry(zxid, BitConverter.GetBytes(zxid))], durable));
        return durable.Task;
    }

    private List<long> Logged()
    {
        var zxids = new List<long>();
        FileTxnLog.Read(Settings.LogDirectory, (kind, zxid, payload) =>
        {
            if (kind != LogRecordKind.Txn) return;
            Assert.Equal(zxid, BitConverter.ToInt64(payload.Span));
            zxids.Add(zxid);
        });
        return zxids;
    }

    [Fact]
    public async Task Appends_handed_over_from_many_threads_are_logged_in_that_order_and_complete_when_durable()
    {
        var journal = FileJournal.Start(_system, Settings, 0, "log", (_, _, _) => { });
        var next = 0L;
        var gate = new object();
        var all = new List<Task>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 500; i++)
                lock (gate) all.Add(Append(journal, ++next)); // zxid order = hand-over order
        })));
        await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(1, 2000).Select(i => (long)i), Logged());
    }

    [Fact]
    public async Task A_failed_write_fails_its_appends_then_a_standalone_log_recovers_but_a_fail_stop_log_does_not()
    {
        foreach (var failStop in new[] { false, true })
        {
            var settings = Settings with { DataDir = Path.Combine(_dir, failStop ? "member" : "standalone") };
            Exception? reported = null;
            var journal = FileJournal.Start(_system, settings, 0, failStop ? "member-log" : "standalone-log", (_, _, _) => { },
                failStop ? e => reported = e : null);
            // The log directory disappears: the write (which starts the first segment) fails.
            Directory.Delete(settings.LogDirectory, recursive: true);
            await Assert.ThrowsAnyAsync<IOException>(() => Append(journal, 1).WaitAsync(TimeSpan.FromSeconds(10)));
            Directory.CreateDirectory(settings.LogDirectory);
            var retry = Append(journal, 1);
            if (failStop)
            {
                await Assert.ThrowsAnyAsync<IOException>(() => retry.WaitAsync(TimeSpan.FromSeconds(10)));
                Assert.NotNull(reported);
                Assert.Empty(FileTxnLog.List(settings.LogDirectory));
            }
            else
            {
                await retry.WaitAsync(TimeSpan.FromSeconds(10));
                var zxids = new List<long>();
                FileTxnLog.Read(settings.LogDirectory, (k, z, _) => { if (k == LogRecordKind.Txn) zxids.Add(z); });
                Assert.Equal([1L], zxids);
            }
        }
    }
}
