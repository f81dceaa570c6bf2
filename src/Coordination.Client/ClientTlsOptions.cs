using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Coordination.Client;

/// <summary>
/// TLS to a server's secure client port (ZooKeeper's zookeeper.client.secure with the ssl.* client settings).
/// Stores are PEM or PKCS#12 (.p12/.pfx) files. The server's name is checked against its certificate unless
/// <see cref="HostnameVerification"/> is off.
/// </summary>
public sealed record ClientTlsOptions
{
    /// <summary>The CA certificates the server's certificate must chain to (PEM, or PKCS#12); null = the system's roots.</summary>
    public string? TrustStorePath { get; init; }
    public string? TrustStorePassword { get; init; }
    /// <summary>
    /// The client certificate, for a server that asks for one (client-auth want or need, and the x509 scheme): a PEM
    /// file with the certificate (and its key, unless <see cref="KeyPath"/> names the key's own file), or PKCS#12.
    /// </summary>
    public string? CertificatePath { get; init; }
    public string? KeyPath { get; init; }
    /// <summary>The PKCS#12 password, or the password of an encrypted PEM key.</summary>
    public string? CertificatePassword { get; init; }
    /// <summary>Check that the server's certificate names the host connected to (ZooKeeper's ssl.hostnameVerification).</summary>
    public bool HostnameVerification { get; init; } = true;
    /// <summary>TLS versions offered; None lets the system choose (TLS 1.2 and 1.3).</summary>
    public SslProtocols Protocols { get; init; } = SslProtocols.None;

    private static bool IsPkcs12(string path) =>
        path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase);

    /// <summary>The options for one handshake with <paramref name="host"/>; the files are read each time, so a renewed
    /// certificate is used on the next connect.</summary>
    internal SslClientAuthenticationOptions ForHost(string host)
    {
        var policy = new X509ChainPolicy { RevocationMode = X509RevocationMode.NoCheck };
        if (TrustStorePath is { } trustPath)
        {
            policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            if (IsPkcs12(trustPath)) policy.CustomTrustStore.AddRange(X509CertificateLoader.LoadPkcs12CollectionFromFile(trustPath, TrustStorePassword));
            else policy.CustomTrustStore.ImportFromPemFile(trustPath);
        }
        var certificates = new X509CertificateCollection();
        if (LoadCertificate() is { } certificate) certificates.Add(certificate);
        var verifyName = HostnameVerification;
        return new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = Protocols,
            ClientCertificates = certificates,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = policy,
            RemoteCertificateValidationCallback = (_, _, _, errors) =>
                (verifyName ? errors : errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) == SslPolicyErrors.None,
        };
    }

    private X509Certificate2? LoadCertificate()
    {
        if (CertificatePath is not { } path) return null;
        if (IsPkcs12(path)) return X509CertificateLoader.LoadPkcs12FromFile(path, CertificatePassword);
        var key = KeyPath ?? path;
        var certificate = string.IsNullOrEmpty(CertificatePassword)
            ? X509Certificate2.CreateFromPemFile(path, key)
            : X509Certificate2.CreateFromEncryptedPemFile(path, CertificatePassword, key);
        // A PEM key is ephemeral; TLS on Linux wants one it can use for each handshake.
        using (certificate) return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}
