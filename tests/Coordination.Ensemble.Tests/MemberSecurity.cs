using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>How the members of a test ensemble authenticate each other.</summary>
public enum MemberSecurity
{
    /// <summary>The shared secret's HMAC handshake, no TLS (coordination.ensemble.auth).</summary>
    Secret,
    /// <summary>Mutual TLS alone (coordination.ensemble.ssl, no secret): the certificates authenticate.</summary>
    Tls,
    /// <summary>Mutual TLS with the HMAC handshake inside it.</summary>
    TlsAndSecret,
    /// <summary>SASL DIGEST-MD5 alone (coordination.ensemble.sasl, required both ways, no secret, no TLS): each member
    /// its own user, named in member-names.</summary>
    SaslDigest,
    /// <summary>SASL Kerberos alone: every member zkquorum/127.0.0.1 of a throwaway realm (<see cref="KerberosRealm"/>).</summary>
    SaslKerberos,
    /// <summary>Mutual TLS with SASL DIGEST-MD5 (required both ways) inside it, no secret: both must pass.</summary>
    TlsAndSaslDigest,
}

/// <summary>
/// Certificates for member TLS tests, made per test in a temporary directory: the ensemble's CA, a certificate per
/// member (for 127.0.0.1, the members' host), and what rogues hold: a certificate from another CA, and one from the
/// ensemble's CA for a host that is no member's. For SASL, the members' JAAS files (DIGEST-MD5 users, or a Kerberos
/// realm with the members' keytab). <see cref="StartAsync"/> starts an ensemble with them, which goes away with them.
/// </summary>
public sealed class MemberCertificates : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("member-tls-").FullName;
    private readonly Dictionary<long, IssuedCertificate> _members = new();
    private readonly string _passwordSalt = Guid.NewGuid().ToString("N");

    public MemberCertificates()
    {
        Ca = TestCertificates.Create(_dir, "Ensemble CA");
        OtherCa = TestCertificates.Create(Path.Combine(_dir, "other"), "Other CA");
        FromOtherCa = OtherCa.Issue("other-ca", "CN=127.0.0.1, O=Rogue");
        ForAnotherHost = Ca.Issue("another-host", "CN=elsewhere.invalid, O=Rogue", loopbackNames: false);
    }

    public TestCertificates Ca { get; }
    public TestCertificates OtherCa { get; }
    /// <summary>Valid for 127.0.0.1, but issued by a CA the members do not trust.</summary>
    public IssuedCertificate FromOtherCa { get; }
    /// <summary>Issued by the ensemble's CA, for elsewhere.invalid: no member's host.</summary>
    public IssuedCertificate ForAnotherHost { get; }

    public IssuedCertificate Member(long id)
    {
        lock (_members)
        {
            if (!_members.TryGetValue(id, out var certificate))
                _members[id] = certificate = Ca.Issue($"member{id}", $"CN=member{id}, O=Coordination Tests");
            return certificate;
        }
    }

    /// <summary>The transport's (and coordination.ensemble's) <c>ssl</c> section with <paramref name="certificate"/>,
    /// trusting the ensemble's CA.</summary>
    public string Ssl(IssuedCertificate certificate) =>
        $"ssl {{ enabled = on, key-store-location = \"{certificate.CombinedPem}\", trust-store-location = \"{Ca.CaPem}\" }}";

    /// <summary>The Kerberos realm of <see cref="MemberSecurity.SaslKerberos"/> (null for the other kinds).</summary>
    public KerberosRealm? Realm { get; private set; }
    /// <summary>The members' Kerberos principal: zkquorum/_HOST for their host, 127.0.0.1.</summary>
    public const string MemberPrincipal = "zkquorum/127.0.0.1";

    public static string DigestUser(long id) => $"member{id}";
    public string DigestPassword(long id) => $"password-{id}-{_passwordSalt}";

    /// <summary>A JAAS file as ZooKeeper's quorum SASL reads it: every member's DIGEST-MD5 user in QuorumServer, and
    /// <paramref name="user"/> with <paramref name="password"/> in QuorumLearner.</summary>
    public string DigestJaas(string user, string password, IEnumerable<long> members)
    {
        var path = Path.Combine(_dir, $"digest-{Guid.NewGuid():N}.jaas");
        File.WriteAllText(path, $$"""
            QuorumServer {
              org.apache.zookeeper.server.auth.DigestLoginModule required
              {{string.Join("\n  ", members.Select(id => $"user_{DigestUser(id)}=\"{DigestPassword(id)}\""))}};
            };
            QuorumLearner {
              org.apache.zookeeper.server.auth.DigestLoginModule required
              username="{{user}}"
              password="{{password}}";
            };
            """);
        return path;
    }

    /// <summary>A JAAS file with Krb5LoginModule sections: the acceptor's and the learner's keytab and principal.</summary>
    public string KerberosJaas(string keytab, string principal)
    {
        var path = Path.Combine(_dir, $"kerberos-{Guid.NewGuid():N}.jaas");
        var module = $"com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"{keytab}\" principal=\"{principal}\";";
        File.WriteAllText(path, $"QuorumServer {{\n  {module}\n}};\nQuorumLearner {{\n  {module}\n}};\n");
        return path;
    }

    /// <summary>The <c>sasl</c> section of the transport (and coordination.ensemble): SASL required both ways.</summary>
    public static string Sasl(string jaas, IEnumerable<long> members, bool digest) =>
        $"sasl {{ enabled = on, learner-require-sasl = on, server-require-sasl = on, jaas-file = \"{jaas}\", " +
        $"kerberos-service-principal = \"zkquorum/_HOST\", member-names {{ {(digest ? string.Join(", ", members.Select(id => $"{id} = \"{DigestUser(id)}\"")) : "")} }} }}";

    private static readonly long[] MemberIds = [1, 2, 3];

    /// <summary>Options for a <see cref="TestEnsemble"/> whose members authenticate as <paramref name="security"/> says.</summary>
    public TestEnsembleOptions Options(MemberSecurity security, TestEnsembleOptions? options = null)
    {
        options ??= new TestEnsembleOptions();
        if (security == MemberSecurity.Secret) return options;
        if (security is MemberSecurity.SaslDigest or MemberSecurity.SaslKerberos or MemberSecurity.TlsAndSaslDigest)
        {
            var kerberosJaas = Realm is null ? null : KerberosJaas(Realm.ExportKeytab(MemberPrincipal), Realm.Qualify(MemberPrincipal));
            var memberHocon = options.MemberHocon;
            return options with
            {
                ExtraHocon = options.ExtraHocon + "\ncoordination.ensemble.auth.secret = \"\"",
                MemberHocon = id => $"{memberHocon?.Invoke(id)}\ncoordination.ensemble." + (kerberosJaas is null
                    ? Sasl(DigestJaas(DigestUser(id), DigestPassword(id), MemberIds), MemberIds, digest: true)
                    : Sasl(kerberosJaas, MemberIds, digest: false))
                    + (security == MemberSecurity.TlsAndSaslDigest ? $"\ncoordination.ensemble.{Ssl(Member(id))}" : ""),
            };
        }
        var extra = options.ExtraHocon + (security == MemberSecurity.Tls ? "\ncoordination.ensemble.auth.secret = \"\"" : "");
        var perMember = options.MemberHocon;
        return options with { ExtraHocon = extra, MemberHocon = id => $"{perMember?.Invoke(id)}\ncoordination.ensemble.{Ssl(Member(id))}" };
    }

    /// <summary>The ensemble of <see cref="StartAsync"/>.</summary>
    public TestEnsemble Ensemble { get; private set; } = null!;

    /// <summary>New certificates and a 3-member ensemble that authenticates as <paramref name="security"/> says.</summary>
    public static async Task<MemberCertificates> StartAsync(MemberSecurity security, TestEnsembleOptions? options = null)
    {
        var certificates = new MemberCertificates();
        try
        {
            if (security == MemberSecurity.SaslKerberos)
            {
                if (KerberosRealm.MissingTool() is { } missing)
                {
                    // CI installs the KDC and sets this: there a missing KDC fails instead of skipping.
                    if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_KERBEROS") == "1") Assert.Fail("Kerberos prerequisite missing: " + missing);
                    Skip.If(true, "Kerberos prerequisite missing: " + missing);
                }
                certificates.Realm = await KerberosRealm.StartAsync();
                certificates.Realm.UseInThisProcess();
                certificates.Realm.AddPrincipal(MemberPrincipal);
            }
            certificates.Ensemble = await TestEnsemble.StartAsync(options: certificates.Options(security, options));
            return certificates;
        }
        catch
        {
            await certificates.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Ensemble is not null) await Ensemble.DisposeAsync();
        if (Realm is not null) await Realm.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
