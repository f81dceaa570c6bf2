using System.Collections.Concurrent;
using System.Text;

namespace Coordination.Protocol;

/// <summary>
/// A bounded, thread-safe table of znode path strings, keyed by their characters, so that decoding a request for a
/// path seen before returns the same string instance instead of allocating a new one. Strings are immutable, so
/// sharing them is safe; the table only ever returns a string equal to what <see cref="Encoding.UTF8"/> would decode.
/// </summary>
/// <remarks>
/// Only valid paths (<see cref="Paths.IsValidSpan"/>) of at most <see cref="MaxPathBytes"/> UTF-8 bytes are interned;
/// anything else (including bytes that are not well-formed UTF-8, which decode to U+FFFD, an invalid path character)
/// is decoded exactly as before into a fresh string. Once <see cref="Capacity"/> entries are held, new paths are no
/// longer added and decode into fresh strings; entries are never evicted, so the table's memory is bounded by
/// roughly <c>Capacity × (MaxPathBytes × 2 + overhead)</c>. Each held path has one <see cref="Held.Attached"/> slot
/// where the request decoder keeps the immutable read requests for that path, so a repeated getData or exists
/// decodes without allocating.
/// </remarks>
public sealed class PathInterner
{
    /// <summary>Default number of distinct paths held by <see cref="Shared"/>.</summary>
    public const int DefaultCapacity = 64 * 1024;

    /// <summary>Longer paths are not interned (and are decoded without a stack buffer).</summary>
    public const int MaxPathBytes = 256;

    /// <summary>The table used by <see cref="JuteReader.ReadPath()"/> and therefore by request decoding.</summary>
    public static PathInterner Shared { get; } = new(DefaultCapacity);

    private readonly ConcurrentDictionary<string, Held> _table = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Held>.AlternateLookup<ReadOnlySpan<char>> _byChars;

    /// <summary>A held path, and one slot for whatever immutable values a decoder derives from it.</summary>
    public sealed class Held(string path)
    {
        public string Path { get; } = path;
        /// <summary>Set once (first writer wins) by the request decoder; never cleared.</summary>
        public object? Attached;
    }
    private int _count;

    public PathInterner(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        Capacity = capacity;
        _byChars = _table.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The most entries the table will hold.</summary>
    public int Capacity { get; }

    /// <summary>Entries currently held (never more than <see cref="Capacity"/>).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Decodes UTF-8 <paramref name="utf8"/> exactly as <c>Encoding.UTF8.GetString</c> does.</summary>
    public string Decode(ReadOnlySpan<byte> utf8) => Decode(utf8, out _);

    /// <inheritdoc cref="Decode(ReadOnlySpan{byte})"/>
    /// <param name="held">The table's entry when the path is (now) held; null for a fresh, unheld string.</param>
    public string Decode(ReadOnlySpan<byte> utf8, out Held? held)
    {
        held = null;
        if (utf8.Length == 0 || utf8.Length > MaxPathBytes) return Encoding.UTF8.GetString(utf8);
        // UTF-8 never decodes to more UTF-16 code units than it has bytes (invalid bytes become one U+FFFD at most each).
        Span<char> chars = stackalloc char[utf8.Length];
        var length = Encoding.UTF8.GetChars(utf8, chars);
        return Intern(chars[..length], out held);
    }

    /// <summary>Returns the held string equal to <paramref name="chars"/>, adding it when valid and there is room.</summary>
    public string Intern(ReadOnlySpan<char> chars) => Intern(chars, out _);

    /// <inheritdoc cref="Intern(ReadOnlySpan{char})"/>
    public string Intern(ReadOnlySpan<char> chars, out Held? held)
    {
        if (_byChars.TryGetValue(chars, out held)) return held.Path;
        var fresh = new string(chars);
        if (chars.Length > MaxPathBytes || !Paths.IsValidSpan(chars) || Volatile.Read(ref _count) >= Capacity) return fresh;
        // Reserve a slot first so that concurrent adders can never take the table past its capacity.
        if (Interlocked.Increment(ref _count) > Capacity)
        {
            Interlocked.Decrement(ref _count);
            return fresh;
        }
        var entry = new Held(fresh);
        if (_table.TryAdd(fresh, entry)) { held = entry; return fresh; }
        Interlocked.Decrement(ref _count); // another thread added the same path meanwhile
        return _table.TryGetValue(fresh, out held) ? held.Path : fresh;
    }

    /// <summary>True when the table holds exactly this instance (for tests and diagnostics).</summary>
    public bool Holds(string path) => _table.TryGetValue(path, out var held) && ReferenceEquals(held.Path, path);
}
