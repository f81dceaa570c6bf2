using System.Buffers.Binary;
using Coordination.Client;

namespace Coordination.Recipes;

/// <summary>
/// A shared 64-bit counter in one node (big-endian 8 bytes, as Curator's DistributedAtomicLong), updated by
/// compare-and-set on the node version, so concurrent increments from any number of clients are never lost.
/// An increment that fails with <see cref="ConnectionLossException"/> may or may not have been applied.
/// </summary>
public sealed class DistributedCounter(CoordinationClient client, string path, IRetryPolicy? retry = null)
{
    private readonly IRetryPolicy _retry = retry ?? new ExponentialBackoffRetry(TimeSpan.FromMilliseconds(50), 5, TimeSpan.FromSeconds(1));

    public string Path => path;

    /// <summary>The current value (0 when the node does not exist yet).</summary>
    public async Task<long> GetAsync(CancellationToken ct = default)
    {
        try { return Decode((await RetryLoop.RunAsync(_retry, c => client.GetDataAsync(path, ct: c), ct).ConfigureAwait(false)).Data); }
        catch (NoNodeException) { return 0; }
    }

    /// <summary>Adds <paramref name="delta"/> and returns the new value.</summary>
    public async Task<long> AddAsync(long delta, CancellationToken ct = default)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            DataResult current;
            try { current = await RetryLoop.RunAsync(_retry, c => client.GetDataAsync(path, ct: c), ct).ConfigureAwait(false); }
            catch (NoNodeException)
            {
                try
                {
                    await client.CreateRecursiveAsync(Coordination.Protocol.Paths.Parent(path), ct: ct).ConfigureAwait(false);
                    await client.CreateAsync(path, Encode(delta), ct: ct).ConfigureAwait(false);
                    return delta;
                }
                catch (NodeExistsException) { continue; }
            }
            var next = Decode(current.Data) + delta;
            try
            {
                // Not retried on ConnectionLoss: the write may or may not have been applied, and a lost reply cannot be
                // told apart from another client's identical write, so the caller gets the ConnectionLossException.
                await client.SetDataAsync(path, Encode(next), current.Stat.Version, ct).ConfigureAwait(false);
                return next;
            }
            catch (BadVersionException) { }
        }
    }

    public Task<long> IncrementAsync(CancellationToken ct = default) => AddAsync(1, ct);

    /// <summary>Sets the value if the node's version is still <paramref name="expectedVersion"/>; false if someone else wrote first.</summary>
    public async Task<bool> TrySetAsync(long value, int expectedVersion, CancellationToken ct = default)
    {
        try { await client.SetDataAsync(path, Encode(value), expectedVersion, ct).ConfigureAwait(false); return true; }
        catch (BadVersionException) { return false; }
    }

    private static byte[] Encode(long value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, value);
        return bytes;
    }

    private static long Decode(byte[]? data) => (data?.Length ?? 0) switch
    {
        0 => 0,
        8 => BinaryPrimitives.ReadInt64BigEndian(data!),
        _ => throw new FormatException($"counter node holds {data!.Length} bytes, expected 8"),
    };
}
