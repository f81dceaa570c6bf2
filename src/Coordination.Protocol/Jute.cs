using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Coordination.Protocol;

/// <summary>Thrown when a jute payload is truncated or structurally invalid.</summary>
public sealed class JuteException(string message) : Exception(message);

/// <summary>
/// Reads jute (Hadoop record I/O) encoding: big-endian ints and longs, length-prefixed buffers and strings,
/// count-prefixed vectors; a length of -1 means null. Works on a span so parsing allocates only what it returns.
/// </summary>
public ref struct JuteReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;

    public JuteReader(ReadOnlySpan<byte> buffer) { _buffer = buffer; _position = 0; }

    public readonly int Position => _position;
    public readonly int Remaining => _buffer.Length - _position;
    public readonly bool AtEnd => _position >= _buffer.Length;

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > _buffer.Length - _position)
            throw new JuteException($"truncated record: need {count} bytes at offset {_position}, have {_buffer.Length - _position}");
        var span = _buffer.Slice(_position, count);
        _position += count;
        return span;
    }

    public int ReadInt() => BinaryPrimitives.ReadInt32BigEndian(Take(4));
    public long ReadLong() => BinaryPrimitives.ReadInt64BigEndian(Take(8));
    public bool ReadBool() => Take(1)[0] != 0;

    public byte[]? ReadBuffer()
    {
        var length = ReadInt();
        if (length == -1) return null;
        if (length < -1) throw new JuteException($"negative buffer length {length}");
        return Take(length).ToArray();
    }

    /// <summary>Returns a slice of the underlying buffer without copying; valid only while the buffer is.</summary>
    public ReadOnlySpan<byte> ReadBufferSpan(out bool isNull)
    {
        var length = ReadInt();
        isNull = length == -1;
        if (isNull) return default;
        if (length < -1) throw new JuteException($"negative buffer length {length}");
        return Take(length);
    }

    /// <summary>The UTF-8 bytes of a string, without copying; <paramref name="isNull"/> for a length of -1.</summary>
    private ReadOnlySpan<byte> TakeString(out bool isNull)
    {
        var length = ReadInt();
        isNull = length == -1;
        if (isNull) return default;
        if (length < -1) throw new JuteException($"negative string length {length}");
        return Take(length);
    }

    public string? ReadString()
    {
        var utf8 = TakeString(out var isNull);
        return isNull ? null : Encoding.UTF8.GetString(utf8);
    }

    /// <summary>Reads a string that the protocol requires to be present (a path, a scheme).</summary>
    public string ReadRequiredString() => ReadString() ?? throw NullRequired();

    private static JuteException NullRequired() => new("null string where a value is required");

    /// <summary>
    /// Reads a required znode path like <see cref="ReadRequiredString"/> (same result, same errors), through
    /// <see cref="PathInterner.Shared"/> so that a path decoded before costs no allocation.
    /// </summary>
    public string ReadPath() => ReadPath(PathInterner.Shared);

    /// <inheritdoc cref="ReadPath()"/>
    public string ReadPath(PathInterner paths) => ReadPath(paths, out _);

    /// <summary>Reads a required path through the shared table; <paramref name="held"/> is its entry when held.</summary>
    public string ReadPath(out PathInterner.Held? held) => ReadPath(PathInterner.Shared, out held);

    private string ReadPath(PathInterner paths, out PathInterner.Held? held, bool nullAsEmpty = false)
    {
        var utf8 = TakeString(out var isNull);
        if (isNull && !nullAsEmpty) throw NullRequired();
        return paths.Decode(utf8, out held);
    }

    /// <summary>
    /// Reads a path that ZooKeeper 3.8 accepts as null and then answers as it answers the empty path (setData, setACL,
    /// sync, addWatch, removeWatches, getEphemerals; measured by NullFieldTests): null reads as "". Elsewhere a null
    /// path fails the request with MarshallingError, as there.
    /// </summary>
    public string ReadPathOrEmpty(out PathInterner.Held? held) => ReadPath(PathInterner.Shared, out held, nullAsEmpty: true);

    /// <inheritdoc cref="ReadPathOrEmpty(out PathInterner.Held?)"/>
    public string ReadPathOrEmpty() => ReadPathOrEmpty(out _);

    public int ReadVectorCount()
    {
        var count = ReadInt();
        if (count < -1) throw new JuteException($"negative vector length {count}");
        // Every element takes at least one byte, so a count beyond the remaining bytes is garbage.
        if (count > Remaining) throw new JuteException($"vector length {count} exceeds remaining {Remaining} bytes");
        return count;
    }

    public List<string>? ReadStringVector() => ReadStringVector(paths: false);

    /// <summary>A vector of znode paths (setWatches), each read with <see cref="ReadPath()"/>.</summary>
    public List<string>? ReadPathVector() => ReadStringVector(paths: true);

    private List<string>? ReadStringVector(bool paths)
    {
        var count = ReadVectorCount();
        if (count == -1) return null;
        var list = new List<string>(count);
        for (var i = 0; i < count; i++) list.Add(paths ? ReadPath() : ReadRequiredString());
        return list;
    }
}

/// <summary>Writes jute encoding into any <see cref="IBufferWriter{T}"/>.</summary>
public ref struct JuteWriter
{
    private readonly IBufferWriter<byte> _output;
    public int Written { get; private set; }

    public JuteWriter(IBufferWriter<byte> output) { _output = output; Written = 0; }

    public void WriteInt(int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(_output.GetSpan(4), value);
        _output.Advance(4);
        Written += 4;
    }

    public void WriteLong(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(_output.GetSpan(8), value);
        _output.Advance(8);
        Written += 8;
    }

    public void WriteBool(bool value)
    {
        _output.GetSpan(1)[0] = value ? (byte)1 : (byte)0;
        _output.Advance(1);
        Written += 1;
    }

    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return;
        bytes.CopyTo(_output.GetSpan(bytes.Length));
        _output.Advance(bytes.Length);
        Written += bytes.Length;
    }

    public void WriteBuffer(ReadOnlySpan<byte> bytes, bool isNull = false)
    {
        if (isNull) { WriteInt(-1); return; }
        WriteInt(bytes.Length);
        WriteRaw(bytes);
    }

    public void WriteBuffer(byte[]? bytes)
    {
        if (bytes is null) WriteInt(-1);
        else WriteBuffer(bytes.AsSpan());
    }

    public void WriteString(string? value)
    {
        if (value is null) { WriteInt(-1); return; }
        var length = Encoding.UTF8.GetByteCount(value);
        WriteInt(length);
        if (length == 0) return;
        var span = _output.GetSpan(length);
        Encoding.UTF8.GetBytes(value, span);
        _output.Advance(length);
        Written += length;
    }

    public void WriteStringVector(IReadOnlyCollection<string>? values)
    {
        if (values is null) { WriteInt(-1); return; }
        WriteInt(values.Count);
        foreach (var v in values) WriteString(v);
    }
}

/// <summary>A record that can encode itself in jute.</summary>
public interface IJuteRecord
{
    void Write(ref JuteWriter writer);
}

public static class Jute
{
    /// <summary>Encodes a record into a fresh array (for journals, tests and cold paths).</summary>
    public static byte[] Serialize<T>(T record) where T : IJuteRecord
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        var writer = new JuteWriter(buffer);
        record.Write(ref writer);
        return buffer.WrittenSpan.ToArray();
    }
}
