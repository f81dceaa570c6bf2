using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Mutual authentication of a member link, run on the raw socket (or inside member TLS, <see cref="MemberTls"/>) before
/// Akka sees it (<see cref="SocketTransport"/>).
/// Both ends prove knowledge of the ensemble's shared secret over two fresh nonces, so a recorded handshake cannot
/// be replayed, and over their own id, the other end's id and their role, so a proof cannot be reflected back or
/// claimed for another member. The acceptor answers a stranger with nothing but its random challenge: it computes
/// no proof for anyone who has not proven first. Every message has a fixed size, so a peer cannot make either side
/// buffer more than these few bytes, and neither side reads a byte past the handshake (Akka's frames follow).
/// <code>
/// dialer   → acceptor  HELLO     "CAKM" version dialer-id acceptor-id nonce-d   (53 bytes)
/// acceptor → dialer    CHALLENGE "CAKM" version nonce-a                         (37 bytes)
/// dialer   → acceptor  PROOF     HMAC-SHA256(secret, "dialer"   ‖ dialer-id ‖ acceptor-id ‖ nonce-d ‖ nonce-a)
/// acceptor → dialer    CONFIRM   HMAC-SHA256(secret, "acceptor" ‖ acceptor-id ‖ dialer-id ‖ nonce-d ‖ nonce-a)
/// </code>
/// With member TLS and no secret, the certificates authenticate and only HELLO is sent: the dialer's claim of its
/// id, which the acceptor checks against the dialer's certificate (<see cref="MemberTls.CheckPeer"/>).
/// <para>With SASL between members (<see cref="MemberSaslSettings"/>), HELLO says so in its version byte (2), and after
/// the rest the dialer authenticates as a SASL client (DIGEST-MD5 or Kerberos); the name it authenticates as must be
/// the member id it claimed, or the acceptor closes the link without a word. Tokens are length-prefixed and
/// bounded in size and number, as ZooKeeper's QuorumAuthPacket exchange:</para>
/// <code>
/// dialer   → acceptor  TOKEN   length(4) token                     (at most 64 KiB, at most 10 rounds)
/// acceptor → dialer    REPLY   status(1: continue, 2: success) length(4) token
/// </code>
/// </summary>
public static class MemberHandshake
{
    private const int NonceBytes = 32;
    private const int MacBytes = 32;
    private const byte Version = 1;
    /// <summary>HELLO's version byte when the dialer authenticates with SASL after the rest of the handshake.</summary>
    private const byte SaslVersion = 2;
    private const byte SaslContinue = 1, SaslSuccess = 2;
    private const int MaxSaslToken = 64 * 1024, MaxSaslRounds = 10;
    private static ReadOnlySpan<byte> Magic => "CAKM"u8;
    public const int HelloBytes = 4 + 1 + 8 + 8 + NonceBytes;
    public const int ChallengeBytes = 4 + 1 + NonceBytes;

    /// <summary>The dialing side: proves itself as <paramref name="myId"/> to the member <paramref name="expectedId"/>
    /// and returns once that member has proven itself back. Throws <see cref="MemberAuthException"/> otherwise.
    /// Without a secret (member TLS) it only sends its claim. With <paramref name="sasl"/> it then authenticates with
    /// that SASL client.</summary>
    public static async Task DialAsync(Stream link, byte[]? secret, Func<Sessions.ISaslClient>? sasl, long myId, long expectedId, CancellationToken ct)
    {
        var hello = new byte[HelloBytes];
        Magic.CopyTo(hello);
        hello[4] = sasl is null ? Version : SaslVersion;
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(5), myId);
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(13), expectedId);
        RandomNumberGenerator.Fill(hello.AsSpan(21, NonceBytes));
        await link.WriteAsync(hello, ct).ConfigureAwait(false);
        if (secret is not null) await ProveAsync(link, secret, myId, expectedId, hello, ct).ConfigureAwait(false);
        if (sasl is not null) await SaslDialAsync(link, sasl, ct).ConfigureAwait(false);
    }

    private static async Task ProveAsync(Stream link, byte[] secret, long myId, long expectedId, byte[] hello, CancellationToken ct)
    {
        var challenge = await ReceiveAsync(link, ChallengeBytes, ct).ConfigureAwait(false);
        if (!challenge.AsSpan(0, 4).SequenceEqual(Magic) || challenge[4] != Version)
            throw new MemberAuthException("the peer does not speak the member handshake");
        var dialerNonce = hello.AsSpan(21, NonceBytes).ToArray();
        var acceptorNonce = challenge.AsSpan(5, NonceBytes).ToArray();
        await link.WriteAsync(Mac(secret, "dialer", myId, expectedId, dialerNonce, acceptorNonce), ct).ConfigureAwait(false);

        var confirm = await ReceiveAsync(link, MacBytes, ct).ConfigureAwait(false);
        if (!CryptographicOperations.FixedTimeEquals(confirm, Mac(secret, "acceptor", expectedId, myId, dialerNonce, acceptorNonce)))
            throw new MemberAuthException($"the peer did not prove it is member {expectedId}");
    }

    /// <summary>The accepting side: returns the id of the member that proved itself, once this side has proven
    /// itself back. <paramref name="hostOf"/> gives the configured host of each member id (null: not a member). Without
    /// a secret (member TLS) it returns the id the dialer claims, for the caller to check against its certificate.
    /// With <paramref name="sasl"/> enabled, a dialer that says it authenticates with SASL must do so as the member it
    /// claims; one that does not is refused when <see cref="MemberSaslSettings.ServerRequire"/> is on.</summary>
    public static async Task<long> AcceptAsync(Stream link, byte[]? secret, MemberSaslSettings sasl, long myId, Func<long, string?> hostOf, CancellationToken ct)
    {
        var hello = await ReceiveAsync(link, HelloBytes, ct).ConfigureAwait(false);
        if (!hello.AsSpan(0, 4).SequenceEqual(Magic) || hello[4] is not (Version or SaslVersion))
            throw new MemberAuthException("not a member handshake");
        var bySasl = hello[4] == SaslVersion;
        var dialerId = BinaryPrimitives.ReadInt64BigEndian(hello.AsSpan(5));
        var acceptorId = BinaryPrimitives.ReadInt64BigEndian(hello.AsSpan(13));
        if (acceptorId != myId) throw new MemberAuthException($"the dialer expected member {acceptorId}, this is member {myId}");
        if (dialerId == myId || hostOf(dialerId) is not { } dialerHost) throw new MemberAuthException($"the dialer claims to be {dialerId}, which is not another member");
        if (bySasl && !sasl.Enabled) throw new MemberAuthException("the dialer authenticates with SASL, which this member does not have (ensemble.sasl.enabled)");
        if (!bySasl && sasl.ServerRequire) throw new MemberAuthException($"the dialer (claiming member {dialerId}) does not authenticate with SASL, which this member requires (ensemble.sasl.server-require-sasl)");
        if (secret is not null) await CheckProofAsync(link, secret, myId, dialerId, hello, ct).ConfigureAwait(false);
        if (bySasl) await SaslAcceptAsync(link, sasl, name => sasl.Refuses(dialerId, dialerHost, name), ct).ConfigureAwait(false);
        return dialerId;
    }

    private static async Task CheckProofAsync(Stream link, byte[] secret, long myId, long dialerId, byte[] hello, CancellationToken ct)
    {
        var dialerNonce = hello.AsSpan(21, NonceBytes).ToArray();

        var challenge = new byte[ChallengeBytes];
        Magic.CopyTo(challenge);
        challenge[4] = Version;
        RandomNumberGenerator.Fill(challenge.AsSpan(5, NonceBytes));
        var acceptorNonce = challenge.AsSpan(5, NonceBytes).ToArray();
        await link.WriteAsync(challenge, ct).ConfigureAwait(false);

        var proof = await ReceiveAsync(link, MacBytes, ct).ConfigureAwait(false);
        if (!CryptographicOperations.FixedTimeEquals(proof, Mac(secret, "dialer", dialerId, myId, dialerNonce, acceptorNonce)))
            throw new MemberAuthException($"the dialer did not prove it is member {dialerId}");
        await link.WriteAsync(Mac(secret, "acceptor", myId, dialerId, dialerNonce, acceptorNonce), ct).ConfigureAwait(false);
    }

    private static async Task SaslDialAsync(Stream link, Func<Sessions.ISaslClient> newClient, CancellationToken ct)
    {
        using var client = newClient();
        try
        {
            var token = client.Evaluate([]);
            for (var round = 0; round < MaxSaslRounds; round++)
            {
                var frame = new byte[4 + token.Length];
                BinaryPrimitives.WriteInt32BigEndian(frame, token.Length);
                token.CopyTo(frame, 4);
                await link.WriteAsync(frame, ct).ConfigureAwait(false);
                var head = await ReceiveAsync(link, 5, ct, "the peer refused our SASL authentication (it closed the connection)").ConfigureAwait(false);
                var reply = await ReceiveAsync(link, TokenLength(head.AsSpan(1)), ct).ConfigureAwait(false);
                if (head[0] == SaslSuccess)
                {
                    client.Complete(reply);
                    return;
                }
                if (head[0] != SaslContinue) throw new MemberAuthException($"SASL reply status {head[0]}");
                token = client.Evaluate(reply);
            }
        }
        catch (Sessions.SaslFailure e)
        {
            throw new MemberAuthException("SASL: " + e.Message);
        }
        throw new MemberAuthException($"no SASL outcome after {MaxSaslRounds} rounds");
    }

    /// <summary>Serves the dialer's SASL exchange; before its success goes out, <paramref name="refuses"/> checks the
    /// name it authenticated as. A failure closes the link without a reply.</summary>
    private static async Task SaslAcceptAsync(Stream link, MemberSaslSettings sasl, Func<string, string?> refuses, CancellationToken ct)
    {
        using var server = sasl.NewServer();
        for (var round = 0; round < MaxSaslRounds; round++)
        {
            var token = await ReceiveAsync(link, TokenLength(await ReceiveAsync(link, 4, ct).ConfigureAwait(false)), ct).ConfigureAwait(false);
            byte[] reply;
            try
            {
                reply = server.Evaluate(token) ?? [];
            }
            catch (Sessions.SaslFailure e)
            {
                throw new MemberAuthException("SASL: " + e.Message);
            }
            var done = server.IsComplete;
            if (done && refuses(server.AuthorizationId!) is { } why) throw new MemberAuthException("SASL: " + why);
            var frame = new byte[5 + reply.Length];
            frame[0] = done ? SaslSuccess : SaslContinue;
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), reply.Length);
            reply.CopyTo(frame, 5);
            await link.WriteAsync(frame, ct).ConfigureAwait(false);
            if (done) return;
        }
        throw new MemberAuthException($"no SASL outcome after {MaxSaslRounds} rounds");
    }

    private static int TokenLength(ReadOnlySpan<byte> prefix)
    {
        var length = BinaryPrimitives.ReadInt32BigEndian(prefix);
        return length is >= 0 and <= MaxSaslToken ? length : throw new MemberAuthException($"a SASL token of {length} bytes (at most {MaxSaslToken})");
    }

    private static byte[] Mac(byte[] secret, string role, long prover, long verifier, byte[] dialerNonce, byte[] acceptorNonce)
    {
        var message = new byte[role.Length + 16 + 2 * NonceBytes];
        var at = System.Text.Encoding.ASCII.GetBytes(role, message);
        BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(at), prover);
        BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(at + 8), verifier);
        dialerNonce.CopyTo(message, at + 16);
        acceptorNonce.CopyTo(message, at + 16 + NonceBytes);
        return HMACSHA256.HashData(secret, message);
    }

    /// <summary>Exactly <paramref name="count"/> bytes: never a byte past the handshake, Akka's frames follow.</summary>
    private static async Task<byte[]> ReceiveAsync(Stream link, int count, CancellationToken ct, string closed = "the peer closed the connection during the handshake")
    {
        var bytes = new byte[count];
        if (await link.ReadAtLeastAsync(bytes, count, throwOnEndOfStream: false, ct).ConfigureAwait(false) < count)
            throw new MemberAuthException(closed);
        return bytes;
    }
}

public sealed class MemberAuthException(string message) : Exception(message);
