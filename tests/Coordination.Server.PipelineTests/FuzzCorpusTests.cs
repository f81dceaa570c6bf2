using System.Diagnostics;
using System.Reflection;
using Coordination.Fuzz;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The fuzz corpus (fuzz/corpus: seeds, inputs captured from kazoo and zkCli, and every input a finding was fixed
/// for) replayed in-process through the fuzz targets, and the CI smoke run of afl-fuzz itself (fuzz/README.md).
/// </summary>
public sealed class FuzzCorpusTests(ITestOutputHelper output)
{
    private static readonly string Root = FindRoot();
    private static string Corpus => Path.Combine(Root, "fuzz", "corpus");

    public static TheoryData<string> Targets() => new(FuzzTargets.All.Keys);

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_corpus_input_decodes_cleanly_through_every_target(string target)
    {
        var files = Directory.GetFiles(Corpus, "*", SearchOption.AllDirectories).Order().ToList();
        Assert.True(Directory.GetFiles(Path.Combine(Corpus, target)).Length > 0, $"no seeds for {target}");
        var findings = new List<string>();
        foreach (var file in files)
        {
            try { FuzzTargets.Run(target, File.ReadAllBytes(file)); }
            catch (Exception e) { findings.Add($"{Path.GetRelativePath(Corpus, file)}: {e.GetType().Name}: {e.Message}"); }
        }
        Assert.True(findings.Count == 0, $"{target}: {findings.Count} of {files.Count} inputs are findings:\n" + string.Join("\n", findings));
    }

    /// <summary>
    /// afl-fuzz on every target for about four seconds each, from the committed corpus; fails when it saves a crash
    /// (a smoke run in the default suite: the long run is <c>fuzz/run.sh all 3600</c>, fuzz/README.md).
    /// Runs when COORDINATION_REQUIRE_FUZZ=1 (as .ci/run sets), or wherever afl-fuzz is installed.
    /// </summary>
    [SkippableFact]
    public void Afl_finds_no_crash_in_a_short_run()
    {
        var required = Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_FUZZ") == "1";
        var afl = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "afl-fuzz")));
        if (!afl && required) Assert.Fail("COORDINATION_REQUIRE_FUZZ=1 but afl-fuzz is not installed (apt-get install afl++)");
        Skip.IfNot(afl, "afl-fuzz is not installed (apt-get install afl++)");

        var findings = Directory.CreateTempSubdirectory("coordination-fuzz-smoke");
        try
        {
            var psi = new ProcessStartInfo("bash", [Path.Combine(Root, "fuzz", "run.sh"), "all", "4"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                Environment = { ["FUZZ_FINDINGS"] = findings.FullName, ["FUZZ_PREBUILT"] = FuzzBuild() },
            };
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("fuzz/run.sh did not finish within 5 minutes");
            }
            output.WriteLine(stdout.Result + stderr.Result);
            Assert.True(process.ExitCode == 0, $"fuzz/run.sh exited {process.ExitCode}:\n{stdout.Result}{stderr.Result}");
            // Each target must really have run: a stats line per target.
            foreach (var target in FuzzTargets.All.Keys)
                Assert.True(File.Exists(Path.Combine(findings.FullName, target, "default", "fuzzer_stats")), $"{target} did not run");
        }
        finally
        {
            findings.Delete(recursive: true);
        }
    }

    /// <summary>The fuzz project's own build output (built with this project, which references it).</summary>
    private static string FuzzBuild() =>
        typeof(FuzzCorpusTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FuzzBuild").Value!;

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "fuzz", "run.sh"))) return dir.FullName;
        throw new InvalidOperationException("repository root (with fuzz/run.sh) not found above " + AppContext.BaseDirectory);
    }
}
