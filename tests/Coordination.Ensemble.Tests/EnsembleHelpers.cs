using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Coordination.Server;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Polling, connecting and checking helpers shared by the multi-node scenarios. Nothing here sleeps to assert:
/// every wait polls a condition against a deadline.</summary>
internal static class Ens
{
    /// <summary>
    /// Creates an actor at a path under /user that has parents (a member's actors live under its node, e.g.
    /// <see cref="NodeActor.PeerPath"/>): a rogue system must stand where a member's peer would be to get its replies.
    /// </summary>
    public static IActorRef ActorAt(ActorSystem system, string path, Props props)
    {
        var names = path.Split('/', StringSplitOptions.RemoveEmptyEntries)[1..];
        var chain = props;
        for (var i = names.Length - 1; i > 0; i--)
        {
            var (child, name) = (chain, names[i]);
            chain = Props.Create(() => new Holder(child, name));
        }
        system.ActorOf(chain, names[0]);
        // Each parent creates its child when it starts: the leaf exists a moment later.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                return system.ActorSelection(path).ResolveOne(TimeSpan.FromSeconds(1)).GetAwaiter().GetResult();
            }
            catch (ActorNotFoundException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    private sealed class Holder : ReceiveActor
    {
        public Holder(Props child, string name) => Context.ActorOf(child, name);
    }

    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);

    public static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Polls <paramref name="condition"/> until it holds or the deadline passes (then fails with <paramref name="what"/>).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (Exception e) { last = e; }
            if (sw.Elapsed > timeout) throw new TimeoutException($"{what} (not within {timeout}){(last is null ? "" : ": " + last.Message)}", last);
            await Task.Delay(100);
        }
    }

    /// <summary>Connects to a member, retrying while it is not (yet) serving.</summary>
    public static async Task<WireClient> ConnectAsync(TestEnsemble.Member member, WireClientOptions? options = null, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        var limit = timeout ?? Settle;
        while (true)
        {
            try
            {
                return await WireClient.ConnectAsync("127.0.0.1", member.ClientPort,
                    (options ?? new WireClientOptions()) with { ConnectTimeout = TimeSpan.FromSeconds(5) });
            }
            catch (WireConnectionException) when (sw.Elapsed < limit && member.IsRunning)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Makes <paramref name="id"/> the leader: the others' leaders are killed and restarted until it leads
    /// (with equal logs the election picks the highest id).</summary>
    public static async Task<TestEnsemble.Member> LeadAsync(TestEnsemble ensemble, long id)
    {
        for (var attempt = 0; ; attempt++)
        {
            await ensemble.WaitAllServingAsync(Ens.Settle);
            var leader = ensemble.Leader!;
            if (leader.Id == id) return leader;
            Assert.True(attempt < 3, $"server {id} never became leader");
            await ensemble.KillAsync(leader.Id);
            await ensemble.WaitForLeaderAsync(Ens.Settle, notId: leader.Id);
            await ensemble.RestartAsync(leader.Id);
        }
    }

    /// <summary>
    /// The config of an ActorSystem that speaks our member transport, as a member's (or an impostor's) would:
    /// the ensemble's serializer, the socket transport on 127.0.0.1:<paramref name="port"/> (0: any) under the
    /// throttler, with <paramref name="transport"/> added to the transport section (auth, ssl) and
    /// <paramref name="akka"/> to the akka section.
    /// </summary>
    public static Akka.Configuration.Config MemberTransportConfig(string transport, int port = 0, string akka = "") =>
        Akka.Configuration.ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = ERROR
              stdout-loglevel = ERROR
              actor.provider = remote
              actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
              actor.serialization-bindings {
                "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
                "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab
              }
              {{akka}}
              remote.enabled-transports = ["akka.remote.coordination-socket"]
              remote.coordination-socket {
                transport-class = "Coordination.Server.Ensemble.SocketTransport, Coordination.Server"
                hostname = 127.0.0.1, port = {{port}}, applied-adapters = ["trttl"]
                {{transport}}
              }
            }
            """);

    /// <summary>The peer's own view (role, committed and logged zxid), asked of its peer actor.</summary>
    public static Task<PeerActor.PeerStatus> PeerStatusAsync(TestEnsemble.Member member) =>
        (member.Server ?? throw new InvalidOperationException($"{member} is down")).System
            .ActorSelection(NodeActor.PeerPath).Ask<PeerActor.PeerStatus>(PeerActor.GetStatus.Instance, TimeSpan.FromSeconds(10));

    /// <summary>The children of <paramref name="path"/> as <paramref name="member"/> serves them after a sync.</summary>
    public static async Task<HashSet<string>> ChildrenAsync(TestEnsemble.Member member, string path)
    {
        await using var c = await ConnectAsync(member);
        await c.SyncAsync(path).OkAsync();
        var (header, response) = await c.GetChildren2Async(path);
        if (header.Err == ErrorCode.NoNode) return new HashSet<string>();
        if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"getChildren {path} on {member}: {header.Err}");
        return ((GetChildrenResponse)response!).Children.ToHashSet();
    }

    /// <summary>Whether <paramref name="member"/> has <paramref name="path"/> after a sync. The session is closed, not
    /// left to expire: an expiry is a txn in the middle of whatever the test does next.</summary>
    public static async Task<bool> ExistsAsync(TestEnsemble.Member member, string path)
    {
        var c = await ConnectAsync(member);
        try
        {
            await c.SyncAsync("/").OkAsync();
            var (header, _) = await c.ExistsAsync(path);
            return header.Err == ErrorCode.Ok;
        }
        finally
        {
            await c.CloseAsync();
        }
    }

    /// <summary>Every running member has every one of <paramref name="names"/> under <paramref name="parent"/>.</summary>
    public static async Task AssertAllPresentEverywhereAsync(TestEnsemble ensemble, string parent, IReadOnlyCollection<string> names)
    {
        foreach (var m in ensemble.Members.Where(m => m.IsRunning))
        {
            var children = await ChildrenAsync(m, parent);
            var missing = names.Where(n => !children.Contains(n)).ToList();
            Assert.True(missing.Count == 0, $"{m} lost {missing.Count} acknowledged writes under {parent}, e.g. {string.Join(", ", missing.Take(5))}");
        }
    }

    /// <summary>Waits for one zxid on every running member, then checks that their digests agree.</summary>
    public static async Task<IReadOnlyDictionary<long, (long Zxid, long Digest)>> AssertConvergedAsync(TestEnsemble ensemble, TimeSpan? timeout = null)
    {
        var hashes = await ensemble.WaitConvergedAsync(timeout ?? Settle);
        Assert.True(hashes.Values.Select(h => h.Digest).Distinct().Count() == 1,
            "digests differ: " + string.Join(", ", hashes.Select(h => $"{h.Key}@0x{h.Value.Zxid:x}:{h.Value.Digest:x}")));
        return hashes;
    }

    /// <summary>
    /// Asserts that a write is never acknowledged within <paramref name="window"/>: it may fail, lose its connection
    /// or still be pending at the end, but must not succeed.
    /// </summary>
    public static async Task AssertNotAcknowledgedAsync(Task<(ReplyHeader Header, ZkResponse? Response)> reply, TimeSpan window, string what)
    {
        var done = await Task.WhenAny(reply, Task.Delay(window));
        if (done != reply) return;
        if (reply.IsCompletedSuccessfully)
            Assert.True(reply.Result.Header.Err != ErrorCode.Ok, $"{what} was acknowledged (zxid 0x{reply.Result.Header.Zxid:x})");
    }

    /// <summary>Writes <paramref name="count"/> pipelined creates under <paramref name="parent"/> (which must exist) and awaits them all.</summary>
    public static async Task<List<string>> CreateManyAsync(WireClient client, string parent, string prefix, int count, int dataBytes = 16)
    {
        var data = new byte[dataBytes];
        var names = Enumerable.Range(0, count).Select(i => $"{prefix}{i:D5}").ToList();
        var replies = names.Select(n => client.CreateAsync($"{parent}/{n}", data)).ToList();
        foreach (var r in replies) await r.OkAsync();
        return names;
    }

    /// <summary>Creates <paramref name="parent"/> with a few children through the leader and waits until every member has them.</summary>
    public static async Task SeedAsync(TestEnsemble ensemble, string parent, int children = 10)
    {
        await using (var c = await ConnectAsync(ensemble.Leader!))
        {
            await c.CreateAsync(parent, null).OkAsync();
            await CreateManyAsync(c, parent, "a", children);
        }
        await AssertConvergedAsync(ensemble);
    }

    /// <summary>Kills every member at once (in parallel, so that no election runs between the kills).</summary>
    public static Task KillAllAsync(TestEnsemble ensemble, params long[] ids) =>
        Task.WhenAll((ids.Length == 0 ? ensemble.Members.Select(m => m.Id) : ids).Select(ensemble.KillAsync));

    public static Task RestartAllAsync(TestEnsemble ensemble, params long[] ids) =>
        Task.WhenAll(ids.Select(ensemble.RestartAsync));

    /// <summary>Waits until the running members (at least a quorum of them) agree on one serving leader.</summary>
    public static async Task<TestEnsemble.Member> WaitSettledAsync(TestEnsemble ensemble, TimeSpan? timeout = null)
    {
        await ensemble.WaitAllServingAsync(timeout ?? Settle);
        return ensemble.Leader!;
    }

    public static TestEnsemble.Member Follower(TestEnsemble ensemble, params long[] except) =>
        ensemble.Members.First(m => m.IsRunning && m.Mode == "follower" && !except.Contains(m.Id));
}
