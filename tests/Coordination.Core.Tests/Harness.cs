using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

/// <summary>A leader in miniature: Prep + (optional serialization round trip) + Apply + Applied.</summary>
internal sealed class Harness
{
    public DataTree Tree { get; }
    public RequestPreprocessor Prep { get; }
    public long Now { get; set; } = 1_000_000;
    public int Cxid { get; private set; }
    public readonly List<(TxnHeader Header, Txn Txn)> Log = [];
    /// <summary>Every txn goes through Txns.Serialize/Deserialize before it is applied, as a journal would do.</summary>
    public bool RoundTripTxns { get; set; } = true;

    public static readonly long S1 = 0x0100000000000001;
    public static readonly long S2 = 0x0100000000000002;
    public static readonly long S3 = 0x0100000000000003;

    /// <summary>The QuotaWarning messages of Prep (with enforceQuota).</summary>
    public readonly List<string> QuotaWarnings = [];

    public Harness(string? superDigest = null, bool openSessions = true, bool enforceQuota = false, Func<long, bool>? isLocalSession = null)
    {
        Tree = new DataTree();
        Prep = new RequestPreprocessor(Tree, superDigest, 0) { EnforceQuota = enforceQuota, QuotaWarning = QuotaWarnings.Add, IsLocalSession = isLocalSession };
        if (openSessions)
        {
            OpenSession(S1);
            OpenSession(S2);
            OpenSession(S3);
        }
    }

    public ApplyResult OpenSession(long id, int timeout = 30000) => Apply(Prep.PrepareCreateSession(id, timeout, Now));

    public ApplyResult CloseSession(long id) => Apply(Prep.PrepareCloseSession(id, ++Cxid, Now));

    public ApplyResult Apply((TxnHeader Header, Txn Txn) prepared)
    {
        var (header, txn) = prepared;
        if (RoundTripTxns)
        {
            var bytes = Txns.Serialize(header, txn);
            (header, txn) = Txns.Deserialize(bytes);
        }
        Log.Add((header, txn));
        var result = Tree.Apply(header, txn);
        Prep.Applied(header.Zxid);
        return result;
    }

    public (TxnHeader Header, Txn Txn) Prepare(OpCode op, ZkRequest request, long session = 0, AuthContext? auth = null)
        => Prep.Prepare(session == 0 ? S1 : session, ++Cxid, op, request, auth ?? AuthContext.Anonymous, Now);

    public ApplyResult Run(OpCode op, ZkRequest request, long session = 0, AuthContext? auth = null)
        => Apply(Prepare(op, request, session, auth));

    public ApplyResult Create(string path, byte[]? data = null, CreateMode mode = CreateMode.Persistent, IReadOnlyList<Acl>? acl = null,
        long session = 0, AuthContext? auth = null, OpCode op = OpCode.Create2, long ttl = -1)
        => Run(op, new CreateRequest(path, data ?? [], acl ?? Acl.OpenAclUnsafe, (int)mode, ttl, op == OpCode.CreateTtl), session, auth);

    public ApplyResult Delete(string path, int version = -1, long session = 0, AuthContext? auth = null)
        => Run(OpCode.Delete, new PathVersionRequest(path, version), session, auth);

    public ApplyResult SetData(string path, byte[] data, int version = -1, long session = 0, AuthContext? auth = null)
        => Run(OpCode.SetData, new SetDataRequest(path, data, version), session, auth);

    public ApplyResult SetAcl(string path, IReadOnlyList<Acl>? acl, int version = -1, long session = 0, AuthContext? auth = null)
        => Run(OpCode.SetAcl, new SetAclRequest(path, acl, version), session, auth);

    public ApplyResult Check(string path, int version, long session = 0, AuthContext? auth = null)
        => Run(OpCode.Check, new PathVersionRequest(path, version), session, auth);

    public ApplyResult Multi(params MultiOp[] ops) => Run(OpCode.Multi, new MultiRequest(ops));

    public Stat StatOf(string path) => (Tree.Find(path) ?? throw new Xunit.Sdk.XunitException($"no node {path}")).Stat;

    public static MultiOp MCreate(string path, CreateMode mode = CreateMode.Persistent, OpCode op = OpCode.Create, byte[]? data = null, long ttl = -1)
        => new(op, new CreateRequest(path, data ?? [], Acl.OpenAclUnsafe, (int)mode, ttl, op == OpCode.CreateTtl));
    public static MultiOp MDelete(string path, int version = -1) => new(OpCode.Delete, new PathVersionRequest(path, version));
    public static MultiOp MSetData(string path, byte[]? data, int version = -1) => new(OpCode.SetData, new SetDataRequest(path, data, version));
    public static MultiOp MCheck(string path, int version) => new(OpCode.Check, new PathVersionRequest(path, version));

    public static AuthContext Digest(string userPassword) => new([new Id("digest", Acls.Digest(userPassword))]);
    public static AuthContext Ip(string address) => new([new Id("ip", address)]);

    public static byte[] B(string s) => System.Text.Encoding.UTF8.GetBytes(s);
}
