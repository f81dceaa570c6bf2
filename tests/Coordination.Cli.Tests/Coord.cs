using System.Diagnostics;
using System.Text.Json;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Cli.Tests;

/// <summary>One server (ours, every four-letter word allowed) for all CLI tests.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public ServerProcess Server { get; private set; } = null!;
    public string ConnectString => Server.ConnectString;

    public async Task InitializeAsync() =>
        Server = await ServerProcess.StartAsync("ours", new ServerProcessOptions
        {
            ExtraHocon = "coordination.four-letter-words = [\"*\"]",
            StartTimeout = TimeSpan.FromSeconds(30),
        });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

[CollectionDefinition("cli")]
public sealed class CliCollection : ICollectionFixture<ServerFixture>;

public sealed record CoordResult(int ExitCode, string Stdout, string Stderr)
{
    public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>Runs the real coord binary (dotnet coord.dll) as a subprocess.</summary>
public static class Coord
{
    public static string Dll
    {
        get
        {
            var own = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
            var root = ServerProcess.FindRepositoryRoot();
            foreach (var c in new[] { own, own == "Release" ? "Debug" : "Release" })
            {
                var p = Path.Combine(root, "src", "Coordination.Cli", "bin", c, "net10.0", "coord.dll");
                if (File.Exists(p)) return p;
            }
            throw new FileNotFoundException("coord.dll not built (dotnet build src/Coordination.Cli -c Release)");
        }
    }

    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment.Remove("COORD_SERVER");
        return psi;
    }

    public static async Task<CoordResult> RunAsync(string[] args, string? stdin = null, int timeoutSeconds = 20)
    {
        using var p = Process.Start(StartInfo(args))!;
        var outTask = p.StandardOutput.ReadToEndAsync();
        var errTask = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"coord {string.Join(' ', args)} did not finish in {timeoutSeconds}s: {await outTask}{await errTask}");
        }
        return new CoordResult(p.ExitCode, await outTask, await errTask);
    }
}
