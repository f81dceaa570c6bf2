using System.Diagnostics;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Recipes.Tests;

/// <summary>The samples' and tools' built programs, run as processes by the sample tests (stdout and stderr redirected).</summary>
public static class SampleProcesses
{
    /// <summary>The path of a project's built dll, in the configuration the tests were built in.</summary>
    public static string Built(string project, string dll)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        var path = Path.Combine(ServerProcess.FindRepositoryRoot(), project, "bin", configuration, "net10.0", dll);
        Assert.True(File.Exists(path), $"{path} is not built");
        return path;
    }

    public static Process Start(string dll, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }
}
