using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Coordination.Core;

/// <summary>
/// Leader-side session liveness (ZooKeeper's ExpiryQueue): sessions are bucketed by tick; a touch moves a session
/// to the bucket of now + timeout, rounded up to the next tick. Pure: time is a parameter.
/// <para>The deadline of a touch at <c>now</c> is <c>((now + timeout) / tick + 1) * tick</c>: strictly after
/// now + timeout, on a tick boundary (ZooKeeper's roundToNextInterval).</para>
/// </summary>
public sealed class SessionExpiry(long tickMs)
{
    private readonly long _tick = tickMs > 0 ? tickMs : throw new ArgumentOutOfRangeException(nameof(tickMs));
    private readonly SortedDictionary<long, HashSet<long>> _buckets = new();
    private readonly Dictionary<long, long> _deadlines = new();

    /// <summary>The bucket a touch at <paramref name="nowMs"/> with <paramref name="timeoutMs"/> lands in.</summary>
    public long DeadlineFor(int timeoutMs, long nowMs) => ((nowMs + timeoutMs) / _tick + 1) * _tick;

    public void Touch(long sessionId, int timeoutMs, long nowMs)
    {
        var deadline = DeadlineFor(timeoutMs, nowMs);
        if (_deadlines.TryGetValue(sessionId, out var previous))
        {
            if (previous == deadline) return;
            RemoveFromBucket(sessionId, previous);
        }
        _deadlines[sessionId] = deadline;
        if (!_buckets.TryGetValue(deadline, out var bucket))
        {
            bucket = new HashSet<long>();
            _buckets.Add(deadline, bucket);
        }
        bucket.Add(sessionId);
    }

    private void RemoveFromBucket(long sessionId, long deadline)
    {
        if (_buckets.TryGetValue(deadline, out var bucket) && bucket.Remove(sessionId) && bucket.Count == 0)
            _buckets.Remove(deadline);
    }

    public void Remove(long sessionId)
    {
        if (_deadlines.Remove(sessionId, out var deadline)) RemoveFromBucket(sessionId, deadline);
    }

    /// <summary>The tracked sessions by deadline bucket, sorted (ZooKeeper's getSessionExpiryMap, for the dump command).</summary>
    public IReadOnlyDictionary<long, long[]> Buckets() =>
        _buckets.ToDictionary(b => b.Key, b => b.Value.Order().ToArray());

    /// <summary>Sessions whose deadline is at or before <paramref name="nowMs"/>; they are removed from tracking.
    /// Ordered by deadline, then session id.</summary>
    public IReadOnlyList<long> TakeExpired(long nowMs)
    {
        List<long>? expired = null;
        while (_buckets.Count > 0)
        {
            long deadline;
            HashSet<long> bucket;
            using (var e = _buckets.GetEnumerator())
            {
                e.MoveNext();
                (deadline, bucket) = (e.Current.Key, e.Current.Value);
            }
            if (deadline > nowMs) break;
            _buckets.Remove(deadline);
            var ids = new long[bucket.Count];
            bucket.CopyTo(ids);
            Array.Sort(ids);
            expired ??= new List<long>(ids.Length);
            foreach (var id in ids)
            {
                _deadlines.Remove(id);
                expired.Add(id);
            }
        }
        return (IReadOnlyList<long>?)expired ?? Array.Empty<long>();
    }

    /// <summary>The earliest deadline tracked, or null when no session is tracked (to schedule the next check).</summary>
    public long? NextDeadline
    {
        get
        {
            if (_buckets.Count == 0) return null;
            using var e = _buckets.GetEnumerator();
            e.MoveNext();
            return e.Current.Key;
        }
    }

    /// <summary>The deadline of a tracked session, or null.</summary>
    public long? DeadlineOf(long sessionId) => _deadlines.TryGetValue(sessionId, out var d) ? d : null;

    public bool Contains(long sessionId) => _deadlines.ContainsKey(sessionId);
    public int Count => _deadlines.Count;
}

public static class SessionIds
{
    /// <summary>ZooKeeper's initial session id (SessionTrackerImpl.initializeNextSessionId): the server id in the top
    /// byte, the time shifted into the middle bits: ((now &lt;&lt; 24) &gt;&gt;&gt; 8) | (serverId &lt;&lt; 56); never
    /// the container marker. Further ids are this + 1, + 2... Server ids must be at most 254 (255 in the top byte
    /// would read as a TTL owner, as in ZooKeeper with extended types).</summary>
    public static long Initial(long serverId, long nowMs)
    {
        var id = (long)((ulong)(nowMs << 24) >> 8) | (serverId << 56);
        if (id == Protocol.EphemeralOwner.Container) id++;
        return id;
    }

    /// <summary>The server whose range the session id is from (its top byte), as ZooKeeper's getServerIdFromSessionId.</summary>
    public static long ServerOf(long sessionId) => sessionId >> 56;

    /// <summary>The length of a deployment's session secret (<see cref="SessionSecretTxn"/>).</summary>
    public const int SecretLength = 32;

    /// <summary>The password of a session: 16 bytes any member can derive from the id and the deployment's secret
    /// (HMAC-SHA256 of the big-endian id keyed by the secret, truncated). The secret is random and never leaves the
    /// ensemble, so knowing a session id (cons, dump, wchc and logs print them) does not give its password.</summary>
    public static byte[] Password(long sessionId, ReadOnlySpan<byte> secret)
    {
        Span<byte> id = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(id, sessionId);
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(secret, id, mac);
        return mac[..16].ToArray();
    }

    /// <summary>Constant-time check of a client's password.</summary>
    public static bool CheckPassword(long sessionId, ReadOnlySpan<byte> secret, ReadOnlySpan<byte> password) =>
        CryptographicOperations.FixedTimeEquals(Password(sessionId, secret), password);
}
