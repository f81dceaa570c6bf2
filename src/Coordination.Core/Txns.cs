using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// Metadata of one replicated transaction. <see cref="Type"/> is the op code of the request that produced it
/// (create2 stays create2), so applying the txn can build the exact response the client expects.
/// </summary>
public readonly record struct TxnHeader(long SessionId, int Cxid, long Zxid, long Time, OpCode Type) : IJuteRecord
{
    public static TxnHeader Read(ref JuteReader r) => new(r.ReadLong(), r.ReadInt(), r.ReadLong(), r.ReadLong(), (OpCode)r.ReadInt());
    public void Write(ref JuteWriter w) { w.WriteLong(SessionId); w.WriteInt(Cxid); w.WriteLong(Zxid); w.WriteLong(Time); w.WriteInt((int)Type); }
}

/// <summary>
/// A transaction: the already-decided outcome of a write. Prep (on the leader) decides everything, so applying
/// a txn never fails and every server applies it identically.
/// </summary>
public abstract record Txn : IJuteRecord
{
    public abstract void Write(ref JuteWriter w);
}

/// <summary>
/// Creates a node. <see cref="EphemeralOwner"/> is a session id, <see cref="EphemeralOwner.Container"/>,
/// a TTL owner (<see cref="Protocol.EphemeralOwner.ForTtl"/>) or 0. <see cref="ParentCversion"/> is the parent's
/// cversion after this create, as ZooKeeper stores it: the number of child creations (clients see
/// <c>2 * stored - numChildren</c>, i.e. creations plus deletions).
/// </summary>
public sealed record CreateTxn(string Path, byte[]? Data, IReadOnlyList<Acl> Acl, long EphemeralOwner, int ParentCversion) : Txn
{
    public static CreateTxn Read(ref JuteReader r)
    {
        var path = r.ReadRequiredString();
        var data = r.ReadBuffer();
        var acl = Protocol.Acl.ReadList(ref r) ?? [];
        return new CreateTxn(path, data, acl, r.ReadLong(), r.ReadInt());
    }
    public override void Write(ref JuteWriter w)
    {
        w.WriteString(Path); w.WriteBuffer(Data); Protocol.Acl.WriteList(ref w, Acl); w.WriteLong(EphemeralOwner); w.WriteInt(ParentCversion);
    }
}

public sealed record DeleteTxn(string Path) : Txn
{
    public static DeleteTxn Read(ref JuteReader r) => new(r.ReadRequiredString());
    public override void Write(ref JuteWriter w) => w.WriteString(Path);
}

/// <summary>Sets data (null stays null, as in ZooKeeper); <see cref="Version"/> is the node's version after the change.</summary>
public sealed record SetDataTxn(string Path, byte[]? Data, int Version) : Txn
{
    public static SetDataTxn Read(ref JuteReader r) => new(r.ReadRequiredString(), r.ReadBuffer(), r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(Path); w.WriteBuffer(Data); w.WriteInt(Version); }
}

/// <summary>Sets the ACL; <see cref="Version"/> is the node's aversion after the change.</summary>
public sealed record SetAclTxn(string Path, IReadOnlyList<Acl> Acl, int Version) : Txn
{
    public static SetAclTxn Read(ref JuteReader r)
    {
        var path = r.ReadRequiredString();
        var acl = Protocol.Acl.ReadList(ref r) ?? [];
        return new SetAclTxn(path, acl, r.ReadInt());
    }
    public override void Write(ref JuteWriter w) { w.WriteString(Path); Protocol.Acl.WriteList(ref w, Acl); w.WriteInt(Version); }
}

/// <summary>The check op of a multi; it changes nothing.</summary>
public sealed record CheckVersionTxn(string Path, int Version) : Txn
{
    public static CheckVersionTxn Read(ref JuteReader r) => new(r.ReadRequiredString(), r.ReadInt());
    public override void Write(ref JuteWriter w) { w.WriteString(Path); w.WriteInt(Version); }
}

/// <summary>Opens a session (the session id is the header's) with its negotiated timeout.</summary>
public sealed record CreateSessionTxn(int TimeoutMs) : Txn
{
    public static CreateSessionTxn Read(ref JuteReader r) => new(r.ReadInt());
    public override void Write(ref JuteWriter w) => w.WriteInt(TimeoutMs);
}

/// <summary>
/// Sets the deployment's session secret, from which every session password is derived (see SessionIds.Password).
/// The first leader of a deployment (or a standalone server at its first start) proposes it with random bytes, so it
/// is in the journal and in every snapshot, and every member, a recovering one included, derives the same passwords.
/// Only the first one applied counts.
/// </summary>
public sealed record SessionSecretTxn(byte[] Secret) : Txn
{
    public static SessionSecretTxn Read(ref JuteReader r) => new(r.ReadBuffer() ?? throw new JuteException("a session secret txn without a secret"));
    public override void Write(ref JuteWriter w) => w.WriteBuffer(Secret);
}

/// <summary>Closes (or expires) the header's session; its ephemerals are deleted atomically with it.</summary>
public sealed record CloseSessionTxn(IReadOnlyList<string> EphemeralPaths) : Txn
{
    public static CloseSessionTxn Read(ref JuteReader r) => new(r.ReadStringVector() ?? []);
    public override void Write(ref JuteWriter w) => w.WriteStringVector((IReadOnlyCollection<string>)EphemeralPaths);
}

/// <summary>A write that failed in prep: it still takes a zxid so that responses stay in order.</summary>
public sealed record ErrorTxn(ErrorCode Err) : Txn
{
    public static ErrorTxn Read(ref JuteReader r) => new((ErrorCode)r.ReadInt());
    public override void Write(ref JuteWriter w) => w.WriteInt((int)Err);
}

/// <summary>
/// A multi. When prep rejected it, every op is an <see cref="ErrorTxn"/>: Ok for ops before the failing one,
/// the failure's code for it, RuntimeInconsistency after it (as ZooKeeper reports).
/// </summary>
public sealed record MultiTxn(IReadOnlyList<MultiTxnOp> Ops) : Txn
{
    public static MultiTxn Read(ref JuteReader r)
    {
        var count = r.ReadVectorCount();
        var ops = new List<MultiTxnOp>(Math.Max(count, 0));
        for (var i = 0; i < count; i++)
        {
            var type = (OpCode)r.ReadInt();
            // Prep never nests a multi; decoding one that does would recurse once per 8 bytes, into a stack overflow.
            if (type == OpCode.Multi) throw new JuteException("a multi inside a multi txn");
            ops.Add(new MultiTxnOp(type, Txns.ReadBody(type, ref r)));
        }
        return new MultiTxn(ops);
    }

    public override void Write(ref JuteWriter w)
    {
        w.WriteInt(Ops.Count);
        foreach (var op in Ops) { w.WriteInt((int)op.Type); op.Txn.Write(ref w); }
    }
}

/// <summary>One op of a <see cref="MultiTxn"/>: the request op code (or Error) and its txn.</summary>
public readonly record struct MultiTxnOp(OpCode Type, Txn Txn);

public static class Txns
{
    /// <summary>Decodes the txn body for a header of the given type (ErrorTxn bodies use OpCode.Error).</summary>
    public static Txn ReadBody(OpCode type, ref JuteReader r) => type switch
    {
        OpCode.Create or OpCode.Create2 or OpCode.CreateContainer or OpCode.CreateTtl => CreateTxn.Read(ref r),
        OpCode.Delete or OpCode.DeleteContainer => DeleteTxn.Read(ref r),
        OpCode.SetData or OpCode.Reconfig => SetDataTxn.Read(ref r),
        OpCode.SetAcl => SetAclTxn.Read(ref r),
        OpCode.Check => CheckVersionTxn.Read(ref r),
        OpCode.CreateSession => CreateSessionTxn.Read(ref r),
        OpCode.CloseSession => CloseSessionTxn.Read(ref r),
        OpCode.SessionSecret => SessionSecretTxn.Read(ref r),
        OpCode.Multi => MultiTxn.Read(ref r),
        OpCode.Error => ErrorTxn.Read(ref r),
        _ => throw new JuteException($"no txn body for op {type}"),
    };

    /// <summary>Header + body, as journalled and as sent between servers.</summary>
    [ThreadStatic] private static System.Buffers.ArrayBufferWriter<byte>? t_scratch;

    /// <summary>The txn's log bytes. One allocation, of exactly that size: it is written into a per-thread scratch
    /// buffer first (callers run on many threads, and the result is kept, so the scratch is never handed out).</summary>
    public static byte[] Serialize(in TxnHeader header, Txn txn)
    {
        var buffer = t_scratch ??= new System.Buffers.ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        Write(buffer, header, txn);
        var bytes = buffer.WrittenSpan.ToArray();
        // A huge txn (up to 1 MiB of data) should not stay pinned in every thread's scratch.
        if (buffer.Capacity > 64 << 10) t_scratch = null;
        return bytes;
    }

    /// <summary>Writes the txn's log bytes (what <see cref="Serialize"/> returns) into <paramref name="output"/>.</summary>
    public static void Write(System.Buffers.IBufferWriter<byte> output, in TxnHeader header, Txn txn)
    {
        var w = new JuteWriter(output);
        header.Write(ref w);
        w.WriteBool(txn is ErrorTxn);
        txn.Write(ref w);
    }

    /// <summary>
    /// The configuration a committed reconfig txn makes (ZooKeeper: a SetDataTxn of /zookeeper/config whose header
    /// type is reconfig), its version the txn's zxid; null for any other txn, a refused reconfig included.
    /// </summary>
    public static Zab.ZabConfig? ConfigOf(ReadOnlySpan<byte> payload)
    {
        // Every log entry passes here: look at the header's type (after sessionId, cxid, zxid, time) before decoding.
        if (payload.Length < 33 || System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(payload[28..]) != (int)OpCode.Reconfig) return null;
        var r = new JuteReader(payload);
        var header = TxnHeader.Read(ref r);
        if (header.Type != OpCode.Reconfig || r.ReadBool()) return null;
        var txn = SetDataTxn.Read(ref r);
        var config = txn.Data is null ? null : Zab.DynamicConfig.Parse(System.Text.Encoding.UTF8.GetString(txn.Data), out _);
        return config?.WithVersion(header.Zxid).ToZabConfig();
    }

    public static (TxnHeader Header, Txn Txn) Deserialize(ReadOnlySpan<byte> bytes)
    {
        var r = new JuteReader(bytes);
        var header = TxnHeader.Read(ref r);
        var isError = r.ReadBool();
        var txn = ReadBody(isError ? OpCode.Error : header.Type, ref r);
        return (header, txn);
    }
}
