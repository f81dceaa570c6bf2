using System.Diagnostics;
using System.Text.RegularExpressions;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>
/// BenchmarkDotNet's work, covered by a test: the proxy serializer benchmark (ours beside Hyperion and Akka's JSON, the
/// comparison behind the hand-written serializer) runs as BenchmarkDotNet's dry job, in process, and reports its three
/// cases. A dry job runs each case once, so nothing here is timed; what it keeps true is that the benchmark project
/// still runs, so that the figures the README quotes can be taken again.
/// </summary>
public sealed class BenchmarkSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_proxy_serializer_benchmark_runs_its_three_cases_as_a_dry_job()
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        var dll = Path.Combine(ServerProcess.FindRepositoryRoot(), "benchmarks", "Coordination.Benchmarks", "bin", configuration, "net10.0", "Coordination.Benchmarks.dll");
        Assert.True(File.Exists(dll), $"{dll} is not built");
        var artifacts = Directory.CreateTempSubdirectory("bdn-smoke-").FullName;
        try
        {
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = artifacts,
            };
            foreach (var a in new[] { dll, "--filter", "*ProxySerializer*", "--job", "Dry", "--inProcess", "--artifacts", artifacts }) info.ArgumentList.Add(a);
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
            try { await process.WaitForExitAsync(timeout.Token); }
            catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw new TimeoutException("the dry benchmark run did not end within 4 minutes"); }
            var text = await stdout + await stderr;
            output.WriteLine(text.Length > 6000 ? text[^6000..] : text);
            Assert.Equal(0, process.ExitCode);
            // Each case prints its encoded sizes once (GlobalSetup), and the summary has a row per case.
            var sizes = new Dictionary<string, int>();
            foreach (var serializer in new[] { "json", "hyperion", "proxy" })
            {
                var m = Regex.Match(text, $@"// {serializer}: SetData (\d+) B, NodeData (\d+) B");
                Assert.True(m.Success, $"no sizes printed by the {serializer} case");
                sizes[serializer] = int.Parse(m.Groups[1].Value) + int.Parse(m.Groups[2].Value);
                Assert.Matches($@"RequestAndReply\s*\|\s*{serializer}\s*\|", text);
            }
            Assert.True(sizes["proxy"] < sizes["hyperion"] && sizes["proxy"] < sizes["json"],
                $"the proxy serializer's request and reply ({sizes["proxy"]} B) are not the smallest (Hyperion {sizes["hyperion"]} B, JSON {sizes["json"]} B)");
        }
        finally
        {
            try { Directory.Delete(artifacts, recursive: true); } catch (IOException) { }
        }
    }
}
