using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>Session basics over the wire: re-attach after a dropped connection, ephemerals, expiry, close.</summary>
[Collection(LoadAndTimingCollection.Name)]
public sealed class SessionTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_session_survives_a_dropped_connection_and_its_close_removes_its_ephemerals(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var first = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 6000 });
            output.WriteLine($"session 0x{first.SessionId:x}, negotiated timeout {first.NegotiatedTimeoutMs} ms");
            Assert.InRange(first.NegotiatedTimeoutMs, 2 * 500, 20 * 500); // between 2 and 20 ticks
            await first.CreateAsync("/eph", "e"u8.ToArray(), CreateMode.Ephemeral).OkAsync();
            var observer = await WireClient.ConnectAsync(server.ConnectString);
            var stat = (StatResponse?)await observer.ExistsAsync("/eph", watch: true).OkAsync();
            Assert.Equal(first.SessionId, stat!.Stat.EphemeralOwner);

            // Drop the TCP connection without closing the session, then re-attach.
            await first.DisposeAsync();
            Assert.Null(await first.Closed);
            var second = await first.ReattachAsync();
            Assert.Equal(first.SessionId, second.SessionId);
            Assert.NotNull(await observer.ExistsAsync("/eph").OkAsync());

            // Closing the session deletes the ephemeral; the observer is told before it can read the absence.
            await second.CloseAsync();
            Assert.Null(await second.Closed);
            var ev = await observer.Events.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal((EventType.NodeDeleted, "/eph"), (ev.Event.Type, ev.Event.Path));
            var (h, _) = await observer.ExistsAsync("/eph");
            Assert.Equal(ErrorCode.NoNode, h.Err);

            // A closed session cannot be re-attached.
            await Assert.ThrowsAsync<SessionExpiredException>(() => second.ReattachAsync());
            await observer.CloseAsync();
        });
    }

    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_silent_session_expires_and_its_ephemerals_go(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var silent = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 1000, AutoPing = false });
            await silent.CreateAsync("/silent", null, CreateMode.Ephemeral).OkAsync();
            var observer = await WireClient.ConnectAsync(server.ConnectString);
            await observer.ExistsAsync("/silent", watch: true).OkAsync();
            // No pings: the server must expire the session within about its timeout (plus a tick of slack).
            var ev = await observer.Events.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal((EventType.NodeDeleted, "/silent"), (ev.Event.Type, ev.Event.Path));
            await silent.DisposeAsync();
            await Assert.ThrowsAsync<SessionExpiredException>(() => silent.ReattachAsync());
            await observer.CloseAsync();
        });
    }
}
