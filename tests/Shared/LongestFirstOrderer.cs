using System.Reflection;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Testing;

/// <summary>
/// The test collections of an assembly that run longest, longest first (their durations in CI, measured from the
/// TRX files). Each is a CollectionDefinition name, or the name of a test class that is its own collection.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
internal sealed class LongestCollectionsAttribute(params string[] names) : Attribute
{
    public IReadOnlyList<string> Names { get; } = names;
}

/// <summary>
/// Starts the collections that <see cref="LongestCollectionsAttribute"/> names first, in its order, then every other
/// one in the order xunit discovered it (compiled into the test assemblies that run collections in parallel). xunit starts the
/// collections in the orderer's order as its threads free up, so longest first lets the threads end together instead
/// of one long collection running alone at the end (the Ensemble assembly ran its longest class alone for its last
/// 146 s, session 19).
/// </summary>
public sealed class LongestFirstOrderer : ITestCollectionOrderer
{
    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections)
    {
        var longest = typeof(LongestFirstOrderer).Assembly.GetCustomAttribute<LongestCollectionsAttribute>()?.Names ?? [];
        int Rank(ITestCollection collection)
        {
            for (var i = 0; i < longest.Count; i++)
                // A class that is its own collection is in "Test collection for Namespace.Class".
                if (collection.DisplayName == longest[i] || collection.DisplayName.EndsWith("." + longest[i], StringComparison.Ordinal))
                    return i;
            return longest.Count;
        }
        return testCollections.OrderBy(Rank);   // stable: the unnamed ones keep their order
    }
}
