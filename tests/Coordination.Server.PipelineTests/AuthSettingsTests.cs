using Akka.Configuration;
using Coordination.Server.Sessions;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The authentication settings of issue 17 that refuse to start: the server JAAS file (parsed as Java's JAAS parser
/// reads ZooKeeper's files), required-auth schemes without their provider, and a server with no client port at all.
/// The behaviour itself is checked against Apache ZooKeeper in tests/Coordination.Compat.Tests (AuthGapsTests, SaslTests).
/// </summary>
public sealed class AuthSettingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("auth-settings-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string Write(string text)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():N}.jaas");
        File.WriteAllText(path, text);
        return path;
    }

    private static ServerSettings Settings(string hocon) =>
        ServerSettings.Create(ConfigurationFactory.ParseString(hocon).WithFallback(ServerSettings.Reference));

    [Fact]
    public void A_server_JAAS_file_gives_the_user_options_of_its_section_with_comments_quotes_and_escapes()
    {
        var path = Write("""
            // ZooKeeper's server section
            Server {
                /* several modules and options */
                org.apache.zookeeper.server.auth.DigestLoginModule required
                    user_bob="bobs-secret"
                    debug=true
                    user_carol = "a \"quoted\" ; {password}";
                com.example.OtherModule optional user_dave="daves";
            };
            Client { org.apache.zookeeper.server.auth.DigestLoginModule required username="bob" password="x"; };
            """);
        var users = JaasFile.ReadUsers(path, "Server");
        Assert.Equal(new Dictionary<string, string>
        {
            ["bob"] = "bobs-secret",
            ["carol"] = "a \"quoted\" ; {password}",
            ["dave"] = "daves",
        }, users);
        // zookeeper.sasl.serverconfig names another section
        Assert.Throws<FormatException>(() => JaasFile.ReadUsers(path, "Client"));   // no user_ options in it
    }

    [Theory]
    [InlineData("Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\" };", "line 1: expected an option name or ';', found '}'")]
    [InlineData("Server { org.apache.zookeeper.server.auth.DigestLoginModule mandatory user_bob=\"pw\"; };", "control flag")]
    [InlineData("Server {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_bob=\"pw;\n};", "line 3: unterminated quoted value")]
    [InlineData("Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"a\" user_bob=\"b\"; };", "user_bob only once")]
    [InlineData("/* no end", "unterminated /* comment")]
    [InlineData("Other { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };", "no section 'Server' (it has: Other)")]
    public void A_bad_JAAS_file_refuses_to_start_and_says_where(string text, string reason)
    {
        var path = Write(text);
        var e = Assert.Throws<ConfigurationException>(() => Settings($"coordination.sasl.jaas-file = \"{path}\""));
        Assert.Contains(reason, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Users_from_the_JAAS_file_join_sasl_users_and_a_user_in_both_refuses_to_start()
    {
        var path = Write("Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };");
        var settings = Settings($"coordination.sasl {{ jaas-file = \"{path}\", users {{ alice = \"a\" }} }}");
        Assert.Equal(["alice", "bob"], settings.SaslUsers.Keys.Order());
        Assert.True(settings.AclProviders.Sasl);
        var e = Assert.Throws<ConfigurationException>(() => Settings($"coordination.sasl {{ jaas-file = \"{path}\", users {{ bob = \"b\" }} }}"));
        Assert.Contains("bob is also in sasl.users", e.Message);
        Assert.Throws<ConfigurationException>(() => Settings($"coordination.sasl.jaas-file = \"{Path.Combine(_dir, "missing.jaas")}\""));
    }

    [Theory]
    [InlineData("coordination.auth.enforce { enabled = on, schemes = [] }", "must name at least one scheme")]
    [InlineData("coordination.auth.enforce { enabled = on, schemes = [sasl] }", "'sasl' is not available")]
    [InlineData("coordination.auth.enforce { enabled = on, schemes = [x509] }", "'x509' is not available")]
    [InlineData("coordination.auth.enforce { enabled = on, schemes = [kerberos] }", "'kerberos' is not available")]
    [InlineData("coordination.client-port = off", "no secure-client-port")]
    [InlineData("coordination { client-port = off, secure-client-port = 0, client-ssl.port-unification = on }", "port-unification needs the plain client-port")]
    [InlineData("coordination.client-port = twenty", "must be a port number or off")]
    public void Settings_that_would_leave_a_gap_refuse_to_start(string hocon, string reason)
    {
        var e = Assert.Throws<ConfigurationException>(() => Settings(hocon));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Required_schemes_and_the_plain_port_switch_are_read()
    {
        Assert.Empty(Settings("").EnforceAuthSchemes);
        Assert.Equal(["digest", "ip"], Settings("coordination.auth.enforce { enabled = on, schemes = [digest, \" ip \"] }").EnforceAuthSchemes.Order());
        Assert.Equal(["sasl"], Settings("coordination { sasl.users { bob = pw }\n auth.enforce { enabled = on, schemes = [sasl] } }").EnforceAuthSchemes);
        Assert.Equal(-1, Settings("coordination { client-port = off, secure-client-port = 0 }").ClientPort);
        Assert.Equal(2181, Settings("").ClientPort);
        Assert.Equal(new Core.AclProviders(false, false), Settings("").AclProviders);
        Assert.True(Settings("coordination.admin { enabled = on, ssl.enabled = on }").AclProviders.X509);   // admin callers prove x509 ids
    }
}
