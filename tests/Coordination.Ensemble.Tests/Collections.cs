using Xunit;

namespace Coordination.Ensemble.Tests;

// The assembly runs two test collections at a time (xunit.runner.json): most of its time is waiting (elections,
// session expiry, process starts, "nothing may happen" windows), not CPU. Every class is its own collection unless
// named below; each test uses its own ports, data directories and ensemble.

/// <summary>
/// The classes that saturate the cores with a write load against real processes, and those that build network
/// namespaces (<see cref="Coordination.TestKit.NetworkLab"/> names its namespaces after the process, so two labs
/// cannot exist at once in one test process): one at a time, each beside a waiting class rather than beside
/// another load.
/// </summary>
[CollectionDefinition(Name)]
public sealed class LoadAndNetnsCollection
{
    public const string Name = "load and network namespaces";
}

/// <summary>Tests that measure the whole process (allocated bytes): run after the others, with nothing beside them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone";
}
