using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Text;

namespace Coordination.Server.Sessions;

/// <summary>
/// The client side of one SASL exchange, the counterpart of <see cref="ISaslServer"/>: a member dialing another
/// authenticates with it (SASL between members, <see cref="Ensemble.MemberHandshake"/>).
/// </summary>
public interface ISaslClient : IDisposable
{
    /// <summary>The next token for the server: first with an empty challenge (the initial response), then with
    /// each challenge the server sends. Throws <see cref="SaslFailure"/> when the server's token is not acceptable.</summary>
    byte[] Evaluate(ReadOnlySpan<byte> challenge);

    /// <summary>The server's last token, sent with its success: checks that the server proved itself (DIGEST-MD5's
    /// rspauth; Kerberos mutual authentication and the security layer exchange done).</summary>
    void Complete(ReadOnlySpan<byte> outcome);
}

/// <summary>
/// SASL DIGEST-MD5 (RFC 2831), client side, as the one <see cref="DigestMd5Server"/> serves: qop auth, no
/// authorization id, the realm and digest-uri of the server's protocol; the server's rspauth is checked, so a
/// server that does not know the password cannot complete the exchange.
/// </summary>
public sealed class DigestMd5Client(string user, string password, string protocol, string realm) : ISaslClient
{
    private readonly string _cnonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
    private string? _rspauth;
    private int _step;

    public byte[] Evaluate(ReadOnlySpan<byte> challenge)
    {
        switch (_step++)
        {
            case 0:
                return [];   // DIGEST-MD5 has no initial response
            case 1:
                var d = DigestMd5.Parse(Encoding.UTF8.GetString(challenge));
                var nonce = d.TryGetValue("nonce", out var n) ? n : throw new SaslFailure("the challenge has no nonce");
                if (d.TryGetValue("realm", out var offered) && offered != realm) throw new SaslFailure($"the server's realm is {offered}, not {realm}");
                if (!d.GetValueOrDefault("qop", "auth").Split(',').Contains("auth")) throw new SaslFailure("the server does not offer qop auth");
                const string nc = "00000001", qop = "auth";
                var uri = protocol + "/" + realm;
                _rspauth = DigestMd5.Response(user, realm, password, nonce, _cnonce, null, nc, qop, ":" + uri);
                var response = DigestMd5.Response(user, realm, password, nonce, _cnonce, null, nc, qop, "AUTHENTICATE:" + uri);
                return Encoding.UTF8.GetBytes($"charset=utf-8,username=\"{Quote(user)}\",realm=\"{Quote(realm)}\",nonce=\"{Quote(nonce)}\"," +
                    $"nc={nc},cnonce=\"{Quote(_cnonce)}\",digest-uri=\"{Quote(uri)}\",maxbuf=65536,response={response},qop={qop}");
            default:
                throw new SaslFailure("a challenge after the digest-response");
        }
    }

    public void Complete(ReadOnlySpan<byte> outcome)
    {
        if (_rspauth is null) throw new SaslFailure("the server ended the exchange before the digest-response");
        var proof = DigestMd5.Parse(Encoding.UTF8.GetString(outcome)).GetValueOrDefault("rspauth") ?? "";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(_rspauth), Encoding.ASCII.GetBytes(proof.ToLowerInvariant())))
            throw new SaslFailure("the server's rspauth is wrong: it does not know the password");
    }

    private static string Quote(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"");

    public void Dispose() { }
}

/// <summary>
/// SASL GSSAPI (RFC 4752) with Kerberos v5, client side, as <see cref="GssapiServer"/> serves it: context tokens
/// with mutual authentication (the server's AP-REP proves it holds the service key), an empty token once the
/// context is established, then the server's wrapped security layer offer, answered with "no security layer".
/// The client's credentials are the process's default Kerberos credentials (the client keytab of
/// <see cref="KerberosKeys"/>), or <paramref name="credential"/>'s name and password when given.
/// </summary>
public sealed class GssapiClient(string servicePrincipal, NetworkCredential? credential = null) : ISaslClient
{
    private const byte NoSecurityLayer = 1;

    private readonly NegotiateAuthentication _context = new(new NegotiateAuthenticationClientOptions
    {
        Package = "Kerberos",
        TargetName = servicePrincipal,
        Credential = credential ?? CredentialCache.DefaultNetworkCredentials,
        RequireMutualAuthentication = true,
        RequiredProtectionLevel = ProtectionLevel.None,
    });
    private bool _layerChosen;

    public byte[] Evaluate(ReadOnlySpan<byte> challenge)
    {
        try
        {
            if (!_context.IsAuthenticated)
            {
                var token = _context.GetOutgoingBlob(challenge, out var status);
                if (status is not (NegotiateAuthenticationStatusCode.Completed or NegotiateAuthenticationStatusCode.ContinueNeeded))
                    throw new SaslFailure($"Kerberos context for {servicePrincipal} not established: {status}");
                return token ?? [];
            }
            if (_layerChosen) throw new SaslFailure("a challenge after the security layer choice");
            var offer = new ArrayBufferWriter<byte>(16);
            if (_context.Unwrap(challenge, offer, out _) != NegotiateAuthenticationStatusCode.Completed || offer.WrittenCount < 4)
                throw new SaslFailure("the server's security layer offer does not unwrap");
            if ((offer.WrittenSpan[0] & NoSecurityLayer) == 0) throw new SaslFailure("the server does not offer \"no security layer\"");
            var choice = new ArrayBufferWriter<byte>(64);
            if (_context.Wrap([NoSecurityLayer, 0, 0, 0], choice, requestEncryption: false, out _) != NegotiateAuthenticationStatusCode.Completed)
                throw new SaslFailure("wrapping the security layer choice failed");
            _layerChosen = true;
            return choice.WrittenSpan.ToArray();
        }
        catch (Exception e) when (e is not SaslFailure)
        {
            throw new SaslFailure($"GSSAPI: {e.GetType().Name}: {e.Message}");
        }
    }

    public void Complete(ReadOnlySpan<byte> outcome)
    {
        if (!_layerChosen || !outcome.IsEmpty) throw new SaslFailure("the server ended the GSSAPI exchange early");
    }

    public void Dispose() => _context.Dispose();
}
