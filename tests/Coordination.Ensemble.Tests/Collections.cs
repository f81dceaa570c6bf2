using Coordination.Ensemble.Tests;
using Coordination.Testing;
using Xunit;

// The assembly runs two test collections at a time (xunit.runner.json): most of its time is waiting (elections,
// session expiry, process starts, "nothing may happen" windows), not CPU. Every class is its own collection unless
// named below; each test uses its own ports, data directories and ensemble. The longest start first, so that the two
// threads end together (seconds per collection in session 19's CI run: 339, 212, 172, 130, 112, 93, 56, 50; the
// assembly took 748 s, its last 146 s with one thread idle; the whole assembly sums to 1,341 s).
[assembly: TestCollectionOrderer("Coordination.Testing.LongestFirstOrderer", "Coordination.Ensemble.Tests")]
[assembly: LongestCollections(LoadAndNetnsCollection.Name, nameof(ReconfigKillProcessTests), nameof(MemberAuthAttackTests),
    nameof(ChangeFeedUnderFaultsTests), nameof(LivenessTests), nameof(ReconfigProcessTests), nameof(SyncAcrossLeaderChangeTests),
    nameof(RejoinTests))]

namespace Coordination.Ensemble.Tests;

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
