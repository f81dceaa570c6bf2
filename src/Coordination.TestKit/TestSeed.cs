namespace Coordination.TestKit;

/// <summary>
/// Seeds for randomized fault tests: a fresh one each run (from the clock), so that runs explore different schedules,
/// or the one in <c>COORDINATION_SEED</c>, to replay a failed run. A failure names its seed and the one command that
/// replays it; the replay repeats the same random choices (operation mix, fault schedule, kill points), not the same
/// thread timing.
/// </summary>
public static class TestSeed
{
    public const string Variable = "COORDINATION_SEED";

    /// <summary><c>COORDINATION_SEED</c> when set, otherwise <paramref name="fresh"/> (e.g. <c>Environment.TickCount</c>).</summary>
    public static int Choose(int fresh)
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(text)) return fresh;
        return int.TryParse(text, out var seed) ? seed : throw new FormatException($"{Variable}={text} is not an int");
    }

    /// <summary>The command that replays test <paramref name="test"/> (a FullyQualifiedName fragment) of
    /// <paramref name="project"/> (e.g. tests/Coordination.Persistence.Tests) with <paramref name="seed"/>.</summary>
    public static string ReplayCommand(int seed, string project, string test) =>
        $"{Variable}={seed} dotnet test {project} -c Release --filter \"FullyQualifiedName~{test}\"";

    /// <summary>
    /// Runs <paramref name="body"/> with a chosen seed (see <see cref="Choose"/>), logs the seed first, and turns a
    /// failure into a <see cref="SeededTestFailure"/> that carries the seed and the replay command.
    /// </summary>
    public static async Task RunAsync(int fresh, string project, string test, Action<string> log, Func<int, Task> body)
    {
        var seed = Choose(fresh);
        var replay = ReplayCommand(seed, project, test);
        log($"seed {seed}; replay: {replay}");
        try
        {
            await body(seed).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new SeededTestFailure(seed, replay, e);
        }
    }
}

/// <summary>A randomized test failed; the message says with which seed and how to replay it.</summary>
public sealed class SeededTestFailure(int seed, string replay, Exception inner)
    : Exception($"failed with seed {seed}; replay: {replay}", inner)
{
    public int Seed { get; } = seed;
}
