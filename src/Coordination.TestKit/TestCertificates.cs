using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Coordination.TestKit;

/// <summary>One issued certificate, written in the forms the different clients and servers read.</summary>
/// <param name="Subject">The subject as issued (.NET's form, e.g. "CN=a, OU=b, O=c").</param>
/// <param name="CertificatePem">The certificate alone.</param>
/// <param name="KeyPem">Its private key alone (PKCS#8, unencrypted).</param>
/// <param name="CombinedPem">Key and certificate in one file (ZooKeeper's PEM key store).</param>
/// <param name="Pkcs12">Key and certificate as PKCS#12, with <see cref="TestCertificates.Password"/>.</param>
public sealed record IssuedCertificate(string Subject, string CertificatePem, string KeyPem, string CombinedPem, string Pkcs12);

/// <summary>
/// A throw-away certificate authority for TLS tests and benchmarks: a CA and certificates it issues, for 127.0.0.1 and
/// localhost (so hostname verification passes on both sides), RSA 2048 so every client (Java, Python, .NET) reads them.
/// </summary>
public sealed class TestCertificates
{
    public const string Password = "changeit";
    private readonly X509Certificate2 _ca;
    private readonly string _dir;

    /// <summary>The CA certificate (PEM): the trust store of every party.</summary>
    public string CaPem { get; }

    private TestCertificates(string dir, X509Certificate2 ca)
    {
        _dir = dir;
        _ca = ca;
        CaPem = Path.Combine(dir, "ca.pem");
        File.WriteAllText(CaPem, ca.ExportCertificatePem() + "\n");
    }

    /// <summary>A new CA whose files go to <paramref name="dir"/>.</summary>
    public static TestCertificates Create(string dir, string caName = "Coordination Test CA")
    {
        Directory.CreateDirectory(dir);
        var key = RSA.Create(2048);   // kept: the CA certificate signs with it
        var request = new CertificateRequest($"CN={caName}, O=Coordination Tests", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddYears(2));   // outlives what it issues
        return new TestCertificates(dir, ca);
    }

    /// <summary>
    /// TLS options for a client of a server whose certificate this CA issued: trusts only this CA, checks the name
    /// (127.0.0.1 by default), and presents <paramref name="certificate"/> when given.
    /// </summary>
    public SslClientAuthenticationOptions ClientOptions(IssuedCertificate? certificate, string targetHost = "127.0.0.1")
    {
        var policy = new X509ChainPolicy { RevocationMode = X509RevocationMode.NoCheck, TrustMode = X509ChainTrustMode.CustomRootTrust };
        policy.CustomTrustStore.Add(_ca);
        var certificates = new X509CertificateCollection();
        if (certificate is not null) certificates.Add(X509CertificateLoader.LoadPkcs12FromFile(certificate.Pkcs12, Password));
        return new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            ClientCertificates = certificates,
            CertificateChainPolicy = policy,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
    }

    /// <summary>
    /// Issues a certificate for <paramref name="subject"/> and writes it as name.{crt,key,pem,p12}; it names 127.0.0.1
    /// and localhost unless <paramref name="loopbackNames"/> is off (for a hostname verification test).
    /// </summary>
    public IssuedCertificate Issue(string name, string subject, bool loopbackNames = true)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));   // server and client auth
        var names = new SubjectAlternativeNameBuilder();
        if (loopbackNames)
        {
            names.AddIpAddress(System.Net.IPAddress.Loopback);
            names.AddDnsName("localhost");
        }
        else names.AddDnsName("elsewhere.invalid");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        var certificatePem = issued.ExportCertificatePem() + "\n";
        var keyPem = key.ExportPkcs8PrivateKeyPem() + "\n";
        var files = new IssuedCertificate(subject,
            Path.Combine(_dir, name + ".crt"), Path.Combine(_dir, name + ".key"), Path.Combine(_dir, name + ".pem"), Path.Combine(_dir, name + ".p12"));
        File.WriteAllText(files.CertificatePem, certificatePem);
        File.WriteAllText(files.KeyPem, keyPem);
        File.WriteAllText(files.CombinedPem, keyPem + certificatePem);
        File.WriteAllBytes(files.Pkcs12, withKey.Export(X509ContentType.Pkcs12, Password));
        return files;
    }
}
