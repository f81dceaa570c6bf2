using Coordination.TestKit;

namespace Coordination.Bench;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        return await BenchApp.RunAsync(args, Console.Out, Console.Error, cts.Token);
    }
}

/// <summary>The bench's entry point, callable in-process (tests pass their own writers).</summary>
public static class BenchApp
{
    /// <summary>
    /// Exit codes: 0 ok, 2 bad arguments, 1 the run failed (e.g. could not connect), 3 the run finished but had errors.
    /// With --json only the JSON result goes to <paramref name="stdout"/>; progress goes to <paramref name="stderr"/>.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
    {
        if (args.Length > 0 && args[0] == "side-by-side") return await SideBySide.RunAsync(args[1..], stdout, stderr, ct);
        if (args.Length > 0 && args[0] == "session-churn") return await SessionChurn.RunAsync(args[1..], stdout, stderr, ct);
        if (args.Length > 0 && args[0] == "scale") return await ScaleBench.RunAsync(args[1..], stdout, stderr, ct);
        if (args.Length > 0 && args[0] == "sessions") return await SessionScale.RunAsync(args[1..], stdout, stderr, ct);
        if (args.Length > 0 && args[0] == "feed") return await FeedBench.RunAsync(args[1..], stdout, ct);
        if (args.Any(a => a is "--help" or "-h" or "-?"))
        {
            await stdout.WriteLineAsync(BenchOptions.Usage);
            return 0;
        }
        BenchOptions options;
        try { options = BenchOptions.Parse(args); }
        catch (ArgumentException e)
        {
            await stderr.WriteLineAsync($"error: {e.Message}\n\n{BenchOptions.Usage}");
            return 2;
        }

        var progress = options.Json ? stderr : stdout;
        ServerProcess? launched = null;
        try
        {
            if (options.Launch is { } target)
            {
                launched = await ServerProcess.StartAsync(target, new ServerProcessOptions { ExtraZooCfg = options.ApacheConfig }, ct);
                await progress.WriteLineAsync($"launched {launched}");
                options = options with { Connect = [launched.ConnectString], ServerPids = options.ServerPids.Count > 0 ? options.ServerPids : [launched.Pid] };
            }
            if (!options.Json) await progress.WriteLineAsync($"bench {string.Join(",", options.Connect)}  {options.Describe()}");
            var result = await new BenchRunner(options, progress).RunAsync(ct);
            if (launched is not null) result.Target = $"{options.Launch} ({launched.ConnectString})";
            if (options.Json) await stdout.WriteLineAsync(result.ToJson());
            else
            {
                await stdout.WriteLineAsync();
                await stdout.WriteLineAsync(result.ToTable());
            }
            return result.TotalErrors > 0 ? 3 : 0;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"bench failed: {e.GetType().Name}: {e.Message}");
            return 1;
        }
        finally
        {
            if (launched is not null) await launched.DisposeAsync();
        }
    }
}
