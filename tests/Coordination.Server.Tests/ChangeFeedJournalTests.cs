using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// The change feed's history from the journal on disk: after a restart a server's in-memory record starts at its
/// recovered state, yet a subscriber asking for a zxid before the restart gets exactly the committed changes after it
/// (rebuilt from a snapshot and the journal segments), then live ones, with no gap and no duplicate at the hand-over;
/// a zxid older than what the journal can rebuild (purged) answers Compacted naming the oldest one; and a subscriber
/// that does not read while it is served from the journal is paused, holding the server to one batch of history.
/// The first two for each journal: "file" (its segments), "sql" (SQLite) and "persistent-file" (both read through
/// Akka.Persistence.Query).
/// </summary>
public sealed class ChangeFeedJournalTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private sealed record Expected(long Zxid, EventType Type, string Path, byte[]? Data);

    private static Task<List<ChangeFrame>> Take(WireClient c, int count) => c.TakeChangesAsync(count, Wait);

    /// <summary>Sets /feed/a (and /other, not under the prefix, every third write) <paramref name="count"/> times, pipelined.</summary>
    private static async Task WriteAsync(WireClient writer, List<Expected> expected, int count, int dataBytes = 8)
    {
        var writes = new List<(Task<(ReplyHeader Header, ZkResponse? Response)> Task, string Path, byte[] Data)>();
        for (var i = 0; i < count; i++)
        {
            var path = i % 3 == 2 ? "/other" : "/feed/a";
            var data = new byte[dataBytes];
            BitConverter.TryWriteBytes(data, expected.Count * 1000 + i);
            writes.Add((writer.SetDataAsync(path, data), path, data));
        }
        foreach (var (task, path, data) in writes)
        {
            var (header, _) = await task;
            Assert.Equal(ErrorCode.Ok, header.Err);
            if (path == "/feed/a") expected.Add(new Expected(header.Zxid, EventType.NodeDataChanged, path, data));
        }
    }

    private static void AssertSequence(IReadOnlyList<Expected> expected, IReadOnlyList<ChangeFrame> frames)
    {
        Assert.Equal(expected.Select(e => e.Zxid), frames.Select(f => f.Zxid));
        for (var i = 0; i < expected.Count; i++)
        {
            var change = Assert.IsType<ChangeEvent>(frames[i].Body);
            Assert.Equal((expected[i].Type, expected[i].Path), (change.Type, change.NodePath));
            Assert.Equal(expected[i].Data, change.Data);
            Assert.Equal(frames[i].Zxid, change.Stat.Mzxid);
        }
    }

    private static async Task<long> MntrValue(ServerProcess server, string name) =>
        long.Parse((await FourLetterWord.MntrAsync(server.Host, server.Port))[name], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The server works out in the background how far back its journal reaches; wait for it (for a floor
    /// after <paramref name="after"/>: one that has moved past it).</summary>
    private static async Task<long> JournalFloor(ServerProcess server, long after = -1)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var floor = await MntrValue(server, "zk_change_feed_journal_after_zxid");
            if (floor > after) return floor;
            Assert.True(clock.Elapsed < Wait, $"the server's journal floor (zk_change_feed_journal_after_zxid) is still {floor} after {Wait.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    /// <summary>The snapshot files in the server's data dir (not those being written).</summary>
    private static HashSet<string> SnapshotFiles(ServerProcess server) =>
        Directory.EnumerateFiles(server.DataDir, "snapshot.*").Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal)).ToHashSet();

    private static async Task<List<Expected>> PrepareAsync(ServerProcess server, int writes, int dataBytes = 8)
    {
        await using var writer = await WireClient.ConnectAsync(server.ConnectString);
        var expected = new List<Expected>();
        var (created, _) = await writer.CreateAsync("/feed", null);
        expected.Add(new Expected(created.Zxid, EventType.NodeCreated, "/feed", null));
        var (a, _) = await writer.CreateAsync("/feed/a", null);
        expected.Add(new Expected(a.Zxid, EventType.NodeCreated, "/feed/a", null));
        await writer.CreateAsync("/other", null).OkAsync();
        await WriteAsync(writer, expected, writes, dataBytes);
        return expected;
    }

    /// <summary>Every journal: the file journal's segments are read directly; the sql (SQLite) and persistent-file
    /// journals' events through Akka.Persistence.Query.</summary>
    [SkippableTheory]
    [InlineData("file")]
    [InlineData("sql")]
    [InlineData("persistent-file")]
    public async Task After_a_restart_a_zxid_before_it_is_served_from_the_journal_then_live_with_exactly_the_committed_sequence(string journal)
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            // Snapshots every 100 txns: the server restarts from one taken late, and the journal goes back further
            // (purge off: the sql and persistent-file journals purge row by row, not by 64 KiB segment, so a snapshot
            // would cut the history this test reads; a purged journal is the next test's).
            // Small batches, so that the history is still being read while the live writes commit.
            ExtraHocon = "coordination.change-feed.history-from-journal = on\n" +
                         $"coordination.persistence {{ journal = {journal}, snapshot-every-txns = 100, purge = off, log-segment-size = 64KiB, log-preallocate = 16KiB }}\n" +
                         "coordination.change-feed.batch-size = 1KiB",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var expected = await PrepareAsync(server, 450);
            await server.RestartAsync();
            var floor = await JournalFloor(server);
            var from = expected[150].Zxid;
            output.WriteLine($"journal floor 0x{floor:x}, memory after 0x{await MntrValue(server, "zk_change_feed_retained_after_zxid"):x}, asking after 0x{from:x}");
            Assert.True(floor <= from, $"the journal reaches back to 0x{floor:x} only");
            Assert.True(await MntrValue(server, "zk_change_feed_retained_after_zxid") > from, "memory still holds the zxid asked for");

            await using var reader = await WireClient.ConnectAsync(server.ConnectString);
            var (subscribed, position) = await reader.WatchChangesAsync("/feed", from);
            Assert.Equal(ErrorCode.Ok, subscribed.Err);
            Assert.Equal(floor, ((ChangeFeedPosition)position!).RetainedAfter);

            // Live writes while the history is read: the hand-over from journal to memory keeps their order.
            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await WriteAsync(writer, expected, 300);
            var want = expected.Where(e => e.Zxid > from).ToList();
            AssertSequence(want, await Take(reader, want.Count));

            var (last, _) = await writer.CreateAsync("/feed/last", null);
            Assert.Equal(last.Zxid, Assert.Single(await Take(reader, 1)).Zxid);
            Assert.False(reader.Changes.TryRead(out var extra), $"unexpected frame {extra}");
            Assert.Equal(0, await MntrValue(server, "zk_change_feed_history_readers"));
        });
    }

    /// <summary>
    /// Two snapshots kept and the journal before the older one purged, then a restart: memory starts at the newer
    /// snapshot, the journal's history at the older one (its floor). A zxid before the floor is answered Compacted
    /// naming the floor; the floor itself is served, from the journal and then from memory, exactly. Compacted is the
    /// journal's rule here, not memory's: a server that claimed purged history, or that offered none of what the
    /// journal still holds, fails.
    /// </summary>
    [SkippableTheory]
    [InlineData("file")]
    [InlineData("sql")]
    [InlineData("persistent-file")]
    public async Task A_zxid_the_journal_no_longer_holds_answers_Compacted_with_the_oldest_one_it_can_serve(string journal)
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.change-feed.history-from-journal = on\n" +
                         $"coordination.persistence {{ journal = {journal}, snapshot-every-txns = 100, snapshots-retained = 2, log-segment-size = 64KiB, log-preallocate = 16KiB }}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            // Snapshots are taken every 100 txns or more, at the end of a batch, in the background: the writes go in
            // rounds of 50 until two are written and the journal before the older one purged (the server's floor,
            // recomputed after each snapshot, moves then). One burst of 450 pipelined writes can commit as a single
            // batch and leave a single snapshot, after which this test checked an empty history (session 21).
            var expected = await PrepareAsync(server, 0);
            // A subscriber keeps the floor following the snapshots (with nobody subscribed it is only marked stale:
            // the next test); this one asks for nothing that will ever be written.
            await using (var follower = await WireClient.ConnectAsync(server.ConnectString))
            await using (var writer = await WireClient.ConnectAsync(server.ConnectString))
            {
                Assert.Equal(ErrorCode.Ok, (await follower.WatchChangesAsync("/none", long.MaxValue)).Header.Err);
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (!await TwoSnapshotsAndAPurge())
                {
                    Assert.True(clock.Elapsed < Wait, $"no two snapshots and a purge after {expected.Count} changes in {Wait.TotalSeconds} s " +
                        $"(snapshots: {Snapshots()}; the journal's floor 0x{await MntrValue(server, "zk_change_feed_journal_after_zxid"):x})");
                    await WriteAsync(writer, expected, 50, dataBytes: 2048);
                    await Task.Delay(100);
                }
            }
            int Snapshots() => SnapshotFiles(server).Count;
            async Task<bool> TwoSnapshotsAndAPurge() => Snapshots() >= 2 && await MntrValue(server, "zk_change_feed_journal_after_zxid") > expected[0].Zxid;
            await server.RestartAsync();
            var floor = await JournalFloor(server);
            var memory = await MntrValue(server, "zk_change_feed_retained_after_zxid");
            output.WriteLine($"journal floor 0x{floor:x}, memory after 0x{memory:x}, writes 0x{expected[0].Zxid:x}..0x{expected[^1].Zxid:x}");

            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            var (refused, body) = await c.WatchChangesAsync("/feed", 0);
            Assert.True(refused.Err == ErrorCode.Compacted, $"a zxid before the purge was answered {refused.Err}, not Compacted (the server's journal floor: 0x{floor:x})");
            Assert.True(floor > expected[0].Zxid, "nothing was purged");
            Assert.True(floor < memory, $"the journal offers nothing memory does not: history after 0x{floor:x}, memory after 0x{memory:x}");
            Assert.Equal(floor, Assert.IsType<ChangeFeedPosition>(body).RetainedAfter);
            Assert.Equal(ErrorCode.Compacted, (await c.WatchChangesAsync("/feed", floor - 1)).Header.Err);

            // From the oldest: what the journal still has after it, what memory has, then what was written since the restart.
            await WriteAsync(c, expected, 30);
            var (ok, _) = await c.WatchChangesAsync("/feed", floor);
            Assert.Equal(ErrorCode.Ok, ok.Err);
            var want = expected.Where(e => e.Zxid > floor).ToList();
            AssertSequence(want, await Take(c, want.Count));
        });
    }

    /// <summary>
    /// With idle-recording = 0s, memory records nothing while nobody subscribes: the journal has every change. A
    /// subscriber then gets each change after the zxid it asks for, from the journal up to the last one applied and from
    /// memory after, which records while it subscribes; once it has gone, memory drops what it recorded at the next write.
    /// </summary>
    [SkippableTheory]
    [InlineData("file")]
    [InlineData("sql")]
    [InlineData("persistent-file")]
    public Task While_nobody_subscribes_memory_records_nothing_and_the_journal_serves_every_change(string journal) =>
        WithServerAsync($"coordination.change-feed {{ history-from-journal = on, idle-recording = 0s }}\ncoordination.persistence.journal = {journal}", async server =>
        {
            var expected = await PrepareAsync(server, 30);
            Assert.Equal(0, await MntrValue(server, "zk_change_feed_retained_txns"));
            Assert.True(await MntrValue(server, "zk_change_feed_retained_after_zxid") >= expected[^1].Zxid, "memory does not start after the last write");

            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await using (var c = await WireClient.ConnectAsync(server.ConnectString))
            {
                var from = expected[5].Zxid;
                Assert.Equal(ErrorCode.Ok, (await c.WatchChangesAsync("/feed", from)).Header.Err);
                await WriteAsync(writer, expected, 30);
                var want = expected.Where(e => e.Zxid > from).ToList();
                AssertSequence(want, await Take(c, want.Count));
                Assert.Equal(30, await MntrValue(server, "zk_change_feed_retained_txns"));
            }
            await NoSubscriptions(server);
            await writer.SetDataAsync("/other", [1]).OkAsync();
            Assert.Equal(0, await MntrValue(server, "zk_change_feed_retained_txns"));
        });

    /// <summary>
    /// By default memory does not record from the start (a subscriber's history after a restart is the journal's
    /// anyway), records from the first subscription on, and goes on recording for idle-recording after the last one
    /// ended, so that a subscriber that reconnects is served from memory.
    /// </summary>
    [Fact]
    public Task Memory_records_from_the_first_subscription_and_for_idle_recording_after_the_last() =>
        WithServerAsync("coordination.change-feed.history-from-journal = on", async server =>
        {
            await PrepareAsync(server, 10);
            Assert.Equal(0, await MntrValue(server, "zk_change_feed_retained_txns"));
            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await using (var c = await WireClient.ConnectAsync(server.ConnectString))
            {
                Assert.Equal(ErrorCode.Ok, (await c.WatchChangesAsync("/none", long.MaxValue)).Header.Err);
                for (var i = 0; i < 10; i++) await writer.SetDataAsync("/other", [1]).OkAsync();
            }
            await NoSubscriptions(server);
            for (var i = 0; i < 10; i++) await writer.SetDataAsync("/other", [2]).OkAsync();
            Assert.Equal(20, await MntrValue(server, "zk_change_feed_retained_txns"));
        });

    /// <summary>Runs <paramref name="body"/> against a server started with <paramref name="hocon"/>, with its output on failure.</summary>
    private async Task WithServerAsync(string hocon, Func<ServerProcess, Task> body)
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = hocon });
        await Targets.WithServerOutputOnFailure(server, output, () => body(server));
    }

    /// <summary>Waits until the server has ended every subscription (a closed connection ends its own).</summary>
    private static async Task NoSubscriptions(ServerProcess server)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await MntrValue(server, "zk_change_feed_subscriptions") > 0)
        {
            Assert.True(clock.Elapsed < Wait, $"subscriptions still open after {Wait.TotalSeconds} s");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// While nobody subscribes the server does not read its journal back after each snapshot to move the floor: the
    /// floor stays where the start put it, though snapshots were written and the journal before them purged. The next
    /// subscription computes it again; a zxid the purge removed is then answered Compacted naming the new floor.
    /// </summary>
    [Fact]
    public async Task Without_a_subscriber_the_floor_waits_for_the_next_subscription()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            // Memory keeps the last 10 txns only, so that the first writes are the journal's to serve or refuse.
            ExtraHocon = "coordination.change-feed { history-from-journal = on, retain-txns = 10 }\n" +
                         "coordination.persistence { journal = file, snapshot-every-txns = 100, snapshots-retained = 2, log-segment-size = 64KiB, log-preallocate = 16KiB }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var startFloor = await JournalFloor(server);
            var expected = await PrepareAsync(server, 0);
            var seen = new HashSet<string>();
            bool APurgedSnapshot()
            {
                var now = SnapshotFiles(server);
                var purged = seen.Any(f => !now.Contains(f));
                seen.UnionWith(now);
                return purged;
            }
            await using (var writer = await WireClient.ConnectAsync(server.ConnectString))
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (!APurgedSnapshot())
                {
                    Assert.True(clock.Elapsed < Wait, $"no snapshot deleted after {expected.Count} changes in {Wait.TotalSeconds} s");
                    await WriteAsync(writer, expected, 50, dataBytes: 2048);
                    await Task.Delay(100);
                }
            }
            // Past the one-second wait of a floor computation scheduled by a snapshot.
            await Task.Delay(2000);
            Assert.Equal(startFloor, await MntrValue(server, "zk_change_feed_journal_after_zxid"));

            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            Assert.Equal(ErrorCode.Ok, (await c.WatchChangesAsync("/none", long.MaxValue)).Header.Err);
            var floor = await JournalFloor(server, after: expected[0].Zxid);
            var (refused, body) = await c.WatchChangesAsync("/feed", expected[0].Zxid);
            Assert.Equal(ErrorCode.Compacted, refused.Err);
            Assert.Equal(floor, Assert.IsType<ChangeFeedPosition>(body).RetainedAfter);
        });
    }

    /// <summary>
    /// 40 MB of changes before a restart, read back from the journal by a subscriber that stops reading: the server
    /// pauses it (its connection is not dropped for its 4 MiB queue), holds at most a batch of history for it, and sends
    /// no more while it does not read; when it reads again it gets every change, in order, and no Compacted, then the
    /// changes committed while it was paused (in memory only), with no gap at the move from journal to memory.
    /// </summary>
    [SkippableFact]
    public async Task A_subscriber_that_does_not_read_its_history_is_paused_and_the_server_holds_one_batch_for_it()
    {
        // The paused subscriber sends nothing, not even pings: its session must outlast the pause and the writes
        // (the default test tick of 500 ms caps it at 10 s, which a loaded machine passed: expired, not dropped).
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            TickTimeMs = 2000,
            ExtraHocon = "coordination.max-queued-bytes-per-connection = 4MiB\ncoordination.change-feed { batch-size = 1MiB, history-from-journal = on }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var zxids = new List<long>();
            var payload = new byte[100 * 1024];
            async Task WriteAsync(int count)
            {
                await using var writer = await WireClient.ConnectAsync(server.ConnectString);
                var writes = new List<Task<(ReplyHeader Header, ZkResponse? Response)>>();
                for (var i = 0; i < count; i++)
                {
                    writes.Add(writer.SetDataAsync("/slow", payload));
                    if (writes.Count < 20) continue;
                    zxids.AddRange((await Task.WhenAll(writes)).Select(w => w.Header.Zxid));
                    writes.Clear();
                }
                zxids.AddRange((await Task.WhenAll(writes)).Select(w => w.Header.Zxid));
            }
            long from;
            await using (var creator = await WireClient.ConnectAsync(server.ConnectString))
                from = (await creator.CreateAsync("/slow", null)).Header.Zxid;
            await WriteAsync(400);
            await server.RestartAsync();
            Assert.True(await JournalFloor(server) <= from);

            await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port, receiveBufferBytes: 64 << 10);
            await raw.HandshakeAsync();
            Assert.True(await raw.SendAsync(WireFrames.Request(1, OpCode.WatchChanges, new WatchChangesRequest("/slow", from))));
            long held = 0, sent = 0;
            for (var i = 0; i < 30; i++)
            {
                await Task.Delay(100);
                held = Math.Max(held, await MntrValue(server, "zk_change_feed_history_buffered_bytes"));
                sent = await MntrValue(server, "zk_change_feed_events_sent");
            }
            output.WriteLine($"while paused: {sent} changes sent, at most {held} bytes of history held");
            Assert.Equal(0, await MntrValue(server, "zk_connections_dropped_queue_full"));
            Assert.True(sent < 100, $"it was not paused: {sent} of 400 changes sent");
            Assert.True(held <= (1 << 20) + (200 << 10), $"{held} bytes of history held for one subscriber");

            // Changes committed meanwhile are in memory only: the move from the journal to memory must not skip them.
            await WriteAsync(50);

            var seen = await raw.ObserveAsync(TimeSpan.FromSeconds(20), stopAfterReplies: 451, stopOnError: true);
            Assert.False(seen.ClosedByServer, "the paused subscriber was disconnected");
            Assert.Equal(1, seen.Replies[0].Xid);
            var changes = seen.Replies.Skip(1).ToList();
            Assert.All(changes, f => Assert.Equal((Xids.Change, ErrorCode.Ok), (f.Xid, f.Err)));
            Assert.Equal(zxids, changes.Select(f => f.Zxid));
        });
    }
}
