using System.Buffers.Binary;
using System.Text;
using Coordination.Server.Sessions;
using Xunit;

namespace Coordination.Server.Tests;

/// <summary>
/// The pure parts of SASL GSSAPI: the sasl id built from a client principal (ZooKeeper's remove-host/remove-realm
/// rules) and the keytab reduced to the server's principal. The exchange itself is in Compat KerberosTests.
/// </summary>
public sealed class KerberosNameTests
{
    private static KerberosSettings Rules(bool removeHost, bool removeRealm) =>
        new(true, "/k", "zookeeper/localhost@R", removeHost, removeRealm);

    [Theory]
    [InlineData("alice@R", false, false, "alice@R")]
    [InlineData("alice@R", true, true, "alice")]
    [InlineData("carol/h.example@R", false, false, "carol/h.example@R")]
    [InlineData("carol/h.example@R", true, false, "carol@R")]
    [InlineData("carol/h.example@R", false, true, "carol/h.example")]
    [InlineData("carol/h.example@R", true, true, "carol")]
    [InlineData("a/b/c@R", false, false, null)]
    [InlineData("a@b@R", false, false, null)]
    [InlineData("no-realm", false, false, null)]
    public void The_sasl_id_is_the_principal_after_the_remove_rules(string principal, bool removeHost, bool removeRealm, string? expected) =>
        Assert.Equal(expected, Rules(removeHost, removeRealm).ClientName(principal));

    /// <summary>A version 0x0502 keytab entry (size-prefixed): components, realm, name type, timestamp, kvno, key.</summary>
    private static byte[] Entry(string principal, byte key)
    {
        var at = principal.IndexOf('@');
        var components = principal[..at].Split('/');
        var body = new List<byte>();
        void U16(int v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)v); body.AddRange(b); }
        void Str(string s) { U16(Encoding.UTF8.GetByteCount(s)); body.AddRange(Encoding.UTF8.GetBytes(s)); }
        U16(components.Length);
        Str(principal[(at + 1)..]);
        foreach (var c in components) Str(c);
        body.AddRange(new byte[] { 0, 0, 0, 1, 0, 0, 0, 0, 2 });   // name type, timestamp, kvno
        U16(18);
        U16(2);
        body.AddRange(new[] { key, key });
        return [.. Size(body.Count), .. body];
    }

    private static byte[] Size(int size)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, size);
        return b;
    }

    private static readonly byte[] Header = [0x05, 0x02];

    [Fact]
    public void The_keytab_keeps_only_the_entries_of_the_principal_and_skips_holes()
    {
        var zk = Entry("zookeeper/localhost@R", 1);
        var other = Entry("other/localhost@R", 2);
        var zk2 = Entry("zookeeper/localhost@R", 3);
        byte[] hole = [.. Size(-5), 0, 0, 0, 0, 0];
        byte[] keytab = [.. Header, .. zk, .. other, .. hole, .. zk2];

        Assert.Equal([.. Header, .. zk, .. zk2], Keytab.Only(keytab, "zookeeper/localhost@R"));
        Assert.Equal([.. Header, .. zk, .. zk2], Keytab.Only(keytab, "zookeeper/localhost"));   // no realm: any realm
        Assert.Equal([.. Header, .. other], Keytab.Only(keytab, "other/localhost@R"));
    }

    [Fact]
    public void A_keytab_without_the_principal_or_not_a_keytab_is_refused_with_a_reason()
    {
        byte[] keytab = [.. Header, .. Entry("other/localhost@R", 2)];
        var e = Assert.Throws<FormatException>(() => Keytab.Only(keytab, "zookeeper/localhost@R"));
        Assert.Equal("no key for zookeeper/localhost@R (the keytab holds other/localhost@R)", e.Message);
        Assert.Throws<FormatException>(() => Keytab.Only(keytab, "other/localhost@S"));
        Assert.Throws<FormatException>(() => Keytab.Only([0x05, 0x01, .. keytab[2..]], "other/localhost@R"));   // format 1
        Assert.Throws<FormatException>(() => Keytab.Only(keytab[..^3], "other/localhost@R"));                  // truncated
        Assert.Throws<FormatException>(() => Keytab.Only([.. Header, .. Size(3), 0, 5, 0], "other/localhost@R"));  // short entry
    }
}
