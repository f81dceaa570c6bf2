using System.Buffers.Binary;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;
using static Coordination.Server.Tests.FuzzTests;

namespace Coordination.Server.Tests;

/// <summary>
/// Jute lets every string, buffer and vector be null (length -1). Each case sends one request with such a field, and
/// with the empty value where that differs, to Apache ZooKeeper 3.8 and to our server, and compares what a client
/// sees: the reply's error code, whether the connection is closed, whether it still answers, whether a watch was set,
/// and what the request left behind. The two must agree (README "Null and empty fields" lists Apache's answers).
/// </summary>
public sealed class NullFieldTests(ITestOutputHelper output)
{
    private const int ProbeXid = 1000;
    private static readonly byte[] Probe = WireFrames.Request(ProbeXid, OpCode.Exists, new PathWatchRequest("/", false));
    private static readonly byte[] Null = I(-1);
    private static readonly byte[] Empty = I(0);

    /// <summary>A live session's credentials, for re-attaching with a null or empty password.</summary>
    private sealed record Live(long SessionId, byte[] Password);

    /// <param name="Ours">Where we differ from Apache on purpose: our outcome, and <paramref name="Why"/>.</param>
    private sealed record NullCase(string Name, Func<Live, byte[]> Frame, bool IsConnect = false, bool Trigger = false,
        Func<WireClient, Task<string>>? After = null, string? Ours = null, string? Why = null);

    private const string NotHalfApplied = "Apache registers the lists before the null one, then fails; we apply a request whole or not at all (invariant 7)";
    private const string EmptyIsNotRoot = "Apache finds its root under the key \"\" (reads of the empty path see \"/\"); its Java client refuses the empty path, and we answer NoNode";

    private static byte[] L(long v) { var b = new byte[8]; BinaryPrimitives.WriteInt64BigEndian(b, v); return b; }
    private static byte[] Req(int xid, OpCode op, params byte[][] body) => WireFrames.Request(xid, (int)op, Concat(body));
    private static byte[] Req(OpCode op, params byte[][] body) => Req(1, op, body);
    private static byte[] Connect(long sessionId, byte[] password) => WireFrames.Frame(Concat(I(0), L(0), I(30_000), L(sessionId), password, False));
    private static byte[] Buffer(byte[] b) => Concat(I(b.Length), b);
    /// <summary>A multi holding one op (header type, not done, err -1) and the terminator.</summary>
    private static byte[] Multi(OpCode inner, byte[] body) => Concat(I((int)inner), False, I(-1), body, I(-1), True, I(-1));
    private static byte[] Acl(byte[] scheme, byte[] id) => Concat(I(1, 31), scheme, id);

    private static Func<WireClient, Task<string>> Exists(string path) => async c => $"{path}: {(await c.ExistsAsync(path)).Header.Err}";

    private static Func<WireClient, Task<string>> AclOf(string path) => async c =>
    {
        var (header, response) = await c.SendAsync(OpCode.GetAcl, new PathRequest(path));
        return response is GetAclResponse r ? $"{path}: {r.Acl.Count} acl(s), aversion {r.Stat.Aversion}" : $"{path}: {header.Err}";
    };

    // setWatches with a relative zxid past every change: the watches are set without firing; a later setData fires them.
    private static readonly byte[] Far = L(long.MaxValue);

    private static IEnumerable<NullCase> Cases()
    {
        // addauth
        yield return new("addauth digest, null auth", _ => Req(Xids.AuthPacket, OpCode.Auth, I(0), S("digest"), Null));
        yield return new("addauth digest, empty auth", _ => Req(Xids.AuthPacket, OpCode.Auth, I(0), S("digest"), Empty));
        yield return new("addauth null scheme", _ => Req(Xids.AuthPacket, OpCode.Auth, I(0), Null, Buffer("u:p"u8.ToArray())));
        yield return new("addauth empty scheme", _ => Req(Xids.AuthPacket, OpCode.Auth, I(0), Empty, Buffer("u:p"u8.ToArray())));

        // setWatches / setWatches2: null lists against empty ones, and a null path inside a list
        yield return new("setWatches, 3 null lists", _ => Req(Xids.SetWatches, OpCode.SetWatches, Far, Null, Null, Null));
        yield return new("setWatches, 3 empty lists", _ => Req(Xids.SetWatches, OpCode.SetWatches, Far, Empty, Empty, Empty));
        yield return new("setWatches, data [/nf], exist null, child null", _ => Req(Xids.SetWatches, OpCode.SetWatches, Far, I(1), S("/nf"), Null, Null), Trigger: true,
            Ours: "MarshallingError, open, no watch", Why: NotHalfApplied);
        yield return new("setWatches, data null, exist null, child [/nf]", _ => Req(Xids.SetWatches, OpCode.SetWatches, Far, Null, Null, I(1), S("/nf")), Trigger: true);
        yield return new("setWatches, data [null path]", _ => Req(Xids.SetWatches, OpCode.SetWatches, Far, I(1), Null, Empty, Empty));
        yield return new("setWatches2, 5 null lists", _ => Req(Xids.SetWatches, OpCode.SetWatches2, Far, Null, Null, Null, Null, Null));
        yield return new("setWatches2, 5 empty lists", _ => Req(Xids.SetWatches, OpCode.SetWatches2, Far, Empty, Empty, Empty, Empty, Empty));
        yield return new("setWatches2, data [/nf], rest null", _ => Req(Xids.SetWatches, OpCode.SetWatches2, Far, I(1), S("/nf"), Null, Null, Null, Null), Trigger: true,
            Ours: "MarshallingError, open, no watch", Why: NotHalfApplied);
        yield return new("setWatches2, persistent [/nf], rest null", _ => Req(Xids.SetWatches, OpCode.SetWatches2, Far, Null, Null, Null, I(1), S("/nf"), Null), Trigger: true);

        // the connect request's password
        yield return new("connect new session, null password", _ => Connect(0, Null), IsConnect: true);
        yield return new("connect new session, empty password", _ => Connect(0, Empty), IsConnect: true);
        yield return new("connect re-attach, null password", l => Connect(l.SessionId, Null), IsConnect: true);
        yield return new("connect re-attach, empty password", l => Connect(l.SessionId, Empty), IsConnect: true);
        yield return new("connect re-attach, right password", l => Connect(l.SessionId, Buffer(l.Password)), IsConnect: true);

        // ACL lists: null against empty, and null strings inside an ACL
        yield return new("create, null acl", _ => Req(OpCode.Create, S("/nf/a1"), Null, Null, I(0)), After: Exists("/nf/a1"));
        yield return new("create, empty acl", _ => Req(OpCode.Create, S("/nf/a2"), Null, Empty, I(0)), After: Exists("/nf/a2"));
        yield return new("create2, null acl", _ => Req(OpCode.Create2, S("/nf/a3"), Null, Null, I(0)), After: Exists("/nf/a3"));
        yield return new("createContainer, null acl", _ => Req(OpCode.CreateContainer, S("/nf/a4"), Null, Null, I(4)), After: Exists("/nf/a4"));
        yield return new("multi create, null acl", _ => Req(OpCode.Multi, Multi(OpCode.Create, Concat(S("/nf/a5"), Null, Null, I(0)))), After: Exists("/nf/a5"));
        yield return new("create, acl with null scheme", _ => Req(OpCode.Create, S("/nf/a6"), Null, Acl(Null, S("anyone")), I(0)), After: Exists("/nf/a6"));
        yield return new("create, acl with null id", _ => Req(OpCode.Create, S("/nf/a7"), Null, Acl(S("world"), Null), I(0)), After: Exists("/nf/a7"));
        yield return new("setACL, null acl", _ => Req(OpCode.SetAcl, S("/nf/s1"), Null, I(-1)), After: AclOf("/nf/s1"));
        yield return new("setACL, empty acl", _ => Req(OpCode.SetAcl, S("/nf/s2"), Empty, I(-1)), After: AclOf("/nf/s2"));
        yield return new("setACL, acl with null id", _ => Req(OpCode.SetAcl, S("/nf/s3"), Acl(S("world"), Null), I(-1)), After: AclOf("/nf/s3"));

        // a null path in every request that has one
        yield return new("create, null path", _ => Req(OpCode.Create, Null, Null, OpenAcl, I(0)));
        yield return new("create, empty path", _ => Req(OpCode.Create, Empty, Null, OpenAcl, I(0)));
        yield return new("delete, null path", _ => Req(OpCode.Delete, Null, I(-1)));
        yield return new("setData, null path", _ => Req(OpCode.SetData, Null, Null, I(-1)));
        yield return new("setData, empty path", _ => Req(OpCode.SetData, Empty, Null, I(-1)));
        yield return new("exists, null path", _ => Req(OpCode.Exists, Null, False));
        yield return new("exists, empty path", _ => Req(OpCode.Exists, Empty, False), Ours: "NoNode, open", Why: EmptyIsNotRoot);
        yield return new("getData, null path", _ => Req(OpCode.GetData, Null, False));
        yield return new("getData, null path, watch", _ => Req(OpCode.GetData, Null, True));
        yield return new("getChildren, null path", _ => Req(OpCode.GetChildren, Null, False));
        yield return new("getChildren2, null path", _ => Req(OpCode.GetChildren2, Null, False));
        yield return new("getACL, null path", _ => Req(OpCode.GetAcl, Null));
        yield return new("setACL, null path", _ => Req(OpCode.SetAcl, Null, OpenAcl, I(-1)));
        yield return new("setACL, empty path", _ => Req(OpCode.SetAcl, Empty, OpenAcl, I(-1)));
        yield return new("sync, null path", _ => Req(OpCode.Sync, Null));
        yield return new("sync, empty path", _ => Req(OpCode.Sync, Empty));
        yield return new("addWatch, null path", _ => Req(OpCode.AddWatch, Null, I(0)));
        yield return new("addWatch, empty path", _ => Req(OpCode.AddWatch, Empty, I(0)));
        yield return new("checkWatches, null path", _ => Req(OpCode.CheckWatches, Null, I(3)));
        yield return new("removeWatches, null path", _ => Req(OpCode.RemoveWatches, Null, I(3)));
        yield return new("removeWatches, empty path", _ => Req(OpCode.RemoveWatches, Empty, I(3)));
        yield return new("checkWatches, empty path", _ => Req(OpCode.CheckWatches, Empty, I(3)));
        yield return new("getEphemerals, null prefix", _ => Req(OpCode.GetEphemerals, Null));
        yield return new("getEphemerals, empty prefix", _ => Req(OpCode.GetEphemerals, Empty));
        yield return new("getData, empty path", _ => Req(OpCode.GetData, Empty, False), Ours: "NoNode, open", Why: EmptyIsNotRoot);
        yield return new("delete, empty path", _ => Req(OpCode.Delete, Empty, I(-1)));
        yield return new("getAllChildrenNumber, null path", _ => Req(OpCode.GetAllChildrenNumber, Null));
        yield return new("multi delete, null path", _ => Req(OpCode.Multi, Multi(OpCode.Delete, Concat(Null, I(-1)))));
        yield return new("multi check, null path", _ => Req(OpCode.Multi, Multi(OpCode.Check, Concat(Null, I(-1)))));
        yield return new("multiRead getData, null path", _ => Req(OpCode.MultiRead, Multi(OpCode.GetData, Concat(Null, False))));
    }

    [SkippableFact]
    public async Task Null_and_empty_fields_get_the_answers_Apache_ZooKeeper_gives()
    {
        var apacheStart = Targets.StartAsync("apache", output);
        await using var ours = await Targets.StartAsync("ours", output);
        await using var apache = await apacheStart;
        var cases = Cases().ToList();
        var apacheOutcomes = await RunAllAsync(apache, cases);
        var ourOutcomes = new List<string>();
        await Targets.WithServerOutputOnFailure(ours, output, async () => ourOutcomes = await RunAllAsync(ours, cases));

        var table = new StringBuilder("| case | Apache ZooKeeper 3.8 | ours |\n|---|---|---|\n");
        var mismatches = new List<string>();
        for (var i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            table.Append($"| {c.Name} | {apacheOutcomes[i]} | {(ourOutcomes[i] == apacheOutcomes[i] ? "same" : ourOutcomes[i])}{(c.Why is null ? "" : $" ({c.Why})")} |\n");
            // A documented difference must still be one: both answers are pinned, so a change on either side shows.
            if (c.Ours is not null && apacheOutcomes[i] == c.Ours) mismatches.Add($"{c.Name}: Apache now answers as we do ({c.Ours}): drop the exception");
            if (ourOutcomes[i] != (c.Ours ?? apacheOutcomes[i])) mismatches.Add($"{c.Name}: Apache {apacheOutcomes[i]}; ours {ourOutcomes[i]}{(c.Ours is null ? "" : $", expected {c.Ours}")}");
        }
        output.WriteLine(table.ToString());
        Assert.False(ours.HasExited, "our server exited");
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }

    private async Task<List<string>> RunAllAsync(ServerProcess server, List<NullCase> cases)
    {
        await using var setup = await WireClient.ConnectAsync(server.ConnectString);
        foreach (var path in new[] { "/nf", "/nf/s1", "/nf/s2", "/nf/s3" })
            await setup.CreateAsync(path, "x"u8.ToArray()).OkAsync();
        var outcomes = new List<string>();
        foreach (var c in cases)
        {
            var outcome = await RunAsync(server, setup, c);
            output.WriteLine($"{server.Kind,-6} {c.Name,-50} {outcome}");
            outcomes.Add(outcome);
        }
        return outcomes;
    }

    private static async Task<string> RunAsync(ServerProcess server, WireClient setup, NullCase c)
    {
        var parts = new List<string>();
        await using var conn = await RawConnection.ConnectAsync(server.Host, server.Port);
        RawOutcome o;
        if (c.IsConnect)
        {
            // A session of its own (a raw connection does not ping, so one shared by all cases could expire meanwhile).
            await using var holder = await RawConnection.ConnectAsync(server.Host, server.Port);
            var session = await holder.HandshakeAsync(30_000);
            await conn.SendAsync(c.Frame(new Live(session.SessionId, session.Password)));
            o = await conn.ObserveAsync(TimeSpan.FromSeconds(2), expectConnectResponse: true);
            parts.Add(o.ConnectResponse is null ? "no ConnectResponse" : o.ConnectResponse.Timeout > 0 ? "session" : "ConnectResponse timeout 0");
            if (!o.ClosedByServer)
            {
                await conn.SendAsync(Probe);
                o = await conn.ObserveAsync(TimeSpan.FromSeconds(3), probeXid: ProbeXid);
            }
        }
        else
        {
            await conn.HandshakeAsync(30_000);
            await conn.SendAsync(Concat(c.Frame(new Live(0, [])), Probe));
            o = await conn.ObserveAsync(TimeSpan.FromSeconds(3), probeXid: ProbeXid);
            var reply = o.Replies.FirstOrDefault(r => r.Xid != ProbeXid && r.Xid != Xids.Notification);
            parts.Add(reply == default ? "no reply" : reply.Err.ToString());
        }
        var probeAnswered = o.Replies.Any(r => r.Xid == ProbeXid);
        parts.Add(o.ClosedByServer ? "closed" : probeAnswered ? "open" : "open, probe unanswered");
        if (c.Trigger && !o.ClosedByServer)
        {
            await setup.SetDataAsync("/nf", "y"u8.ToArray()).OkAsync();
            var events = await conn.ObserveAsync(TimeSpan.FromSeconds(1.5), stopAfterReplies: 1);
            parts.Add(events.Replies.Any(r => r.Xid == Xids.Notification) ? "watch fired" : "no watch");
        }
        if (c.After is not null) parts.Add(await c.After(setup));
        return string.Join(", ", parts);
    }
}
