using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Network;

namespace Coordination.Server.Admin;

/// <summary>
/// Who may run an admin command over HTTP, after ZooKeeper 3.9's AdminServer: the request names its credential in
/// an <c>Authorization: &lt;scheme&gt; [&lt;auth&gt;]</c> header (<c>digest user:password</c>; <c>ip</c>, whose id is the
/// caller's address; or <c>x509</c>, whose id is the subject of the certificate the caller presented over HTTPS), and the ids it proves must be granted the permission on the root znode's ACL.
/// One difference, for a safer default: <c>world:anyone</c> on the root does not count here, so a command that
/// needs authorization needs a credential an operator granted (or the super user), not just any credential.
/// </summary>
public static class AdminAuthorization
{
    public enum Verdict { Allowed, Missing, NotAuthenticated, NotAuthorized }

    /// <summary>What the connection itself shows of the caller: its address, and the certificate TLS verified.</summary>
    public sealed record Caller(IPAddress? Address, X509Certificate2? Certificate);

    /// <summary>The ids a request proves with its Authorization header value, or null when it proves none.</summary>
    public static IReadOnlyList<Id>? Authenticate(string header, Caller caller, string? superDigest, string? x509SuperUser)
    {
        var space = header.IndexOf(' ');
        var scheme = space < 0 ? header : header[..space];
        var auth = space < 0 ? null : header[(space + 1)..];
        return scheme switch
        {
            Acls.DigestScheme when auth is not null => Acls.AuthenticateIds(scheme, Encoding.UTF8.GetBytes(auth), superDigest),
            Acls.IpScheme when auth is null && caller.Address is { } remote => [new Id(Acls.IpScheme, (remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote).ToString())],
            X509Identity.Scheme when auth is null && caller.Certificate is { } certificate => X509Ids(X509Identity.SubjectId(certificate), x509SuperUser),
            _ => null,
        };
    }

    private static IReadOnlyList<Id> X509Ids(string subject, string? superUser) =>
        subject == superUser ? [new Id(Acls.SuperScheme, ""), new Id(X509Identity.Scheme, subject)] : [new Id(X509Identity.Scheme, subject)];

    /// <summary>Decides a request for a command that needs <paramref name="perm"/> on a znode with <paramref name="acl"/>.</summary>
    public static Verdict Decide(string? header, Caller caller, string? superDigest, string? x509SuperUser, IReadOnlyList<Acl>? acl, Perms perm)
    {
        if (string.IsNullOrEmpty(header)) return Verdict.Missing;
        if (Authenticate(header, caller, superDigest, x509SuperUser) is not { Count: > 0 } ids) return Verdict.NotAuthenticated;
        var auth = new AuthContext(ids);
        if (auth.Ids.Any(id => id.Scheme == Acls.SuperScheme)) return Verdict.Allowed;
        var granted = acl?.Where(a => !(a.Id.Scheme == Acls.World && a.Id.Ident == Acls.Anyone)).ToList();
        if (granted is not { Count: > 0 }) return Verdict.NotAuthorized;
        // Every bit of the permission must be granted (Acls.Check passes when any one bit is).
        for (var bit = 1; bit <= (int)Perms.All; bit <<= 1)
            if (((int)perm & bit) != 0 && !Acls.Check(granted, (Perms)bit, auth)) return Verdict.NotAuthorized;
        return Verdict.Allowed;
    }
}
