using BenchmarkDotNet.Running;

namespace Coordination.Benchmarks;

public static class Program
{
    // dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- --filter '*' --job short
    // dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- follower-write-alloc [writes] [rounds] [--target follower|leader|standalone|stages] [--types N] [--throttler]
    public static void Main(string[] args)
    {
        if (args is ["follower-write-alloc", ..])
        {
            FollowerWriteAllocation.RunAsync(args[1..]).GetAwaiter().GetResult();
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
