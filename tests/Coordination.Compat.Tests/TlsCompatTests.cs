using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Coordination.Client;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// The certificates of the TLS checks, made by the test: a CA, the servers' certificate, two clients and an x509
/// super user. The x509 ids are written out as Java's X500Principal.getName() prints the subjects: Apache ZooKeeper
/// proves them right, and our server must produce the same.
/// </summary>
public static class TlsMaterial
{
    public const string ClientOneId = "CN=client-one,OU=Compat,O=Coordination Tests";
    public const string ClientTwoId = "CN=client-two,OU=Compat,O=Coordination Tests";
    public const string AdminId = "CN=admin,OU=Ops,O=Coordination Tests";

    private static readonly Lazy<Material> Made = new(Make, LazyThreadSafetyMode.ExecutionAndPublication);

    public sealed record Material(TestCertificates Ca, IssuedCertificate Server, IssuedCertificate ClientOne, IssuedCertificate ClientTwo, IssuedCertificate Admin);

    public static Material Get() => Made.Value;

    private static Material Make()
    {
        var dir = CompatEnvironment.CreateTempDir("compat-tls");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => CompatEnvironment.TryDeleteDir(dir);
        var ca = TestCertificates.Create(dir);
        return new Material(ca,
            ca.Issue("server", "CN=localhost, O=Coordination Tests"),
            ca.Issue("client-one", "CN=client-one, OU=Compat, O=Coordination Tests"),
            ca.Issue("client-two", "CN=client-two, OU=Compat, O=Coordination Tests"),
            ca.Issue("admin", "CN=admin, OU=Ops, O=Coordination Tests"));
    }
}

/// <summary>A server with a secure client port (client-auth need, x509 ids, <see cref="TlsMaterial.AdminId"/> the x509 super user).</summary>
public interface ITlsServer
{
    ServerFixture Server { get; }
    int SecurePort { get; }
}

/// <summary>Apache ZooKeeper 3.8 with secureClientPort, the Netty connection factory, PEM key and trust stores and the x509 provider.</summary>
public sealed class ApacheTlsFixture : ApacheZooKeeperFixture, ITlsServer
{
    public override string Target => "apache-tls";
    public ServerFixture Server => this;
    public int SecurePort { get; private set; }

    protected override IEnumerable<string> ExtraConfig(string workDir)
    {
        SecurePort = CompatEnvironment.FreePort();
        return [$"secureClientPort={SecurePort}"];
    }

    protected override IEnumerable<string> ExtraJvmOptions => JvmOptions;

    /// <summary>The system properties of a secure client port with <see cref="TlsMaterial"/>'s certificates.</summary>
    public static IReadOnlyList<string> JvmOptions
    {
        get
        {
            var m = TlsMaterial.Get();
            return
            [
                "-Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                "-Dzookeeper.authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
                $"-Dzookeeper.X509AuthenticationProvider.superUser={TlsMaterial.AdminId}",
                $"-Dzookeeper.ssl.keyStore.location={m.Server.CombinedPem}", "-Dzookeeper.ssl.keyStore.type=PEM",
                $"-Dzookeeper.ssl.trustStore.location={m.Ca.CaPem}", "-Dzookeeper.ssl.trustStore.type=PEM",
                "-Dzookeeper.ssl.clientAuth=need",
            ];
        }
    }
}

/// <summary>Our server configured the same way, with a PKCS#12 key store (Apache's reads PEM: both kinds are covered).</summary>
public sealed class OursTlsFixture : ServerFixture, ITlsServer
{
    public override string Target => "ours-tls";
    public ServerFixture Server => this;
    public int SecurePort { get; private set; }

    protected override ProcessStartInfo CreateStartInfo(string workDir, int port)
    {
        SecurePort = CompatEnvironment.FreePort();
        return CoordinationServerFixture.StartInfo(workDir, port, Hocon(SecurePort));
    }

    /// <summary>Our settings for a secure client port with <see cref="TlsMaterial"/>'s certificates.</summary>
    public static string Hocon(int securePort)
    {
        var m = TlsMaterial.Get();
        return $$"""
            coordination {
              secure-client-port = {{securePort}}
              x509-super-user = "{{TlsMaterial.AdminId}}"
              client-ssl {
                key-store-location = "{{m.Server.Pkcs12}}"
                key-store-password = "{{TestCertificates.Password}}"
                trust-store-location = "{{m.Ca.CaPem}}"
                client-auth = need
              }
            }
            """;
    }
}

[CollectionDefinition(Name)]
public sealed class ApacheTlsCollection : ICollectionFixture<ApacheTlsFixture>
{
    public const string Name = "compat-apache-tls";
}

[CollectionDefinition(Name)]
public sealed class OursTlsCollection : ICollectionFixture<OursTlsFixture>
{
    public const string Name = "compat-ours-tls";
}

/// <summary>
/// Real clients over TLS (issue 17): kazoo, Apache's Java client (Netty socket), zkCli and the .NET client against a
/// secure client port; x509 ACLs; client-auth need; a plain-text client on the secure port. The same checks run
/// against Apache ZooKeeper 3.8 and ours. node-zookeeper-client has no TLS support, so it is not among them.
/// </summary>
public abstract class TlsCompatTestsBase(ITlsServer tls, ITestOutputHelper output)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(60);
    private readonly TlsMaterial.Material _m = TlsMaterial.Get();

    private async Task<string> SecureHostsAsync()
    {
        await tls.Server.GetHostsAsync();   // starts the server; it answers ruok on its plain port
        return $"127.0.0.1:{tls.SecurePort}";
    }

    private static string UniquePath(string what) => $"/tls-{what}-{Guid.NewGuid():N}";

    private async Task<ProcessResult> KazooAsync(IssuedCertificate? certificate, params string[] check)
    {
        List<string> args = [CompatEnvironment.KazooTlsScript, "--hosts", await SecureHostsAsync(), "--ca", _m.Ca.CaPem];
        if (certificate is not null) args.AddRange(["--cert", certificate.CertificatePem, "--key", certificate.KeyPem]);
        args.AddRange(check);
        return Log("kazoo", await ProcessRunner.RunAsync(CompatEnvironment.Python, args, ClientTimeout,
            new Dictionary<string, string> { ["PYTHONUNBUFFERED"] = "1", ["PYTHONDONTWRITEBYTECODE"] = "1" }));
    }

    /// <summary>The system properties that make Apache's Java client (and zkCli) speak TLS with <paramref name="certificate"/>.</summary>
    private List<string> JavaTlsOptions(IssuedCertificate? certificate)
    {
        List<string> options =
        [
            "-Dzookeeper.client.secure=true", "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
            $"-Dzookeeper.ssl.trustStore.location={_m.Ca.CaPem}", "-Dzookeeper.ssl.trustStore.type=PEM",
        ];
        if (certificate is not null)
            options.AddRange([$"-Dzookeeper.ssl.keyStore.location={certificate.CombinedPem}", "-Dzookeeper.ssl.keyStore.type=PEM"]);
        return options;
    }

    private async Task<ProcessResult> JavaAsync(IssuedCertificate? certificate, params string[] check)
    {
        var classes = await JavaChecksBuild.GetClassesDirAsync();
        List<string> args = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m", .. JavaTlsOptions(certificate),
            "-cp", CompatEnvironment.ClientClasspath(classes), "ZkTlsChecks", await SecureHostsAsync(), .. check];
        return Log("java", await ProcessRunner.RunAsync(CompatEnvironment.Java, args, ClientTimeout));
    }

    /// <summary>ZkTlsChecks over the plain client port, without TLS.</summary>
    private async Task<ProcessResult> JavaPlainAsync(params string[] check)
    {
        var classes = await JavaChecksBuild.GetClassesDirAsync();
        List<string> args = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m",
            "-cp", CompatEnvironment.ClientClasspath(classes), "ZkTlsChecks", await tls.Server.GetHostsAsync(), .. check];
        return Log("java (plain port)", await ProcessRunner.RunAsync(CompatEnvironment.Java, args, ClientTimeout));
    }

    private async Task<ProcessResult> ZkCliAsync(IssuedCertificate certificate, params string[] command)
    {
        List<string> args = ["-server", await SecureHostsAsync(), .. command];
        // zkCli.sh puts CLIENT_JVMFLAGS after its own -cp, so this -cp (with the Netty jars) is the one that counts.
        List<string> flags = [.. JavaTlsOptions(certificate), "-cp", CompatEnvironment.ClientClasspath("/etc/zookeeper/conf")];
        return Log("zkCli", await ProcessRunner.RunAsync(CompatEnvironment.ZkCli, args, ClientTimeout,
            new Dictionary<string, string> { ["CLIENT_JVMFLAGS"] = string.Join(' ', flags) }));
    }

    private async Task<CoordinationClient> DotNetAsync(IssuedCertificate? certificate)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        return await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = await SecureHostsAsync(),
            SessionTimeout = TimeSpan.FromSeconds(10),
            ConnectionTimeout = TimeSpan.FromSeconds(5),
            Tls = new ClientTlsOptions
            {
                TrustStorePath = _m.Ca.CaPem,
                CertificatePath = certificate?.Pkcs12,
                CertificatePassword = TestCertificates.Password,
            },
        }, cts.Token);
    }

    private ProcessResult Log(string client, ProcessResult result)
    {
        output.WriteLine($"[{tls.Server.Target}] {client}: exit {result.ExitCode}{(result.TimedOut ? " (timed out)" : "")}\n{result.Output.TrimEnd()}");
        return result;
    }

    private void Passed(ProcessResult result, string what) =>
        Assert.True(result.Succeeded, $"{what} against {tls.Server.Target} failed:\n{result.Output}\n--- server log ---\n{tls.Server.LogTail(20)}");

    [SkippableFact]
    public async Task Kazoo_create_get_set_watch_over_tls()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        Passed(await KazooAsync(_m.ClientOne, "roundtrip", UniquePath("kazoo")), "kazoo round trip");
    }

    [SkippableFact]
    public async Task Java_client_create_get_set_watch_over_tls()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        Passed(await JavaAsync(_m.ClientOne, "roundtrip", UniquePath("java")), "Java client round trip");
    }

    [SkippableFact]
    public async Task ZkCli_create_set_get_over_tls()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var path = UniquePath("zkcli");
        var created = await ZkCliAsync(_m.ClientOne, "create", path, "first-value");
        Assert.Contains("Created " + path, created.Output);
        await ZkCliAsync(_m.ClientOne, "set", path, "second-value");
        var read = await ZkCliAsync(_m.ClientOne, "get", path);
        Assert.Contains("second-value", read.Output);
    }

    [SkippableFact]
    public async Task DotNet_client_create_get_set_watch_over_tls()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        await using var client = await DotNetAsync(_m.ClientOne);
        var path = UniquePath("dotnet");
        await client.CreateAsync(path, "one");
        var changed = new TaskCompletionSource<WatchedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await client.GetDataAsync(path, e => changed.TrySetResult(e));
        Assert.Equal("one", Encoding.UTF8.GetString(first.Data!));
        await client.SetDataAsync(path, "two"u8.ToArray());
        var e = await changed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(EventType.NodeDataChanged, e.Type);
        Assert.Equal("two", Encoding.UTF8.GetString((await client.GetDataAsync(path)).Data!));
        await client.DeleteAsync(path);
    }

    /// <summary>
    /// A znode whose ACL is x509:&lt;client one's subject&gt; is readable by client one (Java, kazoo, .NET) and by the
    /// x509 super user, and refused with NoAuth to client two: the id is the certificate's subject in Java's form.
    /// </summary>
    [SkippableFact]
    public async Task X509_acl_admits_its_certificate_and_the_super_user_and_refuses_another()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        var path = UniquePath("x509");
        Passed(await JavaAsync(_m.ClientOne, "create-x509", path, TlsMaterial.ClientOneId), "create with an x509 ACL");
        // The reads are independent: their clients (a JVM or a Python each, seconds to start under load) run at once.
        var reads = new[]
        {
            (JavaAsync(_m.ClientOne, "read", path, "ok"), "Java read by the certificate named in the ACL"),
            (KazooAsync(_m.ClientOne, "read", path, "ok"), "kazoo read by the certificate named in the ACL"),
            (JavaAsync(_m.ClientTwo, "read", path, "noauth"), "Java read by another certificate (NoAuth)"),
            (KazooAsync(_m.ClientTwo, "read", path, "noauth"), "kazoo read by another certificate (NoAuth)"),
            (JavaAsync(_m.Admin, "read", path, "ok"), "Java read by the x509 super user"),
        };
        foreach (var (read, what) in reads) Passed(await read, what);

        await using (var one = await DotNetAsync(_m.ClientOne))
            Assert.Equal("secret", Encoding.UTF8.GetString((await one.GetDataAsync(path)).Data!));
        await using (var two = await DotNetAsync(_m.ClientTwo))
            await Assert.ThrowsAsync<NoAuthException>(() => two.GetDataAsync(path));
    }

    /// <summary>
    /// addauth x509 (ZooKeeper's X509AuthenticationProvider.handleAuthentication): on a TLS connection with a verified
    /// certificate it succeeds and the session keeps its x509 id; on a plain connection there is no certificate, so it
    /// ends in AuthFailed.
    /// </summary>
    [SkippableFact]
    public async Task Addauth_x509_takes_the_connection_certificate_and_fails_without_one()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var path = UniquePath("addauth-x509");
        // The plain-port client needs no node: it runs beside the two TLS ones.
        var plain = JavaPlainAsync("addauth-x509", "authfailed");
        Passed(await JavaAsync(_m.ClientOne, "create-x509", path, TlsMaterial.ClientOneId), "create with an x509 ACL");
        Passed(await JavaAsync(_m.ClientOne, "addauth-x509", "ok", path), "addauth x509 over TLS with a certificate");
        Passed(await plain, "addauth x509 on the plain port");
    }

    [SkippableFact]
    public async Task Client_auth_need_refuses_a_client_without_a_certificate()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: true);
        // Each client without a certificate waits out its window (8 s, the .NET client's 15 s): all three at once.
        var kazoo = KazooAsync(null, "no-connect");
        var java = JavaAsync(null, "no-connect");
        var dotNet = Record.ExceptionAsync(async () => { await using var _ = await DotNetAsync(null); });
        // The same client with a certificate does connect (the refusal is about the certificate), meanwhile.
        var withCertificate = KazooAsync(_m.ClientTwo, "roundtrip", UniquePath("need"));
        Passed(await kazoo, "kazoo without a certificate is never connected");
        Passed(await java, "Java client without a certificate is never connected");
        Assert.NotNull(await dotNet);
        Passed(await withCertificate, "kazoo with a certificate");
    }

    /// <summary>A plain ZooKeeper handshake sent to the secure port gets no answer, and the connection is closed.</summary>
    [SkippableFact]
    public async Task Plain_text_client_on_the_secure_port_is_closed()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        await SecureHostsAsync();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, tls.SecurePort, cts.Token);
        var connect = new byte[48];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(connect, 44);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(connect.AsSpan(16), 10000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(connect.AsSpan(28), 16);
        await socket.SendAsync(connect, SocketFlags.None, cts.Token);
        var received = new List<byte>();
        var buffer = new byte[4096];
        var watch = Stopwatch.StartNew();
        while (true)
        {
            int n;
            try { n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token); }
            catch (SocketException) { break; }   // reset
            if (n == 0) break;                   // closed
            received.AddRange(buffer.AsSpan(0, n).ToArray());
        }
        output.WriteLine($"[{tls.Server.Target}] closed after {watch.ElapsedMilliseconds} ms, {received.Count} bytes received");
        // No ZooKeeper ConnectResponse: at most a TLS alert record (content type 21) may come back.
        Assert.True(received.Count == 0 || received[0] == 21, $"got {received.Count} bytes starting {received.FirstOrDefault()} instead of a close");
    }
}

[Collection(ApacheTlsCollection.Name)]
public sealed class ApacheTlsTarget(ApacheTlsFixture server, ITestOutputHelper output) : TlsCompatTestsBase(server, output);

[Collection(OursTlsCollection.Name)]
public sealed class OursTlsTarget(OursTlsFixture server, ITestOutputHelper output) : TlsCompatTestsBase(server, output);
