using BenchmarkDotNet.Running;

namespace Coordination.Benchmarks;

public static class Program
{
    // dotnet run -c Release --project benchmarks/Coordination.Benchmarks -- --filter '*' --job short
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
