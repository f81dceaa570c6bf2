namespace Coordination.Protocol;

/// <summary>An identity in an ACL: a scheme ("world", "auth", "digest", "ip", "super") and its id.</summary>
public sealed record Id(string Scheme, string Ident) : IJuteRecord
{
    public static readonly Id Anyone = new("world", "anyone");
    public static readonly Id AuthIds = new("auth", "");

    /// <summary>
    /// A null scheme reads as "" (an unknown scheme: InvalidACL, as in ZooKeeper). A null id reads as "" for "auth",
    /// whose id ZooKeeper ignores; for the schemes whose id ZooKeeper 3.8 inspects (world, digest, ip) it fails the
    /// request with MarshallingError, as ZooKeeper's NullPointerException there does.
    /// </summary>
    public static Id Read(ref JuteReader r)
    {
        var scheme = r.ReadString() ?? "";
        var ident = r.ReadString();
        if (ident is null && scheme is "world" or "digest" or "ip") throw new JuteException($"null id for scheme {scheme}");
        return new(scheme, ident ?? "");
    }
    public void Write(ref JuteWriter w) { w.WriteString(Scheme); w.WriteString(Ident); }
    public override string ToString() => $"{Scheme}:{Ident}";
}

/// <summary>One ACL entry: permissions granted to an identity.</summary>
public sealed record Acl(Perms Perms, Id Id) : IJuteRecord
{
    public static readonly IReadOnlyList<Acl> OpenAclUnsafe = [new(Perms.All, Id.Anyone)];
    public static readonly IReadOnlyList<Acl> CreatorAllAcl = [new(Perms.All, Id.AuthIds)];
    public static readonly IReadOnlyList<Acl> ReadAclUnsafe = [new(Perms.Read, Id.Anyone)];

    public static Acl Read(ref JuteReader r) { var perms = (Perms)r.ReadInt(); return new Acl(perms, Id.Read(ref r)); }
    public void Write(ref JuteWriter w) { w.WriteInt((int)Perms); Id.Write(ref w); }

    /// <summary>
    /// Reads an ACL vector. A one-entry list equal to <see cref="OpenAclUnsafe"/>, <see cref="CreatorAllAcl"/> or
    /// <see cref="ReadAclUnsafe"/> (what nearly every create sends) returns that shared, immutable list instead of
    /// allocating a copy of it.
    /// </summary>
    public static IReadOnlyList<Acl>? ReadList(ref JuteReader r)
    {
        var count = r.ReadVectorCount();
        if (count == -1) return null;
        if (count == 1 && TryReadWellKnown(ref r) is { } known) return known;
        var list = new List<Acl>(count);
        for (var i = 0; i < count; i++) list.Add(Read(ref r));
        return list;
    }

    /// <summary>
    /// Matches the next entry against the well-known single-entry lists without allocating; on a match consumes it,
    /// otherwise (including a truncated entry, which the caller then reports as usual) leaves the reader untouched.
    /// </summary>
    private static IReadOnlyList<Acl>? TryReadWellKnown(ref JuteReader r)
    {
        var probe = r;
        IReadOnlyList<Acl>? known;
        try
        {
            var perms = (Perms)probe.ReadInt();
            // Id.Read turns a null scheme or ident into "", so a null matches "" here too.
            var scheme = probe.ReadBufferSpan(out _);
            var ident = probe.ReadBufferSpan(out _);
            known = (perms, scheme.SequenceEqual("world"u8), scheme.SequenceEqual("auth"u8)) switch
            {
                (Perms.All, true, _) when ident.SequenceEqual("anyone"u8) => OpenAclUnsafe,
                (Perms.Read, true, _) when ident.SequenceEqual("anyone"u8) => ReadAclUnsafe,
                (Perms.All, _, true) when ident.IsEmpty => CreatorAllAcl,
                _ => null,
            };
        }
        catch (JuteException)
        {
            return null;
        }
        if (known is not null) r = probe;
        return known;
    }

    public static void WriteList(ref JuteWriter w, IReadOnlyList<Acl>? acl)
    {
        if (acl is null) { w.WriteInt(-1); return; }
        w.WriteInt(acl.Count);
        foreach (var a in acl) a.Write(ref w);
    }
}

/// <summary>The metadata of a znode, exactly the fields and order of ZooKeeper's Stat record.</summary>
public readonly record struct Stat(
    long Czxid, long Mzxid, long Ctime, long Mtime, int Version, int Cversion, int Aversion,
    long EphemeralOwner, int DataLength, int NumChildren, long Pzxid) : IJuteRecord
{
    public static Stat Read(ref JuteReader r) => new(
        r.ReadLong(), r.ReadLong(), r.ReadLong(), r.ReadLong(), r.ReadInt(), r.ReadInt(), r.ReadInt(),
        r.ReadLong(), r.ReadInt(), r.ReadInt(), r.ReadLong());

    public void Write(ref JuteWriter w)
    {
        w.WriteLong(Czxid); w.WriteLong(Mzxid); w.WriteLong(Ctime); w.WriteLong(Mtime);
        w.WriteInt(Version); w.WriteInt(Cversion); w.WriteInt(Aversion);
        w.WriteLong(EphemeralOwner); w.WriteInt(DataLength); w.WriteInt(NumChildren); w.WriteLong(Pzxid);
    }
}

/// <summary>An authenticated identity as reported by whoAmI.</summary>
public sealed record ClientInfo(string AuthScheme, string User) : IJuteRecord
{
    public static ClientInfo Read(ref JuteReader r) => new(r.ReadString() ?? "", r.ReadString() ?? "");
    public void Write(ref JuteWriter w) { w.WriteString(AuthScheme); w.WriteString(User); }
}
