using System.Numerics;

namespace Coordination.Bench;

/// <summary>
/// A log-linear latency histogram (HdrHistogram-like): values below 256 ns are exact, above that each power of two is
/// split into 128 buckets, so a reported percentile is within 0.8% of the true value. Not thread-safe: keep one per
/// session and <see cref="Add"/> them together.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBits = 8;
    private const int Linear = 1 << SubBits;   // 256 exact buckets
    private const int Half = Linear / 2;        // 128 buckets per power of two above
    private const int MaxExponent = 40;         // values up to ~2^47 ns (~39 hours), larger ones are clamped
    private readonly long[] _counts = new long[Linear + MaxExponent * Half];

    public long Count { get; private set; }
    public long Min { get; private set; } = long.MaxValue;
    public long Max { get; private set; }
    private double _sum;

    public double Mean => Count == 0 ? 0 : _sum / Count;

    public void Record(long valueNs)
    {
        if (valueNs < 0) valueNs = 0;
        _counts[Index(valueNs)]++;
        Count++;
        _sum += valueNs;
        if (valueNs < Min) Min = valueNs;
        if (valueNs > Max) Max = valueNs;
    }

    private static int Index(long v)
    {
        if (v < Linear) return (int)v;
        var msb = 63 - BitOperations.LeadingZeroCount((ulong)v);
        var e = msb - SubBits + 1;              // >= 1
        if (e > MaxExponent) return Linear + MaxExponent * Half - 1;
        var m = (int)(v >> e);                  // in [Half, Linear)
        return Linear + (e - 1) * Half + (m - Half);
    }

    /// <summary>The midpoint of bucket <paramref name="index"/>.</summary>
    private static long ValueOf(int index)
    {
        if (index < Linear) return index;
        var e = (index - Linear) / Half + 1;
        var m = (index - Linear) % Half + Half;
        var low = (long)m << e;
        var width = 1L << e;
        return low + width / 2;
    }

    /// <summary>The value at quantile <paramref name="q"/> (0..1), clamped to the recorded min and max.</summary>
    public long Percentile(double q)
    {
        if (Count == 0) return 0;
        var rank = (long)Math.Ceiling(q * Count);
        if (rank < 1) rank = 1;
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank) return Math.Clamp(ValueOf(i), Min, Max);
        }
        return Max;
    }

    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        _sum += other._sum;
        if (other.Count > 0)
        {
            Min = Math.Min(Min, other.Min);
            Max = Math.Max(Max, other.Max);
        }
    }

    public LatencySummary Summarize() => Count == 0
        ? new LatencySummary(0, 0, 0, 0, 0, 0, 0, 0)
        : new LatencySummary(Count, Us(Min), Us((long)Mean), Us(Percentile(0.50)), Us(Percentile(0.90)), Us(Percentile(0.99)),
            Us(Percentile(0.999)), Us(Max));

    private static double Us(long ns) => Math.Round(ns / 1000.0, 1);
}

/// <summary>Latency figures in microseconds.</summary>
public readonly record struct LatencySummary(long Count, double MinUs, double MeanUs, double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs);
