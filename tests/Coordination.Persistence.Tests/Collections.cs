using Coordination.Persistence.Tests;
using Coordination.Testing;
using Xunit;

// Two test collections run at a time (xunit.runner.json): every class is its own collection, except those that load
// the cores (the crash tests, the write load of GrowthTests) or whose assertions wait on a time window (session
// expiry, disk-full recovery, group commit), which are one collection (LoadAndTimingCollection): on a 2-core machine
// they must not overlap, so each runs beside a class that mostly waits or reads files. That collection starts first:
// it is the longest (about 190 of the assembly's 245 s in session 19's CI run, when the whole assembly ran one test at
// a time). SnapshotScheduleTests runs alone at the end (AloneCollection). Each test uses its own ports and data
// directories.
[assembly: TestCollectionOrderer("Coordination.Testing.LongestFirstOrderer", "Coordination.Persistence.Tests")]
[assembly: LongestCollections(LoadAndTimingCollection.Name, nameof(CorruptionTests))]

namespace Coordination.Persistence.Tests;

/// <summary>The classes that load the cores, or whose assertions wait on a time window: one at a time, each beside a
/// class that mostly waits. Any new class of this kind joins it.</summary>
[CollectionDefinition(Name)]
public sealed class LoadAndTimingCollection
{
    public const string Name = "load and timing";
}

/// <summary>Tests whose outcome depends on how fast the server writes beside them: run after the others, with nothing
/// beside them. SnapshotScheduleTests counts the snapshots a growing tree takes, and a snapshot that comes due while
/// the last one is still being written starts only at the next write: beside CorruptionTests' servers it saw 1 or 2
/// snapshots instead of 3 (2 of 5 runs at load 5-25).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone";
}
