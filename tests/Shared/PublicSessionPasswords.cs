using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Coordination.Tests.Shared;

/// <summary>
/// Passwords an attacker can compute for a session id from public information alone: what a hijack attempt
/// (re-attaching to a session whose id a four-letter word or a log printed) would try.
/// </summary>
public static class PublicSessionPasswords
{
    /// <summary>This server's public default secret before issue 17 (reference.conf session-secret).</summary>
    public const long OldDefaultSecret = 3141592653589793;

    public static IEnumerable<(string Scheme, byte[] Password)> For(long sessionId)
    {
        yield return ("SHA-256(id, the old public default secret)", OldScheme(sessionId));
        yield return ("Apache ZooKeeper's java.util.Random(id ^ superSecret)", ZooKeeperScheme(sessionId));
        yield return ("16 zero bytes", new byte[16]);
    }

    /// <summary>The password scheme this server had until issue 17: SHA-256 of the big-endian id and secret, truncated.</summary>
    public static byte[] OldScheme(long sessionId)
    {
        Span<byte> input = stackalloc byte[16];
        BinaryPrimitives.WriteInt64BigEndian(input, sessionId);
        BinaryPrimitives.WriteInt64BigEndian(input[8..], OldDefaultSecret);
        return SHA256.HashData(input)[..16];
    }

    /// <summary>
    /// Apache ZooKeeper's (3.8) session password: SessionTrackerImpl's fixed superSecret 0xB3415C00 and
    /// <c>new Random(id ^ superSecret).nextBytes(new byte[16])</c> (java.util.Random's documented 48-bit LCG).
    /// </summary>
    public static byte[] ZooKeeperScheme(long sessionId)
    {
        const long multiplier = 0x5DEECE66DL, mask = (1L << 48) - 1;
        var seed = ((sessionId ^ 0xB3415C00L) ^ multiplier) & mask;
        var bytes = new byte[16];
        for (var i = 0; i < bytes.Length;)
        {
            seed = (seed * multiplier + 0xBL) & mask;
            var rnd = (int)((ulong)seed >> 16);   // next(32)
            for (var n = Math.Min(bytes.Length - i, 4); n-- > 0; rnd >>= 8) bytes[i++] = (byte)rnd;
        }
        return bytes;
    }
}
