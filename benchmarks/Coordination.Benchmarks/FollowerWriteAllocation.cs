using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Benchmarks;

/// <summary>
/// Bytes allocated per write (issue 18): one client doing 100-byte setData one at a time on a real server (real TCP,
/// real journals on disk), the process's allocation over the timed writes divided by their number. It counts every
/// part in the process: the client, and for an ensemble all three members (replicas, peers, journals, member links).
/// <para>Targets: <c>follower</c> (the client on a follower of a 3-member ensemble: the write is forwarded to the
/// leader, proposed, acked and committed), <c>leader</c> (the client on the leader: the same without the forward and
/// with the leader answering), <c>standalone</c> (one server, no replication), and <c>stages</c>, all three one after
/// the other and the differences between them (docs/architecture.md §5). <c>--types N</c> adds the top N allocated
/// types of the last round, from the runtime's allocation sampling (an AllocationTick event about every 100 KB).</para>
/// <para>The members run as deployed: without Akka's throttler adapter, which the test ensembles apply for fault
/// injection (<c>--throttler</c> puts it back).</para>
/// Run: dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- follower-write-alloc [writes] [rounds]
///      [--target follower|leader|standalone|stages] [--types N] [--throttler]
/// </summary>
public static class FollowerWriteAllocation
{
    public static async Task RunAsync(string[] args)
    {
        var positional = new List<string>();
        string? target = null, typesText = null;
        var throttler = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--throttler": throttler = true; break;
                case "--target": target = args[++i]; break;
                case "--types": typesText = args[++i]; break;
                default: positional.Add(args[i]); break;
            }
        }
        var writes = positional.Count > 0 ? int.Parse(positional[0]) : 3000;
        var rounds = positional.Count > 1 ? int.Parse(positional[1]) : 3;
        target ??= "follower";
        var types = int.Parse(typesText ?? "0");
        if (target == "stages")
        {
            var standalone = await MeasureAsync("standalone", writes, rounds, types, throttler);
            var leader = await MeasureAsync("leader", writes, rounds, types, throttler);
            var follower = await MeasureAsync("follower", writes, rounds, types, throttler);
            Console.WriteLine("stages (medians of the rounds, bytes allocated per write, whole process):");
            Console.WriteLine($"  client, session, replica, journal (standalone write)          {standalone,8:N0}");
            Console.WriteLine($"  + replication: proposal, acks, commits, 2 more members (leader) {leader - standalone,8:N0}");
            Console.WriteLine($"  + the forward from a follower and its answer there (follower)  {follower - leader,8:N0}");
            Console.WriteLine($"  follower write                                                 {follower,8:N0}");
            return;
        }
        if (target is not ("follower" or "leader" or "standalone")) throw new ArgumentException($"--target {target}: follower, leader, standalone or stages");
        await MeasureAsync(target, writes, rounds, types, throttler);
    }

    /// <summary>Runs <paramref name="rounds"/> rounds of writes on a fresh server; the median round's bytes per write.</summary>
    private static async Task<long> MeasureAsync(string target, int writes, int rounds, int types, bool throttler)
    {
        var options = new TestEnsembleOptions
        {
            ExtraHocon = throttler ? null : "akka.remote.coordination-socket.applied-adapters = []",
        };
        await using var ensemble = target == "standalone"
            ? await TestEnsemble.StartStandaloneAsync(options)
            : await TestEnsemble.StartAsync(voters: 3, options: options);
        var member = target == "standalone" ? ensemble.Members[0] : ensemble.Members.First(m => m.Mode == target);
        await using var client = await WireClient.ConnectAsync(member.ConnectString, new WireClientOptions { EventChannel = false });
        var data = new byte[100];
        await client.CreateAsync("/alloc", data);
        for (var i = 0; i < 500; i++) await client.SetDataAsync("/alloc", data);   // warm-up (JIT, pools, buffers)
        Console.WriteLine($"{target} write, 100-byte setData, 1 in flight, {(target == "standalone" ? "one server" : $"3 members in-process{(throttler ? " with the throttler adapter" : "")}")} (client on server {member.Id}):");
        var perWrite = new List<long>();
        for (var round = 1; round <= rounds; round++)
        {
            using var sampler = types > 0 && round == rounds ? new AllocationSampler() : null;
            GC.Collect();
            var before = GC.GetTotalAllocatedBytes(precise: true);
            var started = DateTime.UtcNow;
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < writes; i++)
            {
                var (header, _) = await client.SetDataAsync("/alloc", data);
                if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"setData failed: {header.Err}");
            }
            var elapsed = clock.Elapsed;
            var bytes = GC.GetTotalAllocatedBytes(precise: true) - before;
            perWrite.Add(bytes / writes);
            Console.WriteLine($"  round {round}: {bytes / writes:N0} bytes allocated per write, {elapsed.TotalMilliseconds * 1000 / writes:N0} us per write ({writes} writes, {started:HH:mm:ss.fff}-{started + elapsed:HH:mm:ss.fff} UTC)");
            sampler?.Print(writes, types);
        }
        perWrite.Sort();
        return perWrite[perWrite.Count / 2];
    }

    /// <summary>
    /// The runtime's allocation sampling (GC AllocationTick: the type of the object that crossed each ~100 KB of a
    /// thread's allocation, with the amount since the last tick), summed by type: an estimate of where the bytes go.
    /// </summary>
    private sealed class AllocationSampler : EventListener
    {
        private readonly ConcurrentDictionary<string, long> _byType = new();
        private long _total;

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);   // GC
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.PayloadNames is not { } names) return;
            var amount = Convert.ToInt64(e.Payload![names.IndexOf("AllocationAmount64")]);
            var type = e.Payload[names.IndexOf("TypeName")] as string ?? "?";
            _byType.AddOrUpdate(type, amount, (_, sum) => sum + amount);
            Interlocked.Add(ref _total, amount);
        }

        public void Print(int writes, int top)
        {
            Thread.Sleep(500);   // the events arrive through the runtime's event pipe, a little behind
            var total = Interlocked.Read(ref _total);
            Console.WriteLine($"  sampled allocation by type, round {writes} writes ({total / writes:N0} bytes per write sampled):");
            foreach (var (type, sum) in _byType.OrderByDescending(p => p.Value).Take(top))
                Console.WriteLine($"    {sum / writes,8:N0}  {100.0 * sum / Math.Max(1, total),5:N1}%  {type}");
        }
    }
}
