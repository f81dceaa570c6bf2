namespace Coordination.Server.Metrics;

/// <summary>
/// One of ZooKeeper's summaries as mntr prints it (avg_, min_, max_, cnt_, sum_ and, for a summary set, p50_, p95_,
/// p99_, p999_), read from one or more <see cref="Histogram"/>s when mntr runs. ZooKeeper estimates its percentiles
/// from a reservoir sample; here they are estimated from the histogram's buckets (linear within the bucket, clamped to
/// the observed min and max), so they are as fine as the buckets (×2 to ×2.5 apart).
/// </summary>
internal sealed class Summary
{
    internal double[]? Bounds;
    internal long[] Counts = [];
    public long Count;
    public double Sum;
    public double Min = double.MaxValue;
    public double Max;

    public static Summary Of(params IEnumerable<Histogram> histograms)
    {
        var summary = new Summary();
        foreach (var h in histograms)
        {
            if (summary.Counts.Length == 0) summary.Counts = new long[h.BucketCount];
            h.AddTo(summary);
        }
        return summary;
    }

    /// <summary>An empty summary (no observations): ZooKeeper prints 0 for every key of it.</summary>
    public static readonly Summary Empty = new();

    public double Average => Count == 0 ? 0 : Sum / Count;

    /// <summary>The value below which <paramref name="quantile"/> of the observations fall, estimated from the buckets.</summary>
    public double Percentile(double quantile)
    {
        if (Count == 0 || Bounds is null) return 0;
        var rank = quantile * Count;
        long cumulative = 0;
        for (var i = 0; i < Counts.Length; i++)
        {
            if (Counts[i] == 0) continue;
            var before = cumulative;
            cumulative += Counts[i];
            if (cumulative < rank) continue;
            var low = i == 0 ? Min : Math.Max(Bounds[i - 1], Min);
            var high = i < Bounds.Length ? Math.Min(Bounds[i], Max) : Max;
            return Math.Clamp(low + (high - low) * (rank - before) / Counts[i], Min, Max);
        }
        return Max;
    }
}
