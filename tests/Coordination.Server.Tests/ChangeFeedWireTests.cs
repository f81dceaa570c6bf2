using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// The change feed on one server over real TCP with its real journal (ops WatchChanges 1002 and StopChanges 1003,
/// Coordination.Akka extensions): every committed change under the prefix once, in zxid order, with its data and
/// Stat, from any retained zxid and then live; Compacted (with the oldest zxid still available) for a purged one;
/// a subscriber that stops reading is paused, not given unbounded memory. Apache ZooKeeper 3.8 answers the op
/// Unimplemented and closes the connection, so a client using it against ZooKeeper learns so at once.
/// </summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class ChangeFeedWireTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    /// <summary>A committed write as the writer saw it: its zxid and what the feed must say about it.</summary>
    private sealed record Expected(long Zxid, EventType Type, string Path, byte[]? Data);

    private static Task<List<ChangeFrame>> Take(WireClient c, int count) => c.TakeChangesAsync(count, Wait);

    private static void AssertSequence(IReadOnlyList<Expected> expected, IReadOnlyList<ChangeFrame> frames, int subscription)
    {
        Assert.Equal(expected.Count, frames.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var change = Assert.IsType<ChangeEvent>(frames[i].Body);
            Assert.Equal(ErrorCode.Ok, frames[i].Err);
            Assert.Equal(subscription, change.Subscription);
            Assert.Equal((expected[i].Zxid, expected[i].Type, expected[i].Path), (frames[i].Zxid, change.Type, change.NodePath));
            if (change.Type != EventType.NodeDeleted)
            {
                Assert.Equal(expected[i].Data, change.Data);
                Assert.Equal(frames[i].Zxid, change.Stat.Mzxid);
            }
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task Every_committed_change_under_the_prefix_arrives_once_in_zxid_order_from_a_past_zxid_then_live(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await using var reader = await WireClient.ConnectAsync(server.ConnectString);
            var expected = new List<Expected>();
            async Task Write(Task<(ReplyHeader Header, ZkResponse? Response)> write, EventType type, string path, byte[]? data)
            {
                var (header, _) = await write;
                Assert.Equal(ErrorCode.Ok, header.Err);
                if (WatchChangesRequest.Covers("/feed", path)) expected.Add(new Expected(header.Zxid, type, path, data));
            }
            await Write(writer.CreateAsync("/feed", null), EventType.NodeCreated, "/feed", null);
            if (target == "apache")
            {
                await Targets.AssertRefusedAsUnknownOp(reader, (await reader.WatchChangesAsync("/feed", 0)).Header);
                return;
            }
            await Write(writer.CreateAsync("/feed/a", "1"u8.ToArray()), EventType.NodeCreated, "/feed/a", "1"u8.ToArray());
            await Write(writer.CreateAsync("/feedx", "not under the prefix"u8.ToArray()), EventType.NodeCreated, "/feedx", null);
            await Write(writer.SetDataAsync("/feed/a", "2"u8.ToArray()), EventType.NodeDataChanged, "/feed/a", "2"u8.ToArray());
            var (multi, _) = await writer.MultiAsync([
                new MultiOp(OpCode.Create, new CreateRequest("/feed/b", "b"u8.ToArray(), Acl.OpenAclUnsafe, 0)),
                new MultiOp(OpCode.SetData, new SetDataRequest("/feed/a", "3"u8.ToArray(), -1)),
            ]);
            Assert.Equal(ErrorCode.Ok, multi.Err);
            expected.Add(new Expected(multi.Zxid, EventType.NodeCreated, "/feed/b", "b"u8.ToArray()));
            expected.Add(new Expected(multi.Zxid, EventType.NodeDataChanged, "/feed/a", "3"u8.ToArray()));
            await Write(writer.DeleteAsync("/feed/b"), EventType.NodeDeleted, "/feed/b", null);

            // From before the first change: all of them.
            var (subscribed, position) = await reader.WatchChangesAsync("/feed", 0);
            Assert.Equal(ErrorCode.Ok, subscribed.Err);
            Assert.Equal(writer.LastZxid, ((ChangeFeedPosition)position!).LastZxid);
            AssertSequence(expected, await Take(reader, expected.Count), subscribed.Xid);

            // Live, with the catch-up of a second subscription from the middle running at the same time.
            var middle = expected.First(e => e.Type == EventType.NodeDataChanged).Zxid;
            var (fromMiddle, _) = await reader.WatchChangesAsync("/feed/a", middle);
            var live = new List<Task<(ReplyHeader Header, ZkResponse? Response)>>();
            for (var i = 0; i < 300; i++) live.Add(writer.SetDataAsync("/feed/a", BitConverter.GetBytes(i)));
            foreach (var (header, _) in await Task.WhenAll(live))
                expected.Add(new Expected(header.Zxid, EventType.NodeDataChanged, "/feed/a", null));
            var frames = await Take(reader, 300 + expected.Count(e => e.Path == "/feed/a" && e.Zxid > middle));
            var first = frames.Where(f => ((ChangeEvent)f.Body).Subscription == subscribed.Xid).ToList();
            var second = frames.Where(f => ((ChangeEvent)f.Body).Subscription == fromMiddle.Xid).ToList();
            Assert.Equal(expected.Skip(expected.Count - 300).Select(e => e.Zxid), first.Select(f => f.Zxid));
            Assert.Equal(expected.Where(e => e.Path == "/feed/a" && e.Zxid > middle).Select(e => e.Zxid), second.Select(f => f.Zxid));
            Assert.Equal(299, BitConverter.ToInt32(((ChangeEvent)first[^1].Body).Data));

            // Stopped: no more changes for it; the other goes on.
            Assert.Equal(ErrorCode.Ok, (await reader.StopChangesAsync(fromMiddle.Xid)).Header.Err);
            var (last, _) = await writer.CreateAsync("/feed/c", null);
            var after = Assert.Single(await Take(reader, 1));
            Assert.Equal((last.Zxid, subscribed.Xid), (after.Zxid, ((ChangeEvent)after.Body).Subscription));
            Assert.False(reader.Changes.TryRead(out var extra), $"unexpected frame {extra}");

            var mntr = await FourLetterWord.SendAsync(server.ConnectString, "mntr");
            Assert.Contains("zk_change_feed_subscriptions\t1", mntr);
            Assert.Contains("zk_change_feed_retained_txns", mntr);
        });
    }

    [SkippableFact]
    public async Task A_zxid_no_longer_retained_is_answered_Compacted_with_the_oldest_available_one()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions { ExtraHocon = "coordination.change-feed { retain-txns = 50, history-from-journal = off }" });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            await c.CreateAsync("/p", null).OkAsync();
            var zxids = new List<long>();
            for (var i = 0; i < 120; i++) zxids.Add((await c.SetDataAsync("/p", BitConverter.GetBytes(i))).Header.Zxid);

            var (refused, body) = await c.WatchChangesAsync("/", 0);
            Assert.Equal(ErrorCode.Compacted, refused.Err);
            var position = Assert.IsType<ChangeFeedPosition>(body);
            // 50 txns retained: the 50 newest, after the 71st write's zxid.
            Assert.Equal(zxids[^51], position.RetainedAfter);
            Assert.True(c.IsConnected);

            var (ok, _) = await c.WatchChangesAsync("/", position.RetainedAfter);
            Assert.Equal(ErrorCode.Ok, ok.Err);
            Assert.Equal(zxids.TakeLast(50), (await Take(c, 50)).Select(f => f.Zxid));
            Assert.Equal(ErrorCode.Compacted, (await c.WatchChangesAsync("/", position.RetainedAfter - 1)).Header.Err);
            Assert.Contains("zk_change_feed_compacted\t2", await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
        });
    }

    /// <summary>
    /// Retention by bytes and by age on a running server, and what mntr and /metrics show of it: 100 changes of 2 KiB
    /// under a 64 KiB bound keep only the newest that fit (a subscriber from before them is told Compacted naming where
    /// memory starts); left idle past retain-time, the timer drops the rest, so even the last write is no longer
    /// retained, though nothing was written. The limits are shown beside what is retained, in both.
    /// </summary>
    [SkippableFact]
    public async Task Retention_by_bytes_and_by_age_is_enforced_and_shown_in_mntr_and_metrics()
    {
        var metricsPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = "coordination.change-feed { retain-txns = 1000, retain-bytes = 64KiB, retain-time = 3s, history-from-journal = off }\n" +
                         $"coordination.metrics {{ enabled = on, port = {metricsPort} }}",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            async Task<Dictionary<string, long>> Mntr() =>
                (await FourLetterWord.MntrAsync(server.Host, server.Port)).Where(p => p.Key.StartsWith("zk_change_feed_", StringComparison.Ordinal))
                    .ToDictionary(p => p.Key["zk_".Length..], p => long.Parse(p.Value, System.Globalization.CultureInfo.InvariantCulture));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            async Task<Dictionary<string, long>> Metrics() =>
                (await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics")).Split('\n')
                    .Where(l => l.StartsWith("change_feed_", StringComparison.Ordinal)).Select(l => l.Split(' '))
                    .ToDictionary(p => p[0], p => (long)double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));

            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            await c.CreateAsync("/r", null).OkAsync();
            var zxids = new List<long>();
            for (var i = 0; i < 100; i++) zxids.Add((await c.SetDataAsync("/r", new byte[2048])).Header.Zxid);
            // Age counts from the last write (the checks below took over a second once under load, and a clock started
            // after them saw the changes go "early").
            var sinceLastWrite = System.Diagnostics.Stopwatch.StartNew();

            // By bytes: far fewer than the 1000 txns the count bound allows.
            var mntr = await Mntr();
            output.WriteLine(string.Join(", ", mntr.Select(p => $"{p.Key}={p.Value}")));
            Assert.Equal((1000L, 64L * 1024, 3000L), (mntr["change_feed_retain_txns_limit"], mntr["change_feed_retain_bytes_limit"], mntr["change_feed_retain_time_ms"]));
            Assert.InRange(mntr["change_feed_retained_bytes"], 2048, 64 * 1024);
            Assert.InRange(mntr["change_feed_retained_txns"], 1, 40);
            // What the record holds: whole chunks of frames and the index rings, more than the frames' exact bytes.
            Assert.True(mntr["change_feed_held_bytes"] > mntr["change_feed_retained_bytes"], $"held {mntr["change_feed_held_bytes"]} B, retained {mntr["change_feed_retained_bytes"]} B");
            var (refused, body) = await c.WatchChangesAsync("/r", zxids[0]);
            Assert.Equal(ErrorCode.Compacted, refused.Err);
            var retainedAfter = Assert.IsType<ChangeFeedPosition>(body).RetainedAfter;
            Assert.Equal(mntr["change_feed_retained_after_zxid"], retainedAfter);
            Assert.Equal(zxids[zxids.Count - (int)mntr["change_feed_retained_txns"] - 1], retainedAfter);   // the newest that fit
            var metrics = await Metrics();
            foreach (var name in new[] { "change_feed_retain_txns_limit", "change_feed_retain_bytes_limit", "change_feed_retain_time_ms", "change_feed_retained_txns", "change_feed_retained_after_zxid" })
                Assert.True(metrics.TryGetValue(name, out var v) && v == mntr[name], $"/metrics {name}: {(metrics.TryGetValue(name, out var m) ? m : "missing")}, mntr {mntr[name]}");
            Assert.Contains("change_feed_held_bytes", metrics.Keys);

            // By age: idle, the timer drops every change older than 3 s.
            while ((await Mntr())["change_feed_retained_txns"] > 0 && sinceLastWrite.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(200);
            output.WriteLine($"nothing retained {sinceLastWrite.ElapsedMilliseconds} ms after the last write");
            Assert.True(sinceLastWrite.Elapsed >= TimeSpan.FromSeconds(2.5), $"changes younger than retain-time were dropped ({sinceLastWrite.ElapsedMilliseconds} ms)");
            mntr = await Mntr();
            Assert.Equal((0L, 0L, zxids[^1]), (mntr["change_feed_retained_txns"], mntr["change_feed_retained_bytes"], mntr["change_feed_retained_after_zxid"]));
            Assert.Equal(ErrorCode.Compacted, (await c.WatchChangesAsync("/r", zxids[^2])).Header.Err);
            Assert.Equal(ErrorCode.Ok, (await c.WatchChangesAsync("/r", zxids[^1])).Header.Err);
            metrics = await Metrics();
            Assert.Equal((0L, zxids[^1]), (metrics["change_feed_retained_txns"], metrics["change_feed_retained_after_zxid"]));
        });
    }

    /// <summary>
    /// A subscriber that stops reading while 40 MB of changes commit: the server pauses it (the connection stays open
    /// and is not dropped for its queue, whose bound here is 4 MiB) and holds no more than its retention; when the
    /// subscriber reads again it gets the changes in order and, having fallen behind retention, a Compacted end
    /// naming where history now starts: nothing is lost silently. Other sessions are served meanwhile. (History from the
    /// journal is off here; with it on the subscriber goes on from the journal: ChangeFeedJournalTests.)
    /// </summary>
    [SkippableFact]
    public async Task A_subscriber_that_stops_reading_is_paused_within_the_connection_bound_and_told_Compacted_when_it_falls_behind()
    {
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            // Batches of 1 MiB per turn: unpaused, the server would queue far more than the bound.
            ExtraHocon = "coordination.max-queued-bytes-per-connection = 4MiB\ncoordination.change-feed { retain-txns = 200, batch-size = 1MiB, history-from-journal = off }",
        });
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var writer = await WireClient.ConnectAsync(server.ConnectString);
            await writer.CreateAsync("/slow", null).OkAsync();
            // A small receive buffer, so the kernel does not absorb what the server must hold back.
            await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port, receiveBufferBytes: 64 << 10);
            await raw.HandshakeAsync();
            Assert.True(await raw.SendAsync(WireFrames.Request(1, OpCode.WatchChanges, new WatchChangesRequest("/slow", writer.LastZxid))));

            var payload = new byte[100 * 1024];
            var writes = new List<Task<(ReplyHeader Header, ZkResponse? Response)>>();
            for (var i = 0; i < 400; i++)
            {
                writes.Add(writer.SetDataAsync("/slow", payload));
                if (writes.Count >= 20) { await Task.WhenAll(writes); writes.Clear(); }
            }
            await Task.WhenAll(writes);
            var mntr = await FourLetterWord.SendAsync(server.ConnectString, "mntr");
            Assert.Contains("zk_connections_dropped_queue_full\t0", mntr);

            var seen = await raw.ObserveAsync(TimeSpan.FromSeconds(10), stopOnError: true);
            output.WriteLine(seen.ToString());
            Assert.False(seen.ClosedByServer, "the paused subscriber was disconnected");
            Assert.Equal(1, seen.Replies[0].Xid);   // the subscription's reply, then its changes
            var changes = seen.Replies.Skip(1).ToList();
            Assert.All(changes.SkipLast(1), f => Assert.Equal((Xids.Change, ErrorCode.Ok), (f.Xid, f.Err)));
            for (var i = 1; i < changes.Count - 1; i++) Assert.True(changes[i].Zxid == changes[i - 1].Zxid + 1, $"gap after 0x{changes[i - 1].Zxid:x}");
            Assert.Equal((Xids.Change, ErrorCode.Compacted), (changes[^1].Xid, changes[^1].Err));
            Assert.True(changes.Count - 1 < 400, "it was not paused: it got every change");
            Assert.Contains("zk_connections_dropped_queue_full\t0", await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
        });
    }
}
