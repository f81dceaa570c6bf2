using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

/// <summary>
/// Random op sequences, prepared in pipelined batches (several prepared before any is applied) and applied through the
/// journal encoding, compared op by op and node by node with a deliberately simple sequential model of ZooKeeper.
/// </summary>
public class PropertyTests
{
    private sealed class MNode
    {
        public byte[]? Data = []; // null stays null, as in ZooKeeper
        public IReadOnlyList<Acl> Acl = Protocol.Acl.OpenAclUnsafe;
        public int Version, Aversion, Creates;
        public long Owner, Czxid, Mzxid, Pzxid, Ctime, Mtime;
        public SortedSet<string> Children = new(StringComparer.Ordinal);

        public MNode Clone() => new()
        {
            Data = Data, Acl = Acl, Version = Version, Aversion = Aversion, Creates = Creates, Owner = Owner,
            Czxid = Czxid, Mzxid = Mzxid, Pzxid = Pzxid, Ctime = Ctime, Mtime = Mtime,
            Children = new SortedSet<string>(Children, StringComparer.Ordinal),
        };

        public Stat Stat => new(Czxid, Mzxid, Ctime, Mtime, Version, unchecked(Creates * 2 - Children.Count), Aversion,
            EphemeralOwner.IsSessionOwner(Owner) ? Owner : 0, Data?.Length ?? 0, Children.Count, Pzxid);
    }

    /// <summary>A plain sequential model: every op applied at once, nothing pipelined, no overlay.</summary>
    private sealed class Model
    {
        public Dictionary<string, MNode> Nodes = new(StringComparer.Ordinal);
        public HashSet<long> Sessions = [];

        public Model()
        {
            Nodes["/"] = new MNode();
            Nodes["/zookeeper"] = new MNode();
            Nodes["/zookeeper/quota"] = new MNode();
            Nodes["/zookeeper/config"] = new MNode { Acl = Protocol.Acl.ReadAclUnsafe, Aversion = -1 };
            Nodes["/"].Children.Add("zookeeper");
            Nodes["/zookeeper"].Children.UnionWith(["quota", "config"]);
        }

        public Model Clone()
        {
            var m = new Model { Sessions = [.. Sessions] };
            m.Nodes = Nodes.ToDictionary(kv => kv.Key, kv => kv.Value.Clone(), StringComparer.Ordinal);
            return m;
        }

        private static string ParentOf(string path) => path.LastIndexOf('/') == 0 ? "/" : path[..path.LastIndexOf('/')];
        private static string NameOf(string path) => path[(path.LastIndexOf('/') + 1)..];

        public (ErrorCode Err, string? Path) Create(OpCode op, CreateRequest r, long session, AuthContext auth, long zxid, long now)
        {
            if (!Sessions.Contains(session)) return (ErrorCode.SessionExpired, null);
            var mode = (CreateMode)r.Flags;
            var acl = Acls.Fixup(r.Acl, auth);
            if (acl is null) return (ErrorCode.InvalidAcl, null);
            if (!Nodes.TryGetValue(ParentOf(r.NodePath), out var parent)) return (ErrorCode.NoNode, null);
            if (!Acls.Check(parent.Acl, Perms.Create, auth)) return (ErrorCode.NoAuth, null);
            var path = mode.IsSequential() ? r.NodePath + parent.Creates.ToString("D10") : r.NodePath;
            if (Nodes.ContainsKey(path)) return (ErrorCode.NodeExists, null);
            if (EphemeralOwner.IsSessionOwner(parent.Owner)) return (ErrorCode.NoChildrenForEphemerals, null);
            parent.Creates++;
            parent.Pzxid = zxid;
            parent.Children.Add(NameOf(path));
            Nodes[path] = new MNode
            {
                Data = r.Data, Acl = acl, Czxid = zxid, Mzxid = zxid, Pzxid = zxid, Ctime = now, Mtime = now,
                Owner = op == OpCode.CreateContainer ? EphemeralOwner.Container : mode.IsEphemeral() ? session : 0,
            };
            return (ErrorCode.Ok, path);
        }

        public ErrorCode Delete(string path, int version, long session, AuthContext auth, long zxid)
        {
            if (!Sessions.Contains(session)) return ErrorCode.SessionExpired;
            if (path is "/" or "/zookeeper" or "/zookeeper/quota" or "/zookeeper/config") return ErrorCode.BadArguments;
            if (!Nodes.TryGetValue(ParentOf(path), out var parent)) return ErrorCode.NoNode;
            if (!Acls.Check(parent.Acl, Perms.Delete, auth)) return ErrorCode.NoAuth;
            if (!Nodes.TryGetValue(path, out var node)) return ErrorCode.NoNode;
            if (version != -1 && version != node.Version) return ErrorCode.BadVersion;
            if (node.Children.Count > 0) return ErrorCode.NotEmpty;
            Remove(path, zxid);
            return ErrorCode.Ok;
        }

        private void Remove(string path, long zxid)
        {
            var parent = Nodes[ParentOf(path)];
            parent.Children.Remove(NameOf(path));
            parent.Pzxid = zxid;
            Nodes.Remove(path);
        }

        public ErrorCode SetData(SetDataRequest r, long session, AuthContext auth, long zxid, long now)
        {
            if (!Sessions.Contains(session)) return ErrorCode.SessionExpired;
            if (!Nodes.TryGetValue(r.NodePath, out var node)) return ErrorCode.NoNode;
            if (!Acls.Check(node.Acl, Perms.Write, auth)) return ErrorCode.NoAuth;
            if (r.Version != -1 && r.Version != node.Version) return ErrorCode.BadVersion;
            node.Data = r.Data;
            node.Version++;
            node.Mzxid = zxid;
            node.Mtime = now;
            return ErrorCode.Ok;
        }

        public ErrorCode SetAcl(SetAclRequest r, long session, AuthContext auth)
        {
            if (!Sessions.Contains(session)) return ErrorCode.SessionExpired;
            var acl = Acls.Fixup(r.Acl, auth);
            if (acl is null) return ErrorCode.InvalidAcl;
            if (!Nodes.TryGetValue(r.NodePath, out var node)) return ErrorCode.NoNode;
            if (!Acls.Check(node.Acl, Perms.Admin, auth)) return ErrorCode.NoAuth;
            if (r.Version != -1 && r.Version != node.Aversion) return ErrorCode.BadVersion;
            node.Acl = acl;
            node.Aversion++;
            return ErrorCode.Ok;
        }

        public ErrorCode Check(PathVersionRequest r, long session, AuthContext auth)
        {
            if (!Sessions.Contains(session)) return ErrorCode.SessionExpired;
            if (!Nodes.TryGetValue(r.NodePath, out var node)) return ErrorCode.NoNode;
            if (!Acls.Check(node.Acl, Perms.Read, auth)) return ErrorCode.NoAuth;
            return r.Version != -1 && r.Version != node.Version ? ErrorCode.BadVersion : ErrorCode.Ok;
        }

        public ErrorCode Run(MultiOp op, long session, AuthContext auth, long zxid, long now) => op.Type switch
        {
            OpCode.Create or OpCode.Create2 or OpCode.CreateContainer => Create(op.Type, (CreateRequest)op.Request, session, auth, zxid, now).Err,
            OpCode.Delete => Delete(((PathVersionRequest)op.Request).NodePath, ((PathVersionRequest)op.Request).Version, session, auth, zxid),
            OpCode.SetData => SetData((SetDataRequest)op.Request, session, auth, zxid, now),
            OpCode.SetAcl => SetAcl((SetAclRequest)op.Request, session, auth),
            OpCode.Check => Check((PathVersionRequest)op.Request, session, auth),
            _ => throw new InvalidOperationException(),
        };

        public void CloseSession(long session, long zxid)
        {
            foreach (var path in Nodes.Where(kv => kv.Value.Owner == session).Select(kv => kv.Key).ToList()) Remove(path, zxid);
            Sessions.Remove(session);
        }
    }

    private static readonly Id AliceId = new("digest", Acls.Digest("alice:pw"));
    private static readonly AuthContext[] Auths = [AuthContext.Anonymous, new([AliceId]), new([new Id("ip", "10.0.0.7")])];
    private static readonly IReadOnlyList<Acl>[] AclChoices =
    [
        Acl.OpenAclUnsafe,
        Acl.OpenAclUnsafe,
        Acl.OpenAclUnsafe,
        [new(Perms.Read | Perms.Create, Id.Anyone), new(Perms.All, AliceId)],
        [new(Perms.All & ~Perms.Delete, Id.Anyone)],
        [new(Perms.All, new Id("ip", "10.0.0.0/8")), new(Perms.Read, Id.Anyone)],
        Acl.CreatorAllAcl,
        [],
    ];
    private static readonly long[] SessionIds = [0x0100000000000001, 0x0100000000000002, 0x0100000000000003];

    private static string RandomPath(Random rng)
    {
        var depth = rng.Next(1, 4);
        var path = "";
        for (var i = 0; i < depth; i++) path += "/" + "abc"[rng.Next(3)];
        return path;
    }

    private static string ExistingOrRandomPath(Random rng, Model model)
    {
        if (rng.Next(3) == 0) return RandomPath(rng);
        var candidates = model.Nodes.Keys.Where(p => !p.StartsWith("/zookeeper", StringComparison.Ordinal)).OrderBy(p => p, StringComparer.Ordinal).ToList();
        return candidates[rng.Next(candidates.Count)];
    }

    private static int RandomVersion(Random rng, Model model, string path, bool acl = false)
    {
        var r = rng.Next(4);
        if (r == 0 || !model.Nodes.TryGetValue(path, out var node)) return -1;
        var v = acl ? node.Aversion : node.Version;
        return r == 1 ? v + 1 : v;
    }

    private static MultiOp RandomOp(Random rng, Model model, bool inMulti)
    {
        var kind = rng.Next(inMulti ? 4 : 5);
        switch (kind)
        {
            case 0:
            {
                var modes = new[] { CreateMode.Persistent, CreateMode.Persistent, CreateMode.Ephemeral, CreateMode.PersistentSequential, CreateMode.EphemeralSequential, CreateMode.Container };
                var mode = modes[rng.Next(modes.Length)];
                var op = mode == CreateMode.Container ? OpCode.CreateContainer : rng.Next(2) == 0 ? OpCode.Create : OpCode.Create2;
                var data = rng.Next(3) == 0 ? null : new byte[rng.Next(0, 20)];
                if (data is not null) rng.NextBytes(data);
                return new MultiOp(op, new CreateRequest(RandomPath(rng), data, AclChoices[rng.Next(AclChoices.Length)], (int)mode));
            }
            case 1:
            {
                var path = ExistingOrRandomPath(rng, model);
                return new MultiOp(OpCode.Delete, new PathVersionRequest(path, RandomVersion(rng, model, path)));
            }
            case 2:
            {
                var path = ExistingOrRandomPath(rng, model);
                var data = rng.Next(4) == 0 ? null : new byte[rng.Next(0, 10)];
                if (data is not null) rng.NextBytes(data);
                return new MultiOp(OpCode.SetData, new SetDataRequest(path, data, RandomVersion(rng, model, path)));
            }
            case 3:
            {
                var path = ExistingOrRandomPath(rng, model);
                return new MultiOp(OpCode.Check, new PathVersionRequest(path, RandomVersion(rng, model, path)));
            }
            default:
            {
                var path = ExistingOrRandomPath(rng, model);
                return new MultiOp(OpCode.SetAcl, new SetAclRequest(path, AclChoices[rng.Next(AclChoices.Length)], RandomVersion(rng, model, path, acl: true)));
            }
        }
    }

    private sealed record Expected(ErrorCode Err, ErrorCode FirstError, string? CreatedPath, IReadOnlyList<ErrorCode>? MultiCodes);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomOpsMatchTheModel(int seed)
    {
        var rng = new Random(seed);
        var tree = new DataTree();
        var prep = new RequestPreprocessor(tree, null, 0);
        var model = new Model();
        long now = 1_000_000;
        var ops = 0;

        foreach (var s in SessionIds)
        {
            var t = prep.PrepareCreateSession(s, 10000, now);
            tree.Apply(t.Header, t.Txn);
            prep.Applied(t.Header.Zxid);
            model.Sessions.Add(s);
        }

        while (ops < 1500)
        {
            var batch = new List<((TxnHeader Header, Txn Txn) Txn, Expected Expected)>();
            var batchSize = rng.Next(1, 7);
            for (var b = 0; b < batchSize; b++, ops++)
            {
                now += rng.Next(0, 50);
                var session = SessionIds[rng.Next(SessionIds.Length)];
                var auth = Auths[rng.Next(Auths.Length)];
                var roll = rng.Next(100);
                if (roll < 3)
                {
                    // Close a session (its pipelined writes after this fail with SessionExpired) and reopen it later.
                    var close = prep.PrepareCloseSession(session, 0, now);
                    model.CloseSession(session, close.Header.Zxid);
                    batch.Add((close, new Expected(ErrorCode.Ok, ErrorCode.Ok, null, null)));
                    continue;
                }
                if (roll < 6)
                {
                    if (model.Sessions.Contains(session)) continue;
                    var open = prep.PrepareCreateSession(session, 10000, now);
                    model.Sessions.Add(session);
                    batch.Add((open, new Expected(ErrorCode.Ok, ErrorCode.Ok, null, null)));
                    continue;
                }
                if (roll < 20)
                {
                    var subOps = Enumerable.Range(0, rng.Next(0, 5)).Select(_ => RandomOp(rng, model, inMulti: true)).ToList();
                    var prepared = prep.Prepare(session, 0, OpCode.Multi, new MultiRequest(subOps), auth, now);
                    var scratch = model.Clone();
                    var codes = new List<ErrorCode>();
                    foreach (var op in subOps)
                    {
                        if (codes.Count > 0 && codes[^1] != ErrorCode.Ok) { codes.Add(ErrorCode.RuntimeInconsistency); continue; }
                        codes.Add(scratch.Run(op, session, auth, prepared.Header.Zxid, now));
                    }
                    var first = codes.FirstOrDefault(c => c != ErrorCode.Ok);
                    if (first == ErrorCode.Ok) model = scratch;
                    batch.Add((prepared, new Expected(ErrorCode.Ok, first, null, codes)));
                    continue;
                }
                var single = RandomOp(rng, model, inMulti: false);
                var txn = prep.Prepare(session, 0, single.Type, single.Request, auth, now);
                string? created = null;
                ErrorCode err;
                if (single.Request is CreateRequest cr)
                    (err, created) = model.Create(single.Type, cr, session, auth, txn.Header.Zxid, now);
                else
                    err = model.Run(single, session, auth, txn.Header.Zxid, now);
                batch.Add((txn, new Expected(err, err, created, null)));
            }

            foreach (var ((header, txn), expected) in batch)
            {
                var (h2, t2) = Txns.Deserialize(Txns.Serialize(header, txn));
                var result = tree.Apply(h2, t2);
                prep.Applied(header.Zxid);
                Assert.Equal(expected.Err, result.Err);
                Assert.Equal(expected.FirstError, result.FirstError);
                if (expected.CreatedPath is not null)
                {
                    var path = result.Response switch { PathResponse p => p.Path, Create2Response c => c.Path, _ => null };
                    Assert.Equal(expected.CreatedPath, path);
                }
                if (expected.MultiCodes is not null)
                {
                    var results = ((MultiResponse)result.Response).Results;
                    Assert.Equal(expected.MultiCodes, results.Select(r => r.Err));
                }
            }
            Assert.Equal(0, prep.OutstandingChanges);
            AssertMatches(model, tree);

            if (rng.Next(20) == 0)
            {
                // Restart from a snapshot now and then.
                using var ms = new MemoryStream();
                tree.WriteSnapshot(ms);
                ms.Position = 0;
                var restored = DataTree.ReadSnapshot(ms);
                Assert.Equal(tree.Digest(), restored.Digest());
                tree = restored;
                prep = new RequestPreprocessor(tree, null, tree.LastZxid);
                AssertMatches(model, tree);
            }
        }
    }

    private static void AssertMatches(Model model, DataTree tree)
    {
        Assert.Equal(model.Nodes.Count, tree.DistinctNodeCount);
        Assert.Equal(model.Sessions.Order(), tree.Sessions.Keys.Order());
        var ephemerals = 0;
        foreach (var (path, m) in model.Nodes)
        {
            var n = tree.Find(path);
            Assert.True(n is not null, $"missing {path}");
            Assert.Equal(m.Stat, n.Stat);
            Assert.Equal(m.Owner, n.StoredEphemeralOwner);
            Assert.Equal(m.Data, n.Data);
            Assert.Equal(m.Acl, n.Acl);
            Assert.Equal(m.Children, n.Children.Order(StringComparer.Ordinal));
            if (EphemeralOwner.IsSessionOwner(m.Owner))
            {
                ephemerals++;
                Assert.Contains(path, tree.EphemeralsOf(m.Owner));
            }
        }
        Assert.Equal(ephemerals, tree.EphemeralCount);
        Assert.Equal(model.Nodes.Sum(kv => (long)kv.Key.Length + (kv.Value.Data?.Length ?? 0)) + (model.Nodes["/"].Data?.Length ?? 0), tree.ApproximateDataSize);
    }
}
