using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Server;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Ensemble;
using Coordination.Server.Metrics;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// Attacks on the member port of a real 3-member ensemble over real TCP (invariant 11: a message between
/// members is acted on only if it arrived on a link authenticated as a configured member). The attacker knows the
/// member addresses and our assemblies, but not the ensemble's secret. Nothing it sends may be applied, logged or
/// answered, and the ensemble keeps serving. These tests use only what existed before member authentication, so
/// that they can be run against that code too (where each of them fails). Every case runs against members that
/// authenticate with the shared secret, with mutual TLS alone, and with both (<see cref="MemberSecurity"/>); the
/// rogues include TLS clients with a certificate from another CA, with one of the ensemble's CA for a host that is
/// no member's, and with none. The tests of one kind of authentication share one ensemble (<see cref="SharedMemberEnsemble"/>).
/// </summary>
[TestCaseOrderer(BySecurityOrderer.Name, BySecurityOrderer.Assembly)]
public sealed class MemberAuthAttackTests(SharedMemberEnsemble ensembles) : IClassFixture<SharedMemberEnsemble>
{
    /// <summary>The rogue's transport: ours, over the same throttler adapter as the members (so the same
    /// akka.trttl.tcp addresses), without the secret, with a wrong one, or with TLS and a certificate the members
    /// must refuse; each against every kind of member authentication.</summary>
    public static TheoryData<string, MemberSecurity> Rogues()
    {
        var data = new TheoryData<string, MemberSecurity>();
        // TLS with SASL inside gets only the rogue below: the generic rogues are TLS's (refused before SASL starts).
        foreach (var security in Enum.GetValues<MemberSecurity>().Where(s => s != MemberSecurity.TlsAndSaslDigest))
            foreach (var rogue in new[] { "no secret", "wrong secret", "TLS, other CA", "TLS, not a member host" })
                data.Add(rogue, security);
        // SASL DIGEST-MD5 rogues (against members with SASL required and nothing else; "wrong secret" there is a
        // rogue that does not do SASL): a member's user with a wrong password, and another member's user with its
        // right password.
        data.Add("SASL, wrong password", MemberSecurity.SaslDigest);
        data.Add("SASL, another member's user", MemberSecurity.SaslDigest);
        // Against TLS with SASL inside: a rogue that holds the impersonated member's own certificate (so TLS lets it
        // through) but not its SASL password: SASL alone must stop it.
        data.Add("TLS member certificate, SASL wrong password", MemberSecurity.TlsAndSaslDigest);
        return data;
    }

    /// <summary>The rogue's <c>auth</c>, <c>ssl</c> and <c>sasl</c> sections; it claims to be member <paramref name="claimed"/>
    /// (and with SASL, authenticates as member <paramref name="other"/> when it names another member's user).</summary>
    private static string RogueAuth(string rogue, MemberCertificates certificates, string members, long claimed, long other, long[] ids) => rogue switch
    {
        "SASL, wrong password" => $"auth {{ member-id = {claimed}, members {{ {members} }} }}\n" + MemberCertificates.Sasl(
            certificates.DigestJaas(MemberCertificates.DigestUser(claimed), "not-the-password", ids), ids, digest: true),
        "SASL, another member's user" => $"auth {{ member-id = {claimed}, members {{ {members} }} }}\n" + MemberCertificates.Sasl(
            certificates.DigestJaas(MemberCertificates.DigestUser(other), certificates.DigestPassword(other), ids), ids, digest: true),
        "TLS member certificate, SASL wrong password" => $"auth {{ member-id = {claimed}, members {{ {members} }} }}\n" +
            certificates.Ssl(certificates.Member(claimed)) + "\n" + MemberCertificates.Sasl(
            certificates.DigestJaas(MemberCertificates.DigestUser(claimed), "not-the-password", ids), ids, digest: true),
        "no secret" => $"auth {{ insecure = on, members {{ {members} }} }}",
        "wrong secret" => $"auth {{ secret-base64 = \"{Convert.ToBase64String(RandomNumberGenerator.GetBytes(24))}\", member-id = {claimed}, members {{ {members} }} }}",
        "TLS, other CA" => $"auth {{ member-id = {claimed}, members {{ {members} }} }}\n{certificates.Ssl(certificates.FromOtherCa)}",
        "TLS, not a member host" => $"auth {{ member-id = {claimed}, members {{ {members} }} }}\n{certificates.Ssl(certificates.ForAnotherHost)}",
        _ => throw new ArgumentException(rogue),
    };

    private static long AuthFailures(TestEnsemble ensemble) =>
        ensemble.Members.Where(m => m.IsRunning).Sum(AuthFailures);

    private static long AuthFailures(TestEnsemble.Member member) => ServerMetrics.For(member.Server!.System).Ensemble.MemberAuthFailures;

    [SkippableTheory]
    [MemberData(nameof(Rogues))]
    public async Task A_rogue_ActorSystem_that_knows_the_member_addresses_gets_nothing_applied_logged_or_answered(string rogueKind, MemberSecurity security)
    {
        var certificates = await ensembles.ForAsync(security);
        var ensemble = certificates.Ensemble;
        var root = SharedMemberEnsemble.UniqueRoot("rogue");
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var followers = ensemble.Members.Where(m => m.Id != leader.Id).ToArray();

        // A live session on a follower with an ephemeral, and a node only super may create children under.
        await using var victim = await Ens.ConnectAsync(followers[0]);
        await victim.CreateAsync(root, []).OkAsync();
        await victim.CreateAsync($"{root}/eph", Ens.Bytes("mine"), CreateMode.Ephemeral).OkAsync();
        await victim.CreateAsync($"{root}/locked", [], acl: Acl.ReadAclUnsafe).OkAsync();
        // A TLS or SASL rogue takes the place of a member that went down, its id and its endpoint, so that only its
        // certificate or its SASL credentials stand between it and the ensemble (other rogues speak from a port of their own).
        var impersonated = rogueKind.StartsWith("TLS", StringComparison.Ordinal) || rogueKind.StartsWith("SASL", StringComparison.Ordinal) ? followers[1] : null;
        if (impersonated is not null)
        {
            await ensemble.KillAsync(impersonated.Id);
            var leaderMetrics = ServerMetrics.For(leader.Server!.System).Ensemble;
            await Ens.EventuallyAsync(() => Task.FromResult(leaderMetrics.Learners == 1), Ens.Settle, "the leader notices the departure");
        }
        var alive = ensemble.Members.Where(m => m.IsRunning).ToArray();
        var proposeTo = impersonated is null ? followers[1] : followers[0];
        var before = await ensemble.WaitConvergedAsync(Ens.Settle);
        var loggedBefore = new Dictionary<long, long>();
        foreach (var m in alive) loggedBefore[m.Id] = (await Ens.PeerStatusAsync(m)).LastZxid;

        var members = string.Join(", ", ensemble.Members.Select(m => $"{m.Id} = \"127.0.0.1:{m.RemotingPort}\""));
        var problems = new List<string>();
        var refusedBefore = alive.ToDictionary(m => m.Id, AuthFailures);
        using var rogue = ActorSystem.Create("coordination",
            Ens.MemberTransportConfig(RogueAuth(rogueKind, certificates, members, impersonated?.Id ?? 2, leader.Id, ensemble.Members.Select(m => m.Id).ToArray()),
                impersonated?.RemotingPort ?? 0));
        try
        {
            var replies = new ConcurrentQueue<object>();
            var recorder = rogue.ActorOf(Props.Create(() => new Recorder(replies)), "recorder");
            IActorRef At(TestEnsemble.Member m, string actor) =>
                RemotePaths.Resolve(rogue, $"akka.trttl.tcp://coordination@127.0.0.1:{m.RemotingPort}{actor}");

            foreach (var m in alive)
            {
                // Any reply at all: Akka's Identify, the peer's status (JSON), a snapshot chunk.
                rogue.ActorSelection($"akka.trttl.tcp://coordination@127.0.0.1:{m.RemotingPort}{NodeActor.PeerPath}").Tell(new Identify(m.Id), recorder);
                At(m, NodeActor.PeerPath).Tell(PeerActor.GetStatus.Instance, recorder);
                At(m, NodeActor.PeerPath).Tell(new FetchSnapshot(followers[1].Id, 0, 0), recorder);
            }

            // The leader's replica: a write in the follower's name with super in its auth list, and a close of the
            // victim's live session.
            var create = Body(new CreateRequest($"{root}/locked/pwned", Ens.Bytes("x"), Acl.OpenAclUnsafe, 0));
            At(leader, NodeActor.ReplicaPath).Tell(new ForwardedRequest(followers[0].Id, victim.SessionId, 7001, (int)OpCode.Create, create, [("super", "")]), recorder);
            At(leader, NodeActor.ReplicaPath).Tell(new ForwardedRequest(followers[0].Id, victim.SessionId, 7002, (int)OpCode.CloseSession, [], []), recorder);

            // A follower: a PROPOSAL and its COMMIT in the leader's name, at the next zxid.
            var next = before[proposeTo.Id].Zxid + 1;
            var forged = Txns.Serialize(new TxnHeader(victim.SessionId, 7003, next, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), OpCode.Create),
                new CreateTxn($"{root}/forged", Ens.Bytes("f"), Acl.OpenAclUnsafe, 0, 1));
            At(proposeTo, NodeActor.PeerPath).Tell(new Propose(leader.Id, new LogEntry(next, forged)), recorder);
            At(proposeTo, NodeActor.PeerPath).Tell(new Commit(leader.Id, next), recorder);
            // An impersonator would join as the member it claims to be, and get the leader's sync.
            if (impersonated is not null)
                At(leader, NodeActor.PeerPath).Tell(new FollowerInfo(impersonated.Id, 0, before[leader.Id].Zxid, false), Ens.ActorAt(rogue, NodeActor.PeerPath, Props.Create(() => new Recorder(replies))));

            // Instead of a quiet time, a marker per member that its link from the rogue was refused (in the member
            // handshake, before Akka reads a byte of it, so nothing sent on it can be acted on): its member_auth_failures
            // count rose. (The rogue's own remoting drops the Identify only at its handshake timeout, 15 s.)
            try
            {
                await Ens.EventuallyAsync(() => Task.FromResult(alive.All(m => AuthFailures(m) > refusedBefore[m.Id])), Ens.Settle,
                    "every member the rogue sent to refuses its link and counts it in member_auth_failures");
            }
            catch (TimeoutException e)
            {
                problems.Add(e.Message);
            }
            // An Identify that its own remoting drops is answered by the rogue's dead letters, with no subject; a
            // member would have named the (existing) actor.
            var answered = replies.Where(r => r is not ActorIdentity { Subject: null }).ToList();
            if (answered.Count > 0) problems.Add("the rogue got replies: " + string.Join(", ", answered));
            foreach (var m in alive)
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
        if (impersonated is not null) await ensemble.RestartAsync(impersonated.Id);

        // The victim's session lives on, and the ensemble serves and agrees.
        try
        {
            var (touch, _) = await victim.SetDataAsync($"{root}/eph", Ens.Bytes("still mine"));
            if (touch.Err != ErrorCode.Ok) problems.Add($"the victim's session is gone: setData answered {touch.Err}");
        }
        catch (WireConnectionException e)
        {
            problems.Add($"the victim's session is gone: {e.Message}");
        }
        await using (var writer = await Ens.ConnectAsync(leader))
        {
            await writer.CreateAsync($"{root}/after", []).OkAsync();
            await writer.CloseAsync();
        }
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
            if (!await Ens.ExistsAsync(m, $"{root}/eph")) problems.Add($"server {m.Id} lost the victim's ephemeral");
            if (await Ens.ExistsAsync(m, $"{root}/locked/pwned")) problems.Add($"server {m.Id} has the rogue's node");
            if (await Ens.ExistsAsync(m, $"{root}/forged")) problems.Add($"server {m.Id} has the forged node");
        }
        await victim.CloseAsync();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    public static TheoryData<MemberSecurity> Securities() => new(Enum.GetValues<MemberSecurity>());

    [SkippableTheory]
    [MemberData(nameof(Securities))]
    public async Task A_raw_socket_that_sends_garbage_or_speaks_Akkas_association_protocol_or_TLS_without_a_certificate_gets_no_reply_and_is_closed(MemberSecurity security)
    {
        var certificates = await ensembles.ForAsync(security);
        var ensemble = certificates.Ensemble;
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var target = ensemble.Members.First(m => m.Id != leader.Id);
        var other = ensemble.Members.First(m => m.Id != target.Id).Id;   // whose id the plaintext HELLO claims
        var before = await ensemble.WaitConvergedAsync(Ens.Settle);
        var refusedBefore = AuthFailures(ensemble);

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
            // Plaintext to a TLS member, or a HELLO without SASL to a member that requires SASL: a member's own HELLO
            // (another member to the target), in the clear. (With a secret, its challenge is the answer: MemberLinkTests.)
            ("a plaintext member HELLO", security == MemberSecurity.Secret ? [] : PlainHello(other, target.Id)),
        })
        {
            if (bytes.Length == 0) continue;
            var (received, closed) = await SendAndListenAsync(target.RemotingPort, bytes);
            if (received.Length > 0) problems.Add($"{what}: the member answered {received.Length} bytes");
            if (!closed) problems.Add($"{what}: the member kept the connection open");
        }
        // A TLS client that trusts the ensemble's CA (so the member's certificate passes) but has no certificate of
        // its own; then it says it is another member and speaks Akka.
        var (tlsReceived, tlsClosed) = await TlsSendAndListenAsync(target.RemotingPort, certificates.Ca.ClientOptions(null),
            PlainHello(other, target.Id), Framed(AssociatePdu("coordination", "127.0.0.1", 1, "akka.trttl.tcp")));
        if (tlsReceived.Length > 0) problems.Add($"TLS without a certificate: the member answered {tlsReceived.Length} bytes");
        if (!tlsClosed) problems.Add("TLS without a certificate: the member kept the connection open");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        await Ens.EventuallyAsync(() => Task.FromResult(AuthFailures(ensemble) >= refusedBefore + 4), Ens.Settle,
            "each refused connection counts in member_auth_failures");
        Assert.Equal(before[target.Id], await ensemble.HashAsync(target.Id));

        await using (var writer = await Ens.ConnectAsync(target))
        {
            await writer.CreateAsync(SharedMemberEnsemble.UniqueRoot("still-serving"), []).OkAsync();
            await writer.CloseAsync();
        }
        var hashes = await ensemble.WaitConvergedAsync(Ens.Settle);
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }

    /// <summary>
    /// Against members that authenticate by Kerberos alone, dialers with real tickets of the realm for the members'
    /// service principal, but as principals that are not the member they claim: a user (alice), and the members'
    /// service on another host. Each completes Kerberos and is still refused before Akka sees a byte; a member's own
    /// HELLO without SASL is refused too. None gets a reply past the handshake, nothing is applied.
    /// </summary>
    [SkippableFact]
    public async Task Kerberos_principals_that_are_not_the_claimed_member_and_a_dialer_without_SASL_are_refused()
    {
        var certificates = await ensembles.ForAsync(MemberSecurity.SaslKerberos);
        var ensemble = certificates.Ensemble;
        var realm = certificates.Realm!;
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var target = ensemble.Members.First(m => m.Id != leader.Id);
        var before = await ensemble.WaitConvergedAsync(Ens.Settle);
        var refusedBefore = AuthFailures(ensemble);
        var password = Guid.NewGuid().ToString("N");
        realm.AddPrincipal("alice", password);
        realm.AddPrincipal("zkquorum/elsewhere.invalid", password);

        var problems = new List<string>();
        foreach (var (what, principal) in new[] { ("a user", "alice"), ("the service on another host", "zkquorum/elsewhere.invalid"), ("no SASL", null) })
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", target.RemotingPort);
            await using var link = new NetworkStream(socket, ownsSocket: false);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            Func<Coordination.Server.Sessions.ISaslClient>? sasl = principal is null ? null : () =>
                new Coordination.Server.Sessions.GssapiClient(MemberCertificates.MemberPrincipal, new NetworkCredential(realm.Qualify(principal), password));
            try
            {
                await MemberHandshake.DialAsync(link, null, sasl, leader.Id, target.Id, timeout.Token);
                if (sasl is not null) problems.Add($"{what}: the member completed the SASL exchange");
            }
            catch (MemberAuthException e) when (e.Message.Contains("closed", StringComparison.Ordinal))
            {
                // Refused: closed without the success reply.
            }
            // Whatever the handshake's outcome, speak Akka as the claimed member (its own address) and listen.
            try { await socket.SendAsync(Framed(AssociatePdu("coordination", "127.0.0.1", leader.RemotingPort, "akka.trttl.tcp")), SocketFlags.None); }
            catch (SocketException) { }
            var received = 0;
            var buffer = new byte[4096];
            try
            {
                int n;
                while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) received += n;
            }
            catch (SocketException) { }
            catch (OperationCanceledException) { problems.Add($"{what}: the member kept the connection open"); }
            if (received > 0) problems.Add($"{what}: the member answered {received} bytes after the handshake");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\nKDC log:\n" + realm.KdcLog());
        await Ens.EventuallyAsync(() => Task.FromResult(AuthFailures(ensemble) >= refusedBefore + 3), Ens.Settle,
            "each refused dialer counts in member_auth_failures");
        // The two Kerberos dialers did get service tickets: they were refused for who they are, not for lacking one.
        var kdc = realm.KdcLog();
        Assert.Contains($"{realm.Qualify("alice")} for {realm.Qualify(MemberCertificates.MemberPrincipal)}", kdc);
        Assert.Contains($"{realm.Qualify("zkquorum/elsewhere.invalid")} for {realm.Qualify(MemberCertificates.MemberPrincipal)}", kdc);
        Assert.Equal(before[target.Id], await ensemble.HashAsync(target.Id));

        await using (var writer = await Ens.ConnectAsync(target))
        {
            await writer.CreateAsync(SharedMemberEnsemble.UniqueRoot("still-serving"), []).OkAsync();
            await writer.CloseAsync();
        }
        var hashes = await ensemble.WaitConvergedAsync(Ens.Settle);
        Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
    }

    /// <summary>
    /// One source (127.0.0.2) holds more stalled connections on every member port than the transport has handshake
    /// slots (64), re-dialling each as soon as it is closed, while a member (on 127.0.0.1) restarts. Its cap per
    /// address keeps slots free for the members: the restarted member links up again and catches up. With SASL
    /// alone (DIGEST-MD5, Kerberos) this is also the ensemble forming, replicating and relinking by SASL; with
    /// Kerberos the KDC issued the members' tickets for zkquorum/127.0.0.1 (zkquorum/_HOST of the host they dial).
    /// </summary>
    [SkippableTheory]
    [InlineData(MemberSecurity.Secret)]
    [InlineData(MemberSecurity.Tls)]
    [InlineData(MemberSecurity.SaslDigest)]
    [InlineData(MemberSecurity.SaslKerberos)]
    [InlineData(MemberSecurity.TlsAndSaslDigest)]
    public async Task One_address_holding_stalled_handshakes_cannot_keep_a_restarted_member_out(MemberSecurity security)
    {
        var certificates = await ensembles.ForAsync(security);
        var ensemble = certificates.Ensemble;
        var leader = await ensemble.WaitForLeaderAsync(Ens.Settle);
        var restarted = ensemble.Members.First(m => m.Id != leader.Id);

        using var stop = new CancellationTokenSource();
        var flood = Task.WhenAll(ensemble.Members.SelectMany(m =>
            Enumerable.Range(0, 100).Select(_ => HoldStalledAsync(m.RemotingPort, stop.Token))));
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2));   // the flood holds its connections
            await ensemble.KillAsync(restarted.Id);
            var whileDown = SharedMemberEnsemble.UniqueRoot("while-down");
            await using (var writer = await Ens.ConnectAsync(leader))
            {
                await writer.CreateAsync(whileDown, []).OkAsync();
                await writer.CloseAsync();
            }
            await ensemble.RestartAsync(restarted.Id);
            var hashes = await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(30));
            Assert.Single(hashes.Values.Select(h => h.Digest).Distinct());
            Assert.True(await Ens.ExistsAsync(restarted, whileDown), "the restarted member did not catch up");
            if (certificates.Realm is { } realm)
            {
                var member = realm.Qualify(MemberCertificates.MemberPrincipal);
                Assert.Contains($"{member} for {member}", realm.KdcLog());
            }
        }
        finally
        {
            stop.Cancel();
            await flood;
        }
    }

    /// <summary>A connection from 127.0.0.2 that never says a word, dialled again whenever the member closes it: at
    /// once after a handshake timeout, after a second when it was refused at once (so the refusals stay few).</summary>
    private static async Task HoldStalledAsync(int port, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var held = System.Diagnostics.Stopwatch.StartNew();
            using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                try
                {
                    socket.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), stop);
                    await socket.ReceiveAsync(new byte[16], SocketFlags.None, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (SocketException)
                {
                    // Refused (the member is down) or reset: dial again below.
                }
            }
            if (held.Elapsed < TimeSpan.FromSeconds(1))
                try { await Task.Delay(TimeSpan.FromSeconds(1), stop); } catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>Connects over TLS with <paramref name="options"/>, sends, and collects the application bytes that come
    /// back until the member closes the connection (or 10 s pass). A handshake the member refuses is closed with nothing.</summary>
    private static async Task<(byte[] Received, bool Closed)> TlsSendAndListenAsync(int port, SslClientAuthenticationOptions options, params byte[][] sends)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = new List<byte>();
        try
        {
            await tls.AuthenticateAsClientAsync(options, timeout.Token);
            foreach (var send in sends) await tls.WriteAsync(send, timeout.Token);
            var buffer = new byte[4096];
            while (true)
            {
                var n = await tls.ReadAsync(buffer, timeout.Token);
                if (n == 0) return (received.ToArray(), true);
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
        }
        catch (OperationCanceledException)
        {
            return (received.ToArray(), false);
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            return (received.ToArray(), true);   // refused in the handshake, or reset after it
        }
    }

    /// <summary>A member handshake's HELLO, as <see cref="MemberHandshake"/> writes it, from <paramref name="dialer"/>.</summary>
    private static byte[] PlainHello(long dialer, long acceptor)
    {
        var hello = new byte[MemberHandshake.HelloBytes];
        "CAKM"u8.CopyTo(hello);
        hello[4] = 1;
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(5), dialer);
        BinaryPrimitives.WriteInt64BigEndian(hello.AsSpan(13), acceptor);
        RandomNumberGenerator.Fill(hello.AsSpan(21));
        return hello;
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
