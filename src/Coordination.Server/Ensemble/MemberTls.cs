using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Akka.Configuration;
using Coordination.Server.Network;

namespace Coordination.Server.Ensemble;

/// <summary>
/// <c>coordination.ensemble.ssl</c> (ZooKeeper's sslQuorum and ssl.quorum.*): mutual TLS on every member link. The
/// store keys are the client port's (<see cref="ClientTlsSettings"/>); a member always presents its certificate and
/// requires the other end's.
/// </summary>
public sealed record MemberTlsSettings(bool Enabled, ClientTlsSettings Stores, bool HostnameVerification, TimeSpan HandshakeTimeout)
{
    private static readonly Config Defaults = ConfigurationFactory.ParseString("""
        key-store-location = "", key-store-password = "", key-store-type = ""
        trust-store-location = "", trust-store-password = "", trust-store-type = ""
        enabled-protocols = ["TLSv1.2", "TLSv1.3"], reload-interval = 10s
        hostname-verification = on, handshake-timeout = 5s
        client-auth = need, port-unification = off
        """);

    public static readonly MemberTlsSettings Disabled = new(false, ClientTlsSettings.Create(Defaults), true, TimeSpan.FromSeconds(5));

    public static MemberTlsSettings Create(Config? ssl)
    {
        if (ssl is null || ssl.IsEmpty || !ssl.GetBoolean("enabled", false)) return Disabled;
        var c = ssl.WithFallback(Defaults);
        var settings = new MemberTlsSettings(true, ClientTlsSettings.Create(c), c.GetBoolean("hostname-verification"), c.GetTimeSpan("handshake-timeout"));
        if (settings.Stores.KeyStoreLocation.Length == 0)
            throw new ConfigurationException("coordination.ensemble.ssl: member TLS needs key-store-location (this member's certificate and key)");
        return settings;
    }

    /// <summary>The same section as HOCON, for the member transport's settings (<see cref="EnsembleSettings.RemotingConfig"/>).</summary>
    public string ToHocon()
    {
        if (!Enabled) return "ssl.enabled = off";
        static string Q(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var s = Stores;
        var protocols = new List<string>();
        if (s.Protocols.HasFlag(SslProtocols.Tls12)) protocols.Add("\"TLSv1.2\"");
        if (s.Protocols.HasFlag(SslProtocols.Tls13)) protocols.Add("\"TLSv1.3\"");
        return new StringBuilder("ssl {\n")
            .Append("  enabled = on\n")
            .Append($"  key-store-location = {Q(s.KeyStoreLocation)}, key-store-password = {Q(s.KeyStorePassword)}, key-store-type = {Q(s.KeyStoreType)}\n")
            .Append($"  trust-store-location = {Q(s.TrustStoreLocation)}, trust-store-password = {Q(s.TrustStorePassword)}, trust-store-type = {Q(s.TrustStoreType)}\n")
            .Append($"  enabled-protocols = [{string.Join(", ", protocols)}]\n")
            .Append($"  reload-interval = {(long)s.ReloadInterval.TotalMilliseconds}ms\n")
            .Append($"  hostname-verification = {(HostnameVerification ? "on" : "off")}\n")
            .Append($"  handshake-timeout = {(long)HandshakeTimeout.TotalMilliseconds}ms\n")
            .Append('}').ToString();
    }
}

/// <summary>
/// Mutual TLS for member links (<see cref="SocketTransport"/>): both ends present a certificate and verify the other's
/// against the trust store. The dialer checks the acceptor's certificate against the configured host of the member it
/// dials (TLS's own hostname verification); the acceptor, once the dialer has claimed a member id, checks the
/// dialer's certificate against that member's configured host (<see cref="CheckPeer"/>): SAN DNS or IP entries, or
/// the CN without them, as ZooKeeper's ssl.quorum.hostnameVerification. Stores are reloaded when their files change.
/// </summary>
public sealed class MemberTls
{
    private sealed record Options(SslServerAuthenticationOptions Accept, SslClientAuthenticationOptions Dial);

    private readonly MemberTlsSettings _settings;
    private readonly TlsStoreFiles<Options> _options;

    public MemberTls(MemberTlsSettings settings, Action<string> warn)
    {
        _settings = settings;
        _options = new TlsStoreFiles<Options>(settings.Stores.KeyStoreLocation, settings.Stores.TrustStoreLocation,
            settings.Stores.ReloadInterval, Load, warn, "member TLS certificate");
    }

    public TimeSpan HandshakeTimeout => _settings.HandshakeTimeout;

    private Options Load()
    {
        var s = _settings.Stores;
        var (certificate, intermediates) = ClientTls.LoadKeyStore(s.KeyStoreLocation, s.KeyStorePassword, s.KeyStoreType);
        var trust = s.TrustStoreLocation.Length == 0 ? null : ClientTls.LoadTrustStore(s.TrustStoreLocation, s.TrustStorePassword, s.TrustStoreType);
        var context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
        var verifyNames = _settings.HostnameVerification;
        return new Options(
            new SslServerAuthenticationOptions
            {
                ServerCertificateContext = context,
                EnabledSslProtocols = s.Protocols,
                ClientCertificateRequired = true,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                CertificateChainPolicy = ClientTls.ChainPolicy(trust),
                // No certificate, or one that does not chain to the trust store: refused. Its name is checked once the
                // dialer has said which member it is (CheckPeer).
                RemoteCertificateValidationCallback = (_, cert, _, errors) => cert is not null && errors == SslPolicyErrors.None,
            },
            new SslClientAuthenticationOptions
            {
                ClientCertificateContext = context,
                EnabledSslProtocols = s.Protocols,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                CertificateChainPolicy = ClientTls.ChainPolicy(trust),
                RemoteCertificateValidationCallback = (_, cert, _, errors) => cert is not null &&
                    (verifyNames ? errors : errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) == SslPolicyErrors.None,
            });
    }

    /// <summary>The accepting side's TLS handshake on <paramref name="socket"/>; the socket stays the caller's.</summary>
    public Task<SslStream> AcceptAsync(Socket socket, CancellationToken ct) =>
        HandshakeAsync(socket, tls => tls.AuthenticateAsServerAsync(_options.Current.Accept, ct));

    /// <summary>The dialing side's TLS handshake with the member whose configured host is <paramref name="host"/>.</summary>
    public Task<SslStream> DialAsync(Socket socket, string host, CancellationToken ct)
    {
        var template = _options.Current.Dial;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ClientCertificateContext = template.ClientCertificateContext,
            EnabledSslProtocols = template.EnabledSslProtocols,
            CertificateRevocationCheckMode = template.CertificateRevocationCheckMode,
            CertificateChainPolicy = template.CertificateChainPolicy,
            RemoteCertificateValidationCallback = template.RemoteCertificateValidationCallback,
        };
        return HandshakeAsync(socket, tls => tls.AuthenticateAsClientAsync(options, ct));
    }

    private static async Task<SslStream> HandshakeAsync(Socket socket, Func<SslStream, Task> authenticate)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            await authenticate(tls).ConfigureAwait(false);
            return tls;
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The accepting side, once the dialer has claimed to be <paramref name="member"/>: its (verified)
    /// certificate must be valid for that member's configured <paramref name="host"/>.</summary>
    public void CheckPeer(SslStream tls, long member, string host)
    {
        if (!_settings.HostnameVerification) return;
        var certificate = tls.RemoteCertificate as X509Certificate2
            ?? throw new MemberAuthException($"the dialer claims to be member {member} but presented no certificate");
        if (!certificate.MatchesHostname(host))
            throw new MemberAuthException($"the dialer claims to be member {member}, but its certificate ({certificate.Subject}) is not valid for that member's host {host}");
    }
}
