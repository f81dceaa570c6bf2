using Coordination.Server.Sessions;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// When the memory trim runs (<see cref="MemoryTrimPolicy"/>, issue 23): each rule on its own, from GC samples one
/// second apart (the actor's check interval). The defaults: quiet below 4 MiB/s for 10 s, a slack over max(64 MiB,
/// 10 % of the live heap), at most one trim a burst of allocation, and a pause estimated at 1 ms/MiB of live heap of
/// at most 100 ms and 10 % of the shortest session timeout in use.
/// </summary>
public sealed class MemoryTrimPolicyTests
{
    private const long MiB = 1 << 20;
    private readonly MemoryTrimPolicy _policy;
    private TimeSpan _now;
    private long _allocated;

    public MemoryTrimPolicyTests() : this(MemoryTrimSettings.Default) { }

    private MemoryTrimPolicyTests(MemoryTrimSettings settings)
    {
        _policy = new MemoryTrimPolicy(settings);
        Sample(0, 0, 0);   // the first sample only starts the count
    }

    private static MemoryTrimPolicyTests With(MemoryTrimSettings settings) => new(settings);

    /// <summary>One sample a second after the last, the process having allocated this much meanwhile.</summary>
    private TrimDecision Sample(long allocatedMiB, long committedMiB, long liveMiB, TimeSpan? sessions = null)
    {
        _now += TimeSpan.FromSeconds(1);
        _allocated += allocatedMiB * MiB;
        return _policy.Decide(new GcSample(_now, _allocated, committedMiB * MiB, liveMiB * MiB), sessions);
    }

    /// <summary>The actions of <paramref name="seconds"/> quiet samples (1 MiB/s allocated).</summary>
    private List<TrimAction> Quiet(int seconds, long committedMiB, long liveMiB, TimeSpan? sessions = null) =>
        Enumerable.Range(0, seconds).Select(_ => Sample(1, committedMiB, liveMiB, sessions).Action).ToList();

    private static List<TrimAction> Then(int none, TrimAction action) => [.. Enumerable.Repeat(TrimAction.None, none), action];

    private static List<TrimAction> Nothing(int seconds) => [.. Enumerable.Repeat(TrimAction.None, seconds)];

    [Fact]
    public void A_trim_waits_until_the_process_has_been_quiet_for_the_quiet_period()
    {
        Assert.Equal(TrimAction.None, Sample(500, 300, 80).Action);   // the load: 500 MiB in a second
        Assert.Equal(Nothing(4), Quiet(4, 300, 80));
        Assert.Equal(TrimAction.None, Sample(5, 300, 80).Action);     // 5 MiB/s is busy: the quiet period starts again
        Assert.Equal(Then(9, TrimAction.Trim), Quiet(10, 300, 80));
    }

    [Fact]
    public void Only_a_slack_over_min_excess_and_over_its_share_of_the_live_heap_is_worth_a_trim()
    {
        Sample(500, 0, 0);
        Assert.Equal(Nothing(15), Quiet(15, 80 + 63, 80));             // 63 MiB beyond the live heap: under min-excess
        Assert.Equal(TrimAction.Trim, Sample(1, 80 + 64, 80).Action);

        var big = With(MemoryTrimSettings.Default with { MaxPause = TimeSpan.FromMinutes(1) });
        big.Sample(2000, 0, 0);
        Assert.Equal(Nothing(15), big.Quiet(15, 1000 + 99, 1000));     // 10 % of a 1000-MiB live heap is 100 MiB
        Assert.Equal(TrimAction.Trim, big.Sample(1, 1000 + 100, 1000).Action);
    }

    [Fact]
    public void At_most_one_trim_while_idle_and_the_next_only_after_a_burst_of_a_quarter_of_the_live_heap()
    {
        var p = With(MemoryTrimSettings.Default with { MaxPause = TimeSpan.FromSeconds(1) });
        p.Sample(500, 0, 0);
        Assert.Equal(Then(9, TrimAction.Trim), p.Quiet(10, 600, 400));
        // Idle, the GC still holding the slack (or regaining it): no second trim.
        Assert.Equal(Nothing(30), p.Quiet(30, 600, 400));
        // 40 MiB more in a second: a burst, but with the idle seconds' less than a quarter of the live heap (100 MiB)
        // since the trim.
        p.Sample(40, 600, 400);
        Assert.Equal(Nothing(20), p.Quiet(20, 600, 400));
        p.Sample(40, 600, 400);
        Assert.Equal(Then(9, TrimAction.Trim), p.Quiet(10, 600, 400));
    }

    [Fact]
    public void A_trim_estimated_to_pause_longer_than_max_pause_is_refused_and_reported_once_a_burst()
    {
        Sample(500, 0, 0);
        var refused = Enumerable.Range(0, 40).Select(_ => Sample(1, 400, 150)).ToList();
        // 150 MiB live at 1 ms/MiB: 150 ms, over max-pause (100 ms). Reported once, not every second.
        Assert.Equal(Then(9, TrimAction.Refuse).Concat(Nothing(30)), refused.Select(d => d.Action));
        Assert.Equal((TimeSpan.FromMilliseconds(150), TimeSpan.FromMilliseconds(100)), (refused[9].EstimatedPause, refused[9].Limit));
        // Another burst (64 MiB: min-excess), still too big: reported again.
        Sample(64, 400, 150);
        Assert.Equal(Then(9, TrimAction.Refuse), Quiet(10, 400, 150));
        // A heap of 100 MiB: 100 ms, which max-pause allows (after another burst).
        Sample(64, 400, 100);
        Assert.Equal(Then(9, TrimAction.Trim), Quiet(10, 400, 100));
    }

    [Fact]
    public void The_shortest_session_timeout_in_use_bounds_the_pause_and_a_refused_trim_runs_once_that_session_ends()
    {
        var shortSession = TimeSpan.FromMilliseconds(500);
        Assert.Equal(TimeSpan.FromMilliseconds(50), _policy.PauseLimit(shortSession));
        Assert.Equal(TimeSpan.FromMilliseconds(100), _policy.PauseLimit(TimeSpan.FromSeconds(2)));   // 200 ms: max-pause is lower
        Assert.Equal(TimeSpan.FromMilliseconds(100), _policy.PauseLimit(null));

        Sample(500, 0, 0);
        // 80 MiB live: 80 ms, over 10 % of a 500-ms session's timeout.
        Assert.Equal(Then(9, TrimAction.Refuse).Concat(Nothing(5)), Quiet(15, 300, 80, shortSession));
        // That session ends: the trim runs without waiting for another burst.
        Assert.Equal(TrimAction.Trim, Sample(1, 300, 80, sessions: null).Action);
    }

    [Fact]
    public void The_pauses_measured_correct_the_estimate()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(90), _policy.EstimatePause(90 * MiB));
        // A trim of 80 MiB took 240 ms (3 ms/MiB: a slower or loaded machine): the estimate goes half way, to 2 ms/MiB.
        _policy.Measured(80 * MiB, TimeSpan.FromMilliseconds(240));
        Assert.Equal(2.0, _policy.PauseMsPerMiB, 6);
        Assert.Equal(TimeSpan.FromMilliseconds(180), _policy.EstimatePause(90 * MiB));
        Sample(500, 0, 0);
        Assert.Equal(Then(9, TrimAction.Refuse), Quiet(10, 300, 90));
        // Two fast trims (0.5 ms/MiB) bring it back under 1 ms/MiB.
        _policy.Measured(100 * MiB, TimeSpan.FromMilliseconds(50));
        _policy.Measured(100 * MiB, TimeSpan.FromMilliseconds(50));
        Assert.Equal(0.875, _policy.PauseMsPerMiB, 6);
        // The refusal did not count as a trim: the next sample runs it.
        Assert.Equal(TrimAction.Trim, Sample(1, 300, 90).Action);
    }

    [Fact]
    public void The_settings_come_from_reference_conf()
    {
        var settings = ServerSettings.Create(ServerSettings.Reference).MemoryTrim;
        Assert.Equal((TimeSpan.FromMilliseconds(100), 0.1, TimeSpan.FromMilliseconds(1)), (settings.MaxPause, settings.MaxPauseSessionShare, settings.PausePerMiB));
    }

    [Fact]
    public void The_shortest_session_timeout_is_the_shortest_of_the_sessions_open()
    {
        var timeouts = new SessionTimeouts();
        Assert.Null(timeouts.Shortest);
        timeouts.Opened(1, 4000);
        timeouts.Opened(2, 2000);
        timeouts.Opened(3, 2000);
        Assert.Equal(TimeSpan.FromMilliseconds(2000), timeouts.Shortest);
        timeouts.Closed(2);
        Assert.Equal(TimeSpan.FromMilliseconds(2000), timeouts.Shortest);
        timeouts.Closed(3);
        timeouts.Closed(3);   // closed twice (an expiry and a close): counted once
        Assert.Equal(TimeSpan.FromMilliseconds(4000), timeouts.Shortest);
        timeouts.Opened(1, 1000);   // the same session again, with another timeout: replaces it
        Assert.Equal(TimeSpan.FromMilliseconds(1000), timeouts.Shortest);
        timeouts.Closed(1);
        Assert.Null(timeouts.Shortest);

        // Over every tracker registered in the process (other tests' servers too: no session has a 1-ms timeout).
        timeouts.Opened(4, 1);
        Assert.NotEqual(TimeSpan.FromMilliseconds(1), SessionTimeouts.ShortestInProcess());
        timeouts.Register();
        try { Assert.Equal(TimeSpan.FromMilliseconds(1), SessionTimeouts.ShortestInProcess()); }
        finally { timeouts.Unregister(); }
        Assert.NotEqual(TimeSpan.FromMilliseconds(1), SessionTimeouts.ShortestInProcess());
    }
}
