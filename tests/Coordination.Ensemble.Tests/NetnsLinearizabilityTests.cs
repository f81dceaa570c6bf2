using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Process-level partitions: three real server processes, each in its own network namespace (<see cref="NetworkLab"/>),
/// while the kernel makes the faults: the leader isolated from the other members (iptables DROP), one member link cut,
/// the member links of the leader slowed to 64 kbit/s (htb: queueing delay; this kernel has no netem) or made lossy
/// (iptables statistic DROP of 30 % of the packets), and the leader or a follower SIGKILLed and restarted on its data
/// dir. Concurrent clients in their own namespace, each connecting with the full connect string, record a history of
/// create / conditional set / conditional delete / sync-then-getData on a few znodes that must be linearizable;
/// afterwards, with every fault healed and every member back, all members must hold the same tree (zxid and digest).
///
/// Needs Linux, root, iproute2 and iptables; skipped with the reason otherwise, unless COORDINATION_REQUIRE_NETNS=1
/// (set by .ci/run) makes that a failure. Duration: at least 20 s by default and until every fault kind was injected
/// once (one cycle of the schedule, about 40 s); COORDINATION_NETNS_SECONDS=1800 for a 30-minute run. The seed is printed; COORDINATION_SEED=N replays
/// a schedule's choices (which fault, which follower, how long), not its timing, so not which member leads when.
/// </summary>
[Collection(LoadAndNetnsCollection.Name)]
public sealed class NetnsLinearizabilityTests(ITestOutputHelper output)
{
    private const int RoundSeconds = 10;
    private const int Clients = 6;
    private static readonly string[] FaultKinds = ["isolate leader", "cut link", "kill leader", "slow links", "lossy links", "kill follower"];
    private readonly FaultRunLog _log = new(output, "COORDINATION_NETNS_LOG");

    [SkippableFact]
    public Task History_under_namespace_partitions_loss_delay_and_kills_is_linearizable_and_members_converge()
    {
        NetworkLabTests.RequireNetns();
        return TestSeed.RunAsync(Environment.TickCount & 0xffff, "tests/Coordination.Ensemble.Tests",
            $"{nameof(NetnsLinearizabilityTests)}.{nameof(History_under_namespace_partitions_loss_delay_and_kills_is_linearizable_and_members_converge)}",
            _log.Line, RunAsync);
    }

    private async Task RunAsync(int seed)
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_NETNS_SECONDS"), out var s) && s > 0 ? s : 20;
        var duration = TimeSpan.FromSeconds(seconds);
        _log.Line($"duration {seconds} s, seed {seed}, {Clients} clients, rounds of {RoundSeconds} s");
        var total = Stopwatch.StartNew();

        using var lab = NetworkLab.Create(3, _log.Line);
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
        {
            Network = lab,
            Log = _log.Line,
        });
        var clientOptions = new WireClientOptions
        {
            ConnectTimeout = TimeSpan.FromSeconds(3), SessionTimeoutMs = 10_000, SocketFactory = lab.CreateSocket,
        };
        Task<WireClient> Connect() => WireClient.ConnectAnyAsync(ensemble.ConnectString, clientOptions);

        using var stop = new CancellationTokenSource();
        var idleFaults = new List<string>(); // network faults under which the kernel dropped and slowed nothing
        var faultTask = Task.Run(() => FaultScheduleAsync(lab, ensemble, new Random(seed + 1), idleFaults, stop.Token));

        // Every fault kind at least once, even when a slow machine takes longer than the duration for one cycle (bounded);
        // stops early when the schedule failed (e.g. a restarted member did not serve again), which awaiting it reports.
        bool AllKindsSeen() => _log.AllKindsSeen(FaultKinds);
        var recording = Stopwatch.StartNew();
        var all = await HistoryRecorder.RecordRoundsAsync(Connect, Clients, TimeSpan.FromSeconds(RoundSeconds), seed, "net",
            () => !faultTask.IsCompleted && (recording.Elapsed < duration || !AllKindsSeen()) && recording.Elapsed < duration + TimeSpan.FromMinutes(3),
            _log.Round);
        stop.Cancel();
        await faultTask;

        // Heal everything and bring every member back: the ensemble must converge on one tree.
        lab.HealAll();
        foreach (var m in ensemble.Members.Where(m => !m.IsRunning).ToList()) await ensemble.RestartAsync(m.Id);
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        await using (var c = await Connect())
            await c.CreateAsync("/net-final", null).OkAsync(); // a write in the final epoch, so that all members apply it
        var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        _log.Final(hashes);

        Assert.True(AllKindsSeen(), $"not every fault kind was injected: {string.Join("; ", _log.Faults)}");
        Assert.True(idleFaults.Count == 0, $"faults that touched no packet: {string.Join("; ", idleFaults)}");
        _log.AssertLinearizable(all, seconds, total);
        // Checked after the history, so that a run reports both verdicts.
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }

    private async Task FaultScheduleAsync(NetworkLab lab, EnsembleProcesses ensemble, Random random, List<string> idleFaults, CancellationToken ct)
    {
        async Task Pause(int minMs, int maxMs) => await Task.Delay(random.Next(minMs, maxMs), ct);
        async Task KillAndRestart(string kind, long id)
        {
            _log.Fault($"{kind} {id}");
            ensemble.Kill(id);
            await Pause(1000, 4000);
            await ensemble.RestartAsync(id, ct);
            _log.Recovery($"restarted {id}");
        }
        async Task FaultAndHeal(string what, long id, Action<long> fault)
        {
            _log.Fault(what);
            fault(id);
            await Pause(2000, 5000);
            // What the kernel did (packets dropped, bytes queued through the slow class) and the members' roles meanwhile.
            var (dropped, slowed) = lab.Counters(id);
            _log.Line($"before healing: member {id} dropped {dropped} packets, slowed {slowed} bytes; {await ensemble.DescribeAsync()}");
            if (dropped + slowed == 0) lock (idleFaults) idleFaults.Add(what);
            lab.HealAll();
            _log.Recovery("healed");
        }
        try
        {
            await Pause(2000, 3000);
            for (var step = 0; !ct.IsCancellationRequested; step++)
            {
                EnsembleProcesses.Member leader;
                try { leader = await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30), ct: ct); }
                catch (TimeoutException e) { _log.Line("no leader: " + e.Message); continue; }
                var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToList();
                var follower = followers[random.Next(followers.Count)];
                var any = ensemble.Members[random.Next(ensemble.Members.Count)];
                switch (step % FaultKinds.Length)
                {
                    case 0: await FaultAndHeal($"isolate leader {leader.Id}", leader.Id, lab.Isolate); break;
                    case 1: await FaultAndHeal($"cut link {leader.Id}-{follower.Id}", leader.Id, id => lab.CutLink(id, follower.Id)); break;
                    case 2: await KillAndRestart("kill leader", leader.Id); break;
                    case 3: await FaultAndHeal($"slow links of leader {leader.Id} to 64 kbit/s", leader.Id, id => lab.Slow(id, 64)); break;
                    case 4: await FaultAndHeal($"lossy links of {any.Id} (30 % dropped)", any.Id, id => lab.Lossy(id, 0.3)); break;
                    default: await KillAndRestart("kill follower", follower.Id); break;
                }
                // Let the ensemble settle before the next fault (bounded: a stuck ensemble fails the run below).
                try { await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(30), ct); }
                catch (TimeoutException e) { _log.Line("did not settle: " + e.Message); }
                await Pause(500, 1500);
            }
        }
        catch (OperationCanceledException) { }
    }
}
