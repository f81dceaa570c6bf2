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
/// </summary>
public static class MemberHandshake
{
    private const int NonceBytes = 32;
    private const int MacBytes = 32;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "CAKM"u8;
    public const int HelloBytes = 4 + 1 + 8 + 8 + NonceBytes;
    public const int ChallengeBytes = 4 + 1 + NonceBytes;

    /// <summary>The dialing side: proves itself as <paramref name="myId"/> to the member <paramref name="expectedId"/>
    /// and returns once that member has proven itself back. Throws <see cref="MemberAuthException"/> otherwise.
    /// Without a secret (member TLS) it only sends its claim.</summary>
    public static async Task DialAsync(Stream link, byte[]? secret, long myId, long expectedId, CancellationToken ct)
    {
        var hello = new byte[HelloBytes];
        Magic.CopyTo(hello);
        hello[4] = Version;
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(5), myId);
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(13), expectedId);
        RandomNumberGenerator.Fill(hello.AsSpan(21, NonceBytes));
        await link.WriteAsync(hello, ct).ConfigureAwait(false);
        if (secret is null) return;

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
    /// itself back. <paramref name="isMember"/> says which dialer ids are configured members. Without a secret (member
    /// TLS) it returns the id the dialer claims, for the caller to check against its certificate.</summary>
    public static async Task<long> AcceptAsync(Stream link, byte[]? secret, long myId, Func<long, bool> isMember, CancellationToken ct)
    {
        var hello = await ReceiveAsync(link, HelloBytes, ct).ConfigureAwait(false);
        if (!hello.AsSpan(0, 4).SequenceEqual(Magic) || hello[4] != Version)
            throw new MemberAuthException("not a member handshake");
        var dialerId = BinaryPrimitives.ReadInt64BigEndian(hello.AsSpan(5));
        var acceptorId = BinaryPrimitives.ReadInt64BigEndian(hello.AsSpan(13));
        if (acceptorId != myId) throw new MemberAuthException($"the dialer expected member {acceptorId}, this is member {myId}");
        if (dialerId == myId || !isMember(dialerId)) throw new MemberAuthException($"the dialer claims to be {dialerId}, which is not another member");
        if (secret is null) return dialerId;
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
        return dialerId;
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
    private static async Task<byte[]> ReceiveAsync(Stream link, int count, CancellationToken ct)
    {
        var bytes = new byte[count];
        if (await link.ReadAtLeastAsync(bytes, count, throwOnEndOfStream: false, ct).ConfigureAwait(false) < count)
            throw new MemberAuthException("the peer closed the connection during the handshake");
        return bytes;
    }
}

public sealed class MemberAuthException(string message) : Exception(message);
