using System.Diagnostics;

namespace Coordination.Server.Ensemble;

/// <summary>
/// Test-only fault points of a reconfiguration, read from the environment once (never set outside tests; without them
/// nothing here runs). <c>COORDINATION_TEST_RECONFIG_KILL=point:token-file</c> makes the leader of a reconfig SIGKILL
/// itself at <c>point</c>, once for the whole ensemble: the member that first renames the token file away fires, so a
/// later leader that commits the same reconfig does not. <c>COORDINATION_TEST_RECONFIG_NAIVE=1</c> is the control:
/// a member writes a reconfig's dynamic config file as soon as it logs the txn, not once it commits (the mistake the
/// kill tests must catch).
/// </summary>
internal static class ReconfigFaultHooks
{
    /// <summary>Where a leader may be killed during a reconfig it proposed.</summary>
    internal enum KillPoint
    {
        None,
        /// <summary>Its own log has the reconfig txn; the proposal never left (held back until then): only the leader logged it.</summary>
        LoggedUnsent,
        /// <summary>Its own log has the reconfig txn; the proposal went out as usual (learners may have logged it).</summary>
        Logged,
        /// <summary>It sends nothing more except to one follower (the lowest id synchronised with it), and dies when that
        /// follower acks the reconfig txn: that follower logged it, and no other member nor joiner did.</summary>
        LoggedByOne,
        /// <summary>The reconfig just committed here; the commit was not sent and no dynamic config file written.</summary>
        Committed,
        /// <summary>The new dynamic config file is durable here (learners were sent the commit).</summary>
        Activated,
    }

    internal static readonly KillPoint Point;
    private static readonly string? Token;
    internal static readonly bool ActivateOnLog = Environment.GetEnvironmentVariable("COORDINATION_TEST_RECONFIG_NAIVE") == "1";

    static ReconfigFaultHooks()
    {
        var spec = Environment.GetEnvironmentVariable("COORDINATION_TEST_RECONFIG_KILL");
        var colon = spec?.IndexOf(':') ?? -1;
        if (spec is null || colon < 0) return;
        Point = spec[..colon] switch
        {
            "logged-unsent" => KillPoint.LoggedUnsent,
            "logged" => KillPoint.Logged,
            "logged-by-one" => KillPoint.LoggedByOne,
            "committed" => KillPoint.Committed,
            "activated" => KillPoint.Activated,
            _ => throw new ArgumentException($"COORDINATION_TEST_RECONFIG_KILL: unknown point '{spec[..colon]}'"),
        };
        Token = spec[(colon + 1)..];
    }

    /// <summary>True once, for the one member that claims the token (it is about to die at <paramref name="point"/>).</summary>
    internal static bool Claim(KillPoint point, long serverId)
    {
        if (Point != point || Token is null) return false;
        try
        {
            File.Move(Token, $"{Token}.claimed-by-{serverId}");
            return true;
        }
        catch (IOException) { return false; }
    }

    /// <summary>SIGKILL of this process (nothing flushed, nothing shut down), after saying why on stderr.</summary>
    internal static void Die(long serverId, string why)
    {
        Console.Error.WriteLine($"TEST HOOK: server {serverId} SIGKILLs itself {why}");
        Console.Error.Flush();
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
