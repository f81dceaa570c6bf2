using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// The secure client port of our server (issue 17), on what the compat suite does not cover: client-auth want,
/// an untrusted certificate, the handshake bound, TLS 1.2 and 1.3, and certificate reload without a restart. The
/// real-client checks against both servers are in tests/Coordination.Compat.Tests/TlsCompatTests.cs.
/// </summary>
public sealed class ClientTlsTests(ITestOutputHelper output) : IDisposable
{
    private const string ClientId = "CN=tls-client,O=Coordination Tests";
    private readonly string _dir = Directory.CreateTempSubdirectory("client-tls-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string SecureHocon(int securePort, string keyStore, string clientAuth, string extra = "") => $$"""
        coordination {
          secure-client-port = {{securePort}}
          client-ssl {
            key-store-location = "{{keyStore}}"
            trust-store-location = "{{Path.Combine(Path.GetDirectoryName(keyStore)!, "ca.pem")}}"
            client-auth = {{clientAuth}}
            {{extra}}
          }
        }
        """;

    /// <summary>A CA, a server certificate and a client one, and our server with a secure port using them.</summary>
    private async Task<(ServerProcess Server, int SecurePort, TestCertificates Ca, IssuedCertificate ServerCertificate, IssuedCertificate Client)> StartAsync(
        string clientAuth, Func<IssuedCertificate, string> keyStore, string extraSsl = "", string extraHocon = "")
    {
        var ca = TestCertificates.Create(_dir);
        var serverCertificate = ca.Issue("server", "CN=localhost");
        var client = ca.Issue("client", "CN=tls-client, O=Coordination Tests");
        var securePort = ServerProcess.FreeLoopbackPort();
        var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = SecureHocon(securePort, keyStore(serverCertificate), clientAuth, extraSsl) + "\n" + extraHocon,
        });
        return (server, securePort, ca, serverCertificate, client);
    }

    private static Task<WireClient> ConnectAsync(ServerProcess server, int securePort, SslClientAuthenticationOptions tls) =>
        WireClient.ConnectAsync(server.Host, securePort, new WireClientOptions { Tls = tls, ConnectTimeout = TimeSpan.FromSeconds(10) });

    /// <summary>
    /// With client-auth want, a client without a certificate is served (as anyone), one with a trusted certificate
    /// gets its x509 id, and one whose certificate another CA issued is refused at the handshake.
    /// </summary>
    [Fact]
    public async Task Client_auth_want_serves_a_client_without_a_certificate_and_refuses_an_untrusted_one()
    {
        var (server, securePort, ca, _, client) = await StartAsync("want", c => c.CombinedPem);
        await using var _ = server;
        var stranger = TestCertificates.Create(Path.Combine(_dir, "other"), "Other CA").Issue("stranger", "CN=tls-client, O=Coordination Tests");
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using (var owner = await ConnectAsync(server, securePort, ca.ClientOptions(client)))
                await owner.CreateAsync("/mine", "x"u8.ToArray(), acl: [new Acl(Perms.All, new Id("x509", ClientId))]).OkAsync();

            await using (var anonymous = await ConnectAsync(server, securePort, ca.ClientOptions(null)))
            {
                // Without READ, exists is refused too (ZooKeeper 3.9.2, WatchAclTests).
                Assert.Equal(ErrorCode.NoAuth, (await anonymous.ExistsAsync("/mine")).Header.Err);
                var (header, _) = await anonymous.GetDataAsync("/mine");
                Assert.Equal(ErrorCode.NoAuth, header.Err);
            }
            await using (var again = await ConnectAsync(server, securePort, ca.ClientOptions(client)))
                await again.GetDataAsync("/mine").OkAsync();

            var refused = await Assert.ThrowsAnyAsync<Exception>(() => ConnectAsync(server, securePort, ca.ClientOptions(stranger)));
            output.WriteLine($"untrusted certificate: {refused.GetType().Name}: {refused.Message}");
        });
    }

    /// <summary>
    /// Sockets that connect to the secure port and never finish the TLS handshake (silent, or half a ClientHello) are
    /// closed after handshake-timeout, and until then count against max-connections like any other connection.
    /// </summary>
    [Fact]
    public async Task A_tls_handshake_that_never_completes_is_closed_and_counts_against_max_connections()
    {
        var (server, securePort, ca, _, client) = await StartAsync("need", c => c.CombinedPem,
            extraHocon: "coordination { handshake-timeout = 2s, max-connections = 2 }");
        await using var _ = server;
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            using var silent = await Abuse.ConnectFromAsync("127.0.0.1", securePort);
            using var partial = await Abuse.ConnectFromAsync("127.0.0.1", securePort);
            await partial.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 });   // the start of a ClientHello record
            await Task.Delay(200);

            // Both slots are taken by the unfinished handshakes: a real client is closed at accept.
            await Assert.ThrowsAnyAsync<Exception>(() => ConnectAsync(server, securePort, ca.ClientOptions(client)));

            var started = Stopwatch.StartNew();
            var closed = await Task.WhenAll(
                Abuse.ClosedByServerAsync(silent, TimeSpan.FromSeconds(8)),
                Abuse.ClosedByServerAsync(partial, TimeSpan.FromSeconds(8)));
            output.WriteLine($"silent closed {closed[0]}, partial closed {closed[1]} after {started.ElapsedMilliseconds} ms");
            Assert.True(closed[0], "a socket that never starts the TLS handshake must be closed");
            Assert.True(closed[1], "a socket that sent half a ClientHello must be closed");

            // Their slots are free again.
            await using var good = await ConnectAsync(server, securePort, ca.ClientOptions(client));
            await good.ExistsAsync("/").OkAsync();
            var mntr = await FourLetterWord.MntrAsync(server.Host, server.Port);
            Assert.True(long.Parse(mntr["zk_sessionless_connections_expired"], CultureInfo.InvariantCulture) >= 2);
        });
    }

    [Theory]
    [InlineData(SslProtocols.Tls12)]
    [InlineData(SslProtocols.Tls13)]
    public async Task Tls_1_2_and_1_3_are_both_served(SslProtocols protocol)
    {
        var (server, securePort, ca, _, client) = await StartAsync("need", c => c.Pkcs12, $"key-store-password = \"{TestCertificates.Password}\"");
        await using var _ = server;
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            var options = ca.ClientOptions(client);
            options.EnabledSslProtocols = protocol;
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(server.Host, securePort);
            await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
            await ssl.AuthenticateAsClientAsync(options);
            Assert.Equal(protocol, ssl.SslProtocol);
            await ssl.WriteAsync(WireFrames.Connect());
            var length = new byte[4];
            await ssl.ReadExactlyAsync(length);
            Assert.InRange(System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(length), 36, 64);   // a ConnectResponse
        });
    }

    /// <summary>
    /// Replacing the key store file changes the certificate new connections get, without a restart; a connection made
    /// before keeps working.
    /// </summary>
    [Fact]
    public async Task A_replaced_certificate_is_served_to_new_connections_without_a_restart()
    {
        var (server, securePort, ca, first, client) = await StartAsync("need", c => c.CombinedPem, "reload-interval = 200ms");
        await using var _ = server;
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            Assert.Equal(Thumbprint(first), await ServedThumbprintAsync(server, securePort, ca, client));
            await using var before = await ConnectAsync(server, securePort, ca.ClientOptions(client));

            var renewed = ca.Issue("renewed", "CN=localhost");
            File.Copy(renewed.CombinedPem, first.CombinedPem, overwrite: true);
            var deadline = Stopwatch.StartNew();
            string served;
            while ((served = await ServedThumbprintAsync(server, securePort, ca, client)) != Thumbprint(renewed) && deadline.Elapsed < TimeSpan.FromSeconds(10))
                await Task.Delay(100);
            output.WriteLine($"renewed certificate served after {deadline.ElapsedMilliseconds} ms");
            Assert.Equal(Thumbprint(renewed), served);
            await before.ExistsAsync("/").OkAsync();
        });
    }

    /// <summary>
    /// Port unification: the plain client port serves a plain client, a TLS client (which gets its x509 id) and a
    /// four-letter word, told apart by the first byte.
    /// </summary>
    [Fact]
    public async Task Port_unification_serves_plain_and_tls_clients_on_the_client_port()
    {
        var (server, _, ca, _, client) = await StartAsync("need", c => c.CombinedPem, "port-unification = on");
        await using var _ = server;
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using (var secure = await ConnectAsync(server, server.Port, ca.ClientOptions(client)))
                await secure.CreateAsync("/unified", "x"u8.ToArray(), acl: [new Acl(Perms.All, new Id("x509", ClientId))]).OkAsync();
            await using (var plain = await WireClient.ConnectAsync(server.Host, server.Port))
            {
                Assert.Equal(ErrorCode.NoAuth, (await plain.ExistsAsync("/unified")).Header.Err);   // 3.9.2's exists rule
                Assert.Equal(ErrorCode.NoAuth, (await plain.GetDataAsync("/unified")).Header.Err);
            }
            await using (var again = await ConnectAsync(server, server.Port, ca.ClientOptions(client)))
                await again.GetDataAsync("/unified").OkAsync();
            Assert.True(await FourLetterWord.IsOkAsync(server.Host, server.Port));
        });
    }

    private static string Thumbprint(IssuedCertificate issued) => X509Certificate2.CreateFromPemFile(issued.CertificatePem, issued.KeyPem).Thumbprint;

    private static async Task<string> ServedThumbprintAsync(ServerProcess server, int securePort, TestCertificates ca, IssuedCertificate client)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.Host, securePort);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await ssl.AuthenticateAsClientAsync(ca.ClientOptions(client));
        return X509CertificateLoader.LoadCertificate(ssl.RemoteCertificate!.GetRawCertData()).Thumbprint;
    }
}
