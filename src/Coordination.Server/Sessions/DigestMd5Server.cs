using System.Security.Cryptography;
using System.Text;

namespace Coordination.Server.Sessions;

/// <summary>
/// The server side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper uses it for clients: protocol "zookeeper", server name
/// "zk-sasl-md5", qop auth only (no integrity or privacy layer). Two steps: any first token (the Java client's is
/// empty) gets the challenge; the client's digest-response is checked against the configured password and answered
/// with rspauth, after which the client is authenticated as its authorization id. Anything else is a failure.
/// One instance per connection attempt; not thread-safe (the session actor owns it). Members use it with
/// ZooKeeper's quorum names (<see cref="QuorumProtocol"/>, <see cref="QuorumRealm"/>).
/// </summary>
public sealed class DigestMd5Server(IReadOnlyDictionary<string, string> users, string protocol = DigestMd5Server.Protocol, string realm = DigestMd5Server.Realm) : ISaslServer
{
    public const string Protocol = "zookeeper";
    public const string Realm = "zk-sasl-md5";
    /// <summary>ZooKeeper's names for SASL between members (QuorumAuth.QUORUM_SERVER_PROTOCOL_NAME and _SASL_DIGEST).</summary>
    public const string QuorumProtocol = "zookeeper-quorum";
    public const string QuorumRealm = "zk-quorum-sasl-md5";

    private readonly string _digestUri = protocol + "/" + realm;

    private readonly string _nonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
    private int _step;

    public bool IsComplete { get; private set; }
    /// <summary>Set once complete: the id the client acts as (its authzid, which must be its username).</summary>
    public string? AuthorizationId { get; private set; }

    /// <summary>The next server token; throws <see cref="SaslFailure"/> when the client's response is not accepted.</summary>
    public byte[]? Evaluate(ReadOnlySpan<byte> response)
    {
        switch (_step++)
        {
            case 0:
                return Encoding.UTF8.GetBytes($"realm=\"{realm}\",nonce=\"{_nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess");
            case 1:
                return Verify(DigestMd5.Parse(Encoding.UTF8.GetString(response)));
            default:
                throw new SaslFailure("the exchange is already complete");
        }
    }

    private byte[] Verify(Dictionary<string, string> d)
    {
        string Get(string key) => d.TryGetValue(key, out var v) ? v : throw new SaslFailure($"no {key}");
        var user = Get("username");
        if (Get("nonce") != _nonce) throw new SaslFailure("wrong nonce");
        if (d.TryGetValue("realm", out var claimedRealm) && claimedRealm != realm) throw new SaslFailure("wrong realm");
        var qop = d.GetValueOrDefault("qop", "auth");
        if (qop != "auth") throw new SaslFailure($"unsupported qop {qop}");
        var nc = Get("nc");
        if (nc != "00000001") throw new SaslFailure("wrong nonce count");
        var cnonce = Get("cnonce");
        var uri = Get("digest-uri");
        if (uri != _digestUri) throw new SaslFailure($"wrong digest-uri {uri}");
        var authzid = d.GetValueOrDefault("authzid");
        if (authzid is not null && authzid != user) throw new SaslFailure("authzid differs from the username");
        if (!users.TryGetValue(user, out var password)) throw new SaslFailure("unknown user");

        var expected = Encoding.ASCII.GetBytes(DigestMd5.Response(user, realm, password, _nonce, cnonce, authzid, nc, qop, "AUTHENTICATE:" + uri));
        if (!CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(Get("response").ToLowerInvariant())))
            throw new SaslFailure("wrong password");
        IsComplete = true;
        AuthorizationId = user;
        return Encoding.ASCII.GetBytes("rspauth=" + DigestMd5.Response(user, realm, password, _nonce, cnonce, authzid, nc, qop, ":" + uri));
    }

    public void Dispose() { }
}

/// <summary>What both sides of DIGEST-MD5 compute (RFC 2831 2.1.2.1), and its directive syntax.</summary>
internal static class DigestMd5
{
    /// <summary>KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))) with A1 = H(user:realm:password):nonce:cnonce[:authzid]:
    /// the client's response for A2 = "AUTHENTICATE:uri", the server's rspauth for A2 = ":uri".</summary>
    public static string Response(string user, string realm, string password, string nonce, string cnonce, string? authzid, string nc, string qop, string a2)
    {
        var a1 = new List<byte>(MD5.HashData(Credentials($"{user}:{realm}:{password}")));
        a1.AddRange(Encoding.UTF8.GetBytes($":{nonce}:{cnonce}" + (authzid is null ? "" : ":" + authzid)));
        var ha1 = Hex(MD5.HashData(a1.ToArray()));
        return Hex(MD5.HashData(Encoding.ASCII.GetBytes($"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{Hex(MD5.HashData(Encoding.ASCII.GetBytes(a2)))}")));
    }

    /// <summary>RFC 2831 2.1.2.1: with charset=utf-8, a string whose characters all fit ISO 8859-1 is hashed in 8859-1.</summary>
    private static byte[] Credentials(string s) =>
        s.All(c => c <= '\u00ff') ? Encoding.Latin1.GetBytes(s) : Encoding.UTF8.GetBytes(s);

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    /// <summary>A DIGEST-MD5 message's directives: key=value or key="quoted value" (backslash escapes), comma-separated.</summary>
    public static Dictionary<string, string> Parse(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && (text[i] == ',' || char.IsWhiteSpace(text[i]))) i++;
            if (i >= text.Length) break;
            var eq = text.IndexOf('=', i);
            if (eq < 0) throw new SaslFailure("malformed directive");
            var key = text[i..eq].Trim();
            i = eq + 1;
            var value = new StringBuilder();
            if (i < text.Length && text[i] == '"')
            {
                for (i++; ; i++)
                {
                    if (i >= text.Length) throw new SaslFailure("unterminated quoted value");
                    if (text[i] == '\\' && i + 1 < text.Length) { value.Append(text[++i]); continue; }
                    if (text[i] == '"') { i++; break; }
                    value.Append(text[i]);
                }
            }
            else
            {
                var end = text.IndexOf(',', i);
                if (end < 0) end = text.Length;
                value.Append(text.AsSpan(i, end - i).Trim());
                i = end;
            }
            if (!result.TryAdd(key, value.ToString())) throw new SaslFailure($"directive {key} repeated");
        }
        return result;
    }
}

/// <summary>A SASL exchange that must end with AuthFailed.</summary>
public sealed class SaslFailure(string reason) : Exception(reason);
