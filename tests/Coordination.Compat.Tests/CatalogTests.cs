namespace Coordination.Compat.Tests;

/// <summary>The hard-coded check lists must match what the scripts report with --list.</summary>
public sealed class CatalogTests
{
    [Fact]
    public async Task KazooListMatchesCatalog()
    {
        var r = await ProcessRunner.RunAsync(
            CompatEnvironment.Python, new[] { CompatEnvironment.KazooScript, "--list" }, TimeSpan.FromSeconds(60));
        Assert.True(r.Succeeded, $"kazoo_checks.py --list failed (exit {r.ExitCode}):\n{r.Output}");
        Assert.Equal(CheckCatalog.Kazoo, Lines(r.Output));
    }

    [Fact]
    public async Task JavaListMatchesCatalog()
    {
        var r = await ProcessRunner.RunAsync(
            CompatEnvironment.Java, await JavaChecksBuild.JavaArgsAsync("--list"), TimeSpan.FromSeconds(60));
        Assert.True(r.Succeeded, $"ZkChecks --list failed (exit {r.ExitCode}):\n{r.Output}");
        Assert.Equal(CheckCatalog.Java, Lines(r.Output));
    }

    [Fact]
    public void CheckNamesAreUnique()
    {
        Assert.Equal(CheckCatalog.Kazoo.Length, CheckCatalog.Kazoo.Distinct().Count());
        Assert.Equal(CheckCatalog.Java.Length, CheckCatalog.Java.Distinct().Count());
    }

    private static string[] Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("SLF4J", StringComparison.Ordinal))
            .ToArray();
}
