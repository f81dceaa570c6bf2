using BenchmarkDotNet.Running;

namespace Coordination.Benchmarks;

public static class Program
{
    // dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- --filter '*' --job short
    // dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- follower-write-alloc [writes] [rounds]
    public static void Main(string[] args)
    {
        if (args is ["follower-write-alloc", ..])
        {
            FollowerWriteAllocation.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 5000, args.Length > 2 ? int.Parse(args[2]) : 3).GetAwaiter().GetResult();
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
