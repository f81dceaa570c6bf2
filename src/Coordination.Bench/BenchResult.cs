using System.Globalization;
using System.Text;
using System.Text.Json;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>An open-loop (--rate) run: its target, whether the achieved rate reached 95% of it, the requests due in the
/// window that never went out, and how late the pacer sent after the intended times.</summary>
public sealed record RateResult(double TargetOpsPerSecond, bool Reached, long Unsent, LatencySummary SendLag);

public sealed record WatchResult(int Watchers, long Rounds, LatencySummary FanOut, LatencySummary Notify, long Missed, long Errors);

/// <summary>The outcome of a run; <see cref="ToJson"/> and <see cref="ToTable"/> render it.</summary>
public sealed class BenchResult
{
    public required BenchOptions Options { get; init; }
    public string? Target { get; set; }
    public double MeasuredSeconds { get; set; }
    /// <summary>Successful operations completed in the measured window (a multi counts once).</summary>
    public long Ops { get; set; }
    /// <summary>Error replies to requests of the measured window (never counted in <see cref="Ops"/>).</summary>
    public long Errors { get; set; }
    public long WarmupErrors { get; set; }
    /// <summary>Requests that failed because their connection was lost.</summary>
    public long ConnectionLosses { get; set; }
    public Dictionary<ErrorCode, long> ErrorCodes { get; } = new();
    public LatencySummary Latency { get; set; }
    public Dictionary<string, LatencySummary> PerOp { get; } = new();
    public WatchResult? Watch { get; set; }
    /// <summary>The server processes measured; CPU and RSS are their sums.</summary>
    public IReadOnlyList<int> ServerPids { get; set; } = [];
    public RateResult? Rate { get; set; }
    public double? ServerCpuMs { get; set; }
    public long? ServerRssBytes { get; set; }
    public double ClientCpuMs { get; set; }

    public double OpsPerSecond => MeasuredSeconds > 0 ? Ops / MeasuredSeconds : 0;
    public double? ServerCpuMsPer1kOps => ServerCpuMs is { } cpu && Ops > 0 ? cpu / (Ops / 1000.0) : null;
    public long TotalErrors => Errors + WarmupErrors + ConnectionLosses + (Watch is { } w ? w.Missed + w.Errors : 0);

    public string ToJson(bool indented = true)
    {
        var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteString("target", Target ?? string.Join(",", Options.Connect));
            w.WriteString("op", Options.Op.ToString().ToLowerInvariant());
            w.WriteNumber("sessions", Options.Sessions);
            w.WriteNumber("inflight", Options.Inflight);
            w.WriteNumber("value_size", Options.ValueSize);
            w.WriteNumber("znodes", Options.Znodes);
            if (Options.Op == BenchOp.Mixed) w.WriteNumber("read_ratio", Options.ReadRatio);
            if (Options.Op == BenchOp.Multi) w.WriteNumber("multi_size", Options.MultiSize);
            w.WriteNumber("warmup_s", Options.Warmup.TotalSeconds);
            w.WriteNumber("duration_s", Math.Round(MeasuredSeconds, 3));
            w.WriteNumber("ops", Ops);
            w.WriteNumber("ops_per_sec", Math.Round(OpsPerSecond, 1));
            w.WriteNumber("errors", Errors);
            w.WriteNumber("warmup_errors", WarmupErrors);
            w.WriteNumber("connection_losses", ConnectionLosses);
            w.WriteStartObject("error_codes");
            foreach (var (code, n) in ErrorCodes.OrderBy(e => e.Key)) w.WriteNumber($"{code}({(int)code})", n);
            w.WriteEndObject();
            WriteLatency(w, "latency_us", Latency);
            w.WriteStartObject("per_op");
            foreach (var (op, s) in PerOp)
            {
                w.WriteStartObject(op);
                w.WriteNumber("ops", s.Count);
                w.WriteNumber("ops_per_sec", MeasuredSeconds > 0 ? Math.Round(s.Count / MeasuredSeconds, 1) : 0);
                WriteLatency(w, "latency_us", s);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (Watch is { } watch)
            {
                w.WriteStartObject("watch");
                w.WriteNumber("watchers", watch.Watchers);
                w.WriteNumber("rounds", watch.Rounds);
                w.WriteNumber("missed_notifications", watch.Missed);
                w.WriteNumber("errors", watch.Errors);
                WriteLatency(w, "all_notified_us", watch.FanOut);
                WriteLatency(w, "each_notified_us", watch.Notify);
                w.WriteEndObject();
            }
            if (Rate is { } rate)
            {
                w.WriteStartObject("rate");
                w.WriteNumber("target_ops_per_sec", rate.TargetOpsPerSecond);
                w.WriteNumber("achieved_ops_per_sec", Math.Round(OpsPerSecond, 1));
                w.WriteBoolean("reached", rate.Reached);
                w.WriteNumber("unsent", rate.Unsent);
                WriteLatency(w, "send_lag_us", rate.SendLag);
                w.WriteEndObject();
            }
            if (ServerPids.Count > 0)
            {
                // "pid" stays for readers of one server; "pids" lists every process whose CPU and RSS are summed.
                w.WriteStartObject("server");
                w.WriteNumber("pid", ServerPids[0]);
                w.WriteStartArray("pids");
                foreach (var p in ServerPids) w.WriteNumberValue(p);
                w.WriteEndArray();
                if (ServerCpuMs is { } cpu) w.WriteNumber("cpu_ms", Math.Round(cpu, 1));
                if (ServerCpuMsPer1kOps is { } per) w.WriteNumber("cpu_ms_per_1k_ops", Math.Round(per, 3));
                if (ServerRssBytes is { } rss) w.WriteNumber("rss_bytes", rss);
                w.WriteEndObject();
            }
            w.WriteStartObject("client");
            w.WriteNumber("cpu_ms", Math.Round(ClientCpuMs, 1));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteLatency(Utf8JsonWriter w, string name, LatencySummary s)
    {
        w.WriteStartObject(name);
        w.WriteNumber("count", s.Count);
        w.WriteNumber("min", s.MinUs);
        w.WriteNumber("mean", s.MeanUs);
        w.WriteNumber("p50", s.P50Us);
        w.WriteNumber("p90", s.P90Us);
        w.WriteNumber("p99", s.P99Us);
        w.WriteNumber("p999", s.P999Us);
        w.WriteNumber("max", s.MaxUs);
        w.WriteEndObject();
    }

    public string ToTable()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine($"target {Target ?? string.Join(",", Options.Connect)}  {Options.Describe()}");
        sb.AppendLine($"measured {MeasuredSeconds:F2} s");
        sb.AppendLine();
        if (Options.Sessions > 0)
        {
            sb.AppendLine(string.Format(inv, "{0,-8} {1,10} {2,11} {3,9} {4,9} {5,9} {6,9} {7,9}", "op", "ops", "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us"));
            void Row(string name, LatencySummary s) => sb.AppendLine(string.Format(inv, "{0,-8} {1,10} {2,11:F0} {3,9:F0} {4,9:F0} {5,9:F0} {6,9:F0} {7,9:F0}",
                name, s.Count, MeasuredSeconds > 0 ? s.Count / MeasuredSeconds : 0, s.P50Us, s.P90Us, s.P99Us, s.P999Us, s.MaxUs));
            foreach (var (op, s) in PerOp) Row(op, s);
            if (PerOp.Count != 1) Row("all", Latency);
            sb.AppendLine();
        }
        var codes = ErrorCodes.Count == 0 ? "" : "  (" + string.Join(", ", ErrorCodes.Select(e => $"{e.Key}={e.Value}")) + ")";
        sb.AppendLine($"errors {Errors} in window, {WarmupErrors} in warmup, {ConnectionLosses} connection losses{codes}");
        if (Watch is { } w)
        {
            sb.AppendLine();
            sb.AppendLine($"watch fan-out: {w.Watchers} watchers, {w.Rounds} rounds, missed {w.Missed}, errors {w.Errors}");
            sb.AppendLine(string.Format(inv, "  setData -> all notified:  p50 {0:F0} us  p99 {1:F0} us  p99.9 {2:F0} us  max {3:F0} us", w.FanOut.P50Us, w.FanOut.P99Us, w.FanOut.P999Us, w.FanOut.MaxUs));
            sb.AppendLine(string.Format(inv, "  setData -> each notified: p50 {0:F0} us  p99 {1:F0} us  p99.9 {2:F0} us  max {3:F0} us", w.Notify.P50Us, w.Notify.P99Us, w.Notify.P999Us, w.Notify.MaxUs));
        }
        if (Rate is { } rate)
        {
            sb.AppendLine();
            sb.AppendLine(string.Format(inv, "rate: target {0:F0} ops/s, achieved {1:F0} ops/s ({2}), {3} due but never sent; send lag p50 {4:F0} us p99 {5:F0} us",
                rate.TargetOpsPerSecond, OpsPerSecond, rate.Reached ? "reached" : "NOT reached", rate.Unsent, rate.SendLag.P50Us, rate.SendLag.P99Us));
            sb.AppendLine("latency counts from each request's intended send time");
        }
        if (ServerPids.Count > 0)
        {
            sb.AppendLine();
            sb.Append($"server pid {string.Join("+", ServerPids)}:");
            if (ServerCpuMs is { } cpu) sb.Append(inv, $" cpu {cpu:F0} ms");
            if (ServerCpuMsPer1kOps is { } per) sb.Append(inv, $" ({per:F2} ms per 1,000 ops)");
            if (ServerRssBytes is { } rss) sb.Append($", rss {ProcStats.FormatBytes(rss)}");
            sb.AppendLine();
        }
        sb.AppendLine(inv, $"client cpu {ClientCpuMs:F0} ms");
        return sb.ToString();
    }
}
