using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Issue 17, the authentication rules of Apache ZooKeeper 3.8 that the TLS and SASL suites do not cover, run against
/// both servers: ACL schemes need their provider, required authentication (zookeeper.enforce.auth.*), a server with
/// only the secure client port. Raw wire clients where the exact reply matters, the Java client where its reaction does.
/// </summary>
public sealed class AuthGapsTests(ITestOutputHelper output)
{
    public static TheoryData<string> Targets => new() { "ours", "apache" };

    private async Task<ServerProcess> StartAsync(string target, ServerProcessOptions options)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var server = await ServerProcess.StartAsync(target, options);
        output.WriteLine($"started {server}");
        return server;
    }

    /// <summary>Digest credentials the enforcing servers accept.</summary>
    private static readonly byte[] Alice = "alice:alices-secret"u8.ToArray();

    /// <summary>Required authentication with the digest scheme: zoo.cfg system properties and our HOCON.</summary>
    private static ServerProcessOptions EnforceDigest => new()
    {
        ExtraHocon = "coordination.auth.enforce { enabled = on, schemes = [digest] }",
        JavaOptions = ["-Dzookeeper.enforce.auth.enabled=true", "-Dzookeeper.enforce.auth.schemes=digest"],
    };

    /// <summary>
    /// ZooKeeper's fixupACL refuses a scheme without a registered provider: with neither TLS (x509) nor SASL
    /// configured, x509 and sasl ACLs are InvalidACL on create and setACL; digest and ip ones are accepted.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Acls_of_a_scheme_without_its_provider_are_invalid(string target)
    {
        await using var server = await StartAsync(target, new ServerProcessOptions());
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        Acl[] x509 = [new(Perms.All, new Id("x509", "CN=client,O=Example"))];
        Acl[] sasl = [new(Perms.All, new Id("sasl", "bob"))];
        Assert.Equal(ErrorCode.InvalidAcl, (await client.CreateAsync("/x509", [], acl: x509)).Header.Err);
        Assert.Equal(ErrorCode.InvalidAcl, (await client.CreateAsync("/sasl", [], acl: sasl)).Header.Err);
        await client.CreateAsync("/open", [], acl: [new Acl(Perms.All, new Id("digest", "alice:2jmj7l5rSw0yVb/vlWAYkK/YBwk=")), new Acl(Perms.All, new Id("ip", "127.0.0.1"))]).OkAsync();
        Assert.Equal(ErrorCode.InvalidAcl, (await client.SendAsync(OpCode.SetAcl, new SetAclRequest("/open", x509, -1))).Header.Err);
        Assert.Equal(ErrorCode.InvalidAcl, (await client.SendAsync(OpCode.SetAcl, new SetAclRequest("/open", sasl, -1))).Header.Err);
    }

    /// <summary>
    /// addauth ip (ZooKeeper's IPAuthenticationProvider.handleAuthentication re-adds the connection's address) succeeds
    /// and keeps the connection; addauth x509 on a plain connection has no certificate: AuthFailed, connection closed.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Addauth_ip_succeeds_and_addauth_x509_without_tls_fails(string target)
    {
        await using var server = await StartAsync(target, new ServerProcessOptions());
        await using var ip = await RawConnection.ConnectAsync(server.Host, server.Port);
        await ip.HandshakeAsync();
        await ip.SendAsync(WireFrames.Request(Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, "ip", [])));
        await ip.SendAsync(WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/", false)));
        var served = await ip.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 2);
        output.WriteLine($"[{target}] addauth ip: {served}");
        Assert.Equal([ErrorCode.Ok, ErrorCode.Ok], served.Replies.Select(r => r.Err));
        Assert.False(served.ClosedByServer);

        await using var x509 = await RawConnection.ConnectAsync(server.Host, server.Port);
        await x509.HandshakeAsync();
        await x509.SendAsync(WireFrames.Request(Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, "x509", [])));
        var refused = await x509.ObserveAsync(TimeSpan.FromSeconds(10));
        output.WriteLine($"[{target}] addauth x509 without TLS: {refused}");
        Assert.Equal(ErrorCode.AuthFailed, Assert.Single(refused.Replies).Err);
        Assert.True(refused.ClosedByServer);
    }

    /// <summary>
    /// ZooKeeper 3.8's AuthenticationHelper: with enforce.auth on, a session that has not authenticated with one of the
    /// schemes gets SessionClosedRequireAuth (-124) on its first request but auth, a ping included, and the connection
    /// is closed; after addauth digest the same requests are served.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Required_authentication_refuses_a_ping_or_a_read_before_auth_and_serves_after_it(string target)
    {
        await using var server = await StartAsync(target, EnforceDigest);
        foreach (var (name, request) in new[]
        {
            ("ping", WireFrames.Request(Xids.Ping, OpCode.Ping, null)),
            ("getData", WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/", false))),
        })
        {
            await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
            await raw.HandshakeAsync();
            await raw.SendAsync(request);
            var outcome = await raw.ObserveAsync(TimeSpan.FromSeconds(10));
            output.WriteLine($"[{target}] {name} before auth: {outcome}");
            Assert.Equal(ErrorCode.SessionClosedRequireSaslAuth, Assert.Single(outcome.Replies).Err);
            Assert.True(outcome.ClosedByServer, $"{name}: the connection must be closed");
        }

        await using var authenticated = await RawConnection.ConnectAsync(server.Host, server.Port);
        await authenticated.HandshakeAsync();
        await authenticated.SendAsync(WireFrames.Request(Xids.AuthPacket, OpCode.Auth, new AuthRequest(0, "digest", Alice)));
        await authenticated.SendAsync(WireFrames.Request(Xids.Ping, OpCode.Ping, null));
        await authenticated.SendAsync(WireFrames.Request(1, OpCode.GetData, new PathWatchRequest("/", false)));
        var served = await authenticated.ObserveAsync(TimeSpan.FromSeconds(10), stopAfterReplies: 3);
        output.WriteLine($"[{target}] after addauth digest: {served}");
        Assert.Equal([ErrorCode.Ok, ErrorCode.Ok, ErrorCode.Ok], served.Replies.Select(r => r.Err));
        Assert.False(served.ClosedByServer);
    }

    /// <summary>The Java client: without credentials its first request throws SessionClosedRequireAuthException; with digest credentials it is served.</summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Required_authentication_with_the_Java_client(string target)
    {
        await using var server = await StartAsync(target, EnforceDigest);
        async Task Check(params string[] args)
        {
            var r = await ProcessRunner.RunAsync(CompatEnvironment.Java,
                ["-Xmx256m", "-cp", CompatEnvironment.ClientClasspath(await JavaChecksBuild.GetClassesDirAsync()), "ZkTlsChecks", server.ConnectString, "require-auth", .. args],
                TimeSpan.FromSeconds(90));
            output.WriteLine($"[{target}] {args[0]}: {r.Output}");
            Assert.True(r.Succeeded, $"{target} {args[0]}: {r.Output}\n--- server ---\n{server.OutputTail}");
        }
        await Check("refused");
        await Check("digest", "/enforced");
    }

    /// <summary>
    /// A scheme that has no provider cannot be required: both servers refuse to start (x509 without TLS). Apache's
    /// reason ("Authentication scheme x509 is not available.") goes to its log, which the test setup does not bind: it
    /// exits with 2 and its usage line; ours says why.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Requiring_an_unavailable_scheme_refuses_to_start(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var e = await Assert.ThrowsAsync<ServerStartException>(() => ServerProcess.StartAsync(target, new ServerProcessOptions
        {
            ExtraHocon = "coordination.auth.enforce { enabled = on, schemes = [x509] }",
            JavaOptions = ["-Dzookeeper.enforce.auth.enabled=true", "-Dzookeeper.enforce.auth.schemes=x509"],
            StartTimeout = TimeSpan.FromSeconds(30),
        }));
        output.WriteLine(e.Message);
        Assert.Contains("exited with code 2", e.Message);
        if (target == "ours") Assert.Contains("authentication scheme 'x509' is not available", e.Output);
    }

    /// <summary>
    /// Without a plain client port (ZooKeeper: clientPort omitted; ours: client-port = off) the server listens only on
    /// the secure port, which serves sessions and four-letter words over TLS; our metrics endpoint is unaffected (the
    /// test setup turns Apache's admin server off).
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Only_the_secure_port_listens_when_the_plain_port_is_off(string target)
    {
        var m = TlsMaterial.Get();
        var securePort = CompatEnvironment.FreePort();
        var tls = m.Ca.ClientOptions(m.ClientOne);
        var metricsPort = CompatEnvironment.FreePort();
        await using var server = await StartAsync(target, new ServerProcessOptions
        {
            PlainPortOff = true,
            ExtraHocon = OursTlsFixture.Hocon(securePort) + $"\ncoordination.metrics {{ enabled = on, port = {metricsPort} }}",
            ExtraZooCfg = [$"secureClientPort={securePort}", "secureClientPortAddress=127.0.0.1"],
            JavaOptions = [.. ApacheTlsFixture.JvmOptions],
            ReadyProbe = async ct =>
            {
                try
                {
                    await using var probe = await WireClient.ConnectAsync("127.0.0.1", securePort, new WireClientOptions { Tls = tls, ConnectTimeout = TimeSpan.FromSeconds(5) }, ct);
                    return true;
                }
                catch (Exception e) when (e is WireConnectionException or IOException or SocketException or System.Security.Authentication.AuthenticationException) { return false; }
            },
        });
        var listening = ProcStats.ListeningTcpPorts(server.Pid);
        output.WriteLine($"[{target}] listening on {string.Join(", ", listening)}; secure port {securePort}");
        Assert.Equal(target == "ours" ? new SortedSet<int> { securePort, metricsPort } : [securePort], listening);

        await using (var client = await WireClient.ConnectAsync("127.0.0.1", securePort, new WireClientOptions { Tls = tls }))
            await client.CreateAsync("/secure-only", "x"u8.ToArray()).OkAsync();
        Assert.Equal("imok", await FourLetterWordOverTlsAsync(securePort, "ruok", tls));
        if (target == "ours")
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            Assert.Contains("# TYPE", await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics"));
        }
    }

    private static async Task<string> FourLetterWordOverTlsAsync(int port, string word, SslClientAuthenticationOptions tls)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, port, cts.Token);
        await using var stream = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await stream.AuthenticateAsClientAsync(tls, cts.Token);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(word), cts.Token);
        await stream.FlushAsync(cts.Token);
        var answer = new MemoryStream();
        var buffer = new byte[1024];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0) answer.Write(buffer, 0, n);
        }
        catch (IOException) { }   // a close without close_notify
        return Encoding.ASCII.GetString(answer.ToArray());
    }
}
