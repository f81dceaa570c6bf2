using System.Text;
using Coordination.Server.Persistence;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

public sealed class CorruptionTests(ITestOutputHelper output)
{
    private static async Task<Dictionary<string, string>> WriteAsync(ServerProcess server, int count, string prefix = "/d")
    {
        var expected = new Dictionary<string, string>();
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await client.CreateAsync(prefix, null).OkAsync(ErrorCode.NodeExists);
        for (var i = 0; i < count; i++)
        {
            var path = $"{prefix}/n{i % 40}";
            var value = $"v{i}";
            if (i < 40) await client.CreateAsync(path, Encoding.UTF8.GetBytes(value)).OkAsync();
            else await client.SetDataAsync(path, Encoding.UTF8.GetBytes(value)).OkAsync();
            expected[path] = value;
        }
        return expected;
    }

    private static async Task VerifyAsync(ServerProcess server, Dictionary<string, string> expected)
    {
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        foreach (var (path, value) in expected)
        {
            var r = (GetDataResponse)(await client.GetDataAsync(path).OkAsync())!;
            Assert.Equal(value, Encoding.UTF8.GetString(r.Data ?? []));
        }
    }

    private static string[] Snapshots(ServerProcess server) =>
        Directory.GetFiles(server.DataDir, "snapshot.*").Where(f => !f.EndsWith(".tmp")).OrderDescending().ToArray();

    private static async Task WaitForSnapshotsAsync(ServerProcess server, int count)
    {
        for (var i = 0; i < 100 && Snapshots(server).Length < count; i++) await Task.Delay(100);
        Assert.True(Snapshots(server).Length >= count, $"expected {count} snapshots, found {Snapshots(server).Length}");
    }

    /// <summary>The two file journals: the writer thread's log (txnlog) and the persistent actor's (eventlog).</summary>
    private static string LogDir(ServerProcess server, string journal) =>
        Path.Combine(server.DataDir, journal == "file" ? "txnlog" : "eventlog");

    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Corrupt_or_truncated_snapshot_falls_back_to_an_older_one_then_refuses_when_the_journal_no_longer_covers(string journal)
    {
        await using var server = await Servers.StartAsync(output, $$"""
            coordination.persistence { journal = {{journal}}, snapshot-every-txns = 100, snapshots-retained = 3, snapshot-chunk-nodes = 10 }
            """);
        var expected = await WriteAsync(server, 450);
        await WaitForSnapshotsAsync(server, 3);
        server.Kill();

        var snaps = Snapshots(server);
        output.WriteLine("snapshots: " + string.Join(", ", snaps.Select(Path.GetFileName)));
        // Flip a byte in the middle of the newest snapshot: checksum mismatch -> the next older one plus the journal.
        var bytes = File.ReadAllBytes(snaps[0]);
        bytes[bytes.Length / 2] ^= 0x5a;
        File.WriteAllBytes(snaps[0], bytes);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
        Assert.Contains("unusable", server.OutputTail);
        server.Kill();

        // Truncate the second newest as well: the third one is still covered by the journal.
        using (var fs = new FileStream(snaps[1], FileMode.Open)) fs.SetLength(fs.Length / 3);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
        server.Kill();

        // Corrupt every snapshot: the journal was purged up to the oldest kept snapshot, so nothing can rebuild the
        // tree without losing acknowledged writes. The server must refuse to start and name the files.
        foreach (var snap in Snapshots(server))
        {
            var b = File.ReadAllBytes(snap);
            b[^3] ^= 0x01;
            File.WriteAllBytes(snap, b);
        }
        var e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        output.WriteLine(e.Message);
        Assert.Contains("cannot recover", e.Output);
        Assert.Contains(Path.GetFileName(Snapshots(server)[^1]), e.Output);
    }

    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task Corrupt_file_journal_refuses_to_start_and_names_the_segment(string journal)
    {
        await using var server = await Servers.StartAsync(output, $"coordination.persistence.journal = {journal}");
        var expected = await WriteAsync(server, 200);
        server.Kill();
        await server.RestartAsync(); // the next writes go to a second segment
        var more = await WriteAsync(server, 50, prefix: "/more");
        server.Kill();
        var segments = FileTxnLog.List(LogDir(server, journal));
        Assert.Equal(2, segments.Count);
        var first = segments[0].Path;
        var original = File.ReadAllBytes(first);

        // A record in the middle of the older segment is damaged: acknowledged txns after it would be lost.
        var corrupt = (byte[])original.Clone();
        corrupt[original.Length / 2 > 4096 ? 2048 : 200] ^= 0x5A;
        File.WriteAllBytes(first, corrupt);
        var e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        output.WriteLine(e.Message);
        Assert.Contains(Path.GetFileName(first), e.Output);
        Assert.Contains("refusing to start", e.Output);

        // Garbage over the segment header.
        corrupt = (byte[])original.Clone();
        for (var i = 0; i < 16; i++) corrupt[i] = (byte)(0xA5 ^ i);
        File.WriteAllBytes(first, corrupt);
        e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        Assert.Contains(Path.GetFileName(first), e.Output);
        Assert.Contains("refusing to start", e.Output);

        // The intact file starts again with every write.
        File.WriteAllBytes(first, original);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
        await VerifyAsync(server, more);
    }

    [Theory]
    [InlineData("file")]
    [InlineData("persistent-file")]
    public async Task A_crash_mid_roll_or_a_torn_tail_restarts_with_every_write_but_damage_before_intact_records_refuses(string journal)
    {
        await using var server = await Servers.StartAsync(output, $"coordination.persistence.journal = {journal}");
        var expected = await WriteAsync(server, 100);
        server.Kill();
        var logDir = LogDir(server, journal);
        var newest = FileTxnLog.List(logDir)[^1];

        // A crash while rolling: the next segment exists, but its header never reached the disk (ZOOKEEPER-1621).
        var rolled = Path.Combine(logDir, FileTxnLog.Prefix + (newest.Ordinal + 1).ToString("x16"));
        File.WriteAllBytes(rolled, new byte[64 << 10]);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
        await WriteAsync(server, 50, prefix: "/more");   // the last of these is torn below
        server.Kill();

        // A torn tail: the end of the newest segment's last write is garbage, nothing intact after it.
        var segments = FileTxnLog.List(logDir);
        var last = File.ReadAllBytes(segments[^1].Path);
        var end = LastNonZero(last) + 1;
        for (var i = end - 20; i < end; i++) last[i] ^= 0x33;
        File.WriteAllBytes(segments[^1].Path, last);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
        await WriteAsync(server, 30, prefix: "/third");
        server.Kill();

        // One bit flipped in the middle of the newest segment written before: records after it are intact.
        var third = FileTxnLog.List(logDir)[^1];   // each restart writes into a new segment
        var tail = File.ReadAllBytes(third.Path);
        Assert.True(LastNonZero(tail) > 200, "expected records in the newest segment");
        tail[40] ^= 0x01;
        File.WriteAllBytes(third.Path, tail);
        var e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        Assert.Contains(Path.GetFileName(third.Path), e.Output);
        Assert.Contains("offset 16", e.Output);
        Assert.Contains("refusing to start", e.Output);
    }

    private static int LastNonZero(byte[] bytes) => Array.FindLastIndex(bytes, b => b != 0);

    [Fact]
    public async Task Corrupt_or_truncated_journal_database_refuses_to_start_and_names_the_file()
    {
        await using var server = await Servers.StartAsync(output, "coordination.persistence.journal = sql");
        var expected = await WriteAsync(server, 200);
        await server.StopAsync(); // graceful: SQLite checkpoints the WAL into journal.db
        var db = Path.Combine(server.DataDir, "journal.db");
        var original = File.ReadAllBytes(db);
        output.WriteLine($"journal.db: {original.Length} bytes");

        // Garbage over the header.
        var corrupt = (byte[])original.Clone();
        for (var i = 0; i < 100; i++) corrupt[i] = (byte)(0xA5 ^ i);
        File.WriteAllBytes(db, corrupt);
        var e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        output.WriteLine(e.Message);
        Assert.Contains("journal.db", e.Output);
        Assert.Contains("refusing to start", e.Output);

        // Truncated to half.
        File.WriteAllBytes(db, original[..(original.Length / 2)]);
        foreach (var side in new[] { db + "-wal", db + "-shm" }) File.Delete(side);
        e = await Assert.ThrowsAsync<ServerStartException>(() => server.RestartAsync());
        output.WriteLine(e.Message);
        Assert.Contains("journal.db", e.Output);

        // The intact file starts again with every write.
        File.WriteAllBytes(db, original);
        await server.RestartAsync();
        await VerifyAsync(server, expected);
    }
}
