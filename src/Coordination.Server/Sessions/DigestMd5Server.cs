using System.Security.Cryptography;
using System.Text;

namespace Coordination.Server.Sessions;

/// <summary>
/// The server side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper uses it for clients: protocol "zookeeper", server name
/// "zk-sasl-md5", qop auth only (no integrity or privacy layer). Two steps: any first token (the Java client's is
/// empty) gets the challenge; the client's digest-response is checked against the configured password and answered
/// with rspauth, after which the client is authenticated as its authorization id. Anything else is a failure.
/// One instance per connection attempt; not thread-safe (the session actor owns it).
/// </summary>
public sealed class DigestMd5Server(IReadOnlyDictionary<string, string> users) : ISaslServer
{
    public const string Realm = "zk-sasl-md5";
    public const string DigestUri = "zookeeper/" + Realm;

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
                return Encoding.UTF8.GetBytes($"realm=\"{Realm}\",nonce=\"{_nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess");
            case 1:
                return Verify(Parse(Encoding.UTF8.GetString(response)));
            default:
                throw new SaslFailure("the exchange is already complete");
        }
    }

    private byte[] Verify(Dictionary<string, string> d)
    {
        string Get(string key) => d.TryGetValue(key, out var v) ? v : throw new SaslFailure($"no {key}");
        var user = Get("username");
        if (Get("nonce") != _nonce) throw new SaslFailure("wrong nonce");
        if (d.TryGetValue("realm", out var realm) && realm != Realm) throw new SaslFailure("wrong realm");
        var qop = d.GetValueOrDefault("qop", "auth");
        if (qop != "auth") throw new SaslFailure($"unsupported qop {qop}");
        var nc = Get("nc");
        if (nc != "00000001") throw new SaslFailure("wrong nonce count");
        var cnonce = Get("cnonce");
        var uri = Get("digest-uri");
        if (uri != DigestUri) throw new SaslFailure($"wrong digest-uri {uri}");
        var authzid = d.GetValueOrDefault("authzid");
        if (authzid is not null && authzid != user) throw new SaslFailure("authzid differs from the username");
        if (!users.TryGetValue(user, out var password)) throw new SaslFailure("unknown user");

        // A1 = H(user:realm:password) ":" nonce ":" cnonce [":" authzid]
        var a1 = new List<byte>(MD5.HashData(Credentials($"{user}:{Realm}:{password}")));
        a1.AddRange(Encoding.UTF8.GetBytes($":{_nonce}:{cnonce}" + (authzid is null ? "" : ":" + authzid)));
        var ha1 = Hex(MD5.HashData(a1.ToArray()));
        string Kd(string a2) => Hex(MD5.HashData(Encoding.ASCII.GetBytes($"{ha1}:{_nonce}:{nc}:{cnonce}:{qop}:{Hex(MD5.HashData(Encoding.ASCII.GetBytes(a2)))}")));

        var expected = Encoding.ASCII.GetBytes(Kd("AUTHENTICATE:" + uri));
        if (!CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(Get("response").ToLowerInvariant())))
            throw new SaslFailure("wrong password");
        IsComplete = true;
        AuthorizationId = user;
        return Encoding.ASCII.GetBytes("rspauth=" + Kd(":" + uri));
    }

    public void Dispose() { }

    /// <summary>RFC 2831 2.1.2.1: with charset=utf-8, a string whose characters all fit ISO 8859-1 is hashed in 8859-1.</summary>
    private static byte[] Credentials(string s) =>
        s.All(c => c <= '\u00ff') ? Encoding.Latin1.GetBytes(s) : Encoding.UTF8.GetBytes(s);

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    /// <summary>The digest-response's directives: key=value or key="quoted value" (backslash escapes), comma-separated.</summary>
    internal static Dictionary<string, string> Parse(string text)
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
