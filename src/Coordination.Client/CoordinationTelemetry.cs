using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Coordination.Protocol;

namespace Coordination.Client;

/// <summary>
/// The client's OpenTelemetry sources: the <see cref="ActivitySource"/> and <see cref="Meter"/> both named
/// <see cref="Name"/> (<c>AddSource("Coordination.Client")</c>, <c>AddMeter("Coordination.Client")</c>). Instruments and
/// attributes are listed in docs/telemetry.md. With no listener a request pays two flag reads; with one it pays a
/// span, a timestamp and a continuation.
/// </summary>
public static class CoordinationTelemetry
{
    /// <summary>The name of the client's ActivitySource and Meter.</summary>
    public const string Name = "Coordination.Client";

    private static readonly string? Version = typeof(CoordinationTelemetry).Assembly.GetName().Version?.ToString();
    internal static readonly ActivitySource Source = new(Name, Version);
    private static readonly Meter Meter = new(Name, Version);

    private static readonly Histogram<double> OperationDuration = Meter.CreateHistogram<double>("coordination.client.operation.duration", "s",
        "Time from queuing a request to its reply (or failure), per operation.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10] });

    /// <summary>Live clients, read by the observable instruments at collection time (weak: an undisposed client is not kept alive).</summary>
    private static readonly ConditionalWeakTable<CoordinationClient, object?> Clients = new();

    private static readonly ConcurrentDictionary<OpCode, string> OpNames = new();

    static CoordinationTelemetry()
    {
        Meter.CreateObservableUpDownCounter("coordination.client.sessions", ObserveSessions, "{session}",
            "Clients of this process by connection state (coordination.client.state).");
        Meter.CreateObservableUpDownCounter("coordination.client.pending_requests", () => Sum(c => c.PendingRequests), "{request}",
            "Requests sent or queued and not yet answered, over the clients of this process.");
        Meter.CreateObservableUpDownCounter("coordination.client.watches", () => Sum(c => c.WatchCount), "{watch}",
            "Watcher registrations held, over the clients of this process.");
    }

    internal static void Register(CoordinationClient client) => Clients.AddOrUpdate(client, null);
    internal static void Unregister(CoordinationClient client) => Clients.Remove(client);

    private static long Sum(Func<CoordinationClient, int> value)
    {
        long total = 0;
        foreach (var (client, _) in Clients) total += value(client);
        return total;
    }

    private static IEnumerable<Measurement<long>> ObserveSessions()
    {
        var byState = new Dictionary<ConnectionState, long>();
        foreach (var (client, _) in Clients) byState[client.State] = byState.GetValueOrDefault(client.State) + 1;
        foreach (var (state, count) in byState)
            yield return new Measurement<long>(count, new KeyValuePair<string, object?>("coordination.client.state", state.ToString()));
    }

    /// <summary>The operation's name as ZooKeeper's API spells it (getData, create2, ...): the span name and the
    /// <c>coordination.operation</c> attribute, as the server's <c>op</c> label.</summary>
    internal static string OpName(OpCode op) => OpNames.GetOrAdd(op, static o =>
    {
        var name = o.ToString();
        return char.ToLowerInvariant(name[0]) + name[1..];
    });

    /// <summary>True when a span or the duration histogram has a listener: only then does a request pay for telemetry.</summary>
    internal static bool Enabled => OperationDuration.Enabled || Source.HasListeners();

    /// <summary>Starts the request's span (not made current: the caller's Activity.Current is left alone) and ends
    /// it, recording the duration, when <paramref name="reply"/> completes.</summary>
    internal static void Track(CoordinationClient client, OpCode op, string? path, Task<ZkResponse> reply)
    {
        var started = Stopwatch.GetTimestamp();
        var name = OpName(op);
        var previous = Activity.Current;
        var activity = Source.StartActivity(name, ActivityKind.Client);
        if (activity is not null)
        {
            Activity.Current = previous;
            if (activity.IsAllDataRequested)
            {
                activity.SetTag("coordination.operation", name);
                if (path is not null) activity.SetTag("coordination.path", path);
                activity.SetTag("coordination.session_id", $"0x{client.SessionId:x}");
            }
        }
        reply.ContinueWith(static (task, state) =>
        {
            var (activity, name, started) = ((Activity?, string, long))state!;
            var error = task.Exception?.InnerException switch
            {
                null => task.IsCanceled ? "Canceled" : null,
                KeeperException k => k.Code.ToString(),
                var e => e.GetType().Name,
            };
            if (OperationDuration.Enabled)
            {
                var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
                if (error is null) OperationDuration.Record(elapsed, new KeyValuePair<string, object?>("coordination.operation", name));
                else OperationDuration.Record(elapsed, new("coordination.operation", name), new("error.type", error));
            }
            if (activity is null) return;
            if (error is not null)
            {
                activity.SetTag("error.type", error);
                activity.SetStatus(ActivityStatusCode.Error, error);
            }
            activity.Stop();
        }, (activity, name, started), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
