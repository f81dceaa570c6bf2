using System.Buffers;
using System.Buffers.Binary;
using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// Fuzzy snapshots (ZooKeeper's model): the tree is serialized a few nodes at a time while txns keep being applied
/// between chunks. The file records the zxid applied when it began (<c>startZxid</c>); recovery reads it and replays
/// every txn with a greater zxid in <see cref="DataTree.ReplayMode"/>. That converges to the exact tree because every
/// field a txn sets is an absolute value carried by the txn (data, version, aversion, parent cversion, pzxid = zxid,
/// czxid/mzxid = zxid), so re-applying a txn whose effect the snapshot already shows writes the same values, and
/// replay mode turns the existence mismatches a fuzzy capture can show into the same end state:
/// <list type="bullet">
/// <item>create of a node that exists: the node is rewritten as the txn creates it; its captured children stay
/// (they were created later and their own creates follow in the replay);</item>
/// <item>delete of a missing node: no-op, except that the parent's pzxid is set as the original delete set it;</item>
/// <item>delete of a node with captured children: those children were deleted before it originally, their deletes
/// were replayed before; any left are later incarnations whose removal the original delete implies;</item>
/// <item>setData / setACL of a missing node: no-op (a later txn deleted it).</item>
/// </list>
/// </summary>
public sealed partial class DataTree
{
    /// <summary>Version 4 adds the session secret after the session table; version 2 (without it) is still read.</summary>
    internal const int FuzzySnapshotVersion = 4;
    private const int FuzzySnapshotVersionWithoutSecret = 2;
    private const int TagEnd = 0, TagAcl = 1, TagNode = 2;

    /// <summary>
    /// While true, <see cref="Apply"/> is idempotent over a fuzzy snapshot (see the type remarks). Recovery sets it
    /// for the journal replay and clears it (with <see cref="FinishReplay"/>) before serving.
    /// </summary>
    public bool ReplayMode { get; set; }

    /// <summary>Ends a replay: clears <see cref="ReplayMode"/> and recomputes derived quota stats.</summary>
    public void FinishReplay()
    {
        ReplayMode = false;
        RebuildQuotaRoots();
        if (_quotaRoots is { } roots) foreach (var root in roots.ToArray()) RecountQuota(root);
    }

    /// <summary>Re-creates <paramref name="existing"/> as the txn creates it; returns the node now at the path: a new
    /// one (which the caller puts in the parent's map, with the old one's children) when the owner changes, since the
    /// owner is fixed for a node's life.</summary>
    private Node ReplaceNode(Node existing, CreateTxn txn, string path, long zxid, long time)
    {
        var data = Normalize(txn.Data);
        UntrackOwner(path, existing.Owner);
        _dataSize += (data?.Length ?? 0) - existing.DataLength;
        var oldAcl = existing.Acl;
        var node = existing.Owner == txn.EphemeralOwner ? existing : Node.Create(data, oldAcl, txn.EphemeralOwner);
        node.Data = data;
        node.Acl = _acls.AddRef(txn.Acl);
        _acls.Release(oldAcl);
        node.Kids = existing.Kids;
        node.Czxid = node.Mzxid = zxid;
        node.Ctime = node.Mtime = time;
        node.Version = 0;
        node.Aversion = 0;
        if (node.Kids is { } kids)
        {
            kids.Pzxid = zxid;
            kids.Cversion = 0;
        }
        TrackOwner(path, txn.EphemeralOwner);
        return node;
    }

    private void DeleteChildrenForReplay(string path, Node node, long zxid)
    {
        if (node.Kids is not { } kids) return;
        foreach (var name in kids.Map.Keys.ToArray())
        {
            var childPath = path == RootPath ? "/" + name : path + "/" + name;
            DeleteNode(childPath, zxid, out _);
        }
    }

    /// <summary>Starts a fuzzy snapshot of this tree at <see cref="LastZxid"/>. The caller (the tree's owner) calls
    /// <see cref="FuzzySnapshot.WriteChunk"/> between applies until it returns true.</summary>
    public FuzzySnapshot BeginFuzzySnapshot() => new(this);

    /// <summary>
    /// A snapshot in progress. Format (version 4): magic, version, startZxid, then tagged records — ACL lists as
    /// they are first used, nodes depth-first (a parent always precedes its children; each directory's child list is
    /// copied when the directory is visited) — an end tag, the zxid at the end, the session table, the session
    /// secret (length -1 for none), and the xxHash64
    /// of every preceding byte. Not thread-safe: only the tree's owner calls it, between applies.
    /// </summary>
    public sealed class FuzzySnapshot
    {
        private readonly DataTree _tree;
        private readonly MemoryStream _out = new();
        private readonly SnapshotWriter _w;
        // Directories being visited, each with its child names as they were when it was visited; child paths are
        // made one at a time as they are written, so a directory with millions of children costs one array copy
        // in a chunk, not millions of path strings (a 0.9 s replica stall at ~3M children under one parent).
        private readonly Stack<PendingChildren> _pending = new();
        private readonly Dictionary<AclList, int> _aclIndex = new(ReferenceEqualityComparer.Instance);
        private bool _done;

        public long StartZxid { get; }
        public long EndZxid { get; private set; }
        public long NodesWritten { get; private set; }

        internal FuzzySnapshot(DataTree tree)
        {
            _tree = tree;
            _w = new SnapshotWriter(_out);
            StartZxid = tree._lastZxid;
            _w.WriteInt(SnapshotMagic);
            _w.WriteInt(FuzzySnapshotVersion);
            _w.WriteLong(StartZxid);
            _pending.Push(new PendingChildren("", [RootPath]));
        }

        /// <summary>Serializes up to <paramref name="maxNodes"/> more nodes; true when the snapshot is complete
        /// (the trailer is then written). Take the bytes produced so far with <see cref="TakeBytes"/>.</summary>
        public bool WriteChunk(int maxNodes)
        {
            if (_done) return true;
            var written = 0;
            while (written < maxNodes && _pending.TryPeek(out var directory))
            {
                if (directory.Next == directory.Names.Length) { _pending.Pop(); continue; }
                var path = directory.Prefix + directory.Names[directory.Next++];
                var node = _tree.Lookup(path);
                if (node is null) continue; // deleted since its parent was visited
                WriteNode(path, node);
                written++;
                if (node.Kids is { Map.Count: > 0 } kids)
                {
                    var names = new string[kids.Map.Count];
                    kids.Map.Keys.CopyTo(names, 0);
                    _pending.Push(new PendingChildren(path == RootPath ? "/" : path + "/", names));
                }
            }
            while (_pending.TryPeek(out var visited) && visited.Next == visited.Names.Length) _pending.Pop();
            NodesWritten += written;
            if (_pending.Count > 0) return false;

            _w.WriteInt(TagEnd);
            EndZxid = _tree._lastZxid;
            _w.WriteLong(EndZxid);
            var ids = _tree._sessions.Keys.ToArray();
            Array.Sort(ids);
            _w.WriteInt(ids.Length);
            foreach (var id in ids)
            {
                _w.WriteLong(id);
                _w.WriteInt(_tree._sessions[id]);
            }
            _w.WriteData(_tree.SessionSecret);
            _w.Finish();
            _done = true;
            return true;
        }

        private void WriteNode(string path, Node node)
        {
            if (!_aclIndex.TryGetValue(node.Acl, out var index))
            {
                index = _aclIndex.Count;
                _aclIndex.Add(node.Acl, index);
                _w.WriteInt(TagAcl);
                _w.WriteInt(index);
                _w.WriteInt(node.Acl.Count);
                for (var i = 0; i < node.Acl.Count; i++)
                {
                    _w.WriteInt((int)node.Acl[i].Perms);
                    _w.WriteString(node.Acl[i].Id.Scheme);
                    _w.WriteString(node.Acl[i].Id.Ident);
                }
            }
            _w.WriteInt(TagNode);
            _w.WriteString(path);
            _w.WriteData(node.Data);
            _w.WriteInt(index);
            _w.WriteLong(node.Czxid); _w.WriteLong(node.Mzxid); _w.WriteLong(node.Ctime); _w.WriteLong(node.Mtime);
            _w.WriteLong(node.Pzxid); _w.WriteLong(node.Owner);
            _w.WriteInt(node.Version); _w.WriteInt(node.Cversion); _w.WriteInt(node.Aversion);
        }

        private sealed class PendingChildren(string prefix, string[] names)
        {
            public readonly string Prefix = prefix;
            public readonly string[] Names = names;
            public int Next;
        }

        /// <summary>Keeps a few chunks for the next ones. <see cref="ArrayPool{T}.Shared"/> kept every chunk the
        /// writer had queued, up to 69 of 512 KiB (36 MB) for as long as the process ran (issue 23); a chunk past
        /// these is left to the collector.</summary>
        private static readonly ArrayPool<byte> Chunks = ArrayPool<byte>.Create(maxArrayLength: 4 << 20, maxArraysPerBucket: 4);

        /// <summary>The bytes produced since the last call (may be empty), in a pooled array: whoever writes them out
        /// may give it back with <see cref="ReturnBytes"/>. A chunk is hundreds of KB, so a new array per chunk went
        /// to the large-object heap: a snapshot of a million znodes left a quarter of a GB of it to the gen-2
        /// collector (issue 23).</summary>
        public ArraySegment<byte> TakeBytes()
        {
            _w.FlushBuffer();
            var length = (int)_out.Length;
            var bytes = Chunks.Rent(Math.Max(length, 1));
            _out.GetBuffer().AsSpan(0, length).CopyTo(bytes);
            _out.SetLength(0);
            return new ArraySegment<byte>(bytes, 0, length);
        }

        /// <summary>Gives back a chunk from <see cref="TakeBytes"/> once it has been written out.</summary>
        public static void ReturnBytes(ArraySegment<byte> chunk) => Chunks.Return(chunk.Array!);
    }

    /// <summary>Reads the zxid a snapshot file starts at (header only, no validation of the rest).</summary>
    public static long ReadSnapshotStartZxid(Stream input)
    {
        Span<byte> header = stackalloc byte[16];
        input.ReadExactly(header);
        if (BinaryPrimitives.ReadInt32BigEndian(header) != SnapshotMagic) throw new InvalidDataException("not a snapshot (bad magic)");
        return BinaryPrimitives.ReadInt64BigEndian(header[8..]);
    }

    /// <summary>The zxids a snapshot starts and ends at (equal for a non-fuzzy one), read by skipping over its records:
    /// nothing of the tree is built and the checksum is not verified. The change feed's history floor needs only these
    /// after every snapshot; reading the whole tree for them cost a million-znode server a GB of garbage each time.</summary>
    public static (long Start, long End) ReadSnapshotZxids(Stream input)
    {
        try
        {
            var r = new SnapshotReader(input);
            if (r.ReadInt() != SnapshotMagic) throw new InvalidDataException("not a snapshot (bad magic)");
            var version = r.ReadInt();
            var start = r.ReadLong();
            if (version is not (FuzzySnapshotVersion or FuzzySnapshotVersionWithoutSecret)) return (start, start);
            while (true)
            {
                var tag = r.ReadInt();
                if (tag == TagEnd) return (start, r.ReadLong());
                if (tag == TagAcl)
                {
                    r.ReadInt();
                    for (var n = r.ReadCount(); n > 0; n--) { r.ReadInt(); r.SkipField(); r.SkipField(); }
                    continue;
                }
                if (tag != TagNode) throw new InvalidDataException($"bad record tag {tag}");
                r.SkipField();                   // path
                r.SkipField();                   // data (-1 for null)
                r.Skip(4 + 6 * 8 + 3 * 4);       // acl index, six longs, three ints
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("corrupt snapshot: " + e.Message, e);
        }
    }

    private static DataTree ReadFuzzySnapshot(SnapshotReader r, long startZxid, bool withSecret)
    {
        var acls = new Dictionary<int, Acl[]>();
        var tree = new DataTree(empty: true);
        tree._acls.Release(tree._root.Acl);
        var load = new SnapshotLoad();
        var first = true;
        while (true)
        {
            var tag = r.ReadInt();
            if (tag == TagEnd) break;
            if (tag == TagAcl)
            {
                var index = r.ReadInt();
                var n = r.ReadCount();
                var list = new Acl[n];
                for (var j = 0; j < n; j++) list[j] = new Acl((Perms)r.ReadInt(), new Id(r.ReadString(), r.ReadString()));
                if (!acls.TryAdd(index, list)) throw new InvalidDataException($"duplicate acl index {index}");
                continue;
            }
            if (tag != TagNode) throw new InvalidDataException($"bad record tag {tag}");
            var path = r.ReadString();
            var data = r.ReadData();
            var aclIndex = r.ReadInt();
            if (!acls.TryGetValue(aclIndex, out var acl)) throw new InvalidDataException($"bad acl index {aclIndex} for {path}");
            ReadNode(tree, r, load, path, data, acl, isRoot: first);
            first = false;
        }
        if (first) throw new InvalidDataException("snapshot has no root");
        var endZxid = r.ReadLong();
        if (endZxid < startZxid) throw new InvalidDataException("snapshot end zxid precedes its start");
        var sessionCount = r.ReadCount();
        var sessions = new List<(long, int)>(Math.Min(sessionCount, 1 << 16));
        for (var i = 0; i < sessionCount; i++) sessions.Add((r.ReadLong(), r.ReadInt()));
        var secret = withSecret ? r.ReadData() : null;
        r.VerifyChecksum();

        foreach (var (id, timeout) in sessions) tree._sessions[id] = timeout;
        tree.SessionSecret = secret;
        tree._lastZxid = startZxid;
        tree.SnapshotEndZxid = endZxid;
        tree._dataSize = load.DataSize + tree._root.DataLength; // ZooKeeper's "" alias of the root counts it twice
        tree.RebuildQuotaRoots();
        return tree;
    }

    /// <summary>For a tree read from a fuzzy snapshot: the zxid applied when the snapshot was finished. The journal
    /// replay must reach at least this zxid for the tree to be consistent. Equals <see cref="LastZxid"/> otherwise.</summary>
    public long SnapshotEndZxid { get; private set; }
}
