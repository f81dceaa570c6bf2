using System.Diagnostics;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Coordination.TestKit.Linearizability;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Linearizable reads (<see cref="OpCode.LinearizableRead"/>) on a follower whose leader is cut off from its quorum:
/// five voters, leader 5 and follower 4 on the small side, which keeps believing in itself for 10 s (its sync limit),
/// while 1–3 elect a new leader that acknowledges writes. Readers on follower 4 and a writer on the new leader record
/// one history of a znode, which the linearizability checker judges. Flagged reads must give a linearizable history
/// (they wait for a leader confirmation the old leader cannot get, and fail instead of answering stale); the control
/// run with plain reads must show the stale reads the flag prevents, so the scenario is known to expose them.
/// </summary>
public sealed class LinearizableReadTests(ITestOutputHelper output)
{
    private const long OldLeader = 5, CutOffFollower = 4;
    private const string Path = "/k";
    private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(3);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Reads_on_a_follower_of_a_leader_cut_off_from_its_quorum(bool linearizable)
    {
        await using var ensemble = await TestEnsemble.StartAsync(5, options: new TestEnsembleOptions
        {
            MemberHocon = id => id >= CutOffFollower ? "coordination.ensemble.sync-limit = 100" : "",
        });
        var old = await Ens.LeadAsync(ensemble, OldLeader);
        var history = new List<Operation>();
        await using (var c = await Ens.ConnectAsync(old))
        {
            var invoke = Stopwatch.GetTimestamp();
            await c.CreateAsync(Path, Ens.Bytes("v0")).OkAsync();
            history.Add(new Operation(0, Path, OpKind.Create, invoke, Stopwatch.GetTimestamp(), Outcome.Ok, "v0"));
        }

        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(1, 2).Select(i => ReadLoopAsync(i, ensemble[CutOffFollower], linearizable, history, stop.Token)).ToList();
        await Task.Delay(1000);   // reads while all is well
        foreach (var a in new[] { OldLeader, CutOffFollower })
        foreach (var b in ensemble.Members.Where(m => m.Id < CutOffFollower))
            await ensemble.SetLinkAsync(a, b.Id, heal: false);
        var next = await ensemble.WaitForLeaderAsync(Ens.Settle, notId: OldLeader);
        var writer = WriteLoopAsync(10, next, history, stop.Token);
        await Task.Delay(3000);   // reads while the new leader acknowledges writes
        Assert.True(old.Mode == "leader" && ensemble[CutOffFollower].Server!.Ensemble!.Serving,
            "the cut-off side stopped serving before the end of the run: this run shows nothing");
        stop.Cancel();
        await Task.WhenAll(readers.Append(writer));

        List<Operation> ops;
        lock (history) ops = history.ToList();
        int Count(OpKind kind) => ops.Count(o => o.Kind == kind && o.Outcome == Outcome.Ok);
        output.WriteLine($"{ops.Count} operations: {Count(OpKind.Set)} writes and {Count(OpKind.Read)} reads answered, " +
            $"{ops.Count(o => o.Outcome == Outcome.Unknown)} unknown");
        var verdict = LinearizabilityChecker.Check(ops).Single();
        output.WriteLine(verdict.Linearizable ? "linearizable" : verdict.Explanation);
        Assert.True(Count(OpKind.Set) > 0, "no write was acknowledged by the new leader");
        if (linearizable)
        {
            Assert.True(verdict.Linearizable, $"a linearizable read answered stale: {verdict.Explanation}");
            Assert.True(Count(OpKind.Read) > 0, "no linearizable read was answered at all");
        }
        else Assert.False(verdict.Linearizable, "plain reads on the cut-off follower showed no stale read: the scenario exposes nothing");
    }

    private static async Task ReadLoopAsync(int client, TestEnsemble.Member member, bool linearizable, List<Operation> history, CancellationToken ct)
    {
        WireClient? wire = null;
        while (!ct.IsCancellationRequested)
        {
            var invoke = Stopwatch.GetTimestamp();
            Operation op;
            try
            {
                wire ??= await Ens.ConnectAsync(member, timeout: OpTimeout);
                var read = new PathWatchRequest(Path, false);
                var (header, response) = await (linearizable ? wire.ReadLinearizablyAsync(OpCode.GetData, read) : wire.GetDataAsync(Path)).WaitAsync(OpTimeout, ct);
                if (header.Err != ErrorCode.Ok) throw new IOException($"getData: {header.Err}");
                var data = (GetDataResponse)response!;
                op = new Operation(client, Path, OpKind.Read, invoke, Stopwatch.GetTimestamp(), Outcome.Ok,
                    ReadValue: Encoding.UTF8.GetString(data.Data!), ReadVersion: data.Stat.Version, ReadExists: true);
            }
            catch (Exception e) when (e is IOException or TimeoutException or OperationCanceledException or WireConnectionException)
            {
                op = new Operation(client, Path, OpKind.Read, invoke, Stopwatch.GetTimestamp(), Outcome.Unknown);
                if (wire is not null) await wire.DisposeAsync();
                wire = null;
            }
            lock (history) history.Add(op);
            await Task.Delay(2, CancellationToken.None);
        }
        if (wire is not null) await wire.DisposeAsync();
    }

    private static async Task WriteLoopAsync(int client, TestEnsemble.Member leader, List<Operation> history, CancellationToken ct)
    {
        await using var wire = await Ens.ConnectAsync(leader);
        for (var n = 1; !ct.IsCancellationRequested; n++)
        {
            var value = $"w{n}";
            var invoke = Stopwatch.GetTimestamp();
            Operation op;
            try
            {
                var (header, _) = await wire.SetDataAsync(Path, Ens.Bytes(value)).WaitAsync(OpTimeout, ct);
                op = new Operation(client, Path, OpKind.Set, invoke, Stopwatch.GetTimestamp(),
                    header.Err == ErrorCode.Ok ? Outcome.Ok : Outcome.Unknown, value);
            }
            catch (Exception e) when (e is IOException or TimeoutException or OperationCanceledException)
            {
                op = new Operation(client, Path, OpKind.Set, invoke, Stopwatch.GetTimestamp(), Outcome.Unknown, value);
            }
            lock (history) history.Add(op);
            if (op.Outcome == Outcome.Unknown) break;   // the one leader is gone: nothing more to learn
            await Task.Delay(5, CancellationToken.None);
        }
    }
}
