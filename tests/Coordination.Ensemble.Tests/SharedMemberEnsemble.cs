using Coordination.Server.Pipeline;
using Coordination.TestKit;
using Akka.Actor;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// One running ensemble (with its certificates, SASL users or Kerberos realm) at a time for the tests of a class that
/// attack a member port: a test asks for the kind of member authentication it needs and gets the running ensemble if
/// it is of that kind and ready, a fresh one otherwise. Starting an ensemble per test case was about a third of the
/// Ensemble assembly's time (35 starts, 15 with <see cref="BySecurityOrderer"/>). A test may kill and restart members
/// but must leave them running; what it creates goes under a path of its own (<see cref="UniqueRoot"/>), and it closes
/// its sessions (a session left to expire is a txn in the middle of the next test's "nothing was applied" window).
/// </summary>
public sealed class SharedMemberEnsemble : IAsyncLifetime
{
    private MemberCertificates? _current;
    private MemberSecurity _security;

    /// <summary>
    /// The ensemble for <paramref name="security"/>, ready: every member running and serving, all at one zxid, and no
    /// session left open by an earlier test. An ensemble that cannot be made ready (an earlier test failed half way)
    /// is replaced by a new one, so that one failure does not fail the tests after it.
    /// </summary>
    public async Task<MemberCertificates> ForAsync(MemberSecurity security)
    {
        if (_current is not null && _security == security && await ReadyAsync(_current.Ensemble)) return _current;
        await DisposeCurrentAsync();
        _current = await MemberCertificates.StartAsync(security);
        _security = security;
        return _current;
    }

    /// <summary>A znode path no other test of the shared ensemble uses.</summary>
    public static string UniqueRoot(string what) => $"/{what}-{Guid.NewGuid():N}";

    private static async Task<bool> ReadyAsync(TestEnsemble ensemble)
    {
        try
        {
            foreach (var down in ensemble.Members.Where(m => !m.IsRunning)) await ensemble.RestartAsync(down.Id);
            await ensemble.WaitAllServingAsync(Ens.Settle);
            await Ens.EventuallyAsync(async () =>
            {
                foreach (var m in ensemble.Members)
                {
                    var stats = await m.Server!.Replica.Ask<ReplicaStats>(new GetReplicaStats(false, false), TimeSpan.FromSeconds(10));
                    if (stats.SessionCount != 0) return false;
                }
                return true;
            }, Ens.Settle, "the sessions of the previous test end");
            await ensemble.WaitConvergedAsync(Ens.Settle);
            return true;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or AskTimeoutException)
        {
            return false;
        }
    }

    private async Task DisposeCurrentAsync()
    {
        if (_current is null) return;
        var current = _current;
        _current = null;
        await current.DisposeAsync();
    }

    public Task InitializeAsync() => Task.CompletedTask;

    Task IAsyncLifetime.DisposeAsync() => DisposeCurrentAsync();
}

/// <summary>
/// Orders a class's test cases so that those needing the same <see cref="MemberSecurity"/> (the theory argument of
/// that type, or <see cref="MemberSecurity.SaslKerberos"/> for a test whose name mentions Kerberos) run one after the
/// other: with <see cref="SharedMemberEnsemble"/>, each change of kind starts an ensemble. xunit runs one method's
/// cases together, in the order of the method's first case; the kinds go forward in one method and backward in the
/// next, so that the kind a method ends with is the one the next begins with.
/// </summary>
public sealed class BySecurityOrderer : ITestCaseOrderer
{
    public const string Name = "Coordination.Ensemble.Tests.BySecurityOrderer";
    public const string Assembly = "Coordination.Ensemble.Tests";

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : ITestCase
    {
        var byMethod = testCases
            .GroupBy(t => t.TestMethod.Method.Name)
            .Select(g => g.OrderBy(t => (int)SecurityOf(t)).ThenBy(t => t.DisplayName, StringComparer.Ordinal).ToList())
            .ToList();
        var ordered = new List<TTestCase>();
        // Greedily: next, the method that can begin with the kind the previous one ended with (forwards or backwards).
        while (byMethod.Count > 0)
        {
            var last = ordered.Count == 0 ? (MemberSecurity?)null : SecurityOf(ordered[^1]);
            var next = byMethod.FirstOrDefault(m => last is null || SecurityOf(m[0]) == last)
                ?? byMethod.FirstOrDefault(m => SecurityOf(m[^1]) == last)?.AsEnumerable().Reverse().ToList()
                ?? byMethod[0];
            byMethod.RemoveAll(m => m[0].TestMethod.Method.Name == next[0].TestMethod.Method.Name);
            ordered.AddRange(next);
        }
        return ordered;
    }

    private static MemberSecurity SecurityOf(ITestCase test) =>
        test.TestMethodArguments?.OfType<MemberSecurity>().Cast<MemberSecurity?>().FirstOrDefault()
        ?? (test.TestMethod.Method.Name.Contains("Kerberos", StringComparison.Ordinal) ? MemberSecurity.SaslKerberos : MemberSecurity.Secret);
}
