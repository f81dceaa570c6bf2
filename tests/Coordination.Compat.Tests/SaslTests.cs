using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// Issue 17, SASL DIGEST-MD5 for clients: Apache's Java client with a JAAS file, against Apache ZooKeeper (JAAS Server
/// section with DigestLoginModule, SASLAuthenticationProvider) and against us (coordination.sasl.users): the right
/// password authenticates and gives the id sasl:bob (a sasl ACL lets it in and keeps an anonymous client out), a
/// wrong one ends in AuthFailed.
/// </summary>
public sealed class SaslTests(ITestOutputHelper output)
{
    private const string Password = "bobs-secret";

    public static TheoryData<string> Targets => new() { "ours", "apache" };

    /// <summary>SaslCheck compiled once; KerberosTests run it too.</summary>
    internal static readonly Lazy<Task<string>> Classes = new(CompileAsync, LazyThreadSafetyMode.ExecutionAndPublication);

    private static async Task<string> CompileAsync()
    {
        var dir = CompatEnvironment.CreateTempDir("compat-sasl");
        var source = Path.Combine(CompatEnvironment.CompatDir, "java", "sasl", "SaslCheck.java");
        var r = await ProcessRunner.RunAsync(CompatEnvironment.Javac,
            ["-nowarn", "-encoding", "UTF-8", "-cp", CompatEnvironment.ZooKeeperJar, "-d", dir, source], TimeSpan.FromSeconds(180));
        Assert.True(r.Succeeded, $"javac {source}: {r.Output}");
        return dir;
    }

    private static string Jaas(string dir, string name, string body)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, body);
        return path;
    }

    private async Task<ServerProcess> StartAsync(string target, string dir, bool required = false)
    {
        var serverJaas = Jaas(dir, "server.jaas",
            $"Server {{ org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"{Password}\"; }};\n");
        var server = await ServerProcess.StartAsync(target, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.sasl.users {{ bob = \"{Password}\" }}" + (required ? "\ncoordination.auth.enforce { enabled = on, schemes = [sasl] }" : ""),
            JavaOptions = ["-Djava.security.auth.login.config=" + serverJaas, .. required ? ["-Dzookeeper.sessionRequireClientSASLAuth=true"] : Array.Empty<string>()],
            ExtraZooCfg = ["authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"],
        });
        output.WriteLine($"started {server}");
        return server;
    }

    private async Task<ProcessResult> RunCheckAsync(string dir, string password, params string[] args)
    {
        var clientJaas = Jaas(dir, $"client-{password}.jaas",
            $"Client {{ org.apache.zookeeper.server.auth.DigestLoginModule required username=\"bob\" password=\"{password}\"; }};\n");
        var r = await ProcessRunner.RunAsync(CompatEnvironment.Java,
            ["-Xmx256m", "-Djava.security.auth.login.config=" + clientJaas, "-cp", CompatEnvironment.ClientClasspath(await Classes.Value), "SaslCheck", .. args],
            TimeSpan.FromSeconds(90));
        output.WriteLine(r.Output);
        return r;
    }

    /// <summary>Starts <paramref name="target"/> with bob's password configured (and SASL required when
    /// <paramref name="required"/>) and runs SaslCheck with <paramref name="password"/>.</summary>
    private async Task CheckAsync(string target, string password, string mode, string[] extra, bool required = false)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var dir = CompatEnvironment.CreateTempDir("compat-sasl-" + target);
        try
        {
            await using var server = await StartAsync(target, dir, required);
            var r = await RunCheckAsync(dir, password, [mode, server.ConnectString, .. extra]);
            Assert.True(r.Succeeded, $"{target}: {r.Output}\n--- server ---\n{server.OutputTail}");
        }
        finally { CompatEnvironment.TryDeleteDir(dir); }
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public Task The_Java_client_authenticates_with_DIGEST_MD5_and_a_sasl_ACL_admits_only_it(string target) =>
        CheckAsync(target, Password, "accepted", ["/sasl-bob"]);

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public Task A_wrong_DIGEST_MD5_password_ends_in_AuthFailed(string target) =>
        CheckAsync(target, "not-" + Password, "refused", []);

    /// <summary>
    /// SASL required (ZooKeeper's sessionRequireClientSASLAuth; ours auth.enforce with [sasl]): bob is served, a client
    /// without SASL gets SessionClosedRequireAuthException on its first request, a wrong password still ends in AuthFailed.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Required_SASL_serves_bob_and_refuses_a_client_without_SASL(string target)
    {
        await CheckAsync(target, Password, "required", ["/sasl-required"], required: true);
        await CheckAsync(target, "not-" + Password, "refused", ["sasl-required"], required: true);
    }

    /// <summary>
    /// The error of a failed SASL exchange (ZooKeeperServer.processSasl): AuthFailed, or SessionClosedRequireAuth
    /// (-124) when SASL is required; the connection is closed either way. Raw frames, since the Java client reports
    /// both as AuthFailed.
    /// </summary>
    [SkippableTheory]
    [InlineData("ours", false)]
    [InlineData("ours", true)]
    [InlineData("apache", false)]
    [InlineData("apache", true)]
    public async Task A_failed_SASL_exchange_answers_AuthFailed_or_SessionClosedRequireAuth_when_SASL_is_required(string target, bool required)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var dir = CompatEnvironment.CreateTempDir("compat-sasl-raw-" + target);
        try
        {
            await using var server = await StartAsync(target, dir, required);
            await using var raw = await RawConnection.ConnectAsync(server.Host, server.Port);
            await raw.HandshakeAsync();
            await raw.SendAsync(WireFrames.Request(1, Coordination.Protocol.OpCode.Sasl, new Coordination.Protocol.SaslRequest([])));
            await raw.SendAsync(WireFrames.Request(2, Coordination.Protocol.OpCode.Sasl, new Coordination.Protocol.SaslRequest("username=\"bob\",not-a-digest-response"u8.ToArray())));
            var outcome = await raw.ObserveAsync(TimeSpan.FromSeconds(10));
            output.WriteLine($"[{target}, required {required}] {outcome}");
            Assert.Equal([Coordination.Protocol.ErrorCode.Ok, required ? Coordination.Protocol.ErrorCode.SessionClosedRequireSaslAuth : Coordination.Protocol.ErrorCode.AuthFailed],
                outcome.Replies.Select(r => r.Err));
            Assert.True(outcome.ClosedByServer);
        }
        finally { CompatEnvironment.TryDeleteDir(dir); }
    }

    /// <summary>
    /// One server JAAS file for both servers (Apache: java.security.auth.login.config; ours: sasl.jaas-file), with
    /// comments, two users and a second section; admin is the SASL super user (zookeeper.superUser, sasl.super-users)
    /// and reads a node only digest:nobody may read, bob (from the same file) is not and gets NoAuth.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public async Task Users_come_from_the_server_JAAS_file_and_the_SASL_super_user_reads_every_node(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var dir = CompatEnvironment.CreateTempDir("compat-sasl-jaas-" + target);
        try
        {
            var serverJaas = Jaas(dir, "server.jaas", """
                /* The server's section, as an operator would have it for Apache ZooKeeper. */
                Server {
                    // DIGEST-MD5 users
                    org.apache.zookeeper.server.auth.DigestLoginModule required
                        user_admin="admins-secret"
                        user_bob="bobs-secret";
                };
                QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_member="not-a-client"; };
                """);
            await using var server = await ServerProcess.StartAsync(target, new ServerProcessOptions
            {
                ExtraHocon = $"coordination.sasl {{ jaas-file = \"{serverJaas}\", super-users = [admin] }}",
                JavaOptions = ["-Djava.security.auth.login.config=" + serverJaas, "-Dzookeeper.superUser=admin"],
                ExtraZooCfg = ["authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"],
            });
            output.WriteLine($"started {server}");
            async Task Run(string user, string password, string path, string expect)
            {
                var clientJaas = Jaas(dir, $"client-{user}.jaas",
                    $"Client {{ org.apache.zookeeper.server.auth.DigestLoginModule required username=\"{user}\" password=\"{password}\"; }};\n");
                var r = await ProcessRunner.RunAsync(CompatEnvironment.Java,
                    ["-Xmx256m", "-Djava.security.auth.login.config=" + clientJaas, "-cp", CompatEnvironment.ClientClasspath(await Classes.Value),
                        "SaslCheck", "super", server.ConnectString, path, expect], TimeSpan.FromSeconds(90));
                output.WriteLine($"{user}: {r.Output}");
                Assert.True(r.Succeeded, $"{target}, {user} expecting {expect}: {r.Output}\n--- server ---\n{server.OutputTail}");
            }
            await Run("admin", "admins-secret", "/sasl-super-admin", "ok");
            await Run("bob", "bobs-secret", "/sasl-super-bob", "noauth");
        }
        finally { CompatEnvironment.TryDeleteDir(dir); }
    }
}
