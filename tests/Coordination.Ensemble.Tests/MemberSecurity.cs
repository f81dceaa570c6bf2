using Coordination.TestKit;

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
}

/// <summary>
/// Certificates for member TLS tests, made per test in a temporary directory: the ensemble's CA, a certificate per
/// member (for 127.0.0.1, the members' host), and what rogues hold: a certificate from another CA, and one from the
/// ensemble's CA for a host that is no member's. <see cref="StartAsync"/> starts an ensemble with them, which goes
/// away with them.
/// </summary>
public sealed class MemberCertificates : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("member-tls-").FullName;
    private readonly Dictionary<long, IssuedCertificate> _members = new();

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

    /// <summary>Options for a <see cref="TestEnsemble"/> whose members authenticate as <paramref name="security"/> says.</summary>
    public TestEnsembleOptions Options(MemberSecurity security, TestEnsembleOptions? options = null)
    {
        options ??= new TestEnsembleOptions();
        if (security == MemberSecurity.Secret) return options;
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
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
