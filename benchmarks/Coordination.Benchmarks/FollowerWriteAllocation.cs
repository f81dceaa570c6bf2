using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Benchmarks;

/// <summary>
/// Bytes allocated per follower write (issue 18): a 3-member in-process ensemble (real TCP, real journals on disk) and
/// one client on a follower doing setData one at a time; the process's allocation over the timed writes, divided by
/// their number, counts every member (follower and leader replica, peers, journals, transport) and the client.
/// Run: dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- follower-write-alloc [writes] [rounds]
/// </summary>
public static class FollowerWriteAllocation
{
    public static async Task RunAsync(int writes, int rounds)
    {
        await using var ensemble = await TestEnsemble.StartAsync(voters: 3);
        var follower = ensemble.Members.First(m => m.Mode == "follower");
        await using var client = await WireClient.ConnectAsync(follower.ConnectString, new WireClientOptions { EventChannel = false });
        var data = new byte[100];
        await client.CreateAsync("/alloc", data);
        for (var i = 0; i < 500; i++) await client.SetDataAsync("/alloc", data);   // warm-up (JIT, pools, buffers)
        Console.WriteLine($"follower write, 100-byte setData, 1 in flight, 3 members in-process (client on server {follower.Id}):");
        for (var round = 1; round <= rounds; round++)
        {
            GC.Collect();
            var before = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < writes; i++)
            {
                var (header, _) = await client.SetDataAsync("/alloc", data);
                if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"setData failed: {header.Err}");
            }
            var elapsed = clock.Elapsed;
            var bytes = GC.GetTotalAllocatedBytes(precise: true) - before;
            Console.WriteLine($"  round {round}: {bytes / writes:N0} bytes allocated per write, {elapsed.TotalMilliseconds * 1000 / writes:N0} us per write ({writes} writes)");
        }
    }
}
