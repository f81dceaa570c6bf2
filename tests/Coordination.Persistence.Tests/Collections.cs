using Coordination.Persistence.Tests;
using Coordination.Testing;
using Xunit;

// Two test collections run at a time (xunit.runner.json): every class is its own collection, except those that load
// the cores (the crash tests, the write load of GrowthTests) or whose assertions wait on a time window (session
// expiry, disk-full recovery, group commit), which are one collection (LoadAndTimingCollection): on a 2-core machine
// they must not overlap, so each runs beside a class that mostly waits or reads files. That collection starts first:
// it is the longest (about 190 of the assembly's 245 s in session 19's CI run, when the whole assembly ran one test at
// a time). Each test uses its own ports and data directories.
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
