using System.Globalization;
using System.Text;

namespace Coordination.Server.Metrics;

/// <summary>
/// A Prometheus histogram with fixed upper bounds. Recording is two Interlocked adds and no allocation, so it can sit
/// on the request path; the cumulative bucket counts are computed only when /metrics is scraped.
/// </summary>
public sealed class Histogram
{
    private readonly double[] _bounds;
    private readonly long[] _counts;   // per bucket, not cumulative; the last slot is +Inf
    private long _sumMicros;           // the sum in millionths of the unit, to stay an integer for Interlocked
    private long _minMicros = long.MaxValue;
    private long _maxMicros;           // min and max for ZooKeeper's summaries (mntr's min_/max_ keys)

    public Histogram(double[] bounds)
    {
        _bounds = bounds;
        _counts = new long[bounds.Length + 1];
    }

    /// <summary>Milliseconds: from 50 µs to 10 s, roughly ×2.5 per bucket (the range of a request or an fsync).</summary>
    public static readonly double[] MillisecondBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

    /// <summary>Counts (txns per journal write): powers of two up to the largest batch the journal takes.</summary>
    public static readonly double[] CountBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];

    public void Record(double value)
    {
        var i = 0;
        while (i < _bounds.Length && value > _bounds[i]) i++;
        Interlocked.Increment(ref _counts[i]);
        var micros = (long)(value * 1_000_000);
        Interlocked.Add(ref _sumMicros, micros);
        // A compare-exchange only when the value is a new extreme: a read and a compare on the usual path.
        for (var seen = Volatile.Read(ref _minMicros); micros < seen; seen = Volatile.Read(ref _minMicros))
            if (Interlocked.CompareExchange(ref _minMicros, micros, seen) == seen) break;
        for (var seen = Volatile.Read(ref _maxMicros); micros > seen; seen = Volatile.Read(ref _maxMicros))
            if (Interlocked.CompareExchange(ref _maxMicros, micros, seen) == seen) break;
    }

    /// <summary>Adds this histogram's observations to <paramref name="summary"/> (several histograms can fold into one:
    /// readlatency is every read op's).</summary>
    internal void AddTo(Summary summary)
    {
        summary.Bounds ??= _bounds;
        for (var i = 0; i < _counts.Length; i++) summary.Counts[i] += Volatile.Read(ref _counts[i]);
        var count = Count;
        if (count == 0) return;
        summary.Count += count;
        summary.Sum += Volatile.Read(ref _sumMicros) / 1_000_000.0;
        summary.Min = Math.Min(summary.Min, Volatile.Read(ref _minMicros) / 1_000_000.0);
        summary.Max = Math.Max(summary.Max, Volatile.Read(ref _maxMicros) / 1_000_000.0);
    }

    /// <summary>Back to no observations (srst); an observation recorded meanwhile may be lost or half-kept, as in ZooKeeper.</summary>
    internal void Reset()
    {
        for (var i = 0; i < _counts.Length; i++) Interlocked.Exchange(ref _counts[i], 0);
        Interlocked.Exchange(ref _sumMicros, 0);
        Interlocked.Exchange(ref _minMicros, long.MaxValue);
        Interlocked.Exchange(ref _maxMicros, 0);
    }

    internal int BucketCount => _counts.Length;

    public long Count
    {
        get
        {
            long total = 0;
            for (var i = 0; i < _counts.Length; i++) total += Volatile.Read(ref _counts[i]);
            return total;
        }
    }

    /// <summary>The sum of the recorded values (read by the OpenTelemetry instruments).</summary>
    public double Sum => Volatile.Read(ref _sumMicros) / 1_000_000.0;

    /// <summary>Appends the <c>_bucket</c>, <c>_sum</c> and <c>_count</c> samples; <paramref name="labels"/> is e.g. <c>op="getData"</c> or empty.</summary>
    public void WriteSamples(StringBuilder b, string name, string labels)
    {
        var separator = labels.Length == 0 ? "" : ",";
        long cumulative = 0;
        for (var i = 0; i <= _bounds.Length; i++)
        {
            cumulative += Volatile.Read(ref _counts[i]);
            var le = i < _bounds.Length ? _bounds[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
            b.Append(name).Append("_bucket{").Append(labels).Append(separator).Append("le=\"").Append(le).Append("\"} ").Append(cumulative).Append('\n');
        }
        var braces = labels.Length == 0 ? "" : "{" + labels + "}";
        b.Append(name).Append("_sum").Append(braces).Append(' ')
            .Append((Volatile.Read(ref _sumMicros) / 1_000_000.0).ToString(CultureInfo.InvariantCulture)).Append('\n');
        b.Append(name).Append("_count").Append(braces).Append(' ').Append(cumulative).Append('\n');
    }
}
