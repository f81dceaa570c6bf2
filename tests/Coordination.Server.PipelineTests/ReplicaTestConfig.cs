using Akka.Configuration;

namespace Coordination.Server.PipelineTests;

/// <summary>The config of the test systems that host one replica actor: a short tick, and no container reaping
/// to interleave with what a test tells the replica.</summary>
internal static class ReplicaTestConfig
{
    public static readonly Config Config = ConfigurationFactory.ParseString("""
        coordination { tick-time = 100ms, container-check-interval = 1h }
        """).WithFallback(ServerSettings.Reference);
}
