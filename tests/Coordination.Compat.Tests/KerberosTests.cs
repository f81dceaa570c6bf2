using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Issue 17, SASL GSSAPI (Kerberos) for clients: a throwaway MIT realm (<see cref="KerberosRealm"/>), Apache's Java
/// client logging in from a keytab (JAAS Krb5LoginModule), against Apache ZooKeeper (JAAS Server section with
/// Krb5LoginModule and the service keytab, SASLAuthenticationProvider) and against us (coordination.sasl.kerberos).
/// Every check runs on both servers. CI sets COORDINATION_REQUIRE_KERBEROS=1: a missing KDC then fails the test.
/// </summary>
public sealed class KerberosTests(ITestOutputHelper output)
{
    private const string ServicePrincipal = "zookeeper/localhost";

    public static TheoryData<string> Targets => new() { "ours", "apache" };

    private static void SkipUnlessKerberos()
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        if (KerberosRealm.MissingTool() is not { } missing) return;
        if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_KERBEROS") == "1") Assert.Fail("Kerberos prerequisite missing: " + missing);
        Skip.If(true, "Kerberos prerequisite missing: " + missing);
    }

    private static string Jaas(KerberosRealm realm, string name, string body)
    {
        var path = Path.Combine(realm.Directory, name);
        File.WriteAllText(path, body);
        return path;
    }

    private static string KeytabLogin(KerberosRealm realm, string keytab, string principal, bool server) =>
        "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true useTicketCache=false doNotPrompt=true"
        + (server ? " isInitiator=false" : "") + $" keyTab=\"{keytab}\" principal=\"{realm.Qualify(principal)}\";";

    private async Task<ServerProcess> StartAsync(string target, KerberosRealm realm, string serverKeytab, bool removeHostAndRealm = false,
        string extraHocon = "")
    {
        var serverJaas = Jaas(realm, "server.jaas", $"Server {{ {KeytabLogin(realm, serverKeytab, ServicePrincipal, server: true)} }};\n");
        var remove = removeHostAndRealm ? "on" : "off";
        var server = await ServerProcess.StartAsync(target, new ServerProcessOptions
        {
            ExtraHocon = $$"""
                coordination.sasl.kerberos {
                  enabled = on
                  keytab = "{{serverKeytab}}"
                  principal = "{{realm.Qualify(ServicePrincipal)}}"
                  remove-host-from-principal = {{remove}}
                  remove-realm-from-principal = {{remove}}
                }
                {{extraHocon}}
                """,
            JavaOptions =
            [
                "-Djava.security.auth.login.config=" + serverJaas, "-Djava.security.krb5.conf=" + realm.Krb5Conf,
                "-Dzookeeper.kerberos.removeHostFromPrincipal=" + removeHostAndRealm.ToString().ToLowerInvariant(),
                "-Dzookeeper.kerberos.removeRealmFromPrincipal=" + removeHostAndRealm.ToString().ToLowerInvariant(),
            ],
            ExtraZooCfg = ["authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"],
        });
        output.WriteLine($"started {server}");
        return server;
    }

    /// <summary>Runs SaslCheck as <paramref name="principal"/> (keytab <paramref name="keytab"/>); <paramref name="other"/> adds the JAAS section OtherClient.</summary>
    private async Task RunCheckAsync(KerberosRealm realm, ServerProcess server, string target, string principal, string keytab,
        (string Principal, string Keytab)? other, params string[] args) =>
        await RunCheckAsync(realm, server, target, principal, keytab, other, [], args);

    private async Task RunCheckAsync(KerberosRealm realm, ServerProcess server, string target, string principal, string keytab,
        (string Principal, string Keytab)? other, string[] javaOptions, string[] args)
    {
        var sections = $"Client {{ {KeytabLogin(realm, keytab, principal, server: false)} }};\n"
            + (other is { } o ? $"OtherClient {{ {KeytabLogin(realm, o.Keytab, o.Principal, server: false)} }};\n" : "");
        string[] options = other is null ? javaOptions : [.. javaOptions, "-Dcheck.otherSection=OtherClient"];
        await RunJaasCheckAsync(realm, server, target, sections, options, args);
    }

    /// <summary>Runs SaslCheck with the JAAS file <paramref name="sections"/>.</summary>
    private async Task RunJaasCheckAsync(KerberosRealm realm, ServerProcess server, string target, string sections, string[] options, string[] args)
    {
        var clientJaas = Jaas(realm, $"client-{Guid.NewGuid():N}.jaas", sections);
        var r = await ProcessRunner.RunAsync(CompatEnvironment.Java,
            ["-Xmx256m", "-Djava.security.auth.login.config=" + clientJaas, "-Djava.security.krb5.conf=" + realm.Krb5Conf, .. options,
             "-cp", CompatEnvironment.ClientClasspath(await SaslTests.Classes.Value), "SaslCheck", args[0], server.ConnectString, .. args[1..]],
            TimeSpan.FromSeconds(90));
        output.WriteLine(r.Output);
        Assert.True(r.Succeeded, $"{target}: {r.Output}\n--- server ---\n{server.OutputTail}\n--- KDC ---\n{realm.KdcLog()}");
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task The_Java_client_authenticates_with_Kerberos_and_a_sasl_ACL_admits_only_its_principal(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("alice");
        realm.AddPrincipal("bob");
        await using var server = await StartAsync(target, realm, realm.ExportKeytab(ServicePrincipal));
        // alice's node: alice reads it back, bob (authenticated as himself) and an anonymous client get NoAuth.
        var (alice, bob) = (realm.ExportKeytab("alice"), realm.ExportKeytab("bob"));
        await RunCheckAsync(realm, server, target, "alice", alice, ("bob", bob), "accepted", "/krb-alice", realm.Qualify("alice"));
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task The_remove_rules_make_the_sasl_id_the_principal_s_first_component(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("carol/localhost");
        await using var server = await StartAsync(target, realm, realm.ExportKeytab(ServicePrincipal), removeHostAndRealm: true);
        await RunCheckAsync(realm, server, target, "carol/localhost", realm.ExportKeytab("carol/localhost"), null, "accepted", "/krb-carol", "carol");
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task A_server_with_a_stale_keytab_answers_AuthFailed_and_keeps_serving(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("alice");
        var stale = realm.ExportKeytab(ServicePrincipal);
        realm.ExportKeytab(ServicePrincipal);   // a new key: tickets no longer decrypt with the stale one
        await using var server = await StartAsync(target, realm, stale);
        await RunCheckAsync(realm, server, target, "alice", realm.ExportKeytab("alice"), null, "refused");
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task A_ticket_for_another_principal_of_the_server_keytab_is_refused(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("other/localhost");
        realm.AddPrincipal("alice");
        await using var server = await StartAsync(target, realm, realm.ExportKeytab(ServicePrincipal, "other/localhost"));
        // The client asks for a ticket to other/localhost (zookeeper.sasl.client.username), whose key the server's
        // keytab holds too; the server is zookeeper/localhost and must not accept it.
        await RunCheckAsync(realm, server, target, "alice", realm.ExportKeytab("alice"), null,
            ["-Dzookeeper.sasl.client.username=other"], ["refused"]);
    }

    /// <summary>
    /// A deliberate difference: we refuse to start (the error names the principal and what the keytab holds), where
    /// Apache ZooKeeper starts (its acceptor login does not need the key) and then fails every GSSAPI client.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task A_server_whose_keytab_lacks_its_principal_refuses_to_start_or_every_client(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("other/localhost");
        realm.AddPrincipal("alice");
        var wrongKeytab = realm.ExportKeytab("other/localhost");
        if (target == "ours")
        {
            var e = await Assert.ThrowsAsync<ServerStartException>(async () => { await using var _ = await StartAsync(target, realm, wrongKeytab); });
            Assert.Contains("no key for zookeeper/localhost@TEST.REALM (the keytab holds other/localhost@TEST.REALM)", e.Message);
            return;
        }
        await using var server = await StartAsync(target, realm, wrongKeytab);
        await RunCheckAsync(realm, server, target, "alice", realm.ExportKeytab("alice"), null, "refused");
    }

    /// <summary>Hostile first tokens (a GSS header over garbage, plain garbage): AuthFailed, that connection closes, the server serves the next one.</summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Garbage_GSSAPI_tokens_get_AuthFailed_and_the_server_keeps_serving(string target)
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        await using var server = await StartAsync(target, realm, realm.ExportKeytab(ServicePrincipal));
        var rng = new Random(17);
        var garbage = new byte[48];
        rng.NextBytes(garbage);
        foreach (var token in (byte[][])[[0x60, 0x2e, 0x06, 0x09, .. garbage], [0x05, .. garbage]])
        {
            await using (var hostile = await RawConnection.ConnectAsync(server.Host, server.Port))
            {
                await hostile.HandshakeAsync();
                await hostile.SendAsync(WireFrames.Request(1, OpCode.Sasl, new SaslRequest(token)));
                var outcome = await hostile.ObserveAsync(TimeSpan.FromSeconds(15));
                output.WriteLine($"{target} token {token[0]:x2}...: {outcome}");
                Assert.True(outcome.Replies is [{ Xid: 1, Err: ErrorCode.AuthFailed }], $"{target}: {outcome}");
                Assert.True(outcome.ClosedByServer, $"{target}: {outcome}");
            }
            await using var next = await RawConnection.ConnectAsync(server.Host, server.Port);
            await next.HandshakeAsync();
            await next.SendAsync(WireFrames.Request(2, OpCode.Exists, new PathWatchRequest("/", false)));
            var probe = await next.ObserveAsync(TimeSpan.FromSeconds(15), stopAfterReplies: 1);
            Assert.True(probe.Replies is [{ Xid: 2, Err: ErrorCode.Ok }], $"{target}: {probe}");
        }
    }

    /// <summary>Ours only (ZooKeeper's server offers one mechanism): DIGEST-MD5 users and Kerberos principals on one server.</summary>
    [SkippableFact]
    public async Task Ours_serves_DIGEST_MD5_and_Kerberos_clients_side_by_side()
    {
        SkipUnlessKerberos();
        await using var realm = await KerberosRealm.StartAsync();
        realm.AddPrincipal(ServicePrincipal);
        realm.AddPrincipal("alice");
        await using var server = await StartAsync("ours", realm, realm.ExportKeytab(ServicePrincipal), extraHocon: "coordination.sasl.users { bob = \"bobs-secret\" }");
        await RunCheckAsync(realm, server, "ours", "alice", realm.ExportKeytab("alice"), null, "accepted", "/krb-alice", realm.Qualify("alice"));
        await RunJaasCheckAsync(realm, server, "ours",
            "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"bob\" password=\"bobs-secret\"; };\n", [],
            ["accepted", "/digest-bob", "bob"]);
    }
}
