using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// The ACL schemes whose authentication provider is present beside world, ip and digest (ZooKeeper's ProviderRegistry:
/// x509 is registered with the TLS setup, sasl with SASL). An ACL naming a scheme without its provider is InvalidACL.
/// </summary>
public sealed record AclProviders(bool X509, bool Sasl)
{
    public static readonly AclProviders All = new(true, true);
}

/// <summary>ACL checks with ZooKeeper's schemes world, auth, digest, ip and the super user.</summary>
public static class Acls
{
    public const string World = "world";
    public const string Anyone = "anyone";
    public const string AuthScheme = "auth";
    public const string DigestScheme = "digest";
    public const string IpScheme = "ip";
    public const string SuperScheme = "super";
    /// <summary>A client certificate's subject DN, granted at the TLS handshake (ZooKeeper's X509AuthenticationProvider).</summary>
    public const string X509Scheme = "x509";
    /// <summary>Ids of clients authenticated with SASL (the authorization id); see SaslAuthenticationProvider.</summary>
    public const string SaslScheme = "sasl";

    /// <summary>True when <paramref name="auth"/> grants <paramref name="perm"/> on a node with <paramref name="acl"/>.
    /// Super always passes; an empty ACL grants everything (as in ZooKeeper).</summary>
    public static bool Check(IReadOnlyList<Acl> acl, Perms perm, AuthContext auth)
    {
        if (acl.Count == 0) return true;
        var ids = auth.Ids;
        for (var i = 0; i < ids.Count; i++)
            if (ids[i].Scheme == SuperScheme) return true;

        for (var i = 0; i < acl.Count; i++)
        {
            var a = acl[i];
            if ((a.Perms & perm) == 0) continue;
            var scheme = a.Id.Scheme;
            if (scheme == World)
            {
                if (a.Id.Ident == Anyone) return true;
                continue; // ZooKeeper has no provider for "world": other world ids match nobody
            }
            if (scheme is DigestScheme or SaslScheme or X509Scheme)
            {
                // Ids that match exactly: a digest hash, a SASL authorization id, a certificate subject.
                for (var j = 0; j < ids.Count; j++)
                    if (ids[j].Scheme == scheme && ids[j].Ident == a.Id.Ident) return true;
            }
            else if (scheme == IpScheme)
            {
                for (var j = 0; j < ids.Count; j++)
                    if (ids[j].Scheme == IpScheme && IpMatches(a.Id.Ident, ids[j].Ident)) return true;
            }
            // Other schemes (super, unknown) have no provider in ZooKeeper and match nobody.
        }
        return false;
    }

    /// <summary>The digest id for "user:password": "user:" + base64(sha1("user:password")).</summary>
    public static string Digest(string userAndPassword)
    {
        var colon = userAndPassword.IndexOf(':');
        var user = colon < 0 ? userAndPassword : userAndPassword[..colon];
        var hash = SHA1.HashData(Encoding.UTF8.GetBytes(userAndPassword));
        return user + ":" + Convert.ToBase64String(hash);
    }

    /// <summary>Handles an auth packet. Returns the id to add, or null with AuthFailed for a bad scheme or credential.
    /// Schemes: "digest" (auth = "user:password"); "ip" is granted at connect, not via addauth.
    /// <para>For the super user (digest equal to <paramref name="superDigest"/>) this returns Id("super", ""), so that
    /// <see cref="AuthContext.IsSuper"/> holds. ZooKeeper adds both Id("super", "") and the digest id: use
    /// <see cref="AuthenticateIds"/> to get both.</para></summary>
    public static Id? Authenticate(string scheme, byte[] auth, string? superDigest)
    {
        var ids = AuthenticateIds(scheme, auth, superDigest);
        return ids is null ? null : ids[0];
    }

    /// <summary>
    /// Every id ZooKeeper adds for an auth packet, in the order it adds them: for digest, Id("super", "") first when the
    /// credential is the super user's, then Id("digest", "user:hash"). Null for an unknown scheme (AuthFailed).
    /// Note: ZooKeeper 3.8 also accepts addauth "ip" (it re-adds the connection's address) and "x509" (the TLS
    /// certificate's id); those need the connection, so the server's session handles them and this returns null.
    /// </summary>
    public static IReadOnlyList<Id>? AuthenticateIds(string? scheme, byte[]? auth, string? superDigest)
    {
        if (scheme != DigestScheme || auth is null) return null;   // null auth bytes: ZooKeeper's provider fails too
        var digest = Digest(Encoding.UTF8.GetString(auth));
        var id = new Id(DigestScheme, digest);
        return superDigest is not null && digest == superDigest ? [new Id(SuperScheme, ""), id] : [id];
    }

    /// <summary>ZooKeeper's DigestAuthenticationProvider.isValid: exactly two parts around ':' (Java split
    /// semantics, so "user:" and "a:b:c" are invalid, ":hash" is valid).</summary>
    public static bool IsValidDigestId(string id)
    {
        // Java's String.split(":") drops trailing empty strings.
        var parts = id.Split(':');
        var count = parts.Length;
        while (count > 0 && parts[count - 1].Length == 0) count--;
        return count == 2;
    }

    /// <summary>ZooKeeper's X509AuthenticationProvider.isValid: the id parses as a distinguished name.</summary>
    public static bool IsValidX509Id(string id)
    {
        try { _ = new System.Security.Cryptography.X509Certificates.X500DistinguishedName(id); return true; }
        catch (System.Security.Cryptography.CryptographicException) { return false; }
    }

    /// <summary>ZooKeeper's IPAuthenticationProvider.isValid: an address (IPv4 dotted quad, or IPv6) with an optional
    /// "/bits" prefix length within the address size. (ZooKeeper 3.8 knows IPv4 only; IPv6 is accepted here, as in
    /// ZooKeeper 3.9.4+.)</summary>
    public static bool IsValidIpId(string id)
    {
        var slash = id.IndexOf('/');
        var address = ParseAddress(slash < 0 ? id : id[..slash]);
        if (address is null) return false;
        return slash < 0 || ParseBits(id[(slash + 1)..], address.Length) >= 0;
    }

    /// <summary>True when the client address matches an ip ACL id ("10.0.0.1" or "10.0.0.0/8"; IPv4 and IPv6).</summary>
    public static bool IpMatches(string aclIdent, string clientAddress)
    {
        var slash = aclIdent.IndexOf('/');
        var aclAddress = ParseAddress(slash < 0 ? aclIdent : aclIdent[..slash]);
        if (aclAddress is null) return false;
        var bits = aclAddress.Length * 8;
        if (slash >= 0)
        {
            bits = ParseBits(aclIdent[(slash + 1)..], aclAddress.Length);
            if (bits < 0) return false;
        }
        var client = ParseAddress(clientAddress);
        if (client is null) return false;
        if (client.Length != aclAddress.Length)
        {
            // An IPv4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
            if (client.Length == 16 && aclAddress.Length == 4 && IsV4Mapped(client)) client = client[12..];
            else return false;
        }
        Mask(aclAddress, bits);
        Mask(client, bits);
        return aclAddress.AsSpan().SequenceEqual(client);
    }

    private static bool IsV4Mapped(byte[] a)
    {
        for (var i = 0; i < 10; i++)
            if (a[i] != 0) return false;
        return a[10] == 0xff && a[11] == 0xff;
    }

    private static void Mask(byte[] b, int bits)
    {
        var start = bits / 8;
        var startMask = ~((1 << (8 - bits % 8)) - 1);
        while (start < b.Length)
        {
            b[start] &= (byte)startMask;
            startMask = 0;
            start++;
        }
    }

    /// <summary>Java Integer.parseInt semantics (optional sign, decimal digits), then range 0..8*bytes; -1 if bad.</summary>
    private static int ParseBits(string text, int addressBytes)
    {
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var bits)) return -1;
        return bits < 0 || bits > addressBytes * 8 ? -1 : bits;
    }

    /// <summary>IPv4 as ZooKeeper parses it (exactly four decimal parts 0..255), or IPv6 (contains ':').</summary>
    private static byte[]? ParseAddress(string text)
    {
        if (text.Contains(':'))
        {
            if (text.Contains('%') || !IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
                return null;
            return v6.GetAddressBytes();
        }
        var parts = text.Split('.');
        if (parts.Length != 4) return null;
        var bytes = new byte[4];
        for (var i = 0; i < 4; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) || v is < 0 or > 255)
                return null;
            bytes[i] = (byte)v;
        }
        return bytes;
    }

    /// <summary>
    /// ZooKeeper's PrepRequestProcessor.fixupACL: rejects a null or empty list (after removing duplicates), expands
    /// "auth" to the session's authenticated ids (digest, x509 and sasl ids: ip and super are not "authenticated"
    /// providers; the ident of the auth entry is ignored), and rejects unknown schemes, schemes whose provider is not
    /// in <paramref name="providers"/> (default: all), world ids other than anyone, and malformed digest, ip or x509
    /// ids. Returns null for InvalidACL. Returns <paramref name="acl"/> itself when nothing changes.
    /// </summary>
    public static IReadOnlyList<Acl>? Fixup(IReadOnlyList<Acl>? acl, AuthContext auth, AclProviders? providers = null)
    {
        providers ??= AclProviders.All;
        if (acl is null || acl.Count == 0) return null;
        var needsCopy = false;
        HashSet<Acl>? seen = acl.Count > 8 ? new HashSet<Acl>() : null;
        for (var i = 0; i < acl.Count; i++)
        {
            var a = acl[i];
            if (a?.Id is null) return null;
            if (a.Id.Scheme == AuthScheme) needsCopy = true;
            if (seen is not null)
            {
                if (!seen.Add(a)) needsCopy = true;
            }
            else
            {
                for (var j = 0; j < i; j++)
                    if (a == acl[j]) { needsCopy = true; break; }
            }
        }

        if (!needsCopy)
        {
            for (var i = 0; i < acl.Count; i++)
                if (!IsValidEntry(acl[i], providers)) return null;
            return acl;
        }

        var unique = new List<Acl>(acl.Count);
        var uniqueSet = new HashSet<Acl>();
        for (var i = 0; i < acl.Count; i++)
            if (uniqueSet.Add(acl[i])) unique.Add(acl[i]);

        var result = new List<Acl>(unique.Count + 2);
        foreach (var a in unique)
        {
            if (a.Id.Scheme == AuthScheme)
            {
                var any = false;
                foreach (var id in auth.Ids)
                {
                    if (id.Scheme is not (DigestScheme or X509Scheme or SaslScheme)) continue;
                    result.Add(new Acl(a.Perms, id));
                    any = true;
                }
                if (!any) return null;
            }
            else if (IsValidEntry(a, providers))
            {
                result.Add(a);
            }
            else
            {
                return null;
            }
        }
        return result;
    }

    private static bool IsValidEntry(Acl a, AclProviders providers)
    {
        var scheme = a.Id.Scheme;
        return (scheme == World && a.Id.Ident == Anyone)
            || (scheme == DigestScheme && IsValidDigestId(a.Id.Ident))
            || (scheme == IpScheme && IsValidIpId(a.Id.Ident))
            || (scheme == X509Scheme && providers.X509 && IsValidX509Id(a.Id.Ident))
            || (scheme == SaslScheme && providers.Sasl && a.Id.Ident.Length > 0);
    }
}
