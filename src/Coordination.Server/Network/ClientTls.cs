using System.Formats.Asn1;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Akka.Configuration;

namespace Coordination.Server.Network;

/// <summary>Whether the secure port asks clients for a certificate (ZooKeeper's ssl.clientAuth).</summary>
public enum ClientAuth { None, Want, Need }

/// <summary>The <c>coordination.client-ssl</c> section: the secure client port's certificate, trust and policy.</summary>
public sealed record ClientTlsSettings(
    string KeyStoreLocation, string KeyStorePassword, string KeyStoreType,
    string TrustStoreLocation, string TrustStorePassword, string TrustStoreType,
    ClientAuth ClientAuth, SslProtocols Protocols, TimeSpan ReloadInterval, bool PortUnification)
{
    public static ClientTlsSettings Create(Config c) => new(
        c.GetString("key-store-location"), c.GetString("key-store-password"), c.GetString("key-store-type"),
        c.GetString("trust-store-location"), c.GetString("trust-store-password"), c.GetString("trust-store-type"),
        c.GetString("client-auth").ToLowerInvariant() switch
        {
            "none" => ClientAuth.None,
            "want" => ClientAuth.Want,
            "need" => ClientAuth.Need,
            var other => throw new ConfigurationException($"coordination.client-ssl.client-auth must be none, want or need, not '{other}'"),
        },
        c.GetStringList("enabled-protocols").Aggregate(SslProtocols.None, (all, name) => all | name switch
        {
            "TLSv1.2" => SslProtocols.Tls12,
            "TLSv1.3" => SslProtocols.Tls13,
            _ => throw new ConfigurationException($"coordination.client-ssl.enabled-protocols: '{name}' is not TLSv1.2 or TLSv1.3"),
        }),
        c.GetTimeSpan("reload-interval"),
        c.GetBoolean("port-unification"));
}

/// <summary>
/// The secure client port's TLS policy, with the certificate and trust read from PEM or PKCS#12 files. The files are
/// checked for a change at most once per reload-interval, on accept: a new connection gets the new certificate
/// without a restart, and a file that fails to load keeps the previous one (logged).
/// </summary>
public sealed class ClientTls
{
    private readonly ClientTlsSettings _settings;
    private readonly TlsStoreFiles<SslServerAuthenticationOptions> _options;

    public ClientTls(ClientTlsSettings settings, Action<string> warn)
    {
        _settings = settings;
        _options = new TlsStoreFiles<SslServerAuthenticationOptions>(settings.KeyStoreLocation, settings.TrustStoreLocation,
            settings.ReloadInterval, Load, warn, "client TLS certificate");
    }

    public ClientAuth ClientAuth => _settings.ClientAuth;

    /// <summary>The options for a new connection, reloaded first if the files changed.</summary>
    public SslServerAuthenticationOptions Options => _options.Current;

    private SslServerAuthenticationOptions Load()
    {
        if (_settings.KeyStoreLocation.Length == 0)
            throw new ConfigurationException("the secure client port needs coordination.client-ssl.key-store-location");
        var (certificate, intermediates) = LoadKeyStore(_settings.KeyStoreLocation, _settings.KeyStorePassword, _settings.KeyStoreType);
        var trust = _settings.TrustStoreLocation.Length == 0 ? null
            : LoadTrustStore(_settings.TrustStoreLocation, _settings.TrustStorePassword, _settings.TrustStoreType);
        var policy = ChainPolicy(trust);
        var clientAuth = _settings.ClientAuth;
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(certificate, intermediates, offline: true),
            EnabledSslProtocols = _settings.Protocols,
            ClientCertificateRequired = clientAuth != ClientAuth.None,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = policy,
            // A presented certificate must chain to the trust store, even with want; none presented passes unless need.
            RemoteCertificateValidationCallback = (_, cert, _, errors) => cert is null
                ? clientAuth != ClientAuth.Need
                : (errors & ~SslPolicyErrors.RemoteCertificateNotAvailable) == SslPolicyErrors.None,
        };
    }

    /// <summary>Chains end at the trust store's certificates, or at the system's roots without one; no revocation check.</summary>
    public static X509ChainPolicy ChainPolicy(X509Certificate2Collection? trust)
    {
        var policy = new X509ChainPolicy { RevocationMode = X509RevocationMode.NoCheck };
        if (trust is not null)
        {
            policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            policy.CustomTrustStore.AddRange(trust);
        }
        return policy;
    }

    private static bool IsPem(string path, string type) =>
        type.Length > 0 ? type.Equals("PEM", StringComparison.OrdinalIgnoreCase)
            : !(path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase));

    /// <summary>A PEM file holding the private key and the certificate chain (leaf first), or a PKCS#12 store.</summary>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Intermediates) LoadKeyStore(string path, string password, string type)
    {
        X509Certificate2Collection all;
        X509Certificate2 leaf;
        if (IsPem(path, type))
        {
            leaf = password.Length > 0 ? X509Certificate2.CreateFromEncryptedPemFile(path, password) : X509Certificate2.CreateFromPemFile(path);
            all = new X509Certificate2Collection();
            all.ImportFromPemFile(path);
        }
        else
        {
            all = X509CertificateLoader.LoadPkcs12CollectionFromFile(path, password.Length > 0 ? password : null);
            leaf = all.FirstOrDefault(c => c.HasPrivateKey) ?? throw new ConfigurationException($"{path} holds no private key");
        }
        // Linux's TLS needs a key it can use for each handshake: export and re-import an ephemeral PEM/PKCS#12 key.
        leaf = X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null);
        var intermediates = new X509Certificate2Collection();
        foreach (var c in all)
            if (c.Thumbprint != leaf.Thumbprint) intermediates.Add(c);
        return (leaf, intermediates);
    }

    /// <summary>Trusted certificates: a PEM file of one or more, or a PKCS#12 store.</summary>
    public static X509Certificate2Collection LoadTrustStore(string path, string password, string type)
    {
        if (!IsPem(path, type)) return X509CertificateLoader.LoadPkcs12CollectionFromFile(path, password.Length > 0 ? password : null);
        var trust = new X509Certificate2Collection();
        trust.ImportFromPemFile(path);
        if (trust.Count == 0) throw new ConfigurationException($"{path} holds no certificate");
        return trust;
    }
}

/// <summary>ZooKeeper's x509 ids: the subject of a verified client certificate as Java's X500Principal.getName().</summary>
public static class X509Identity
{
    public const string Scheme = "x509";

    /// <summary>
    /// The subject in RFC 2253 form as Java prints it: most specific RDN first, "," between RDNs without spaces, the
    /// keywords Java knows (others as the dotted OID with the value's DER in hex), and RFC 2253 escaping.
    /// </summary>
    public static string SubjectId(X509Certificate2 certificate)
    {
        var text = new StringBuilder();
        foreach (var rdn in certificate.SubjectName.EnumerateRelativeDistinguishedNames(reversed: true))
        {
            if (text.Length > 0) text.Append(',');
            var reader = new AsnReader(rdn.RawData, AsnEncodingRules.DER).ReadSetOf();
            var first = true;
            while (reader.HasData)
            {
                var attribute = reader.ReadSequence();
                var oid = attribute.ReadObjectIdentifier();
                var value = attribute.ReadEncodedValue();
                if (!first) text.Append('+');
                first = false;
                if (Keyword(oid) is { } keyword && TryReadString(value.Span, out var s))
                    text.Append(keyword).Append('=').Append(Escape(s));
                else
                    text.Append(oid).Append("=#").Append(Convert.ToHexStringLower(value.Span));
            }
        }
        return text.ToString();
    }

    private static string? Keyword(string oid) => oid switch
    {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => null,
    };

    private static bool TryReadString(ReadOnlySpan<byte> der, out string value)
    {
        value = "";
        try
        {
            var reader = new AsnReader(der.ToArray(), AsnEncodingRules.DER);
            var tag = reader.PeekTag();
            if (tag.TagClass != TagClass.Universal) return false;
            value = reader.ReadCharacterString((UniversalTagNumber)tag.TagValue);
            return true;
        }
        catch (Exception e) when (e is AsnContentException or ArgumentException) { return false; }
    }

    private static string Escape(string value)
    {
        var text = new StringBuilder(value.Length + 4);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c is ',' or '+' or '"' or '\\' or '<' or '>' or ';'
                || (i == 0 && c is '#' or ' ')
                || (i == value.Length - 1 && c == ' '))
                text.Append('\\');
            text.Append(c);
        }
        return text.ToString();
    }
}
