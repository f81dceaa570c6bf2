using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>The admin HTTP endpoint answers the same commands as the four-letter words, and /metrics the same numbers.</summary>
public sealed class AdminHttpTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Commands_and_metrics_agree_with_the_four_letter_words()
    {
        int adminPort = ServerProcess.FreeLoopbackPort(), metricsPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort} }}\ncoordination.metrics {{ enabled = on, port = {metricsPort} }}",
        });
        var client = await WireClient.ConnectAsync(server.ConnectString);
        for (var i = 0; i < 7; i++) await client.CreateAsync($"/admin-{i}", [1, 2, 3], CreateMode.Persistent).OkAsync();
        await client.ExistsAsync("/admin-0", watch: true).OkAsync();

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(10) };
        var mntrText = FourLetterWord.ParseMntr(await FourLetterWord.SendAsync(server.ConnectString, "mntr"));
        var mntrJson = JsonDocument.Parse(await http.GetStringAsync("commands/mntr")).RootElement;
        output.WriteLine(mntrJson.ToString());
        Assert.Equal("monitor", mntrJson.GetProperty("command").GetString()); // ZooKeeper answers under the primary name
        foreach (var key in new[] { "znode_count", "watch_count", "ephemerals_count", "approximate_data_size", "global_sessions" })
            Assert.Equal(long.Parse(mntrText["zk_" + key]), mntrJson.GetProperty(key).GetInt64());
        Assert.Equal("standalone", mntrJson.GetProperty("server_state").GetString());

        var ruok = JsonDocument.Parse(await http.GetStringAsync("commands/ruok")).RootElement;
        Assert.Equal("ruok", ruok.GetProperty("command").GetString());
        Assert.Equal(JsonValueKind.Null, ruok.GetProperty("error").ValueKind);
        var srvr = JsonDocument.Parse(await http.GetStringAsync("commands/srvr")).RootElement;
        Assert.Equal("server_stats", srvr.GetProperty("command").GetString());
        Assert.Equal("standalone", srvr.GetProperty("server_stats").GetProperty("server_state").GetString());
        Assert.Equal(long.Parse(mntrText["zk_znode_count"]), srvr.GetProperty("node_count").GetInt64());
        // Not subject to the client-port whitelist; an unknown name is, as in ZooKeeper, a 200 whose error names it.
        var nope = await http.GetAsync("commands/nope");
        Assert.Equal(HttpStatusCode.OK, nope.StatusCode);
        Assert.Equal("Unknown command: nope", JsonDocument.Parse(await nope.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        var all = JsonDocument.Parse(await http.GetStringAsync("commands")).RootElement.GetProperty("commands");
        Assert.Contains("wchc", all.EnumerateArray().Select(e => e.GetString()));

        using var metricsHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await metricsHttp.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics");
        var samples = metrics.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(' ')).ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(double.Parse(mntrText["zk_znode_count"]), samples["znode_count"]);
        Assert.Equal(double.Parse(mntrText["zk_watch_count"]), samples["watch_count"]);
        Assert.Contains("# TYPE packets_received counter", metrics);
        Assert.Equal(HttpStatusCode.NotFound, (await metricsHttp.GetAsync($"http://127.0.0.1:{metricsPort}/commands/mntr")).StatusCode);
    }

    [Fact]
    public async Task Commands_that_show_sessions_need_a_credential_granted_on_the_root()
    {
        var adminPort = ServerProcess.FreeLoopbackPort();
        var superDigest = Acls.Digest("super:s3cret");
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort} }}\ncoordination.super-digest = \"{superDigest}\"",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        var sessionId = client.SessionId.ToString(System.Globalization.CultureInfo.InvariantCulture); // ZooKeeper's JSON has ids in decimal
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(10) };
        async Task<(HttpStatusCode Status, JsonElement Body)> Get(string command, string? authorization)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"commands/{command}");
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            using var response = await http.SendAsync(request);
            return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
        }

        // Commands that show nothing private need nothing.
        Assert.Equal(HttpStatusCode.OK, (await Get("ruok", null)).Status);
        Assert.Equal(HttpStatusCode.OK, (await Get("mntr", null)).Status);
        foreach (var command in new[] { "cons", "dump", "wchc", "wchp", "hash", "crst", "srst" })
        {
            var (status, body) = await Get(command, null);
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal("Auth info is missing for the command", body.GetProperty("error").GetString());
            Assert.DoesNotContain(sessionId, body.ToString());
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get("cons", "kerberos bob")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get("cons", "digest")).Status);
        // Any digest credential authenticates, but world:anyone on the root does not grant it.
        var (denied, deniedBody) = await Get("cons", "digest bob:pw");
        Assert.Equal(HttpStatusCode.Forbidden, denied);
        Assert.Equal("Not authorized", deniedBody.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, (await Get("dump", "digest super:wrong")).Status);

        var (ok, cons) = await Get("cons", "digest super:s3cret");
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Contains(cons.GetProperty("connections").EnumerateArray(), c => c.GetProperty("session_id").GetInt64() == client.SessionId);

        // An operator grants ids on the root: bob (digest) and this host (ip); alice is still refused.
        var bob = new Id(Acls.DigestScheme, Acls.Digest("bob:pw"));
        await client.SendAsync(OpCode.SetAcl, new SetAclRequest("/", [new Acl(Perms.All, bob), new Acl(Perms.All, new Id(Acls.IpScheme, "127.0.0.1")), new Acl(Perms.Read, new Id(Acls.World, Acls.Anyone))], -1)).OkAsync();
        Assert.Equal(HttpStatusCode.OK, (await Get("cons", "digest bob:pw")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Get("wchc", "ip")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await Get("cons", "digest alice:pw")).Status);
        // A read grant is not enough: the commands need ALL, as ZooKeeper's snapshot and restore do.
        await client.SendAsync(OpCode.SetAcl, new SetAclRequest("/", [new Acl(Perms.Read, bob), new Acl(Perms.All, new Id(Acls.World, Acls.Anyone))], -1)).OkAsync();
        Assert.Equal(HttpStatusCode.Forbidden, (await Get("cons", "digest bob:pw")).Status);
    }

    [Fact]
    public async Task Snapshot_needs_a_credential_and_streams_a_readable_snapshot()
    {
        // ZooKeeper 3.9's snapshot command: ALL on the root whatever auth-required lists; the body is the snapshot
        // file, its headers last_zxid and snapshot_size (Commands.SnapshotCommand).
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort}, auth-required = [] }}\ncoordination.super-digest = \"{Acls.Digest("super:s3cret")}\"",
        });
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        await client.CreateAsync("/in-the-snapshot", [7, 7, 7], CreateMode.Persistent).OkAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"), Timeout = TimeSpan.FromSeconds(60) };
        async Task<HttpResponseMessage> Get(string command, string? authorization)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"commands/{command}");
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            return await http.SendAsync(request);
        }

        Assert.Equal(HttpStatusCode.OK, (await Get("cons", null)).StatusCode); // auth-required = [] frees the others
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get("snapshot", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Get("snap", "digest bob:pw")).StatusCode);

        using var streamed = await Get("snapshot", "digest super:s3cret");
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var bytes = await streamed.Content.ReadAsByteArrayAsync();
        Assert.Equal(long.Parse(streamed.Headers.GetValues("snapshot_size").Single()), bytes.Length);
        var tree = DataTree.ReadSnapshot(new MemoryStream(bytes));
        Assert.Equal([7, 7, 7], tree.Find("/in-the-snapshot")!.Data);
        Assert.StartsWith("0x", streamed.Headers.GetValues("last_zxid").Single());

        await Task.Delay(1100); // ZooKeeper 3.9's limiter allows one snapshot per 0.3 s by default (rate-limiter-interval / 1000)
        using var headersOnly = await Get("snapshot?streaming=false", "digest super:s3cret");
        Assert.Equal(HttpStatusCode.OK, headersOnly.StatusCode);
        var body = JsonDocument.Parse(await headersOnly.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("snapshot", body.GetProperty("command").GetString());
        Assert.True(headersOnly.Headers.Contains("snapshot_size"));
        var lastSnapshot = JsonDocument.Parse(await (await Get("last_snapshot", null)).Content.ReadAsStringAsync()).RootElement;
        Assert.NotEqual("-1", lastSnapshot.GetProperty("zxid").GetString());
    }

    [Fact]
    public async Task Connections_to_the_admin_endpoint_are_bounded()
    {
        var adminPort = ServerProcess.FreeLoopbackPort();
        await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.admin {{ enabled = on, port = {adminPort}, max-connections = 4 }}",
        });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{adminPort}/commands/ruok")).StatusCode);
        // Four callers that send half a request and wait hold every slot; a fifth gets nothing until one leaves.
        var holders = new List<Socket>();
        for (var i = 0; i < 4; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await s.ConnectAsync(IPAddress.Loopback, adminPort);
            await s.SendAsync("GET /commands/ruok HTTP/1.1\r\nHost: x\r\n"u8.ToArray());
            holders.Add(s);
        }
        await Task.Delay(500);
        using (var fresh = new HttpClient { Timeout = TimeSpan.FromSeconds(3) })
            await Assert.ThrowsAnyAsync<Exception>(() => fresh.GetStringAsync($"http://127.0.0.1:{adminPort}/commands/ruok"));
        holders[0].Dispose();
        await Task.Delay(500);
        using (var fresh = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
            Assert.Contains("\"ruok\"", await fresh.GetStringAsync($"http://127.0.0.1:{adminPort}/commands/ruok"));
        foreach (var s in holders) s.Dispose();
    }

    /// <summary>Over HTTPS a caller's verified certificate is a credential: "Authorization: x509" proves its subject.</summary>
    [Fact]
    public async Task Admin_over_https_takes_the_client_certificate_as_an_x509_credential()
    {
        var dir = Directory.CreateTempSubdirectory("admin-tls-").FullName;
        try
        {
            var ca = TestCertificates.Create(dir);
            var serverCertificate = ca.Issue("server", "CN=localhost");
            var ops = ca.Issue("ops", "CN=ops, O=Coordination Tests");
            var root = ca.Issue("root", "CN=root, O=Coordination Tests");
            var stranger = ca.Issue("stranger", "CN=stranger, O=Coordination Tests");
            var adminPort = ServerProcess.FreeLoopbackPort();
            await using var server = await Targets.StartAsync("ours", output, new ServerProcessOptions
            {
                ExtraHocon = $$"""
                    coordination {
                      x509-super-user = "CN=root,O=Coordination Tests"
                      client-ssl { key-store-location = "{{serverCertificate.CombinedPem}}", trust-store-location = "{{ca.CaPem}}" }
                      admin { enabled = on, port = {{adminPort}}, ssl.enabled = on }
                    }
                    """,
            });
            await using var client = await WireClient.ConnectAsync(server.ConnectString);
            await client.SendAsync(OpCode.SetAcl, new SetAclRequest("/", [new Acl(Perms.All, new Id("x509", "CN=ops,O=Coordination Tests")), new Acl(Perms.All, new Id(Acls.World, Acls.Anyone))], -1)).OkAsync();

            async Task<HttpStatusCode> Get(IssuedCertificate? certificate, string? authorization)
            {
                using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, cert, _, _) => TrustedBy(ca.CaPem, cert!) };
                if (certificate is not null) handler.ClientCertificates.Add(System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(certificate.Pkcs12, TestCertificates.Password));
                using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
                using var request = new HttpRequestMessage(HttpMethod.Get, $"https://127.0.0.1:{adminPort}/commands/cons");
                if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
                using var response = await http.SendAsync(request);
                return response.StatusCode;
            }

            Assert.Equal(HttpStatusCode.OK, await Get(ops, "x509"));
            Assert.Equal(HttpStatusCode.OK, await Get(root, "x509"));   // the x509 super user
            Assert.Equal(HttpStatusCode.Forbidden, await Get(stranger, "x509"));
            Assert.Equal(HttpStatusCode.Unauthorized, await Get(null, "x509"));   // no certificate, no x509 id
            Assert.Equal(HttpStatusCode.Unauthorized, await Get(ops, null));
            // Plain HTTP to the HTTPS port gets no answer.
            using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            await Assert.ThrowsAnyAsync<Exception>(() => plain.GetStringAsync($"http://127.0.0.1:{adminPort}/commands/ruok"));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static bool TrustedBy(string caPem, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
    {
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.Add(System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(caPem)));
        return chain.Build(certificate);
    }
}
