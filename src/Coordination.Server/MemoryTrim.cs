using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;

namespace Coordination.Server;

/// <summary>The <c>coordination.memory-trim</c> section (documented in reference.conf).</summary>
public sealed record MemoryTrimSettings
{
    public bool Enabled { get; init; } = true;
    /// <summary>How often the GC's figures are sampled.</summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>How long the process must have allocated below <see cref="QuietAllocationRate"/> before a trim.</summary>
    public TimeSpan QuietPeriod { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Bytes a second the process may allocate and still count as quiet (pings, timers).</summary>
    public long QuietAllocationRate { get; init; } = 4L << 20;
    /// <summary>Memory the GC holds beyond the live heap below which nothing is worth a trim.</summary>
    public long MinExcess { get; init; } = 64L << 20;
    /// <summary>... and that excess as a share of the live heap.</summary>
    public double MinExcessRatio { get; init; } = 0.1;

    public static MemoryTrimSettings Default { get; } = new();

    public static MemoryTrimSettings Create(Config? c)
    {
        if (c is null || c.IsEmpty) return Default;
        return new MemoryTrimSettings
        {
            Enabled = c.GetBoolean("enabled", Default.Enabled),
            CheckInterval = Positive(c.GetTimeSpan("check-interval", Default.CheckInterval), "check-interval"),
            QuietPeriod = c.GetTimeSpan("quiet-period", Default.QuietPeriod),
            QuietAllocationRate = Math.Max(0, c.GetByteSize("quiet-allocation-rate") ?? Default.QuietAllocationRate),
            MinExcess = Math.Max(0, c.GetByteSize("min-excess") ?? Default.MinExcess),
            MinExcessRatio = Math.Max(0, c.GetDouble("min-excess-ratio", Default.MinExcessRatio)),
        };
    }

    private static TimeSpan Positive(TimeSpan value, string key) =>
        value > TimeSpan.Zero ? value : throw new ConfigurationException($"memory-trim.{key} must be positive, not {value}");
}

/// <summary>
/// When to give the memory a load freed back to the OS (pure: the actor feeds it samples). The GC keeps the regions
/// a load's garbage occupied, even after full collections, for the allocations it expects next; a server whose tree
/// has stopped growing keeps them for nothing (issue 23: RSS twice the live heap after a bulk load). A trim is one
/// aggressive full collection: blocking and compacting (the large-object heap too), so it runs only after the
/// process has been quiet for a while, only when the GC holds much more than the live heap, and at most once per
/// burst of allocation (a heap's quarter allocated since the last one), so that an idle server is not collected
/// again and again.
/// </summary>
internal sealed class MemoryTrimPolicy(MemoryTrimSettings settings)
{
    private TimeSpan _lastAt = TimeSpan.MinValue;
    private long _lastAllocated;
    private TimeSpan _quietSince;
    private long _allocatedAtTrim;

    /// <summary>One sample: the monotonic time, bytes allocated by the process so far, bytes the GC has committed
    /// and the live heap (as of the last collection). True: trim now.</summary>
    public bool ShouldTrim(TimeSpan now, long allocated, long committed, long live)
    {
        if (_lastAt == TimeSpan.MinValue)
        {
            (_lastAt, _lastAllocated, _quietSince) = (now, allocated, now);
            return false;
        }
        var seconds = Math.Max((now - _lastAt).TotalSeconds, 1e-3);
        var busy = allocated - _lastAllocated > settings.QuietAllocationRate * seconds;
        (_lastAt, _lastAllocated) = (now, allocated);
        if (busy) _quietSince = now;
        if (now - _quietSince < settings.QuietPeriod) return false;
        var floor = Math.Max(settings.MinExcess, (long)(live * settings.MinExcessRatio));
        if (allocated - _allocatedAtTrim < Math.Max(floor, live / 4)) return false;
        if (committed - live < floor) return false;
        _allocatedAtTrim = allocated;
        return true;
    }
}

/// <summary>
/// Samples the GC every check interval and runs the trim <see cref="MemoryTrimPolicy"/> asks for, off the actor's
/// thread (the collection blocks every managed thread anyway). The GC is the process's: servers sharing a process
/// (tests, an embedded ensemble) trim at most once per quiet period between them.
/// </summary>
internal sealed class MemoryTrimActor : ReceiveActor, IWithTimers
{
    private static long _lastTrimTicks = long.MinValue;
    private static long _trims;
    private static long _trimmedBytes;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly MemoryTrimSettings _settings;
    private readonly MemoryTrimPolicy _policy;
    private bool _trimming;

    /// <summary>Trims this process has run, and the committed bytes they gave back (mntr: memory_trims, memory_trimmed_bytes).</summary>
    public static long Trims => Interlocked.Read(ref _trims);
    public static long TrimmedBytes => Interlocked.Read(ref _trimmedBytes);

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Check { public static readonly Check Instance = new(); }
    private sealed record Trimmed(long CommittedBefore, long CommittedAfter, long LiveAfter, double PauseMs, string Generations);

    public MemoryTrimActor(MemoryTrimSettings settings)
    {
        _settings = settings;
        _policy = new MemoryTrimPolicy(settings);
        Receive<Check>(_ => OnCheck());
        Receive<Trimmed>(t =>
        {
            _trimming = false;
            Interlocked.Increment(ref _trims);
            Interlocked.Add(ref _trimmedBytes, Math.Max(0, t.CommittedBefore - t.CommittedAfter));
            _log.Info("memory trim: GC committed {0} -> {1} MiB, live heap {2} MiB, {3:F0} ms (before, by generation: {4})",
                t.CommittedBefore >> 20, t.CommittedAfter >> 20, t.LiveAfter >> 20, t.PauseMs, t.Generations);
        });
        Receive<Status.Failure>(f =>
        {
            _trimming = false;
            _log.Warning(f.Cause, "memory trim failed");
        });
    }

    public static Props Props(MemoryTrimSettings settings) => Akka.Actor.Props.Create(() => new MemoryTrimActor(settings));

    protected override void PreStart() => Timers.StartPeriodicTimer("check", Check.Instance, _settings.CheckInterval);

    private void OnCheck()
    {
        var now = Stopwatch.GetElapsedTime(0);
        var info = GC.GetGCMemoryInfo();
        var live = info.HeapSizeBytes - info.FragmentedBytes;
        if (!_policy.ShouldTrim(now, GC.GetTotalAllocatedBytes(false), info.TotalCommittedBytes, live) || _trimming) return;
        var last = Interlocked.Read(ref _lastTrimTicks);
        if (last != long.MinValue && now.Ticks - last < _settings.QuietPeriod.Ticks) return;
        if (Interlocked.CompareExchange(ref _lastTrimTicks, now.Ticks, last) != last) return;
        _trimming = true;
        var generations = string.Join(", ", info.GenerationInfo.ToArray().Select((g, i) =>
            $"{GenerationName(i)} {g.SizeAfterBytes >> 20} MiB ({g.FragmentationAfterBytes >> 20} free)"));
        var before = info.TotalCommittedBytes;
        Task.Run(() =>
        {
            var start = Stopwatch.GetTimestamp();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var pause = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var after = GC.GetGCMemoryInfo();
            return new Trimmed(before, after.TotalCommittedBytes, after.HeapSizeBytes - after.FragmentedBytes, pause, generations);
        }).PipeTo(Self);
    }

    private static string GenerationName(int index) => index switch { 3 => "LOH", 4 => "POH", _ => "gen" + index };
}
