using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Coordination.Protocol;

namespace Coordination.Server.Metrics;

/// <summary>
/// The server's OpenTelemetry sources, both named <see cref="Name"/>: a <see cref="Meter"/> per server whose
/// instruments are all observable and read the counters /metrics and mntr read (<see cref="ServerMetrics"/>), so the
/// request path pays nothing for them; and an <see cref="ActivitySource"/> with one span per request, from its decode
/// to its reply hand-off, made when the reply goes out (with no listener: one flag read). Names are listed in
/// docs/telemetry.md.
/// </summary>
public static class ServerTelemetry
{
    /// <summary>The name of the server's ActivitySource and Meter.</summary>
    public const string Name = "Coordination.Server";

    private static readonly string? Version = typeof(ServerTelemetry).Assembly.GetName().Version?.ToString();
    private static readonly ActivitySource Source = new(Name, Version);
    private static readonly ConcurrentDictionary<OpCode, string> OpNames = new();

    /// <summary>A meter over <paramref name="metrics"/>, tagged with the server's actor system; dispose it with the system.</summary>
    internal static Meter CreateMeter(ServerMetrics metrics, string systemName)
    {
        var meter = new Meter(new MeterOptions(Name) { Version = Version, Tags = [new("coordination.server.system", systemName)] });
        meter.CreateObservableCounter("coordination.server.requests",
            () => metrics.RequestLatencies().Select(r => new Measurement<long>(r.Latency.Count, OpTag(r.Op))), "{request}",
            "Requests answered, per operation (coordination.operation).");
        meter.CreateObservableCounter("coordination.server.request.time",
            () => metrics.RequestLatencies().Select(r => new Measurement<double>(r.Latency.Sum / 1000, OpTag(r.Op))), "s",
            "Total time from a request's decode to its reply hand-off, per operation (divide by coordination.server.requests for the mean).");
        meter.CreateObservableCounter("coordination.server.packets.received", () => metrics.Stats.PacketsReceived, "{packet}",
            "Packets received from clients (mntr packets_received; srst resets it).");
        meter.CreateObservableCounter("coordination.server.packets.sent", () => metrics.Stats.PacketsSent, "{packet}",
            "Packets sent to clients (mntr packets_sent; srst resets it).");
        meter.CreateObservableCounter("coordination.server.proposals", () => metrics.Proposals, "{txn}", "Txns handed to the log (proposal_count).");
        meter.CreateObservableCounter("coordination.server.commits", () => metrics.Commits, "{txn}", "Txns made durable (commit_count).");
        meter.CreateObservableCounter("coordination.server.journal.writes", () => metrics.FsyncTime.Count, "{write}",
            "Journal writes (group commits, one fsync each in WAL mode).");
        meter.CreateObservableCounter("coordination.server.journal.write.time", () => metrics.FsyncTime.Sum / 1000, "s",
            "Total journal write (fsync) time (fsynctime).");
        meter.CreateObservableCounter("coordination.server.leader_changes", () => metrics.Ensemble.LeaderChanges, "{change}",
            "Leader changes seen by this member.");
        meter.CreateObservableUpDownCounter("coordination.server.learners", () => metrics.Ensemble.Learners, "{member}",
            "Learners connected to this member while it leads.");
        return meter;
    }

    private static KeyValuePair<string, object?> OpTag(OpCode op) => new("coordination.operation", OpName(op));

    private static string OpName(OpCode op) => OpNames.GetOrAdd(op, ServerMetrics.OpName);

    /// <summary>Emits the span of one answered request: started at its decode (<paramref name="receivedTicks"/>, a
    /// Stopwatch timestamp), ended now. Costs a flag read when nobody listens to <see cref="Name"/>.</summary>
    internal static void TraceRequest(OpCode op, long receivedTicks, ErrorCode err, long sessionId, long zxid)
    {
        if (!Source.HasListeners()) return;
        var name = OpName(op);
        var started = DateTimeOffset.UtcNow - Stopwatch.GetElapsedTime(receivedTicks);
        using var activity = Source.StartActivity(name, ActivityKind.Server, default(ActivityContext), startTime: started);
        if (activity is null) return;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("coordination.operation", name);
            activity.SetTag("coordination.session_id", $"0x{sessionId:x}");
            if (zxid > 0) activity.SetTag("coordination.zxid", zxid);
        }
        if (err != ErrorCode.Ok)
        {
            activity.SetTag("error.type", err.ToString());
            activity.SetStatus(ActivityStatusCode.Error, err.ToString());
        }
    }
}
