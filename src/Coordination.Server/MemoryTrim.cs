using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;

namespace Coordination.Server;

/// <summary>The <c>coordination.memory-trim</c> section (documented in reference.conf).</summary>
public sealed record MemoryTrimSettings
{
    /// <summary>Off by default, as in reference.conf: a trim is a blocking collection (docs/architecture.md §11); a
    /// server whose settings are built in code gets the same default as one configured by HOCON.</summary>
    public bool Enabled { get; init; }
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
    /// <summary>The longest pause a trim may cause: one estimated to pause longer does not run.</summary>
    public TimeSpan MaxPause { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>... nor longer than this share of the shortest session timeout in use (a pause delays every ping).</summary>
    public double MaxPauseSessionShare { get; init; } = 0.1;
    /// <summary>The pause expected per MiB of live heap until the process has measured its own trims.</summary>
    public TimeSpan PausePerMiB { get; init; } = TimeSpan.FromMilliseconds(1);

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
            MaxPause = NotNegative(c.GetTimeSpan("max-pause", Default.MaxPause)),
            MaxPauseSessionShare = Math.Max(0, c.GetDouble("max-pause-session-share", Default.MaxPauseSessionShare)),
            PausePerMiB = NotNegative(c.GetTimeSpan("pause-per-mib", Default.PausePerMiB)),
        };
    }

    private static TimeSpan NotNegative(TimeSpan value) => value > TimeSpan.Zero ? value : TimeSpan.Zero;

    private static TimeSpan Positive(TimeSpan value, string key) =>
        value > TimeSpan.Zero ? value : throw new ConfigurationException($"memory-trim.{key} must be positive, not {value}");
}

/// <summary>One look at the GC: the monotonic time, bytes allocated by the process so far, bytes the GC has committed,
/// and the live heap (as of the last collection).</summary>
internal readonly record struct GcSample(TimeSpan Now, long Allocated, long Committed, long Live);

internal enum TrimAction
{
    /// <summary>Nothing to do (or a refusal already reported for this burst).</summary>
    None,
    Trim,
    /// <summary>A trim is due but its estimated pause is over the limit: it does not run (reported once a burst).</summary>
    Refuse,
}

/// <summary>What a sample calls for, with the pause a trim is estimated to cause and the longest one allowed.</summary>
internal readonly record struct TrimDecision(TrimAction Action, TimeSpan EstimatedPause, TimeSpan Limit);

/// <summary>
/// When to give the memory a load freed back to the OS: a pure function of the GC samples and the settings (the actor
/// takes the samples and runs the trim; no clock and no GC call here). The GC keeps the regions a load's garbage
/// occupied, even after full collections, for the allocations it expects next; a server whose tree has stopped
/// growing keeps them for nothing (issue 23: RSS twice the live heap after a bulk load). A trim is one aggressive full
/// collection, blocking and compacting (the large-object heap too), whose pause grows with the live heap (about 1 ms
/// per MiB on a quiet machine). So a trim runs only
/// <list type="bullet">
/// <item>after the process has allocated less than quiet-allocation-rate a second for quiet-period,</item>
/// <item>when the GC holds more than max(min-excess, min-excess-ratio x live heap) beyond the live heap,</item>
/// <item>once a burst: that much, and a quarter of the live heap, allocated since the last trim (an idle server is
/// not collected again and again),</item>
/// <item>and when its pause, estimated from the live heap (<see cref="EstimatePause"/>), is at most max-pause and at
/// most max-pause-session-share of the shortest session timeout in use: a pause delays every ping, and must
/// never expire a session. A refused trim is reported once a burst, and runs if the limit lifts (the short session
/// ends) before the next.</item>
/// </list>
/// </summary>
internal sealed class MemoryTrimPolicy(MemoryTrimSettings settings)
{
    private const double MiB = 1 << 20;
    private bool _started;
    private TimeSpan _lastAt;
    private long _lastAllocated;
    private TimeSpan _quietSince;
    private long _allocatedAtTrim;
    private long? _refusedAt;

    /// <summary>The pause a trim costs per MiB of live heap, in ms: the setting's prior until trims have been measured
    /// (<see cref="Measured"/>).</summary>
    public double PauseMsPerMiB { get; private set; } = settings.PausePerMiB.TotalMilliseconds;

    public TimeSpan EstimatePause(long live) => TimeSpan.FromMilliseconds(PauseMsPerMiB * Math.Max(0, live) / MiB);

    /// <summary>The longest pause allowed: max-pause, and a share of the shortest session timeout in use (if any).</summary>
    public TimeSpan PauseLimit(TimeSpan? shortestSessionTimeout) =>
        shortestSessionTimeout is { } timeout && timeout * settings.MaxPauseSessionShare < settings.MaxPause
            ? timeout * settings.MaxPauseSessionShare
            : settings.MaxPause;

    public TrimDecision Decide(GcSample sample, TimeSpan? shortestSessionTimeout)
    {
        var none = new TrimDecision(TrimAction.None, TimeSpan.Zero, TimeSpan.Zero);
        if (!_started)
        {
            (_started, _lastAt, _lastAllocated, _quietSince) = (true, sample.Now, sample.Allocated, sample.Now);
            return none;
        }
        var seconds = Math.Max((sample.Now - _lastAt).TotalSeconds, 1e-3);
        if (sample.Allocated - _lastAllocated > settings.QuietAllocationRate * seconds) _quietSince = sample.Now;
        (_lastAt, _lastAllocated) = (sample.Now, sample.Allocated);
        if (sample.Now - _quietSince < settings.QuietPeriod) return none;
        var floor = Math.Max(settings.MinExcess, (long)(sample.Live * settings.MinExcessRatio));
        var burst = Math.Max(floor, sample.Live / 4);
        if (sample.Allocated - _allocatedAtTrim < burst) return none;
        if (sample.Committed - sample.Live < floor) return none;
        var estimate = EstimatePause(sample.Live);
        var limit = PauseLimit(shortestSessionTimeout);
        if (estimate > limit)
        {
            if (_refusedAt is { } reported && sample.Allocated - reported < burst) return none;
            _refusedAt = sample.Allocated;
            return new TrimDecision(TrimAction.Refuse, estimate, limit);
        }
        _allocatedAtTrim = sample.Allocated;
        _refusedAt = null;
        return new TrimDecision(TrimAction.Trim, estimate, limit);
    }

    /// <summary>A trim at this live heap (the sample's it was decided on) paused this long: the estimate moves half
    /// way to the measured rate, so a machine slower than the prior (or loaded) stops trimming big heaps after one
    /// long pause, and a faster one allows more.</summary>
    public void Measured(long live, TimeSpan pause)
    {
        if (live < MiB) return;   // too small a heap to say anything per MiB
        PauseMsPerMiB = (PauseMsPerMiB + pause.TotalMilliseconds / (live / MiB)) / 2;
    }
}

/// <summary>
/// Samples the GC every check interval, asks <see cref="MemoryTrimPolicy"/>, and runs the trim it calls for off the
/// actor's thread (the collection blocks every managed thread anyway), then tells the policy how long it paused.
/// The GC is the process's: servers sharing a process (tests, an embedded ensemble) trim at most once per quiet
/// period between them, and the session timeouts that bound the pause are every server's in the process
/// (<see cref="Sessions.SessionTimeouts"/>).
/// </summary>
internal sealed class MemoryTrimActor : ReceiveActor, IWithTimers
{
    private static long _lastTrimTicks = long.MinValue;
    private static long _trims;
    private static long _trimmedBytes;
    private static long _refused;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly MemoryTrimSettings _settings;
    private readonly MemoryTrimPolicy _policy;
    private bool _trimming;

    /// <summary>Trims this process has run, the committed bytes they gave back, and the trims refused for their
    /// estimated pause (mntr: memory_trims, memory_trimmed_bytes, memory_trims_refused).</summary>
    public static long Trims => Interlocked.Read(ref _trims);
    public static long TrimmedBytes => Interlocked.Read(ref _trimmedBytes);
    public static long Refused => Interlocked.Read(ref _refused);

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Check { public static readonly Check Instance = new(); }
    /// <summary>A trim's outcome. <paramref name="Compacted"/>: the GC reports a full blocking compacting collection
    /// since the trim began (the trim's own, unless the GC ran one by itself at that moment).</summary>
    private sealed record Trimmed(long CommittedBefore, long CommittedAfter, long LiveBefore, long LiveAfter, TimeSpan Estimate, TimeSpan Pause,
        bool Compacted, string Generations);

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
            _policy.Measured(t.LiveBefore, t.Pause);
            _log.Info($"memory trim: GC committed {t.CommittedBefore >> 20} -> {t.CommittedAfter >> 20} MiB, live heap {t.LiveAfter >> 20} MiB, " +
                $"{t.Pause.TotalMilliseconds:F0} ms (estimated {t.Estimate.TotalMilliseconds:F0} ms; now {_policy.PauseMsPerMiB:F2} ms/MiB), " +
                (t.Compacted ? "a full compacting collection " : "NO full compacting collection reported by the GC ") +
                $"(before, by generation: {t.Generations})");
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
        if (_trimming) return;
        var now = Stopwatch.GetElapsedTime(0);
        var info = GC.GetGCMemoryInfo();
        var live = info.HeapSizeBytes - info.FragmentedBytes;
        var sessions = Sessions.SessionTimeouts.ShortestInProcess();
        var decision = _policy.Decide(new GcSample(now, GC.GetTotalAllocatedBytes(false), info.TotalCommittedBytes, live), sessions);
        if (decision.Action == TrimAction.Refuse)
        {
            Interlocked.Increment(ref _refused);
            _log.Info($"memory trim not run: its pause is estimated at {decision.EstimatedPause.TotalMilliseconds:F0} ms ({live >> 20} MiB of live heap " +
                $"at {_policy.PauseMsPerMiB:F2} ms/MiB), over the limit of {decision.Limit.TotalMilliseconds:F0} ms (max-pause " +
                $"{_settings.MaxPause.TotalMilliseconds:F0} ms, shortest session timeout {(sessions is { } t ? $"{t.TotalMilliseconds:F0} ms" : "none")}); " +
                $"GC committed {info.TotalCommittedBytes >> 20} MiB");
            return;
        }
        if (decision.Action != TrimAction.Trim) return;
        var last = Interlocked.Read(ref _lastTrimTicks);
        if (last != long.MinValue && now.Ticks - last < _settings.QuietPeriod.Ticks) return;
        if (Interlocked.CompareExchange(ref _lastTrimTicks, now.Ticks, last) != last) return;
        _trimming = true;
        var generations = string.Join(", ", info.GenerationInfo.ToArray().Select((g, i) =>
            $"{GenerationName(i)} {g.SizeAfterBytes >> 20} MiB ({g.FragmentationAfterBytes >> 20} free)"));
        var before = info.TotalCommittedBytes;
        Task.Run(() =>
        {
            var fullBefore = GC.GetGCMemoryInfo(GCKind.FullBlocking).Index;
            var start = Stopwatch.GetTimestamp();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var pause = Stopwatch.GetElapsedTime(start);
            var after = GC.GetGCMemoryInfo();
            var full = GC.GetGCMemoryInfo(GCKind.FullBlocking);
            return new Trimmed(before, after.TotalCommittedBytes, live, after.HeapSizeBytes - after.FragmentedBytes, decision.EstimatedPause, pause,
                full.Index > fullBefore && full.Compacted, generations);
        }).PipeTo(Self);
    }

    private static string GenerationName(int index) => index switch { 3 => "LOH", 4 => "POH", _ => "gen" + index };
}
