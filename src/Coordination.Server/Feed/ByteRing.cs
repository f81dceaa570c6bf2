namespace Coordination.Server.Feed;

/// <summary>
/// Bytes appended at ever-increasing offsets and released oldest first, held in large chunks that are reused: the
/// change feed's retained frames live here as bytes, so the GC sees a few long-lived arrays, not an object graph per
/// txn that it copies from gen0 to gen2 before it dies (most of the server's GC pause at saturation, before this).
/// A write may run over a chunk's end into the next. Single-threaded.
/// </summary>
internal sealed class ByteRing(int chunkBytes)
{
    /// <summary>Chunk i holds the offsets from <see cref="_base"/> + i x chunkBytes on.</summary>
    private readonly List<byte[]> _chunks = new();
    private long _base;
    /// <summary>The last chunk released, for the next one needed: at a steady rate, no chunk is ever allocated.</summary>
    private byte[]? _spare;

    public int ChunkBytes => chunkBytes;
    /// <summary>The offset the next write gets.</summary>
    public long End { get; private set; }
    /// <summary>Chunks held (the spare included): what the ring costs in memory is this times <see cref="ChunkBytes"/>.</summary>
    public int ChunksHeld => _chunks.Count + (_spare is null ? 0 : 1);

    /// <summary>Appends <paramref name="bytes"/>; returns the offset of its first byte.</summary>
    public long Append(ReadOnlySpan<byte> bytes)
    {
        var start = End;
        while (!bytes.IsEmpty)
        {
            var index = (int)((End - _base) / chunkBytes);
            if (index == _chunks.Count)
            {
                _chunks.Add(_spare ?? new byte[chunkBytes]);
                _spare = null;
            }
            var at = (int)((End - _base) % chunkBytes);
            var n = Math.Min(bytes.Length, chunkBytes - at);
            bytes[..n].CopyTo(_chunks[index].AsSpan(at));
            bytes = bytes[n..];
            End += n;
        }
        return start;
    }

    /// <summary>Copies the bytes from <paramref name="offset"/> on into <paramref name="destination"/>.</summary>
    public void CopyTo(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            var piece = Piece(offset, destination.Length);
            piece.CopyTo(destination);
            destination = destination[piece.Length..];
            offset += piece.Length;
        }
    }

    /// <summary>The <paramref name="length"/> bytes at <paramref name="offset"/>: in place when one chunk holds them,
    /// else copied into <paramref name="scratch"/> (grown if it must be).</summary>
    public ReadOnlySpan<byte> Read(long offset, int length, ref byte[] scratch)
    {
        var piece = Piece(offset, length);
        if (piece.Length == length) return piece;
        if (scratch.Length < length) scratch = new byte[Math.Max(length, 2 * scratch.Length)];
        CopyTo(offset, scratch.AsSpan(0, length));
        return scratch.AsSpan(0, length);
    }

    /// <summary>What one chunk holds of the <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    private ReadOnlySpan<byte> Piece(long offset, int length)
    {
        if (offset < _base || offset + length > End) throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{length} is outside [{_base}, {End})");
        var index = (int)((offset - _base) / chunkBytes);
        var at = (int)((offset - _base) % chunkBytes);
        return _chunks[index].AsSpan(at, Math.Min(length, chunkBytes - at));
    }

    /// <summary>The bytes before <paramref name="offset"/> are no longer needed: the chunks that hold only those are
    /// released (one kept as the spare).</summary>
    public void Release(long offset)
    {
        while (_chunks.Count > 0 && _base + chunkBytes <= offset)
        {
            _spare ??= _chunks[0];
            _chunks.RemoveAt(0);
            _base += chunkBytes;
        }
        if (_chunks.Count == 0) _base = End;
    }

    /// <summary>Releases everything written so far.</summary>
    public void Clear()
    {
        if (_chunks.Count > 0) _spare ??= _chunks[0];
        _chunks.Clear();
        _base = End;
    }
}
