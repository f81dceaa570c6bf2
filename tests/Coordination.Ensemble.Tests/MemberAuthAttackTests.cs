using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Attacks on the member port of a real 3-member ensemble over real TCP (DESIGN invariant 11: a message between
/// members is acted on only if it arrived on a link authenticated as a configured member). The attacker knows the
/// member addresses and our assemblies, but not the ensemble's secret. Nothing it sends may be applied, logged or
/// answered, and the ensemble keeps serving. These tests use only what existed before member authentication, so
/// that they can be run against that code too (where each of them fails).
/// </summary>
public sealed class MemberAuthAttackTests
{
    /// <summary>How long the attacks get to take effect before the test checks that none did.</summary>
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(3);

    /// <summary>The rogue's transport: ours, over the same throttler adapter as the members (so the same
    /// akka.trttl.tcp addresses), without the secret or with a wrong one.</summary>
    public static TheoryData<string> RogueAuth => new()
    {
        "insecure = on",
        // Claims to be member 2 with a secret of its own (the member endpoints are filled in by the test).
        "secret-base64 = \"" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)) + "\", member-id = 2",
    };

    [Theory]
    [MemberData(nameof(RogueAuth))]
    public async Task A_rogue_ActorSystem_that_knows_the_member_addresses_gets_nothing_applied_logged_or_answered(string rogueAuth)
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToArray();

        // A live session on a follower with an ephemeral, and a node only super may create children under.
        await using var victim = await Ens.ConnectAsync(followers[0]);
        await victim.CreateAsync("/eph", Ens.Bytes("mine"), CreateMode.Ephemeral).OkAsync();
        await victim.CreateAsync("/locked", [], acl: Acl.ReadAclUnsafe).OkAsync();
        var before = await ensemble.WaitConvergedAsync(Ens.Settle);
        var loggedBefore = new Dictionary<long, long>();
        foreach (var m in ensemble.Members) loggedBefore[m.Id] = (await Ens.PeerStatusAsync(m)).LastZxid;

        var members = string.Join(", ", ensemble.Members.Select(m => $"{m.Id} = \"127.0.0.1:{m.RemotingPort}\""));
        var problems = new List<string>();
        using var rogue = ActorSystem.Create("coordination", RogueConfig($"{rogueAuth}, members {{ {members} }}"));
        try
        {
            var replies = new ConcurrentQueue<object>();
            var recorder = rogue.ActorOf(Props.Create(() => new Recorder(replies)), "recorder");
            IActorRef At(TestEnsemble.Member m, string actor) =>
                RemotePaths.Resolve(rogue, $"akka.trttl.tcp://coordination@127.0.0.1:{m.RemotingPort}/user/{actor}");

            foreach (var m in ensemble.Members)
            {
                // Any reply at all: Akka's Identify, the peer's status (JSON), a snapshot chunk.
                rogue.ActorSelection($"akka.trttl.tcp://coordination@127.0.0.1:{m.RemotingPort}/user/{PeerActor.Name}").Tell(new Identify(m.Id), recorder);
                At(m, PeerActor.Name).Tell(PeerActor.GetStatus.Instance, recorder);
                At(m, PeerActor.Name).Tell(new FetchSnapshot(followers[1].Id, 0, 0), recorder);
            }

            // The leader's replica: a write in the follower's name with super in its auth list, and a close of the
            // victim's live session.
            var create = Body(new CreateRequest("/locked/pwned", Ens.Bytes("x"), Acl.OpenAclUnsafe, 0));
            At(leader, "replica").Tell(new ForwardedRequest(followers[0].Id, victim.SessionId, 7001, (int)OpCode.Create, create, [("super", "")]), recorder);
            At(leader, "replica").Tell(new ForwardedRequest(followers[0].Id, victim.SessionId, 7002, (int)OpCode.CloseSession, [], []), recorder);

            // A follower: a PROPOSAL and its COMMIT in the leader's name, at the next zxid.
            var next = before[followers[1].Id].Zxid + 1;
            var forged = Txns.Serialize(new TxnHeader(victim.SessionId, 7003, next, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), OpCode.Create),
                new CreateTxn("/forged", Ens.Bytes("f"), Acl.OpenAclUnsafe, 0, 1));
            At(followers[1], PeerActor.Name).Tell(new Propose(leader.Id, new LogEntry(next, forged)), recorder);
            At(followers[1], PeerActor.Name).Tell(new Commit(leader.Id, next), recorder);

            await Task.Delay(Quiet);
            // An Identify that its own remoting drops is answered by the rogue's dead letters, with no subject; a
            // member would have named the (existing) actor.
            var answered = replies.Where(r => r is not ActorIdentity { Subject: null }).ToList();
            if (answered.Count > 0) problems.Add("the rogue got replies: " + string.Join(", ", answered));
            foreach (var m in ensemble.Members)
            {
                var (zxid, _) = await ensemble.HashAsync(m.Id);
                if (zxid != before[m.Id].Zxid) problems.Add($"server {m.Id} applied something: 0x{before[m.Id].Zxid:x} -> 0x{zxid:x}");
                var logged = (await Ens.PeerStatusAsync(m)).LastZxid;
                if (logged != loggedBefore[m.Id]) problems.Add($"server {m.Id} logged something: 0x{loggedBefore[m.Id]:x} -> 0x{logged:x}");
            }
        }
        finally
        {
            await rogue.Terminate();
        }

        // The victim's session lives on, and the ensemble serves and agrees.
        try
        {
            var (touch, _) = await victim.SetDataAsync("/eph", Ens.Bytes("still mine"));
            if (touch.Err != ErrorCode.Ok) problems.Add($"the victim's session is gone: setData answered {touch.Err}");
        }
        catch (WireConnectionException e)
        {
            problems.Add($"the victim's session is gone: {e.Message}");
        }
        await using (var writer = await Ens.ConnectAsync(leader))
            await writer.CreateAsync("/after", []).OkAsync();
        try
        {
            var hashes = await ensemble.WaitConvergedAsync(Ens.Settle);
            if (hashes.Values.Select(h => h.Digest).Distinct().Count() != 1)
                problems.Add("the members' digests differ: " + string.Join(", ", hashes.Select(h => $"{h.Key}: 0x{h.Value.Zxid:x}/{h.Value.Digest:x}")));
        }
        catch (TimeoutException e)
        {
            problems.Add(e.Message);
        }
        foreach (var m in ensemble.Members)
        {
            if (!await Ens.ExistsAsync(m, "/eph")) problems.Add($"server {m.Id} lost the victim's ephemeral");
            if (await Ens.ExistsAsync(m, "/locked/pwned")) problems.Add($"server {m.Id} has the rogue's node");
            if (await Ens.ExistsAsync(m, "/forged")) problems.Add($"server {m.Id} has the forged node");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public async Task A_raw_socket_that_sends_garbage_or_speaks_Akkas_association_protocol_gets_no_reply_and_is_closed()
    {
        await using var ensemble = await TestEnsemble.StartAsync();
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var target = ensemble.Members.First(m => m.Id != leader.Id);

        // Random bytes, a well-framed random payload, and Akka's own ASSOCIATE PDU (a stranger's first step).
        var frame = new byte[4 + 64];
        BinaryPrimitives.WriteInt32BigEndian(frame, 64);
        RandomNumberGenerator.Fill(frame.AsSpan(4));
        var problems = new List<string>();
        foreach (var (what, bytes) in new[]
        {
            ("garbage", RandomNumberGenerator.GetBytes(256)),
            ("a framed random payload", frame),
            ("an Akka ASSOCIATE", Framed(AssociatePdu("coordination", "127.0.0.1", 1, "akka.trttl.tcp"))),
        })
        {
            var (received, closed) = await SendAndListenAsync(target.RemotingPort, bytes);
            if (received.Length > 0) problems.Add($"{what}: the member answered {received.Length} bytes");
            if (!closed) problems.Add($"{what}: the member kept the connection open");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        await using (var writer = await Ens.ConnectAsync(target))
            await writer.CreateAsync("/still-serving", []).OkAsync();
        var hashes = await ensemble.WaitConvergedAsync(Ens.Settle);
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }

    /// <summary>Connects, sends, and collects what comes back until the member closes the connection (or 10 s pass).</summary>
    internal static async Task<(byte[] Received, bool Closed)> SendAndListenAsync(int port, params byte[][] sends)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port);
        try
        {
            foreach (var send in sends) await socket.SendAsync(send, SocketFlags.None);
        }
        catch (SocketException)
        {
            // Closed under us while sending: what it answered before is still checked below.
        }
        var received = new List<byte>();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (n == 0) return (received.ToArray(), true);
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
        }
        catch (SocketException)
        {
            return (received.ToArray(), true);   // reset: closed too
        }
        catch (OperationCanceledException)
        {
            return (received.ToArray(), false);
        }
    }

    private static Config RogueConfig(string auth) => ConfigurationFactory.ParseString($$"""
        akka {
          loglevel = ERROR
          stdout-loglevel = ERROR
          actor.provider = remote
          actor.serializers.zab = "Coordination.Server.Ensemble.ZabSerializer, Coordination.Server"
          actor.serialization-bindings {
            "Coordination.Core.Zab.ZabMessage, Coordination.Core" = zab
            "Coordination.Server.Ensemble.IEnsembleMessage, Coordination.Server" = zab
          }
          remote.enabled-transports = ["akka.remote.coordination-socket"]
          remote.coordination-socket {
            transport-class = "Coordination.Server.Ensemble.SocketTransport, Coordination.Server"
            hostname = 127.0.0.1, port = 0, applied-adapters = ["trttl"]
            auth { {{auth}} }
          }
        }
        """);

    private static byte[] Body(CreateRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        request.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Framed(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }

    /// <summary>Akka.Remote's AkkaProtocolMessage{instruction: AkkaControlMessage{ASSOCIATE, handshakeInfo{origin, uid}}},
    /// written by hand: what any process that speaks Akka.Remote sends first.</summary>
    private static byte[] AssociatePdu(string system, string host, int port, string protocol)
    {
        var origin = new List<byte>();
        Field(origin, 1, Encoding.UTF8.GetBytes(system));
        Field(origin, 2, Encoding.UTF8.GetBytes(host));
        origin.Add(3 << 3);
        Varint(origin, (ulong)port);
        Field(origin, 4, Encoding.UTF8.GetBytes(protocol));
        var info = new List<byte>();
        Field(info, 1, origin.ToArray());
        info.Add((2 << 3) | 1);
        info.AddRange(BitConverter.GetBytes(RandomNumberGenerator.GetInt32(int.MaxValue) + 1L));
        var control = new List<byte> { 1 << 3, 1 };   // commandType = ASSOCIATE
        Field(control, 2, info.ToArray());
        var message = new List<byte>();
        Field(message, 2, control.ToArray());
        return message.ToArray();
    }

    private static void Field(List<byte> into, int number, byte[] bytes)
    {
        into.Add((byte)((number << 3) | 2));
        Varint(into, (ulong)bytes.Length);
        into.AddRange(bytes);
    }

    private static void Varint(List<byte> into, ulong value)
    {
        for (; value >= 0x80; value >>= 7) into.Add((byte)(value | 0x80));
        into.Add((byte)value);
    }

    private sealed class Recorder : ReceiveActor
    {
        public Recorder(ConcurrentQueue<object> into) => ReceiveAny(into.Enqueue);
    }
}
