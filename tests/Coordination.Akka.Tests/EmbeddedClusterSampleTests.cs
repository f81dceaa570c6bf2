using System.Text.RegularExpressions;
using Coordination.Client.Tests;
using Coordination.Recipes.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>
/// samples/EmbeddedCluster end to end (issue 21, scope 5): its launcher starts 5 node processes (3 embed the
/// ensemble), waits for the ensemble, the singleton and every entity, kills the singleton's node and waits until the
/// singleton and that node's entities run on the survivors. Checked here from the sample's lines, independently of its
/// own summary: one ensemble leader among 3 members, the singleton on two nodes in turn, entities moved, and no two
/// incarnations of the singleton or of one entity ever running at once.
/// </summary>
public sealed class EmbeddedClusterSampleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_sample_cluster_survives_the_kill_of_the_singletons_node_and_never_runs_anything_twice()
    {
        var lines = new List<string>();
        var errors = new Queue<string>();
        using var sample = SampleProcesses.Start(SampleProcesses.Built("samples/EmbeddedCluster", "EmbeddedCluster.dll"), "--timeout", "200");
        var reading = Task.WhenAll(
            Task.Run(async () => { while (await sample.StandardOutput.ReadLineAsync() is { } line) lock (lines) lines.Add(line); }),
            Task.Run(async () =>
            {
                while (await sample.StandardError.ReadLineAsync() is { } line)
                    lock (errors) { errors.Enqueue(line); if (errors.Count > 60) errors.Dequeue(); }
            }));
        try
        {
            await sample.WaitForExitAsync().Within(240);
            await reading.Within(20);
        }
        finally
        {
            if (!sample.HasExited) sample.Kill(entireProcessTree: true);
            lock (lines) output.WriteLine(string.Join("\n", lines.Where(l => !l.StartsWith("ENTITY-"))));
            lock (errors) output.WriteLine("--- stderr tail ---\n" + string.Join("\n", errors));
        }

        List<string> all;
        lock (lines) all = lines.ToList();
        var summary = all.LastOrDefault(l => l.StartsWith("SUMMARY ")) ?? "";
        Assert.True(sample.ExitCode == 0, $"exit code {sample.ExitCode}: {summary}");
        Assert.Equal(5, all.Count(l => l.StartsWith("NODE-UP ")));
        Assert.Equal(3, all.Count(l => l.StartsWith("NODE-UP ") && l.Contains("member=true")));
        Assert.Single(all, l => l.StartsWith("ENSEMBLE ") && l.Contains("mode=leader"));
        var killed = Regex.Match(all.Single(l => l.StartsWith("KILLED ")), @"node=(\d+) at=(\d+)");
        var singletonNodes = all.Where(l => l.StartsWith("SINGLETON-START ")).Select(l => Field(l, "node")).ToList();
        Assert.Equal(killed.Groups[1].Value, singletonNodes[0]);
        Assert.Contains(singletonNodes, n => n != killed.Groups[1].Value);

        // Each key's incarnations in the order they started (by their own clocks: one machine, one clock), each ending at
        // its STOP, or at the kill for the killed node; a START before the previous incarnation ended is an overlap.
        var killedAt = long.Parse(killed.Groups[2].Value);
        var byKey = new Dictionary<string, List<(string Node, long Start, long End)>>();
        foreach (var line in all.Where(l => l.StartsWith("SINGLETON-START ") || l.StartsWith("ENTITY-START ")))
        {
            var key = line.StartsWith("SINGLETON") ? "singleton" : Field(line, "id");
            var (node, start) = (Field(line, "node"), long.Parse(Field(line, "at")));
            var stop = all.Where(l => (l.StartsWith("SINGLETON-STOP ") || l.StartsWith("ENTITY-STOP ")) && Field(l, "node") == node
                                      && (key == "singleton" ? l.StartsWith("SINGLETON") : Field(l, "id") == key) && long.Parse(Field(l, "at")) >= start)
                .Select(l => long.Parse(Field(l, "at"))).DefaultIfEmpty(node == killed.Groups[1].Value ? killedAt : long.MaxValue).Min();
            (byKey.TryGetValue(key, out var list) ? list : byKey[key] = []).Add((node, start, stop));
        }
        foreach (var (key, incarnations) in byKey)
        {
            var ordered = incarnations.OrderBy(i => i.Start).ToList();
            for (var i = 1; i < ordered.Count; i++)
                Assert.True(ordered[i].Start >= ordered[i - 1].End,
                    $"{key} started on node {ordered[i].Node} at {ordered[i].Start} while it ran on node {ordered[i - 1].Node} ({ordered[i - 1].Start}..{ordered[i - 1].End})");
        }
        Assert.Equal(20, byKey.Count - 1);
        Assert.Contains(byKey, kv => kv.Key != "singleton" && kv.Value.Count > 1); // some entity moved
        Assert.Matches(@"completed=true .* overlaps=0$", summary);
    }

    private static string Field(string line, string name) => Regex.Match(line, $@"\b{name}=(\S+)").Groups[1].Value;
}
