using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Coordination.Core;

/// <summary>
/// xxHash64 (Yann Collet's algorithm, little-endian lanes), one-shot and streaming. Used for the snapshot checksum
/// and the tree digest; written here because System.IO.Hashing is not a dependency of Core.
/// </summary>
internal sealed class XxHash64
{
    private const ulong P1 = 11400714785074694791UL;
    private const ulong P2 = 14029467366897019727UL;
    private const ulong P3 = 1609587929392839161UL;
    private const ulong P4 = 9650029242287828579UL;
    private const ulong P5 = 2870177450012600261UL;

    private readonly ulong _seed;
    private ulong _v1, _v2, _v3, _v4;
    private ulong _total;
    private readonly byte[] _buffer = new byte[32];
    private int _buffered;

    public XxHash64(ulong seed = 0)
    {
        _seed = seed;
        Reset();
    }

    public void Reset()
    {
        _v1 = unchecked(_seed + P1 + P2);
        _v2 = unchecked(_seed + P2);
        _v3 = _seed;
        _v4 = unchecked(_seed - P1);
        _total = 0;
        _buffered = 0;
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        _total += (ulong)data.Length;
        if (_buffered > 0)
        {
            var take = Math.Min(32 - _buffered, data.Length);
            data[..take].CopyTo(_buffer.AsSpan(_buffered));
            _buffered += take;
            data = data[take..];
            if (_buffered < 32) return;
            Stripe(_buffer);
            _buffered = 0;
        }
        while (data.Length >= 32)
        {
            Stripe(data);
            data = data[32..];
        }
        if (data.Length > 0)
        {
            data.CopyTo(_buffer);
            _buffered = data.Length;
        }
    }

    private void Stripe(ReadOnlySpan<byte> s)
    {
        _v1 = Round(_v1, BinaryPrimitives.ReadUInt64LittleEndian(s));
        _v2 = Round(_v2, BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));
        _v3 = Round(_v3, BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));
        _v4 = Round(_v4, BinaryPrimitives.ReadUInt64LittleEndian(s[24..]));
    }

    public ulong GetDigest()
    {
        ulong h;
        unchecked
        {
            if (_total >= 32)
            {
                h = BitOperations.RotateLeft(_v1, 1) + BitOperations.RotateLeft(_v2, 7) +
                    BitOperations.RotateLeft(_v3, 12) + BitOperations.RotateLeft(_v4, 18);
                h = Merge(h, _v1);
                h = Merge(h, _v2);
                h = Merge(h, _v3);
                h = Merge(h, _v4);
            }
            else
            {
                h = _seed + P5;
            }
            h += _total;
        }
        return Finish(h, _buffer.AsSpan(0, _buffered));
    }

    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        ulong h;
        var rest = data;
        unchecked
        {
            if (data.Length >= 32)
            {
                ulong v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
                while (rest.Length >= 32)
                {
                    v1 = Round(v1, BinaryPrimitives.ReadUInt64LittleEndian(rest));
                    v2 = Round(v2, BinaryPrimitives.ReadUInt64LittleEndian(rest[8..]));
                    v3 = Round(v3, BinaryPrimitives.ReadUInt64LittleEndian(rest[16..]));
                    v4 = Round(v4, BinaryPrimitives.ReadUInt64LittleEndian(rest[24..]));
                    rest = rest[32..];
                }
                h = BitOperations.RotateLeft(v1, 1) + BitOperations.RotateLeft(v2, 7) +
                    BitOperations.RotateLeft(v3, 12) + BitOperations.RotateLeft(v4, 18);
                h = Merge(h, v1);
                h = Merge(h, v2);
                h = Merge(h, v3);
                h = Merge(h, v4);
            }
            else
            {
                h = seed + P5;
            }
            h += (ulong)data.Length;
        }
        return Finish(h, rest);
    }

    private static ulong Finish(ulong h, ReadOnlySpan<byte> rest)
    {
        unchecked
        {
            while (rest.Length >= 8)
            {
                h ^= Round(0, BinaryPrimitives.ReadUInt64LittleEndian(rest));
                h = BitOperations.RotateLeft(h, 27) * P1 + P4;
                rest = rest[8..];
            }
            if (rest.Length >= 4)
            {
                h ^= BinaryPrimitives.ReadUInt32LittleEndian(rest) * P1;
                h = BitOperations.RotateLeft(h, 23) * P2 + P3;
                rest = rest[4..];
            }
            foreach (var b in rest)
            {
                h ^= b * P5;
                h = BitOperations.RotateLeft(h, 11) * P1;
            }
            h ^= h >> 33;
            h *= P2;
            h ^= h >> 29;
            h *= P3;
            h ^= h >> 32;
            return h;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Round(ulong acc, ulong lane)
    {
        unchecked
        {
            acc += lane * P2;
            acc = BitOperations.RotateLeft(acc, 31);
            return acc * P1;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Merge(ulong acc, ulong v)
    {
        unchecked
        {
            acc ^= Round(0, v);
            return acc * P1 + P4;
        }
    }
}
