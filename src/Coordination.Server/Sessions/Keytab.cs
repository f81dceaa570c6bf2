using System.Buffers.Binary;
using System.Text;

namespace Coordination.Server.Sessions;

/// <summary>
/// MIT keytab files (format 0x0502, big-endian), read only as far as needed to keep the entries of one principal:
/// the acceptor libgssapi gets from KRB5_KTNAME accepts a ticket for any principal in its keytab, whereas the server
/// must accept only tickets for its configured principal (as ZooKeeper's acceptor, bound to its JAAS principal).
/// </summary>
public static class Keytab
{
    private const ushort Version2 = 0x0502;

    /// <summary>
    /// The keytab <paramref name="keytab"/> reduced to the entries of <paramref name="principal"/> ("name/host@REALM";
    /// without a realm, any realm). Throws <see cref="FormatException"/> when the file is not a version 2 keytab or
    /// holds no key of the principal (naming the principals it does hold).
    /// </summary>
    public static byte[] Only(ReadOnlySpan<byte> keytab, string principal)
    {
        if (keytab.Length < 2 || BinaryPrimitives.ReadUInt16BigEndian(keytab) != Version2)
            throw new FormatException("not an MIT keytab of format version 0x0502");
        var result = new List<byte>(keytab.Length) { keytab[0], keytab[1] };
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        var rest = keytab[2..];
        while (rest.Length >= 4)
        {
            var size = BinaryPrimitives.ReadInt32BigEndian(rest);
            if (size == 0) break;
            var length = size < 0 ? -(long)size : size;   // a negative size is a hole left by a deleted entry
            if (4 + length > rest.Length) throw new FormatException("truncated keytab entry");
            var entry = rest.Slice(4, (int)length);
            if (size > 0)
            {
                var name = PrincipalOf(entry);
                seen.Add(name);
                if (Matches(name, principal)) result.AddRange(rest[..(4 + (int)length)]);
            }
            rest = rest[(4 + (int)length)..];
        }
        if (result.Count == 2)
            throw new FormatException($"no key for {principal} (the keytab holds {(seen.Count == 0 ? "none" : string.Join(", ", seen))})");
        return result.ToArray();
    }

    /// <summary>One keytab holding the entries of several (each a whole keytab file's bytes, as <see cref="Only"/> returns).</summary>
    public static byte[] Merge(params byte[][] keytabs)
    {
        var result = new List<byte> { (byte)(Version2 >> 8), (byte)(Version2 & 0xff) };
        foreach (var keytab in keytabs) result.AddRange(keytab.AsSpan(2));
        return result.ToArray();
    }

    private static bool Matches(string entry, string principal) =>
        principal.Contains('@') ? entry == principal : entry.StartsWith(principal + "@", StringComparison.Ordinal);

    /// <summary>An entry's principal: count of components, realm, components, each a 16-bit length and its bytes.</summary>
    private static string PrincipalOf(ReadOnlySpan<byte> entry)
    {
        var count = ReadUInt16(ref entry);
        var realm = ReadString(ref entry);
        var name = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            if (i > 0) name.Append('/');
            name.Append(ReadString(ref entry));
        }
        return name.Append('@').Append(realm).ToString();
    }

    private static ushort ReadUInt16(ref ReadOnlySpan<byte> s)
    {
        if (s.Length < 2) throw new FormatException("truncated keytab entry");
        var v = BinaryPrimitives.ReadUInt16BigEndian(s);
        s = s[2..];
        return v;
    }

    private static string ReadString(ref ReadOnlySpan<byte> s)
    {
        var length = ReadUInt16(ref s);
        if (s.Length < length) throw new FormatException("truncated keytab entry");
        var v = Encoding.UTF8.GetString(s[..length]);
        s = s[length..];
        return v;
    }
}
