using Coordination.TestKit.Linearizability;
using Xunit;

namespace Coordination.Server.Tests;

/// <summary>The checker must accept what is linearizable and reject what is not, or a passing history proves nothing.</summary>
public sealed class LinearizabilityCheckerTests
{
    private static Operation Create(int c, long i, long r, string v, string? err = null) =>
        new(c, "/k", OpKind.Create, i, r, err is null ? Outcome.Ok : Outcome.Failed, v, Error: err);
    private static Operation Set(int c, long i, long r, string v, int expected = -1, string? err = null, Outcome? outcome = null) =>
        new(c, "/k", OpKind.Set, i, r, outcome ?? (err is null ? Outcome.Ok : Outcome.Failed), v, expected, err);
    private static Operation Read(int c, long i, long r, string? v, int version) =>
        v is null ? new(c, "/k", OpKind.Read, i, r, Outcome.Failed, Error: "NoNode")
                  : new(c, "/k", OpKind.Read, i, r, Outcome.Ok, ReadValue: v, ReadVersion: version, ReadExists: true);

    private static bool Linearizable(params Operation[] ops) => LinearizabilityChecker.Check(ops).All(r => r.Linearizable);

    [Fact]
    public void A_sequential_history_is_linearizable() =>
        Assert.True(Linearizable(Read(1, 0, 1, null, 0), Create(1, 2, 3, "a"), Set(1, 4, 5, "b", 0), Read(1, 6, 7, "b", 1)));

    [Fact]
    public void Overlapping_writes_may_be_seen_in_either_order()
    {
        Assert.True(Linearizable(Create(1, 0, 1, "a"), Set(1, 2, 10, "b"), Set(2, 3, 11, "c"), Read(3, 12, 13, "b", 2)));
        Assert.True(Linearizable(Create(1, 0, 1, "a"), Set(1, 2, 10, "b"), Set(2, 3, 11, "c"), Read(3, 12, 13, "c", 2)));
    }

    /// <summary>A quiet machine records 10,000+ ops on one znode in a few seconds, and the search recurses once per op:
    /// checked on a thread-pool thread's stack, the test host died of a stack overflow (CI, session 12).</summary>
    [Fact]
    public void A_long_history_is_checked_without_running_out_of_stack()
    {
        var ops = new List<Operation> { Create(1, 0, 1, "v0") };
        for (var i = 1; i <= 40_000; i++) ops.Add(Set(1, 2L * i, 2L * i + 1, $"v{i}"));
        Assert.True(LinearizabilityChecker.Check(ops).Single().Linearizable);
    }

    [Fact]
    public void A_stale_read_after_a_completed_write_is_rejected() =>
        Assert.False(Linearizable(Create(1, 0, 1, "a"), Set(1, 2, 3, "b"), Read(2, 4, 5, "a", 0)));

    [Fact]
    public void A_read_of_a_value_never_written_is_rejected() =>
        Assert.False(Linearizable(Create(1, 0, 1, "a"), Read(2, 2, 3, "z", 0)));

    [Fact]
    public void Versions_must_agree_with_conditional_writes()
    {
        Assert.True(Linearizable(Create(1, 0, 1, "a"), Set(1, 2, 3, "b", expected: 0), Set(2, 4, 5, "c", expected: 0, err: "BadVersion")));
        Assert.False(Linearizable(Create(1, 0, 1, "a"), Set(1, 2, 3, "b", expected: 0), Set(2, 4, 5, "c", expected: 0)));
    }

    [Fact]
    public void A_write_with_unknown_outcome_may_or_may_not_have_happened()
    {
        var lost = Set(2, 2, 3, "x", outcome: Outcome.Unknown);
        Assert.True(Linearizable(Create(1, 0, 1, "a"), lost, Read(1, 10, 11, "a", 0)));
        Assert.True(Linearizable(Create(1, 0, 1, "a"), lost, Read(1, 10, 11, "x", 1)));
        // ...but it cannot take effect before it was invoked.
        Assert.False(Linearizable(Create(1, 0, 1, "a"), Read(1, 2, 3, "x", 1), Set(2, 5, 6, "x", outcome: Outcome.Unknown)));
    }

    [Fact]
    public void The_explanation_points_at_the_operation_that_cannot_be_placed()
    {
        var result = LinearizabilityChecker.Check([Create(1, 0, 1, "a"), Set(1, 2, 3, "b"), Read(2, 4, 5, "a", 0)]).Single();
        Assert.Contains("the longest linearizable prefix has 2 ops and ends in 'b' v1, after which #2", result.Explanation);
        Assert.Contains("> #2 c2 [4, 5] Read → Ok 'a' v0", result.Explanation);
    }

    [Fact]
    public void Two_successful_creates_are_rejected() =>
        Assert.False(Linearizable(Create(1, 0, 5, "a"), Create(2, 1, 6, "b")));
}
