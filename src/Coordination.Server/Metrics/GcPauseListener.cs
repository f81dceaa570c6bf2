using System.Diagnostics.Tracing;

namespace Coordination.Server.Metrics;

/// <summary>
/// Every garbage collection's pause, in ms, from the runtime's own GC events: from suspending the managed threads
/// (GCSuspendEEBegin) to restarting them (GCRestartEEEnd). mntr reports it as ZooKeeper's <c>jvm_pause_time_ms</c>,
/// the nearest .NET equivalent of the JVM pauses ZooKeeper measures, with every key of the summary (min, max and
/// percentiles need each pause, which the runtime's totals do not give). One listener per process, since the GC is
/// the process's; each server's <see cref="ServerMetrics"/> registers its own histogram, so srst resets that server's
/// only. The runtime raises a handful of informational GC events per collection on its event thread, off the request
/// path.
/// </summary>
internal sealed class GcPauseListener : EventListener
{
    private const string RuntimeSource = "Microsoft-Windows-DotNETRuntime";
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private const int SuspendBeginId = 9;   // GCSuspendEEBegin_V1
    private const int RestartEndId = 3;     // GCRestartEEEnd_V1

    private static readonly object Gate = new();
    private static GcPauseListener? _listener;
    private static Histogram[] _targets = [];   // copied on change, read without a lock
    private long _suspendedAtTicks = -1;

    /// <summary>Records every later pause into <paramref name="histogram"/> until <see cref="Unregister"/>.</summary>
    public static void Register(Histogram histogram)
    {
        lock (Gate)
        {
            _targets = [.. _targets, histogram];
            _listener ??= new GcPauseListener();
        }
    }

    public static void Unregister(Histogram histogram)
    {
        lock (Gate)
        {
            _targets = _targets.Where(h => h != histogram).ToArray();
            if (_targets.Length > 0) return;
            _listener?.Dispose();
            _listener = null;
        }
    }

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == RuntimeSource) EnableEvents(source, EventLevel.Informational, GcKeyword);
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventId == SuspendBeginId)
        {
            Volatile.Write(ref _suspendedAtTicks, e.TimeStamp.Ticks);
        }
        else if (e.EventId == RestartEndId && Interlocked.Exchange(ref _suspendedAtTicks, -1) is var began and >= 0)
        {
            var pauseMs = TimeSpan.FromTicks(Math.Max(0, e.TimeStamp.Ticks - began)).TotalMilliseconds;
            foreach (var histogram in Volatile.Read(ref _targets)) histogram.Record(pauseMs);
        }
    }
}
