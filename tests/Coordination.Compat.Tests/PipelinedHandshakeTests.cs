using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Requests a client sends right behind its ConnectRequest, in the same write, before the ConnectResponse: Apache
/// ZooKeeper 3.8 reads them once the session is set up and answers them in order. (Ours left them in its read buffer
/// and waited for more bytes, so the client waited until its session expired.) Test kits use it to end a session
/// without a race: attach to it and close it in one write.
/// </summary>
public sealed class PipelinedHandshakeTests(ITestOutputHelper output)
{
    public static TheoryData<string> Targets => new() { "ours", "apache" };

    private async Task<ServerProcess> StartAsync(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var server = await ServerProcess.StartAsync(target, new ServerProcessOptions());
        output.WriteLine($"started {server}");
        return server;
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Requests_behind_the_connect_request_are_answered_in_order(string target)
    {
        await using var server = await StartAsync(target);
        await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
        await raw.SendAsync(WireFrames.Connect(timeoutMs: 30_000)
            .Concat(WireFrames.Request(1, OpCode.Exists, new PathWatchRequest("/", false)))
            .Concat(WireFrames.Request(2, OpCode.GetData, new PathWatchRequest("/missing", false)))
            .Concat(WireFrames.Request(3, OpCode.CloseSession, null)).ToArray());
        var seen = await raw.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true);
        output.WriteLine($"[{target}] {seen}");
        Assert.True(seen.ConnectResponse is { Timeout: > 0 }, $"a session was created: {seen}");
        Assert.Equal([(1, ErrorCode.Ok), (2, ErrorCode.NoNode), (3, ErrorCode.Ok)], seen.Replies.Select(r => (r.Xid, r.Err)));
        Assert.True(seen.ClosedByServer, "the server closes the connection after closeSession");
    }

    /// <summary>A request whose first bytes came with the ConnectRequest and whose rest comes later is answered too.</summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task A_request_split_across_the_connect_write_is_answered(string target)
    {
        await using var server = await StartAsync(target);
        await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
        var request = WireFrames.Request(1, OpCode.Exists, new PathWatchRequest("/", false));
        await raw.SendAsync(WireFrames.Connect(timeoutMs: 30_000).Concat(request[..6]).ToArray());
        var connected = await raw.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true, stopAfterReplies: 0);
        Assert.True(connected.ConnectResponse is { Timeout: > 0 }, $"a session was created: {connected}");
        await raw.SendAsync(request[6..]);
        var seen = await raw.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 1);
        output.WriteLine($"[{target}] {seen}");
        Assert.Equal([(1, ErrorCode.Ok)], seen.Replies.Select(r => (r.Xid, r.Err)));
    }

    /// <summary>
    /// Attach to a live session and close it in one write: the session ends (a later attach is told it expired),
    /// and its first connection is closed by the server.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Attaching_and_closing_in_one_write_ends_the_session(string target)
    {
        await using var server = await StartAsync(target);
        await using var owner = await RawConnection.ConnectAsync(server.Host, server.Port);
        var session = await owner.HandshakeAsync();

        await using var killer = await RawConnection.ConnectAsync(server.Host, server.Port);
        await killer.SendAsync(WireFrames.Connect(session.SessionId, session.Password, 30_000)
            .Concat(WireFrames.Request(1, OpCode.CloseSession, null)).ToArray());
        var killed = await killer.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true);
        output.WriteLine($"[{target}] killer: {killed}");
        Assert.True(killed.ConnectResponse is { Timeout: > 0 }, $"the killer attached: {killed}");
        Assert.Equal([(1, ErrorCode.Ok)], killed.Replies.Select(r => (r.Xid, r.Err)));

        var ownerSaw = await owner.ObserveAsync(TimeSpan.FromSeconds(10));
        Assert.True(ownerSaw.ClosedByServer, $"the first connection is closed: {ownerSaw}");

        await using var late = await RawConnection.ConnectAsync(server.Host, server.Port);
        await late.SendAsync(WireFrames.Connect(session.SessionId, session.Password, 30_000));
        var expired = await late.ObserveAsync(TimeSpan.FromSeconds(10), expectConnectResponse: true, stopAfterReplies: 0);
        output.WriteLine($"[{target}] late attach: {expired}");
        Assert.True(expired.ConnectResponse is { Timeout: 0 }, $"the session is gone: {expired}");
    }
}
