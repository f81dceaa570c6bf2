using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Coordination.Protocol;

namespace Coordination.Core;

public sealed partial class DataTree
{
    /// <summary>"CZKS": Coordination znode snapshot.</summary>
    internal const int SnapshotMagic = 0x435A4B53;
    /// <summary>Version 3 adds the session secret after the session table; version 1 (without it) is still read.</summary>
    internal const int SnapshotVersion = 3;
    private const int SnapshotVersionWithoutSecret = 1;
    private const int MaxSnapshotField = 256 << 20;

    /// <summary>
    /// An order-independent digest of every node's path, data, stored stat and ACL (the wrapping sum of one xxHash64
    /// per node, /zookeeper/config aside), to compare servers. Two trees with the same nodes give the same digest whatever order they were
    /// built in. O(nodes): for checks, not for every txn.
    /// </summary>
    public long Digest()
    {
        ulong sum = 0;
        var buffer = new ArrayBufferWriter<byte>(256);
        // /zookeeper/config is left out, as ZooKeeper's digest leaves it out: each member sets it at start (its mtime differs).
        Walk(sorted: false, (path, node) => { if (!path.SequenceEqual(ConfigPath)) sum = unchecked(sum + NodeDigest(buffer, path, node)); });
        return unchecked((long)sum);
    }

    private static ulong NodeDigest(ArrayBufferWriter<byte> buffer, ReadOnlySpan<char> path, Node node)
    {
        buffer.ResetWrittenCount();
        var pathBytes = Encoding.UTF8.GetByteCount(path);
        BinaryPrimitives.WriteInt32BigEndian(buffer.GetSpan(4), pathBytes);
        buffer.Advance(4);
        Encoding.UTF8.GetBytes(path, buffer.GetSpan(pathBytes));
        buffer.Advance(pathBytes);
        var w = new JuteWriter(buffer);
        w.WriteLong(node.Czxid); w.WriteLong(node.Mzxid); w.WriteLong(node.Ctime); w.WriteLong(node.Mtime);
        w.WriteLong(node.Pzxid); w.WriteLong(node.Owner);
        w.WriteInt(node.Version); w.WriteInt(node.Cversion); w.WriteInt(node.Aversion);
        w.WriteInt(node.Data?.Length ?? -1); // null data differs from empty
        Protocol.Acl.WriteList(ref w, node.Acl);
        return System.IO.Hashing.XxHash64.HashToUInt64(buffer.WrittenSpan, (long)System.IO.Hashing.XxHash64.HashToUInt64(node.Data));
    }

    /// <summary>
    /// Writes the tree and the session table in a deterministic, versioned, checksummed format:
    /// magic "CZKS", version, lastZxid, sessions (sorted by id), the session secret (length -1 for none), the distinct ACL lists (in a canonical order), the
    /// nodes depth-first with children in ordinal order (every parent precedes its children) with path, data (length -1 for null), ACL
    /// index and stored stat, then the xxHash64 of every preceding byte. Integers are big-endian, strings are length-prefixed UTF-8. The same tree always gives
    /// the same bytes.
    /// </summary>
    public void WriteSnapshot(Stream output)
    {
        var w = new SnapshotWriter(output);
        w.WriteInt(SnapshotMagic);
        w.WriteInt(SnapshotVersion);
        w.WriteLong(_lastZxid);

        var sessionIds = new long[_sessions.Count];
        _sessions.Keys.CopyTo(sessionIds, 0);
        Array.Sort(sessionIds);
        w.WriteInt(sessionIds.Length);
        foreach (var id in sessionIds)
        {
            w.WriteLong(id);
            w.WriteInt(_sessions[id]);
        }
        w.WriteData(SessionSecret);

        var table = new List<AclList>(_acls.All);
        table.Sort(CompareAcls);
        for (var i = 0; i < table.Count; i++) table[i].SnapshotIndex = i;
        w.WriteInt(table.Count);
        foreach (var acl in table)
        {
            w.WriteInt(acl.Count);
            for (var i = 0; i < acl.Count; i++)
            {
                w.WriteInt((int)acl[i].Perms);
                w.WriteString(acl[i].Id.Scheme);
                w.WriteString(acl[i].Id.Ident);
            }
        }

        w.WriteInt(_count);
        Walk(sorted: true, (path, node) =>
        {
            w.WriteString(path);
            w.WriteData(node.Data);
            w.WriteInt(node.Acl.SnapshotIndex);
            w.WriteLong(node.Czxid); w.WriteLong(node.Mzxid); w.WriteLong(node.Ctime); w.WriteLong(node.Mtime);
            w.WriteLong(node.Pzxid); w.WriteLong(node.Owner);
            w.WriteInt(node.Version); w.WriteInt(node.Cversion); w.WriteInt(node.Aversion);
        });
        w.Finish();
    }

    private static int CompareAcls(AclList x, AclList y)
    {
        for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
        {
            var c = ((int)x[i].Perms).CompareTo((int)y[i].Perms);
            if (c == 0) c = string.CompareOrdinal(x[i].Id.Scheme, y[i].Id.Scheme);
            if (c == 0) c = string.CompareOrdinal(x[i].Id.Ident, y[i].Id.Ident);
            if (c != 0) return c;
        }
        return x.Count.CompareTo(y.Count);
    }

    /// <summary>Reads a snapshot written by <see cref="WriteSnapshot"/>. Throws <see cref="InvalidDataException"/> when
    /// the bytes are truncated, corrupted (checksum mismatch) or structurally invalid.</summary>
    public static DataTree ReadSnapshot(Stream input)
    {
        try
        {
            return ReadSnapshotCore(new SnapshotReader(input));
        }
        catch (InvalidDataException)
        {
            throw;
        }
        catch (Exception e) when (e is EndOfStreamException or DecoderFallbackException or ArgumentException or OverflowException or KeyNotFoundException)
        {
            throw new InvalidDataException("corrupt snapshot: " + e.Message, e);
        }
    }

    private static DataTree ReadSnapshotCore(SnapshotReader r)
    {
        if (r.ReadInt() != SnapshotMagic) throw new InvalidDataException("not a snapshot (bad magic)");
        var version = r.ReadInt();
        if (version is FuzzySnapshotVersion or FuzzySnapshotVersionWithoutSecret) return ReadFuzzySnapshot(r, r.ReadLong(), version == FuzzySnapshotVersion);
        if (version is not (SnapshotVersion or SnapshotVersionWithoutSecret)) throw new InvalidDataException($"unsupported snapshot version {version}");
        var lastZxid = r.ReadLong();

        var sessionCount = r.ReadCount();
        var sessions = new List<(long Id, int Timeout)>(Math.Min(sessionCount, 1 << 16));
        for (var i = 0; i < sessionCount; i++) sessions.Add((r.ReadLong(), r.ReadInt()));
        var secret = version == SnapshotVersion ? r.ReadData() : null;

        var aclCount = r.ReadCount();
        var acls = new List<Acl[]>(Math.Min(aclCount, 1 << 16));
        for (var i = 0; i < aclCount; i++)
        {
            var n = r.ReadCount();
            var list = new Acl[n];
            for (var j = 0; j < n; j++) list[j] = new Acl((Perms)r.ReadInt(), new Id(r.ReadString(), r.ReadString()));
            acls.Add(list);
        }

        var nodeCount = r.ReadCount();
        var tree = new DataTree(empty: true);
        tree._acls.Release(tree._root.Acl);
        var load = new SnapshotLoad();
        for (var i = 0; i < nodeCount; i++)
        {
            var path = r.ReadString();
            var data = r.ReadData();
            var aclIndex = r.ReadInt();
            if ((uint)aclIndex >= (uint)acls.Count) throw new InvalidDataException($"bad acl index {aclIndex} for {path}");
            ReadNode(tree, r, load, path, data, acls[aclIndex], isRoot: i == 0);
        }
        if (nodeCount == 0) throw new InvalidDataException("snapshot has no root");

        r.VerifyChecksum();

        foreach (var (id, timeout) in sessions) tree._sessions[id] = timeout;
        tree.SessionSecret = secret;
        tree._lastZxid = lastZxid;
        tree.SnapshotEndZxid = lastZxid;
        tree._dataSize = load.DataSize + tree._root.DataLength; // ZooKeeper's "" alias of the root counts it twice
        tree.RebuildQuotaRoots();
        return tree;
    }

    /// <summary>Buffered big-endian writer that hashes everything it writes.</summary>
    private sealed class SnapshotWriter(Stream output)
    {
        private readonly byte[] _buffer = new byte[1 << 16];
        private readonly System.IO.Hashing.XxHash64 _hash = new();
        private int _position;

        private Span<byte> Reserve(int count)
        {
            if (_position + count > _buffer.Length) Flush();
            var span = _buffer.AsSpan(_position, count);
            _position += count;
            return span;
        }

        public void WriteInt(int value) => BinaryPrimitives.WriteInt32BigEndian(Reserve(4), value);
        public void WriteLong(long value) => BinaryPrimitives.WriteInt64BigEndian(Reserve(8), value);

        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            WriteInt(bytes.Length);
            if (bytes.Length <= _buffer.Length - _position)
            {
                bytes.CopyTo(_buffer.AsSpan(_position));
                _position += bytes.Length;
                return;
            }
            Flush();
            if (bytes.Length <= _buffer.Length)
            {
                bytes.CopyTo(_buffer);
                _position = bytes.Length;
                return;
            }
            _hash.Append(bytes);
            output.Write(bytes);
        }

        /// <summary>Node data: its bytes, or the length -1 for null (ZooKeeper keeps null apart from empty).</summary>
        public void WriteData(byte[]? data)
        {
            if (data is null) WriteInt(-1);
            else WriteBytes(data);
        }

        public void WriteString(string value) => WriteString(value.AsSpan());

        public void WriteString(ReadOnlySpan<char> value)
        {
            var length = Encoding.UTF8.GetByteCount(value);
            if (length + 4 <= _buffer.Length)
            {
                var span = Reserve(4 + length);
                BinaryPrimitives.WriteInt32BigEndian(span, length);
                Encoding.UTF8.GetBytes(value, span[4..]);
            }
            else
            {
                WriteBytes(Encoding.UTF8.GetBytes(value.ToArray()));
            }
        }

        public void FlushBuffer() => Flush();

        private void Flush()
        {
            if (_position == 0) return;
            var span = _buffer.AsSpan(0, _position);
            _hash.Append(span);
            output.Write(span);
            _position = 0;
        }

        public void Finish()
        {
            Flush();
            Span<byte> trailer = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(trailer, _hash.GetCurrentHashAsUInt64());
            output.Write(trailer);
            output.Flush();
        }
    }

    /// <summary>Buffered big-endian reader that hashes everything it consumes before the trailer.</summary>
    /// <summary>
    /// Reads one node record's stat fields and links the node into <paramref name="tree"/> (the first record is the
    /// root). Shared by the plain and the fuzzy snapshot readers.
    /// </summary>
    private static void ReadNode(DataTree tree, SnapshotReader r, SnapshotLoad load, string path, byte[]? data, IReadOnlyList<Acl> acl, bool isRoot)
    {
        load.DataSize += path.Length + (data?.Length ?? 0);
        var (czxid, mzxid, ctime, mtime, pzxid, owner) = (r.ReadLong(), r.ReadLong(), r.ReadLong(), r.ReadLong(), r.ReadLong(), r.ReadLong());
        Node node;
        if (isRoot)
        {
            if (path != RootPath) throw new InvalidDataException("snapshot does not start with the root");
            if (owner != 0) throw new InvalidDataException("the root has an ephemeral owner in the snapshot");
            node = tree._root;
            node.Data = data;
            node.Acl = tree._acls.AddRef(acl);
        }
        else
        {
            if (Paths.Validate(path) is { } reason) throw new InvalidDataException($"bad path in snapshot: {reason}");
            var lastSlash = path.LastIndexOf('/');
            var parentPath = ParentSpan(path, lastSlash);
            var parent = load.LastParent is { Kids: { } siblings } last && parentPath.SequenceEqual(siblings.Path) ? last
                : tree.Lookup(parentPath) ?? throw new InvalidDataException($"node {path} precedes its parent");
            load.LastParent = parent;
            node = Node.Create(data, tree._acls.AddRef(acl), owner);
            var kids = parent.Kids ??= new Kids(ParentSpan(path, lastSlash).ToString(), parent.Czxid, 0);
            if (!kids.TryAdd(path.Substring(lastSlash + 1), node)) throw new InvalidDataException($"duplicate node {path}");
            tree._count++;
        }
        (node.Czxid, node.Mzxid, node.Ctime, node.Mtime) = (czxid, mzxid, ctime, mtime);
        node.Version = r.ReadInt();
        var cversion = r.ReadInt();
        node.Aversion = r.ReadInt();
        if (pzxid != node.Czxid || cversion != 0 || node.Kids is not null)
        {
            node.Kids ??= new Kids(path, pzxid, cversion);
            node.Kids.Pzxid = pzxid;
            node.Kids.Cversion = cversion;
        }
        if (!isRoot) tree.TrackOwner(path, node.Owner);
    }

    /// <summary>What reading a snapshot carries from one node record to the next.</summary>
    private sealed class SnapshotLoad
    {
        /// <summary>The previous record's parent. Records come depth-first, so siblings follow each other: the path is
        /// looked up from the root once per directory, not once per node.</summary>
        public Node? LastParent;
        /// <summary>zk_approximate_data_size summed as the records are read (no walk of the tree afterwards).</summary>
        public long DataSize;
    }

    private sealed class SnapshotReader(Stream input)
    {
        private readonly byte[] _buffer = new byte[1 << 16];
        private readonly System.IO.Hashing.XxHash64 _hash = new();
        private int _position;
        private int _length;
        private int _hashed;

        private void HashConsumed()
        {
            if (_position > _hashed) _hash.Append(_buffer.AsSpan(_hashed, _position - _hashed));
            _hashed = _position;
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (_length - _position < count)
            {
                HashConsumed();
                var remaining = _length - _position;
                Buffer.BlockCopy(_buffer, _position, _buffer, 0, remaining);
                _position = 0;
                _hashed = 0;
                _length = remaining;
                while (_length < count)
                {
                    var read = input.Read(_buffer, _length, _buffer.Length - _length);
                    if (read <= 0) throw new EndOfStreamException("snapshot is truncated");
                    _length += read;
                }
            }
            var span = _buffer.AsSpan(_position, count);
            _position += count;
            return span;
        }

        public int ReadInt() => BinaryPrimitives.ReadInt32BigEndian(Take(4));
        public long ReadLong() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

        public int ReadCount()
        {
            var count = ReadInt();
            if (count < 0 || count > MaxSnapshotField) throw new InvalidDataException($"bad count {count}");
            return count;
        }

        /// <summary>Node data as <see cref="SnapshotWriter.WriteData"/> wrote it: null for the length -1.</summary>
        public byte[]? ReadData()
        {
            var length = ReadInt();
            if (length == -1) return null;
            if (length < 0 || length > MaxSnapshotField) throw new InvalidDataException($"bad count {length}");
            return length == 0 ? [] : ReadRaw(length);
        }

        private byte[] ReadRaw(int length)
        {
            if (length <= _buffer.Length) return Take(length).ToArray();
            if (input.CanSeek && length > input.Length - input.Position + (_length - _position))
                throw new InvalidDataException($"field length {length} exceeds the snapshot");
            var result = new byte[length];
            var buffered = _length - _position;
            Take(buffered).CopyTo(result);
            HashConsumed();
            var rest = result.AsSpan(buffered);
            input.ReadExactly(rest);
            _hash.Append(rest);
            return result;
        }

        /// <summary>Skips a length-prefixed string or data field (length -1: null).</summary>
        public void SkipField()
        {
            var length = ReadInt();
            if (length == -1) return;
            if (length < 0 || length > MaxSnapshotField) throw new InvalidDataException($"bad count {length}");
            Skip(length);
        }

        public void Skip(int count)
        {
            while (count > 0)
            {
                var step = Math.Min(count, _buffer.Length);
                Take(step);
                count -= step;
            }
        }

        public string ReadString()
        {
            var length = ReadCount();
            return length <= _buffer.Length ? Encoding.UTF8.GetString(Take(length)) : Encoding.UTF8.GetString(ReadRaw(length));
        }

        public void VerifyChecksum()
        {
            HashConsumed();
            var expected = _hash.GetCurrentHashAsUInt64();
            var actual = BinaryPrimitives.ReadUInt64BigEndian(Take(8));
            if (actual != expected) throw new InvalidDataException("snapshot checksum mismatch");
        }
    }
}
