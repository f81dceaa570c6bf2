using System.Text;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

public class AclTests
{
    private static readonly Id Alice = new("digest", Acls.Digest("alice:secret"));
    private static AuthContext Ctx(params Id[] ids) => new(ids);

    [Fact]
    public void DigestMatchesZooKeeper()
    {
        // DigestAuthenticationProvider.generateDigest("alice:secret"), as ZooKeeper 3.8.0 stored it in an ACL.
        Assert.Equal("alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=", Acls.Digest("alice:secret"));
        // Everything after the first ':' is the password, including further colons.
        Assert.Equal("u:" + Convert.ToBase64String(System.Security.Cryptography.SHA1.HashData(Encoding.UTF8.GetBytes("u:p:q"))), Acls.Digest("u:p:q"));
        Assert.StartsWith("nocolon:", Acls.Digest("nocolon"));
    }

    [Fact]
    public void AuthenticateDigestAndSuper()
    {
        var superDigest = Acls.Digest("super:adminpw");
        Assert.Equal(new Id("digest", Acls.Digest("bob:pw")), Acls.Authenticate("digest", Encoding.UTF8.GetBytes("bob:pw"), superDigest));
        Assert.Equal(new Id("super", ""), Acls.Authenticate("digest", Encoding.UTF8.GetBytes("super:adminpw"), superDigest));
        Assert.Equal([new Id("super", ""), new Id("digest", superDigest)], Acls.AuthenticateIds("digest", Encoding.UTF8.GetBytes("super:adminpw"), superDigest)!);
        Assert.Equal(new Id("digest", Acls.Digest("super:adminpw")), Acls.Authenticate("digest", Encoding.UTF8.GetBytes("super:adminpw"), null));
        Assert.Equal(new Id("digest", Acls.Digest("super:wrong")), Acls.Authenticate("digest", Encoding.UTF8.GetBytes("super:wrong"), superDigest));
        Assert.Null(Acls.Authenticate("kerberos", [1, 2], superDigest));
        Assert.Null(Acls.Authenticate("ip", Encoding.UTF8.GetBytes("1.2.3.4"), superDigest));
        Assert.True(Ctx(Acls.Authenticate("digest", Encoding.UTF8.GetBytes("super:adminpw"), superDigest)!).IsSuper);
    }

    /// <summary>
    /// The x509 scheme (ZooKeeper's X509AuthenticationProvider): an ACL id matches the session's certificate subject
    /// exactly, "auth" expands to it (x509 is an authenticated provider), and an id that is not a DN is InvalidACL.
    /// </summary>
    [Fact]
    public void X509IdsMatchExactlyAndExpandAuth()
    {
        const string subject = "CN=client-one,OU=Compat,O=Coordination Tests";
        var session = Ctx(new Id("ip", "127.0.0.1"), new Id("x509", subject));
        IReadOnlyList<Acl> mine = [new(Perms.Read, new Id("x509", subject))];
        Assert.True(Acls.Check(mine, Perms.Read, session));
        Assert.False(Acls.Check(mine, Perms.Write, session));
        Assert.False(Acls.Check(mine, Perms.Read, Ctx(new Id("x509", "CN=client-two,OU=Compat,O=Coordination Tests"))));
        Assert.False(Acls.Check(mine, Perms.Read, Ctx(new Id("digest", subject))));
        Assert.False(Acls.Check(mine, Perms.Read, Ctx(new Id("x509", "CN=client-one, OU=Compat, O=Coordination Tests"))));

        Assert.Equal([new Acl(Perms.All, new Id("x509", subject))], Acls.Fixup([new Acl(Perms.All, Id.AuthIds)], session)!);
        Assert.Same(mine, Acls.Fixup(mine, session));
        Assert.Null(Acls.Fixup([new Acl(Perms.All, new Id("x509", "not a distinguished name"))], session));
    }

    [Fact]
    public void CheckMatrix()
    {
        IReadOnlyList<Acl> world = [new(Perms.Read, Id.Anyone)];
        IReadOnlyList<Acl> digest = [new(Perms.Read | Perms.Write, Alice)];
        IReadOnlyList<Acl> ip = [new(Perms.All, new Id("ip", "10.1.0.0/16"))];
        IReadOnlyList<Acl> mixed = [new(Perms.Read, Id.Anyone), new(Perms.Admin, Alice)];
        var anon = Ctx();
        var alice = Ctx(new Id("ip", "127.0.0.1"), Alice);
        var bob = Ctx(new Id("digest", Acls.Digest("bob:pw")));
        var inNet = Ctx(new Id("ip", "10.1.200.3"));
        var outNet = Ctx(new Id("ip", "10.2.0.1"));
        var super = Ctx(new Id("super", ""));

        Assert.True(Acls.Check(world, Perms.Read, anon));
        Assert.False(Acls.Check(world, Perms.Write, anon));
        Assert.False(Acls.Check(world, Perms.Write, alice));
        Assert.True(Acls.Check(world, Perms.Write, super));

        Assert.True(Acls.Check(digest, Perms.Write, alice));
        Assert.False(Acls.Check(digest, Perms.Delete, alice));
        Assert.False(Acls.Check(digest, Perms.Read, bob));
        Assert.False(Acls.Check(digest, Perms.Read, anon));
        Assert.False(Acls.Check(digest, Perms.Read, Ctx(new Id("ip", Alice.Ident)))); // scheme must match too

        Assert.True(Acls.Check(ip, Perms.Create, inNet));
        Assert.False(Acls.Check(ip, Perms.Create, outNet));
        Assert.False(Acls.Check(ip, Perms.Create, alice));

        Assert.True(Acls.Check(mixed, Perms.Read, bob));
        Assert.True(Acls.Check(mixed, Perms.Admin, alice));
        Assert.False(Acls.Check(mixed, Perms.Admin, bob));

        Assert.True(Acls.Check([], Perms.Admin, anon)); // an empty ACL grants everything
        Assert.False(Acls.Check([new(Perms.All, new Id("world", "someone"))], Perms.Read, anon));
        Assert.False(Acls.Check([new(Perms.All, new Id("super", ""))], Perms.Read, anon));
        // sasl: the SASL authorization id, exactly (ZooKeeper's SASLAuthenticationProvider, once SASL is configured).
        Assert.True(Acls.Check([new(Perms.All, new Id("sasl", "x"))], Perms.Read, Ctx(new Id("sasl", "x"))));
        Assert.False(Acls.Check([new(Perms.All, new Id("sasl", "x"))], Perms.Read, Ctx(new Id("sasl", "y"))));
        Assert.False(Acls.Check([new(Perms.All, new Id("sasl", "x"))], Perms.Read, Ctx(new Id("digest", "x"))));
        Assert.False(Acls.Check([new((Perms)0, Id.Anyone)], Perms.Read, anon));
    }

    [Theory]
    [InlineData("a:b", true)]
    [InlineData(":hash", true)]
    [InlineData("user", false)]
    [InlineData("user:", false)]
    [InlineData("user::", false)]
    [InlineData("a:b:c", false)]
    [InlineData("a::b", false)]
    [InlineData("", false)]
    [InlineData(":", false)]
    public void DigestIdValidityUsesJavaSplit(string id, bool valid) => Assert.Equal(valid, Acls.IsValidDigestId(id));

    [Theory]
    [InlineData("1.2.3.4", true)]
    [InlineData("10.0.0.0/8", true)]
    [InlineData("0.0.0.0/0", true)]
    [InlineData("1.2.3.4/32", true)]
    [InlineData("1.2.3.4/33", false)]
    [InlineData("1.2.3.4/-1", false)]
    [InlineData("1.2.3.4/x", false)]
    [InlineData("1.2.3", false)]
    [InlineData("1.2.3.4.5", false)]
    [InlineData("256.1.1.1", false)]
    [InlineData("1..2.3", false)]
    [InlineData("a.b.c.d", false)]
    [InlineData("", false)]
    [InlineData("::1", true)]
    [InlineData("fe80::/10", true)]
    [InlineData("::1/128", true)]
    [InlineData("::1/129", false)]
    [InlineData("fe80::1%eth0", false)]
    [InlineData("1:2:3", false)]
    public void IpIdValidity(string id, bool valid) => Assert.Equal(valid, Acls.IsValidIpId(id));

    [Theory]
    [InlineData("10.0.0.1", "10.0.0.1", true)]
    [InlineData("10.0.0.1", "10.0.0.2", false)]
    [InlineData("10.0.0.0/8", "10.255.1.2", true)]
    [InlineData("10.0.0.0/8", "11.0.0.1", false)]
    [InlineData("192.168.1.0/23", "192.168.0.200", true)]
    [InlineData("192.168.1.0/24", "192.168.0.200", false)]
    [InlineData("1.2.3.4/0", "200.1.1.1", true)]
    [InlineData("10.0.0.1", "::ffff:10.0.0.1", true)]
    [InlineData("10.0.0.0/8", "::ffff:10.9.9.9", true)]
    [InlineData("::1", "::1", true)]
    [InlineData("::1", "::2", false)]
    [InlineData("2001:db8::/32", "2001:db8:1234::5", true)]
    [InlineData("2001:db8::/32", "2001:db9::5", false)]
    [InlineData("::1", "127.0.0.1", false)]
    [InlineData("127.0.0.1", "::1", false)]
    [InlineData("bad", "127.0.0.1", false)]
    [InlineData("127.0.0.1", "bad", false)]
    [InlineData("10.0.0.0/99", "10.0.0.1", false)]
    public void IpMatching(string acl, string client, bool matches) => Assert.Equal(matches, Acls.IpMatches(acl, client));

    [Fact]
    public void FixupExpandsAuthAndRejectsInvalid()
    {
        var ctx = Ctx(new Id("ip", "1.2.3.4"), new Id("super", ""), Alice, new Id("digest", "bob:x"));
        var expanded = Acls.Fixup([new(Perms.Read, Id.AuthIds)], ctx);
        Assert.Equal([new Acl(Perms.Read, Alice), new Acl(Perms.Read, new Id("digest", "bob:x"))], expanded!);
        Assert.Null(Acls.Fixup([new(Perms.Read, Id.AuthIds)], Ctx(new Id("ip", "1.2.3.4"), new Id("super", ""))));
        Assert.Null(Acls.Fixup(null, ctx));
        Assert.Null(Acls.Fixup([], ctx));
        Assert.Null(Acls.Fixup([new(Perms.Read, Id.Anyone), new(Perms.Read, new Id("x", "y"))], ctx));
        IReadOnlyList<Acl> plain = [new(Perms.Read, Id.Anyone), new(Perms.All, Alice), new(Perms.All, new Id("ip", "10.0.0.0/8"))];
        Assert.Same(plain, Acls.Fixup(plain, ctx));
        var many = Enumerable.Range(0, 20).Select(i => new Acl(Perms.Read, new Id("ip", $"10.0.0.{i % 10}"))).ToList();
        Assert.Equal(10, Acls.Fixup(many, ctx)!.Count);
        Assert.Equal([new Acl(Perms.All, Id.Anyone), new Acl(Perms.Read, Alice)],
            Acls.Fixup([new(Perms.All, Id.Anyone), new(Perms.Read, Id.AuthIds), new(Perms.All, Id.Anyone)], Ctx(Alice))!);
    }

    [Fact]
    public void AuthContextIsSuper()
    {
        Assert.False(AuthContext.Anonymous.IsSuper);
        Assert.False(Ctx(Alice).IsSuper);
        Assert.True(Ctx(Alice, new Id("super", "")).IsSuper);
    }
}
