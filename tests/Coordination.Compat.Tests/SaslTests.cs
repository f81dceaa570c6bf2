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

    private async Task<ServerProcess> StartAsync(string target, string dir)
    {
        var serverJaas = Jaas(dir, "server.jaas",
            $"Server {{ org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"{Password}\"; }};\n");
        var server = await ServerProcess.StartAsync(target, new ServerProcessOptions
        {
            ExtraHocon = $"coordination.sasl.users {{ bob = \"{Password}\" }}",
            JavaOptions = ["-Djava.security.auth.login.config=" + serverJaas],
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

    /// <summary>Starts <paramref name="target"/> with bob's password configured and runs SaslCheck with <paramref name="password"/>.</summary>
    private async Task CheckAsync(string target, string password, string mode, params string[] extra)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var dir = CompatEnvironment.CreateTempDir("compat-sasl-" + target);
        try
        {
            await using var server = await StartAsync(target, dir);
            var r = await RunCheckAsync(dir, password, [mode, server.ConnectString, .. extra]);
            Assert.True(r.Succeeded, $"{target}: {r.Output}\n--- server ---\n{server.OutputTail}");
        }
        finally { CompatEnvironment.TryDeleteDir(dir); }
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public Task The_Java_client_authenticates_with_DIGEST_MD5_and_a_sasl_ACL_admits_only_it(string target) =>
        CheckAsync(target, Password, "accepted", "/sasl-bob");

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public Task A_wrong_DIGEST_MD5_password_ends_in_AuthFailed(string target) =>
        CheckAsync(target, "not-" + Password, "refused");
}
