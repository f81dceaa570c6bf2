using Coordination.TestKit;
using Xunit;

namespace Coordination.Cli.Tests;

/// <summary>coord over TLS (issue 17): --tls-ca/--tls-cert to a secure client port, hostname verification on by default.</summary>
public sealed class CliTlsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cli-tls-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static async Task<(ServerProcess Server, string Secure)> StartAsync(TestCertificates ca, IssuedCertificate serverCertificate)
    {
        var securePort = ServerProcess.FreeLoopbackPort();
        var server = await ServerProcess.StartAsync("ours", new ServerProcessOptions
        {
            StartTimeout = TimeSpan.FromSeconds(30),
            ExtraHocon = $$"""
                coordination {
                  secure-client-port = {{securePort}}
                  client-ssl { key-store-location = "{{serverCertificate.CombinedPem}}", trust-store-location = "{{ca.CaPem}}", client-auth = need }
                }
                """,
        });
        return (server, $"127.0.0.1:{securePort}");
    }

    [Fact(Timeout = 90_000)]
    public async Task Coord_creates_and_reads_over_tls_with_a_client_certificate_and_fails_without_one()
    {
        var ca = TestCertificates.Create(_dir);
        var client = ca.Issue("client", "CN=coord, O=Coordination Tests");
        var (server, secure) = await StartAsync(ca, ca.Issue("server", "CN=localhost"));
        await using var _ = server;
        string[] tls = ["--server", secure, "--timeout", "10", "--tls-ca", ca.CaPem, "--tls-cert", client.Pkcs12, "--tls-password", TestCertificates.Password];

        var created = await Coord.RunAsync([.. tls, "create", "/over-tls", "hello"]);
        Assert.True(created.ExitCode == 0, created.ToString());
        var read = await Coord.RunAsync([.. tls, "get", "/over-tls"]);
        Assert.True(read.ExitCode == 0, read.ToString());
        Assert.Contains("hello", read.Stdout);
        // The PEM certificate and key files work as well.
        var pem = await Coord.RunAsync(["--server", secure, "--timeout", "10", "--tls-ca", ca.CaPem, "--tls-cert", client.CertificatePem, "--tls-key", client.KeyPem, "get", "/over-tls"]);
        Assert.True(pem.ExitCode == 0, pem.ToString());

        // No client certificate (client-auth need), or plain text to the secure port: no connection.
        var noCertificate = await Coord.RunAsync(["--server", secure, "--timeout", "5", "--tls-ca", ca.CaPem, "get", "/over-tls"], timeoutSeconds: 30);
        Assert.True(noCertificate.ExitCode == 3, "connection failure expected:\n" + noCertificate);
        var plain = await Coord.RunAsync(["--server", secure, "--timeout", "5", "get", "/over-tls"], timeoutSeconds: 30);
        Assert.True(plain.ExitCode == 3, "connection failure expected:\n" + plain);
    }

    [Fact(Timeout = 90_000)]
    public async Task Coord_refuses_a_server_certificate_for_another_name_unless_told_not_to_check()
    {
        var ca = TestCertificates.Create(_dir);
        var client = ca.Issue("client", "CN=coord, O=Coordination Tests");
        var (server, secure) = await StartAsync(ca, ca.Issue("server", "CN=elsewhere.invalid", loopbackNames: false));
        await using var _ = server;
        string[] tls = ["--server", secure, "--timeout", "5", "--tls-ca", ca.CaPem, "--tls-cert", client.Pkcs12, "--tls-password", TestCertificates.Password];

        var refused = await Coord.RunAsync([.. tls, "stat", "/"], timeoutSeconds: 30);
        Assert.True(refused.ExitCode == 3, "a certificate that does not name 127.0.0.1 must be refused by default:\n" + refused);
        var unchecked_ = await Coord.RunAsync([.. tls, "--tls-no-hostname-verification", "stat", "/"], timeoutSeconds: 30);
        Assert.True(unchecked_.ExitCode == 0, unchecked_.ToString());
    }
}
