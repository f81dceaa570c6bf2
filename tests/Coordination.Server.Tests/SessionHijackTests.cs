using System.Text.RegularExpressions;
using Coordination.Protocol;
using Coordination.TestKit;
using Coordination.Tests.Shared;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Issue 17, session secrets: knowing a live session's id (cons, dump, wchc and logs print it) must not be enough to
/// re-attach to it. The attacker tries every password it can compute from public information; each attempt must
/// be refused as ZooKeeper refuses a wrong password (a connect response with timeout 0: session expired), and the
/// owner's connection, session and ephemeral must be untouched.
/// </summary>
public sealed partial class SessionHijackTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"sid=0x([0-9a-f]+)")]
    private static partial Regex SessionIdInCons();

    [SkippableFact]
    public async Task A_session_id_learned_from_cons_does_not_let_a_stranger_attach_to_the_session()
    {
        // The test server allows every four-letter word, so the attacker can read session ids from cons.
        await using var server = await Targets.StartAsync("ours", output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var owner = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 10_000 });
            await owner.CreateAsync("/lock", "mine"u8.ToArray(), CreateMode.Ephemeral).OkAsync();

            var cons = await FourLetterWord.SendAsync(server.ConnectString, "cons");
            var leaked = SessionIdInCons().Matches(cons).Select(m => Convert.ToInt64(m.Groups[1].Value, 16)).ToList();
            Assert.Contains(owner.SessionId, leaked);

            foreach (var (scheme, password) in PublicSessionPasswords.For(owner.SessionId))
            {
                var attempt = WireClient.ConnectAsync(server.ConnectString,
                    new WireClientOptions { SessionId = owner.SessionId, Password = password, SessionTimeoutMs = 10_000 });
                await Assert.ThrowsAsync<SessionExpiredException>(async () => await (await attempt).DisposeAsync());
                output.WriteLine($"refused: {scheme}");
            }

            // The owner noticed nothing: same connection, its ephemeral is still its own.
            Assert.True(owner.IsConnected, "the owner's connection was closed by a hijack attempt");
            Assert.False(owner.Closed.IsCompleted);
            var stat = (StatResponse?)await owner.ExistsAsync("/lock").OkAsync();
            Assert.Equal(owner.SessionId, stat!.Stat.EphemeralOwner);

            // The real password still re-attaches (the refusals were about the password, not the session).
            await using var again = await WireClient.ConnectAsync(server.ConnectString,
                new WireClientOptions { SessionId = owner.SessionId, Password = owner.Password, SessionTimeoutMs = 10_000 });
            Assert.Equal(owner.SessionId, again.SessionId);
            Assert.Equal(owner.Password, again.Password);
        });
    }

    /// <summary>The reference is exposed to exactly this: Apache ZooKeeper 3.8 hands out the password the attacker
    /// computes (which also shows that the attacker's computation above is right).</summary>
    [SkippableFact]
    public async Task Apache_ZooKeeper_hands_out_the_password_computable_from_the_session_id()
    {
        await using var server = await Targets.StartAsync("apache", output);
        await using var owner = await WireClient.ConnectAsync(server.ConnectString);
        Assert.Equal(PublicSessionPasswords.ZooKeeperScheme(owner.SessionId), owner.Password);
    }
}
