using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Packaging.Tests;

/// <summary>
/// The packages are real (issue 20): everything packable is packed into a local folder feed; a fresh console project
/// outside the repository references only packages from that feed (no project reference) and runs against a real
/// server (connect, create, watch, take a lock); coord installs from the feed as a dotnet tool and answers ruok.
/// </summary>
public sealed class PackagesTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);
    private readonly string _work = Directory.CreateTempSubdirectory("coordination-packages-").FullName;
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync("ours", new ServerProcessOptions
        {
            ExtraHocon = "coordination.four-letter-words = [\"ruok\", \"srvr\"]",
            StartTimeout = TimeSpan.FromSeconds(30),
        });

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { }
    }

    /// <summary>The projects under src/ that say IsPackable=true, and the package id each one packs as.</summary>
    private static IReadOnlyList<(string Project, string PackageId)> PackableProjects()
    {
        var src = Path.Combine(ServerProcess.FindRepositoryRoot(), "src");
        return Directory.GetFiles(src, "*.csproj", SearchOption.AllDirectories)
            .Select(p => (Project: p, Xml: XDocument.Load(p)))
            .Where(p => p.Xml.Descendants("IsPackable").Any(e => e.Value == "true"))
            .Select(p => (p.Project, p.Xml.Descendants("PackageId").FirstOrDefault()?.Value ?? Path.GetFileNameWithoutExtension(p.Project)))
            .OrderBy(p => p.Item2)
            .ToList();
    }

    [Fact]
    public async Task Packed_libraries_and_the_coord_tool_work_from_a_local_feed_without_project_references()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(12));
        var ct = deadline.Token;
        var root = ServerProcess.FindRepositoryRoot();
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        var feed = Directory.CreateDirectory(Path.Combine(_work, "feed")).FullName;

        var packable = PackableProjects();
        Assert.Contains(packable, p => p.PackageId == "Coordination.Client");
        foreach (var (project, _) in packable)
            await Dotnet(root, ct, "pack", project, "-c", configuration, "--no-build", "-o", feed);

        // One version for all, one package (and one symbol package) per packable project.
        var packages = Directory.GetFiles(feed, "*.nupkg").Where(f => !f.EndsWith(".snupkg")).Select(Path.GetFileName).ToList();
        var versions = packages.Select(f => Regex.Match(f!, @"\.(\d+\.\d+\.\d+(-[\w.]+)?)\.nupkg$").Groups[1].Value).Distinct().ToList();
        Assert.Single(versions);
        var version = versions[0];
        Assert.Equal(packable.Select(p => $"{p.PackageId}.{version}.nupkg").Order(), packages.Order());
        foreach (var (_, id) in packable.Where(p => p.PackageId != "coord"))
            Assert.True(File.Exists(Path.Combine(feed, $"{id}.{version}.snupkg")), $"no symbol package for {id}");
        AssertPackageMetadata(Path.Combine(feed, $"Coordination.Client.{version}.nupkg"));

        // A fresh console project in a directory of its own (no Directory.Build.props, no central versions), restoring
        // into its own packages folder so that no earlier build of these packages can stand in for the ones just packed.
        var app = Directory.CreateDirectory(Path.Combine(_work, "app")).FullName;
        var packagesFolder = Path.Combine(_work, "nuget-packages");
        File.WriteAllText(Path.Combine(app, "nuget.config"), NuGetConfig(feed, packagesFolder));
        File.WriteAllText(Path.Combine(app, "PackagesApp.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Coordination.Client" Version="{version}" />
                <PackageReference Include="Coordination.Recipes" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), AppSource);
        await Dotnet(app, ct, "build", "-c", "Release", "-o", Path.Combine(app, "out"));
        var assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
        Assert.Contains($"\"Coordination.Client/{version}\"", assets);
        Assert.DoesNotContain("\"type\": \"project\"", assets);
        Assert.DoesNotContain("\"Akka/", assets);   // the Task client does not drag Akka in

        var run = await Run("dotnet", app, ct, Path.Combine(app, "out", "PackagesApp.dll"), _server.ConnectString);
        Assert.Contains("created /packages-test", run);
        Assert.Contains("watch NodeDataChanged /packages-test", run);
        Assert.Matches(@"locked /packages-test/lock/.*lock-\d{10}", run);

        // coord as a dotnet tool, installed into a fresh tool path from the feed alone (a tool package carries its
        // dependencies; no other source may offer a "coord" of its own, and --add-source refuses source mapping).
        var toolDir = Directory.CreateDirectory(Path.Combine(_work, "tool-install")).FullName;
        File.WriteAllText(Path.Combine(toolDir, "nuget.config"), """
            <?xml version="1.0" encoding="utf-8"?>
            <configuration><packageSources><clear /></packageSources></configuration>
            """);
        var tools = Path.Combine(_work, "tools");
        await Dotnet(toolDir, ct, "tool", "install", "--tool-path", tools, "--add-source", feed, "--version", version, "coord");
        var ruok = await Run(Path.Combine(tools, "coord"), toolDir, ct, "-S", _server.ConnectString, "ruok");
        Assert.Contains("imok", ruok);
    }

    private static void AssertPackageMetadata(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var nuspecEntry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec"));
        using var nuspecStream = nuspecEntry.Open();
        var nuspec = XDocument.Load(nuspecStream);
        string Meta(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value ?? "";
        Assert.False(string.IsNullOrWhiteSpace(Meta("authors")));
        Assert.Equal("Apache-2.0", Meta("license"));
        Assert.Equal("README.md", Meta("readme"));
        Assert.Contains("zookeeper", Meta("tags"));
        Assert.NotNull(zip.GetEntry("README.md"));
        Assert.NotNull(zip.GetEntry("lib/net10.0/Coordination.Client.xml"));   // XML docs
        var repository = nuspec.Descendants().Single(e => e.Name.LocalName == "repository");
        Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");   // SourceLink's commit
    }

    /// <summary>The local feed first; then the sources this machine restores from (its nuget.org mirror), for anything else.</summary>
    private static string NuGetConfig(string feed, string packagesFolder) => $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <config><add key="globalPackagesFolder" value="{packagesFolder}" /></config>
          <packageSources>
            <clear />
            <add key="local-feed" value="{feed}" />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
          </packageSources>
          <packageSourceMapping>
            <packageSource key="local-feed"><package pattern="Coordination.*" /><package pattern="coord" /></packageSource>
            <packageSource key="nuget.org"><package pattern="*" /></packageSource>
          </packageSourceMapping>
        </configuration>
        """;

    private const string AppSource = """
        using Coordination.Client;
        using Coordination.Protocol;
        using Coordination.Recipes;

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        await using var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = args[0] }, ct);
        var created = await client.CreateAsync("/packages-test", "v1"u8.ToArray(), ct: ct);
        Console.WriteLine($"created {created}");
        var fired = new TaskCompletionSource<WatchedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.GetDataAsync("/packages-test", e => fired.TrySetResult(e), ct);
        await client.SetDataAsync("/packages-test", "v2"u8.ToArray(), ct: ct);
        var e = await fired.Task.WaitAsync(ct);
        Console.WriteLine($"watch {e.Type} {e.Path}");
        var mutex = new DistributedLock(client, "/packages-test/lock");
        if (!await mutex.AcquireAsync(TimeSpan.FromSeconds(20), ct)) throw new Exception("lock not taken");
        Console.WriteLine($"locked {mutex.NodePath}");
        await mutex.ReleaseAsync();
        """;

    private Task<string> Dotnet(string workingDirectory, CancellationToken ct, params string[] args) =>
        Run("dotnet", workingDirectory, ct, args);

    /// <summary>Runs a command to its end (bounded by <see cref="CommandTimeout"/>); a non-zero exit fails the test.</summary>
    private async Task<string> Run(string file, string workingDirectory, CancellationToken ct, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        // The fresh project and dotnet tool install restore into a fresh packages folder: never an older coord.
        if (workingDirectory.StartsWith(_work)) psi.Environment["NUGET_PACKAGES"] = Path.Combine(_work, "nuget-packages");
        psi.Environment.Remove("COORD_SERVER");
        var described = $"{file} {string.Join(' ', args)}";
        var watch = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = p.StandardError.ReadToEndAsync(CancellationToken.None);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(CommandTimeout);
        try { await p.WaitForExitAsync(bound.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{described} did not finish in time:\n{await stdout}\n{await stderr}");
        }
        var text = await stdout + await stderr;
        output.WriteLine($"$ {described}  ({watch.Elapsed.TotalSeconds:F1} s, exit {p.ExitCode})\n{text}");
        Assert.True(p.ExitCode == 0, $"{described} exited {p.ExitCode}:\n{text}");
        return text;
    }
}
