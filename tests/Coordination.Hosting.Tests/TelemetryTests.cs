using System.Diagnostics;
using System.Text.RegularExpressions;
using Coordination.Client;
using Coordination.Protocol;
using Coordination.Server.Metrics;
using Coordination.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Xunit;

namespace Coordination.Hosting.Tests;

/// <summary>
/// OpenTelemetry's in-memory exporter, during a real workload (a client over TCP against a server embedded in the
/// process with AddCoordinationServer, journal on disk), sees every metric, span source, span name and span attribute
/// that docs/telemetry.md lists: the document and the code cannot drift apart.
/// </summary>
public sealed class TelemetryTests
{
    /// <summary>The backticked first cell of every table row under the heading <paramref name="section"/>.</summary>
    private static List<string> DocumentedNames(string doc, string section)
    {
        var body = doc[(doc.IndexOf("\n## " + section + "\n", StringComparison.Ordinal) + section.Length + 5)..];
        var end = body.IndexOf("\n## ", StringComparison.Ordinal);
        if (end >= 0) body = body[..end];
        return Regex.Matches(body, @"^\| `([^`]+)` \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
    }

    /// <summary>The backticked operation names in the Name column of the Spans table (the ops the workload runs).</summary>
    private static List<string> DocumentedSpanNames(string doc)
    {
        var row = doc.Split('\n').First(l => l.StartsWith("| `Coordination.Client` | client |", StringComparison.Ordinal));
        return Regex.Matches(row.Split('|')[3], "`([^`]+)`").Select(m => m.Groups[1].Value).ToList();
    }

    [Fact]
    public async Task The_in_memory_exporter_sees_every_documented_metric_span_and_attribute_during_a_workload()
    {
        var doc = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "telemetry.md"));
        var metricNames = DocumentedNames(doc, "Metrics");
        var attributeNames = DocumentedNames(doc, "Span attributes");
        var spanNames = DocumentedSpanNames(doc);
        Assert.True(metricNames.Count >= 14 && attributeNames.Count >= 5 && spanNames.Count >= 7,
            $"the document lists too little: {metricNames.Count} metrics, {attributeNames.Count} attributes, {spanNames.Count} span names");

        var metrics = new List<Metric>();
        var spans = new List<Activity>();
        using var meterProvider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(CoordinationTelemetry.Name, ServerTelemetry.Name).AddInMemoryExporter(metrics).Build();
        using var tracerProvider = Sdk.CreateTracerProviderBuilder()
            .AddSource(CoordinationTelemetry.Name, ServerTelemetry.Name).AddInMemoryExporter(spans).Build();

        var dataDir = Directory.CreateTempSubdirectory("coordination-otel-").FullName;
        var port = ServerProcess.FreeLoopbackPort();
        try
        {
            var builder = EmbeddedServer.Builder(port, dataDir);
            using var host = builder.Build();
            await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));

            await using (var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = $"127.0.0.1:{port}" }))
            {
                await Workload(client).WaitAsync(TimeSpan.FromSeconds(30));
                Assert.True(meterProvider.ForceFlush(10_000), "metrics not flushed"); // while the client is live: its sessions are observed
            }
            Assert.True(tracerProvider.ForceFlush(10_000), "spans not flushed");
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally { Directory.Delete(dataDir, recursive: true); }

        var exported = metrics.Select(m => m.Name).ToHashSet();
        Assert.Empty(metricNames.Where(n => !exported.Contains(n)));
        var requests = metrics.First(m => m.Name == "coordination.server.requests");
        var setDataCount = 0L;
        foreach (ref readonly var point in requests.GetMetricPoints())
            foreach (var tag in point.Tags)
                if (tag is { Key: "coordination.operation", Value: "setData" }) setDataCount = point.GetSumLong();
        Assert.True(setDataCount >= 3, $"coordination.server.requests{{setData}} = {setDataCount}, the workload made 3");

        foreach (var source in new[] { CoordinationTelemetry.Name, ServerTelemetry.Name })
        {
            var names = spans.Where(s => s.Source.Name == source).Select(s => s.DisplayName).ToHashSet();
            Assert.Empty(spanNames.Where(n => !names.Contains(n)).Select(n => $"{source}: {n}"));
        }
        var attributes = spans.SelectMany(s => s.TagObjects.Select(t => t.Key)).ToHashSet();
        Assert.Empty(attributeNames.Where(a => !attributes.Contains(a)));
        Assert.Contains(spans, s => s.Source.Name == ServerTelemetry.Name && s.Kind == ActivityKind.Server
            && s.DisplayName == "exists" && s.Status == ActivityStatusCode.Error && (string?)s.GetTagItem("error.type") == "NoNode");
        Assert.Contains(spans, s => s.Source.Name == CoordinationTelemetry.Name && s.Kind == ActivityKind.Client
            && s.DisplayName == "create2" && (string?)s.GetTagItem("coordination.path") == "/otel");
    }

    private static async Task Workload(CoordinationClient client)
    {
        await client.CreateAsync("/otel", "v0"u8.ToArray());
        for (var i = 1; i <= 3; i++) await client.SetDataAsync("/otel", System.Text.Encoding.UTF8.GetBytes($"v{i}"));
        await client.GetDataAsync("/otel", _ => { });
        Assert.Null(await client.ExistsAsync("/otel-missing"));
        await client.GetChildrenAsync("/");
        await client.MultiAsync([new CreateOp("/otel/a", null, CreateMode.Persistent, Acls.Open, -1), new SetDataOp("/otel", null, -1)]);
        await client.DeleteAsync("/otel/a");
        await client.DeleteAsync("/otel");
    }
}
