using System.Diagnostics;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

[Collection(LoadAndTimingCollection.Name)]
public sealed class SessionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Ephemeral_survives_a_restart_when_its_client_returns_in_time_and_expires_otherwise()
    {
        await using var server = await Servers.StartAsync(output, tickMs: 500);
        var returning = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 8000 });
        var leaving = await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 4000 });
        await returning.CreateAsync("/eph-returning", [1], CreateMode.Ephemeral).OkAsync();
        await leaving.CreateAsync("/eph-leaving", [2], CreateMode.Ephemeral).OkAsync();

        server.Kill();
        await returning.DisposeAsync(); // connection gone, session not closed
        await leaving.DisposeAsync();
        await server.RestartAsync();
        var restarted = Stopwatch.StartNew();

        await using var back = await returning.ReattachAsync();
        Assert.Equal(returning.SessionId, back.SessionId);
        await back.ExistsAsync("/eph-returning").OkAsync();

        await using var observer = await WireClient.ConnectAsync(server.ConnectString);
        // The recovered session of the client that does not come back is alive until its timeout runs out...
        await observer.ExistsAsync("/eph-leaving").OkAsync();
        // ...and then it expires and its ephemeral goes.
        while ((await observer.ExistsAsync("/eph-leaving")).Header.Err == ErrorCode.Ok)
        {
            Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(30), "the abandoned session never expired");
            await Task.Delay(200);
        }
        output.WriteLine($"abandoned session expired {restarted.ElapsedMilliseconds} ms after the restart");
        Assert.True(restarted.ElapsedMilliseconds >= 2000, "the abandoned session expired long before its timeout");

        // The returning client kept its session and ephemeral the whole time.
        await back.ExistsAsync("/eph-returning").OkAsync();
        await observer.ExistsAsync("/eph-returning").OkAsync();
        Assert.True(back.IsConnected);
    }
}
