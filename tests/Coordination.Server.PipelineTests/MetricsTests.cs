using System.Globalization;
using System.Text;
using Coordination.Protocol;
using Coordination.Server.Metrics;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>The Prometheus exposition of the histograms and ensemble counters that /metrics appends.</summary>
public sealed class MetricsTests
{
    private static Dictionary<string, double> Samples(string text) =>
        text.Split('\n').Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));

    [Fact]
    public void Histogram_buckets_are_cumulative_with_an_inf_bucket_sum_and_count()
    {
        var h = new Histogram([1, 10]);
        foreach (var v in new[] { 0.5, 1, 2, 50 }) h.Record(v);
        var b = new StringBuilder();
        h.WriteSamples(b, "lat", "op=\"getData\"");
        var s = Samples(b.ToString());
        Assert.Equal(2, s["lat_bucket{op=\"getData\",le=\"1\"}"]);     // le is inclusive
        Assert.Equal(3, s["lat_bucket{op=\"getData\",le=\"10\"}"]);
        Assert.Equal(4, s["lat_bucket{op=\"getData\",le=\"+Inf\"}"]);
        Assert.Equal(4, s["lat_count{op=\"getData\"}"]);
        Assert.Equal(53.5, s["lat_sum{op=\"getData\"}"], 6);
        Assert.Equal(4, h.Count);
    }

    [Fact]
    public void Server_metrics_expose_per_op_latency_journal_and_ensemble_series_under_zookeeper_names()
    {
        var m = new ServerMetrics();
        m.RecordRequest(OpCode.GetData, System.Diagnostics.Stopwatch.GetTimestamp());
        m.RecordRequest(OpCode.GetData, System.Diagnostics.Stopwatch.GetTimestamp());
        m.RecordRequest((OpCode)5000, System.Diagnostics.Stopwatch.GetTimestamp());   // unknown code: ignored
        m.AddProposals(3);
        m.RecordJournalWrite(System.Diagnostics.Stopwatch.GetTimestamp(), 3);
        m.Ensemble.RecordElection(TimeSpan.FromMilliseconds(120), electedLeaderId: 2);
        m.Ensemble.RecordElection(TimeSpan.FromMilliseconds(80), electedLeaderId: 2);   // same leader: no change
        m.Ensemble.RecordElection(TimeSpan.FromMilliseconds(90), electedLeaderId: 3);
        m.Ensemble.SetSyncedFollowers(2);
        m.Ensemble.RecordFollowerSync(EnsembleMetrics.SyncKind.Snap);
        m.Ensemble.SetServerState("leading");
        m.Ensemble.MemberAuthFailed();
        m.Ensemble.MemberMessageRefused();
        m.Ensemble.MemberMessageRefused();

        var b = new StringBuilder();
        m.WritePrometheus(b);
        var text = b.ToString();
        var s = Samples(text);
        Assert.Equal(2, s["request_latency_ms_count{op=\"getData\"}"]);
        Assert.DoesNotContain("op=\"setData\"", text);                 // only ops that were seen
        Assert.Equal(3, s["proposal_count"]);
        Assert.Equal(3, s["commit_count"]);
        Assert.Equal(1, s["fsynctime_count"]);
        Assert.Equal(1, s["sync_processor_batch_size_bucket{le=\"4\"}"]);
        Assert.Equal(0, s["sync_processor_batch_size_bucket{le=\"2\"}"]);
        Assert.Equal(3, s["election_time_count"]);
        Assert.Equal(2, s["leader_changes"]);                            // -1 -> 2, 2 -> 3
        Assert.Equal(2, s["synced_followers"]);
        Assert.Equal(1, s["follower_sync_count{kind=\"SNAP\"}"]);
        Assert.Equal(1, s["server_state{state=\"leading\"}"]);
        Assert.Equal(1, s["member_auth_failures"]);
        Assert.Equal(2, s["member_messages_refused"]);
        Assert.Contains("# TYPE request_latency_ms histogram", text);
    }
}
