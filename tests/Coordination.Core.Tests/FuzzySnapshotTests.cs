using Coordination.Core;
using Coordination.Protocol;
using Xunit;

namespace Coordination.Core.Tests;

/// <summary>
/// A fuzzy snapshot (serialized in chunks while txns keep being applied) plus the replay, in replay mode, of every
/// txn after its start zxid gives exactly the live tree: same digest (every node's path, data, stat and ACL),
/// sessions, counts and sizes.
/// </summary>
public sealed class FuzzySnapshotTests
{
    private static readonly string[] Paths =
    [
        "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/x", "/a/x/y", "/e", "/e/f", "/e/f/g", "/e/h", "/q", "/q/r",
    ];

    private static readonly IReadOnlyList<Acl>[] AclChoices =
    [
        Acl.OpenAclUnsafe,
        [new Acl(Perms.All, new Id("world", "anyone")), new Acl(Perms.Read, new Id("ip", "10.0.0.1"))],
    ];

    private static MultiOp CreateOp(string path, byte[]? data) => new(OpCode.Create, new CreateRequest(path, data, Acl.OpenAclUnsafe, 0));

    private static void RandomStep(Harness h, Random rng, List<long> sessions, ref long nextSession)
    {
        var path = Paths[rng.Next(Paths.Length)];
        // Null data (a length of -1) is a value of its own, distinct from empty data.
        byte[]? data = rng.Next(6) == 0 ? null : new byte[rng.Next(0, 12)];
        if (data is not null) rng.NextBytes(data);
        switch (rng.Next(12))
        {
            case 0 or 1 or 2:
                var mode = rng.Next(3) == 0 ? CreateMode.Ephemeral : rng.Next(4) == 0 ? CreateMode.PersistentSequential : CreateMode.Persistent;
                h.Run(OpCode.Create2, new CreateRequest(path, data, Acl.OpenAclUnsafe, (int)mode), sessions[rng.Next(sessions.Count)]);
                break;
            case 3 or 4:
                h.Delete(path);
                break;
            case 5 or 6 or 7:
                h.Run(OpCode.SetData, new SetDataRequest(path, data, -1));
                break;
            case 8:
                h.SetAcl(path, AclChoices[rng.Next(AclChoices.Length)]);
                break;
            case 9:
                h.Multi(CreateOp(Paths[rng.Next(Paths.Length)], data), Harness.MSetData(path, data), Harness.MDelete(Paths[rng.Next(Paths.Length)]));
                break;
            case 10:
                h.Multi(Harness.MDelete(Paths[rng.Next(Paths.Length)]), CreateOp(path, data));
                break;
            case 11:
                if (sessions.Count > 1 && rng.Next(2) == 0)
                {
                    var victim = sessions[rng.Next(1, sessions.Count)];
                    h.CloseSession(victim);
                    sessions.Remove(victim);
                }
                else
                {
                    var id = nextSession++;
                    h.OpenSession(id);
                    sessions.Add(id);
                }
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzzy_snapshot_plus_replay_equals_the_live_tree(int seed)
    {
        var rng = new Random(seed);
        var h = new Harness();
        var sessions = new List<long> { Harness.S1, Harness.S2, Harness.S3 };
        long nextSession = 0x0100000000000100;
        var steps = rng.Next(0, 200);
        for (var i = 0; i < steps; i++) RandomStep(h, rng, sessions, ref nextSession);

        var snapshot = h.Tree.BeginFuzzySnapshot();
        var bytes = new MemoryStream();
        var chunk = rng.Next(1, 4);
        while (!snapshot.WriteChunk(chunk))
        {
            bytes.Write(snapshot.TakeBytes());
            for (var i = rng.Next(0, 8); i > 0; i--) RandomStep(h, rng, sessions, ref nextSession);
        }
        bytes.Write(snapshot.TakeBytes());
        for (var i = rng.Next(0, 50); i > 0; i--) RandomStep(h, rng, sessions, ref nextSession);

        bytes.Position = 0;
        Assert.Equal((snapshot.StartZxid, snapshot.EndZxid), DataTree.ReadSnapshotZxids(bytes));
        bytes.Position = 0;
        var recovered = DataTree.ReadSnapshot(bytes);
        Assert.Equal(snapshot.StartZxid, recovered.LastZxid);
        Assert.Equal(snapshot.EndZxid, recovered.SnapshotEndZxid);
        recovered.ReplayMode = true;
        foreach (var (header, txn) in h.Log)
            if (header.Zxid > snapshot.StartZxid) recovered.Apply(header, txn);
        recovered.FinishReplay();

        var live = h.Tree;
        Assert.Equal(live.LastZxid, recovered.LastZxid);
        var d1 = live.Digest();
        var d2 = recovered.Digest();
        if (d1 != d2) Assert.Fail($"digest {d1} vs {d2}: " + Diff(live, recovered, "/"));
        Assert.Equal(live.Sessions.OrderBy(x => x.Key), recovered.Sessions.OrderBy(x => x.Key));
        Assert.Equal(live.NodeCount, recovered.NodeCount);
        Assert.Equal(live.ApproximateDataSize, recovered.ApproximateDataSize);
        Assert.Equal(live.EphemeralCount, recovered.EphemeralCount);
        foreach (var s in live.SessionsWithEphemerals)
            Assert.Equal(live.EphemeralsOf(s).OrderBy(x => x, StringComparer.Ordinal), recovered.EphemeralsOf(s).OrderBy(x => x, StringComparer.Ordinal));

        // Re-serializing the recovered tree gives the same deterministic bytes as the live tree.
        var a = new MemoryStream();
        var b = new MemoryStream();
        live.WriteSnapshot(a);
        recovered.WriteSnapshot(b);
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    private static string Diff(DataTree a, DataTree b, string path)
    {
        var na = a.Find(path);
        var nb = b.Find(path);
        if (na is null || nb is null) return $"{path}: live {(na is null ? "absent" : "present")}, recovered {(nb is null ? "absent" : "present")}";
        if (na.Stat != nb.Stat || !na.Data.AsSpan().SequenceEqual(nb.Data) || !na.Acl.SequenceEqual(nb.Acl)) return $"{path}: live {na.Stat} recovered {nb.Stat}";
        foreach (var child in na.Children.Union(nb.Children))
        {
            var d = Diff(a, b, path == "/" ? "/" + child : path + "/" + child);
            if (d.Length > 0) return d;
        }
        return "";
    }

    public static IEnumerable<object[]> Seeds() => Enumerable.Range(1, 500).Select(i => new object[] { i });

    [Fact]
    public void Visiting_a_directory_with_many_children_does_not_build_all_their_paths_in_one_chunk()
    {
        const int children = 200_000;
        var h = new Harness();
        h.Create("/big", []);
        for (var i = 0; i < children; i++) h.Create($"/big/child-{i:D10}", []);
        var snapshot = h.Tree.BeginFuzzySnapshot();
        Assert.False(snapshot.WriteChunk(2)); // "/" and "/big": the chunk that visits the big directory

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.False(snapshot.WriteChunk(10));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // One path string per child (~60 B each, 12 MB here) would be built up front by a visit that expands the
        // whole directory; copying the child names is one 1.6 MB array, and this chunk writes only 10 nodes.
        Assert.True(allocated < 4_000_000, $"a 10-node chunk allocated {allocated:N0} bytes");

        var bytes = new MemoryStream();
        bytes.Write(snapshot.TakeBytes());
        while (!snapshot.WriteChunk(5_000)) bytes.Write(snapshot.TakeBytes());
        bytes.Write(snapshot.TakeBytes());
        bytes.Position = 0;
        var recovered = DataTree.ReadSnapshot(bytes);
        Assert.Equal(h.Tree.NodeCount, recovered.NodeCount);
        Assert.Equal(h.Tree.Digest(), recovered.Digest());
    }

    [Fact]
    public void Chunks_a_writer_gives_back_are_kept_for_the_next_snapshot_only_a_few_at_a_time()
    {
        // A writer behind its producer gives back every chunk it had queued at once; a pool that kept them all held
        // them (69 of 512 KiB) for the life of the process (issue 23).
        var h = new Harness();
        for (var i = 0; i < 500; i++) h.Create($"/n{i:D3}", new byte[1000]);
        List<byte[]> TakeChunks(int count)
        {
            var snapshot = h.Tree.BeginFuzzySnapshot();
            var arrays = new List<byte[]>();
            while (arrays.Count < count && !snapshot.WriteChunk(20)) arrays.Add(snapshot.TakeBytes().Array!);
            return arrays;
        }

        var first = TakeChunks(12);
        Assert.Equal(12, first.Count);
        foreach (var array in first) DataTree.FuzzySnapshot.ReturnBytes(array);
        var reused = TakeChunks(12).Where(array => first.Any(earlier => ReferenceEquals(earlier, array)));
        // The pool sorts arrays by size (powers of two) and keeps at most 4 of each.
        Assert.All(reused.GroupBy(array => array.Length), size => Assert.InRange(size.Count(), 0, 4));
    }

    [Fact]
    public void Snapshot_zxids_are_read_without_the_tree_and_a_truncated_file_is_refused()
    {
        var h = new Harness();
        for (var i = 0; i < 50; i++) h.Create($"/n{i}", i % 2 == 0 ? [(byte)i] : null);
        var whole = new MemoryStream();
        h.Tree.WriteSnapshot(whole);
        whole.Position = 0;
        Assert.Equal((h.Tree.LastZxid, h.Tree.LastZxid), DataTree.ReadSnapshotZxids(whole));

        var snapshot = h.Tree.BeginFuzzySnapshot();
        var fuzzy = new MemoryStream();
        for (var i = 50; !snapshot.WriteChunk(7); i++)
        {
            fuzzy.Write(snapshot.TakeBytes());
            h.Create($"/n{i}", [(byte)i]);
        }
        var bytes = fuzzy.ToArray().Concat(snapshot.TakeBytes()).ToArray();
        Assert.True(snapshot.EndZxid > snapshot.StartZxid);
        Assert.Equal((snapshot.StartZxid, snapshot.EndZxid), DataTree.ReadSnapshotZxids(new MemoryStream(bytes)));
        Assert.Throws<InvalidDataException>(() => DataTree.ReadSnapshotZxids(new MemoryStream(bytes[..(bytes.Length / 2)])));
    }

    [Fact]
    public void Truncated_or_corrupted_fuzzy_snapshot_is_rejected()
    {
        var h = new Harness();
        for (var i = 0; i < 50; i++) h.Create($"/n{i}", [(byte)i]);
        var snapshot = h.Tree.BeginFuzzySnapshot();
        while (!snapshot.WriteChunk(7)) { }
        var bytes = snapshot.TakeBytes().ToArray();
        Assert.Equal(h.Tree.Digest(), DataTree.ReadSnapshot(new MemoryStream(bytes)).Digest());
        Assert.Throws<InvalidDataException>(() => DataTree.ReadSnapshot(new MemoryStream(bytes[..^20])));
        var corrupt = (byte[])bytes.Clone();
        corrupt[bytes.Length / 2] ^= 0x40;
        Assert.Throws<InvalidDataException>(() => DataTree.ReadSnapshot(new MemoryStream(corrupt)));
    }

    [Fact]
    public void Replay_mode_is_idempotent_for_create_delete_and_setData()
    {
        var h = new Harness();
        h.Create("/p", [1]);
        h.Create("/p/c", [2]);
        h.SetData("/p/c", [3]);
        var expected = h.Tree.Digest();
        // Re-applying the whole log over the final tree changes nothing.
        h.Tree.ReplayMode = true;
        foreach (var (header, txn) in h.Log) h.Tree.Apply(header, txn);
        h.Tree.FinishReplay();
        Assert.Equal(expected, h.Tree.Digest());
    }
    [Fact]
    public void Replaying_a_create_that_changes_a_nodes_owner_replaces_the_node_and_keeps_its_children()
    {
        // A persistent node carries no owner field (issue 23: 80 bytes, not 88); a container, TTL or ephemeral node is
        // another class. A fuzzy replay can re-create a path with another owner: the parent's map gets the new node.
        var h = new Harness();
        h.Create("/c", [1]);
        h.Create("/c/x", [2]);
        var persistentCreate = h.Log[^2];
        var other = new Harness();
        other.Create("/c", [3], CreateMode.Container, op: OpCode.CreateContainer);
        h.Tree.ReplayMode = true;
        h.Tree.Apply(other.Log[^1].Header, other.Log[^1].Txn);
        var container = h.Tree.Find("/c")!;
        Assert.Equal(EphemeralOwner.Container, container.StoredEphemeralOwner);
        Assert.Equal([3], container.Data);
        Assert.Equal(["x"], container.Children);
        Assert.Equal(["/c"], h.Tree.Containers);

        h.Tree.Apply(persistentCreate.Header, persistentCreate.Txn);
        h.Tree.FinishReplay();
        var persistent = h.Tree.Find("/c")!;
        Assert.Equal(0, persistent.StoredEphemeralOwner);
        Assert.Equal([1], persistent.Data);
        Assert.Equal(["x"], persistent.Children);
        Assert.Empty(h.Tree.Containers);
        Assert.Equal([2], h.Tree.Find("/c/x")!.Data);
    }
}
