using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Feed;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The change feed's history reader (<see cref="JournalHistoryReader"/>) over a real file journal and real snapshot
/// files. The replica keeps writing while a reader starts: its journal grows and a snapshot may be written between the
/// reader's look at the snapshot files and its read of the journal. A snapshot the replica took is always of txns it
/// had journalled, so it must never hide the history before it; a snapshot installed from a leader past the journal
/// must (JournalHistoryBasesTests: that history is gone).
/// </summary>
public sealed class JournalHistoryReaderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "journal-history-" + Guid.NewGuid().ToString("N"));
    private readonly FileTxnLog _log;
    private readonly DataTree _state = new();

    public JournalHistoryReaderTests()
    {
        _log = FileTxnLog.Open(Path.Combine(_dir, "txnlog"), forceSync: false, 1 << 16, 1 << 12, 0, (_, _, _) => { });
    }

    public void Dispose()
    {
        _log.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static (TxnHeader, Txn) Create(long zxid) =>
        (new TxnHeader(1, (int)zxid, zxid, 1000 + zxid, OpCode.Create), new CreateTxn($"/n{zxid}", [1], Acl.OpenAclUnsafe, 0, (int)zxid));

    /// <summary>Applies creates up to <paramref name="to"/> to the replica's state; journalled unless told not to
    /// (a follower's state installed from its leader's snapshot).</summary>
    private void Advance(long to, bool journal = true)
    {
        for (var zxid = _state.LastZxid + 1; zxid <= to; zxid++)
        {
            var (header, txn) = Create(zxid);
            _state.Apply(header, txn);
            if (journal) _log.Append(LogRecordKind.Txn, zxid, Txns.Serialize(header, txn));
        }
        _log.Commit();
    }

    private (long Zxid, string Path) Snapshot()
    {
        var path = Path.Combine(_dir, SnapshotFiles.FileName(_state.LastZxid));
        using (var fs = File.Create(path)) _state.WriteSnapshot(fs);
        return (_state.LastZxid, path);
    }

    /// <summary>Every batch of a read after <paramref name="after"/> up to <paramref name="upTo"/>, bounded in time.</summary>
    private async Task<(List<long> Zxids, string? Error)> ReadAll(Func<IReadOnlyList<(long, string)>> snapshots, long after, long upTo)
    {
        using var reader = new JournalHistoryReader(new FileJournalRecords(Path.Combine(_dir, "txnlog")), snapshots, "/", after, upTo, 1024);
        var zxids = new List<long>();
        while (true)
        {
            var batch = await reader.NextAsync().WaitAsync(TimeSpan.FromSeconds(30));
            zxids.AddRange(batch.Entries.Select(e => e.Zxid));
            if (batch.Done) return (zxids, batch.Error);
        }
    }

    private static List<long> Range(long from, long to) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => (long)i).ToList();

    [Fact]
    public async Task A_snapshot_written_while_the_reader_starts_does_not_hide_the_history_before_it()
    {
        Advance(100);
        // The reader is asked for the changes after 50 up to 100, what the replica had applied when it began. When it
        // looks at the snapshot files the replica has moved on: txns up to 150 journalled, and a snapshot at 120
        // written (the CI flake: "snapshot written", then 3 ms later "no snapshot and journal cover it any more").
        var snapshots = () =>
        {
            Advance(120);
            var snapshot = Snapshot();
            Advance(150);
            return (IReadOnlyList<(long, string)>)[snapshot];
        };
        var (zxids, error) = await ReadAll(snapshots, after: 50, upTo: 100);
        Assert.True(error is null, error);
        Assert.Equal(Range(51, 100), zxids);
    }

    [Fact]
    public async Task A_snapshot_installed_from_the_leader_past_the_journal_still_hides_the_history_before_it()
    {
        // A follower journalled up to 40, was cut off, and installed its leader's snapshot at 60.
        Advance(40);
        Advance(60, journal: false);
        var installed = Snapshot();
        var snapshots = () => (IReadOnlyList<(long, string)>)[installed];
        var (_, error) = await ReadAll(snapshots, after: 20, upTo: 60);
        Assert.NotNull(error);
        Assert.Contains("no snapshot and journal cover it", error);
        // From the snapshot on, there is history: none yet, then what the journal continues it with.
        var (none, noError) = await ReadAll(snapshots, after: 60, upTo: 60);
        Assert.Null(noError);
        Assert.Empty(none);
        Advance(80);
        var (continued, error2) = await ReadAll(snapshots, after: 60, upTo: 80);
        Assert.Null(error2);
        Assert.Equal(Range(61, 80), continued);
        Assert.Contains("no snapshot and journal cover it", (await ReadAll(snapshots, after: 20, upTo: 80)).Error);
    }
}
