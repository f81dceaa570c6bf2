using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// A SIGKILLed follower that comes back must rejoin, whenever it comes back. The dangerous moment is when the
/// restarted member first dials its peers just as their 5 s remoting gate for its old incarnation ends: the idle
/// leader's pings then redial the old incarnation while the new one dials in (the 30-minute netns run lost a member
/// that way: it stayed Looking for good, never hearing the leader it was told about). Each cycle kills a follower of
/// an idle three-member ensemble and restarts it so that its election starts at a point swept across 4.7–5.2 s
/// after the kill (the process start-up time is measured and subtracted); the member must then follow and serve a
/// sync and a read within a bound. 4 cycles by default (about 40 s); COORDINATION_REJOIN_CYCLES=100 for a sweep.
/// </summary>
public sealed partial class RejoinTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RejoinBound = TimeSpan.FromSeconds(30);
    private const double WindowFromMs = 4700, WindowToMs = 5200;

    private readonly FaultRunLog _log = new(output, "COORDINATION_REJOIN_LOG");
    // When each member first logged that it is Looking since it was last restarted (its own clock, UTC).
    private readonly ConcurrentDictionary<long, DateTime> _lookingAt = new();

    [GeneratedRegex(@"^\[s(\d+)\] (\S+Z) .*Server \d+ is Looking")]
    private static partial Regex LookingLine();

    private void OnMemberLine(string line)
    {
        _log.Line(line);
        if (LookingLine().Match(line) is { Success: true } m)
            _lookingAt.TryAdd(long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                DateTime.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal));
    }

    [Fact]
    public async Task A_follower_restarted_as_its_peers_remoting_gate_ends_rejoins_every_time()
    {
        var cycles = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_REJOIN_CYCLES"), out var c) && c > 0 ? c : 4;
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            Log = OnMemberLine,
            StartTimeout = RejoinBound,
        });
        var startupMs = 1500.0;   // process start → its first election; measured below
        var failures = new List<string>();
        for (var cycle = 0; cycle < cycles; cycle++)
        {
            var leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
            var follower = ensemble.Members.Where(m => m.Id != leader.Id).ElementAt(cycle % 2);
            var targetMs = WindowFromMs + (WindowToMs - WindowFromMs) * (cycles == 1 ? 0.5 : (double)cycle / (cycles - 1));
            var delay = TimeSpan.FromMilliseconds(Math.Max(0, targetMs - startupMs));
            var killedAt = DateTime.UtcNow;
            ensemble.Kill(follower.Id);
            await Task.Delay(delay);
            var startedAt = DateTime.UtcNow;
            _lookingAt.TryRemove(follower.Id, out _);
            string? failure = null;
            try
            {
                await ensemble.RestartAsync(follower.Id);
                failure = await RejoinedAsync(ensemble, follower);
            }
            catch (ServerStartException e)
            {
                failure = e.Message.Split('\n')[0];
            }
            var election = _lookingAt.TryGetValue(follower.Id, out var at) ? (at - killedAt).TotalMilliseconds : double.NaN;
            if (_lookingAt.TryGetValue(follower.Id, out var looking)) startupMs = 0.5 * startupMs + 0.5 * (looking - startedAt).TotalMilliseconds;
            _log.Line($"cycle {cycle}: follower {follower.Id} of leader {leader.Id} killed, restarted after {delay.TotalMilliseconds:F0} ms, " +
                $"election began {election:F0} ms after the kill (target {targetMs:F0}): {failure ?? "rejoined"}");
            if (failure is null) continue;
            failures.Add($"cycle {cycle} (election {election:F0} ms after the kill): {failure}");
            // Bring it back for the next cycle, away from the window.
            ensemble.Kill(follower.Id);
            await Task.Delay(TimeSpan.FromSeconds(7));
            await ensemble.RestartAsync(follower.Id);
        }
        _log.Line($"{cycles} cycles, {failures.Count} did not rejoin");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cycles} restarted followers did not rejoin within {RejoinBound.TotalSeconds} s:\n" + string.Join('\n', failures));
    }

    /// <summary>Null when the member says it follows and serves a sync and a read; otherwise what went wrong.</summary>
    private static async Task<string?> RejoinedAsync(EnsembleProcesses ensemble, EnsembleProcesses.Member member)
    {
        using var bound = new CancellationTokenSource(RejoinBound);
        var mode = await ensemble.ModeAsync(member.Id, bound.Token);
        if (mode != "follower") return $"serves as {mode ?? "nothing"}, not as a follower";
        await using var client = await WireClient.ConnectAsync(member.ConnectString, ct: bound.Token);
        await client.SyncAsync("/").WaitAsync(bound.Token).OkAsync();
        await client.GetDataAsync("/zookeeper").WaitAsync(bound.Token).OkAsync();
        return null;
    }
}
