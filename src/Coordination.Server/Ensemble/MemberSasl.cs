using Akka.Configuration;
using Coordination.Server.Sessions;

namespace Coordination.Server.Ensemble;

public enum MemberSaslMechanism { DigestMd5, Kerberos }

/// <summary>
/// <c>coordination.ensemble.sasl</c>: SASL between members, as ZooKeeper's quorum SASL (quorum.auth.*). The
/// credentials come from a JAAS file as ZooKeeper's do: its server section (QuorumServer) holds either the DIGEST-MD5
/// users (<c>user_NAME="password"</c> of a DigestLoginModule) or a Krb5LoginModule's <c>keyTab</c> and
/// <c>principal</c>, which picks the mechanism; its learner section (QuorumLearner) holds what this member
/// authenticates with when it dials (<c>username</c>/<c>password</c>, or <c>keyTab</c>/<c>principal</c>).
/// Stricter than ZooKeeper, the name a dialer authenticates as must be the one of the member id it claims
/// (DESIGN invariant 11): <see cref="MemberNames"/> names them (required for DIGEST-MD5, whose users say nothing of a
/// host); without an entry, a Kerberos principal <c>service/HOST@REALM</c> is that member's when HOST is the
/// member's configured host (ZooKeeper accepts any member host).
/// </summary>
public sealed record MemberSaslSettings(
    bool Enabled,
    bool LearnerRequire,
    bool ServerRequire,
    MemberSaslMechanism Mechanism,
    string JaasFile,
    string ServerSection,
    string LearnerSection,
    string ServicePrincipal,
    IReadOnlyDictionary<long, string> MemberNames,
    IReadOnlyDictionary<string, string> ServerUsers,
    (string User, string Password)? LearnerUser,
    KerberosKey? ServerKey,
    KerberosKey? LearnerKey)
{
    private const string Setting = "coordination.ensemble.sasl";
    private const string DigestModule = "org.apache.zookeeper.server.auth.DigestLoginModule";
    private const string KerberosModule = "com.sun.security.auth.module.Krb5LoginModule";

    /// <summary>Why a member with SASL but neither a secret nor TLS must require SASL both ways.</summary>
    public const string NotAlone = $"{Setting}: with neither auth.secret nor member TLS, SASL is the only authentication, so both " +
        "learner-require-sasl and server-require-sasl must be on (a link without SASL would be authenticated by nothing)";

    public static MemberSaslSettings Disabled { get; } = new(false, false, false, MemberSaslMechanism.DigestMd5, "", "", "", "",
        new Dictionary<long, string>(), new Dictionary<string, string>(), null, null, null);

    /// <summary>Reads the section and its JAAS file; <paramref name="memberIds"/> are the configured members.</summary>
    public static MemberSaslSettings Create(Config? c, IEnumerable<long> memberIds)
    {
        if (c is null || c.IsEmpty || !c.GetBoolean("enabled", false))
        {
            if (c is not null && !c.IsEmpty && (c.GetBoolean("learner-require-sasl", false) || c.GetBoolean("server-require-sasl", false)))
                throw new ConfigurationException($"{Setting}: learner-require-sasl and server-require-sasl need enabled = on");
            return Disabled;
        }
        var jaas = c.GetString("jaas-file", "");
        if (string.IsNullOrWhiteSpace(jaas)) throw new ConfigurationException($"{Setting}.jaas-file must name the JAAS file with the members' credentials");
        var serverSection = c.GetString("server-section", "QuorumServer");
        var learnerSection = c.GetString("learner-section", "QuorumLearner");
        var learnerRequire = c.GetBoolean("learner-require-sasl", false);
        List<JaasEntry> server, learner;
        try
        {
            server = Sessions.JaasFile.ReadSection(jaas, serverSection);
            learner = learnerRequire ? Sessions.JaasFile.ReadSection(jaas, learnerSection) : [];
        }
        catch (FormatException e)
        {
            throw new ConfigurationException($"{Setting}: {e.Message}");
        }
        var kerberos = server.Any(e => e.LoginModule == KerberosModule);
        var names = new Dictionary<long, string>();
        if (c.GetConfig("member-names") is { IsEmpty: false } named)
            foreach (var (id, value) in named.Root.GetObject().Items)
                names[long.TryParse(id, out var memberId) ? memberId : throw new ConfigurationException($"{Setting}.member-names: '{id}' is not a server id")] = value.GetString();
        var ids = memberIds.ToList();
        if (names.Keys.FirstOrDefault(id => !ids.Contains(id)) is var stranger and not 0)
            throw new ConfigurationException($"{Setting}.member-names: {stranger} is not a configured member");
        if (!kerberos && ids.FirstOrDefault(id => !names.ContainsKey(id)) is var unnamed and not 0)
            throw new ConfigurationException($"{Setting}.member-names: DIGEST-MD5 users say nothing of which member they are, so every " +
                $"member needs its user named here (member {unnamed} has none)");

        string Option(JaasEntry entry, string section, string key) => entry.Options.TryGetValue(key, out var v) && v.Length > 0 ? v
            : throw new ConfigurationException($"{Setting}: {entry.LoginModule} in section {section} of {jaas} has no {key}");
        JaasEntry Module(List<JaasEntry> entries, string section, string module) => entries.FirstOrDefault(e => e.LoginModule == module)
            ?? throw new ConfigurationException($"{Setting}: section {section} of {jaas} has no {module}");

        IReadOnlyDictionary<string, string> users = new Dictionary<string, string>();
        (string, string)? learnerUser = null;
        KerberosKey? serverKey = null, learnerKey = null;
        if (kerberos)
        {
            var e = Module(server, serverSection, KerberosModule);
            serverKey = new KerberosKey($"{Setting} ({serverSection})", Path.GetFullPath(Option(e, serverSection, "keyTab")), Option(e, serverSection, "principal"));
            if (learnerRequire)
            {
                var l = Module(learner, learnerSection, KerberosModule);
                learnerKey = new KerberosKey($"{Setting} ({learnerSection})", Path.GetFullPath(Option(l, learnerSection, "keyTab")), Option(l, learnerSection, "principal"));
            }
        }
        else
        {
            if (server.FirstOrDefault(e => e.LoginModule != DigestModule) is { } other)
                throw new ConfigurationException($"{Setting}: section {serverSection} of {jaas}: {other.LoginModule} is neither {DigestModule} nor {KerberosModule}");
            users = Sessions.JaasFile.UsersOf(server);
            if (users.Count == 0) throw new ConfigurationException($"{Setting}: section {serverSection} of {jaas} has no user_NAME=\"password\" option");
            if (learnerRequire)
            {
                var l = Module(learner, learnerSection, DigestModule);
                learnerUser = (Option(l, learnerSection, "username"), Option(l, learnerSection, "password"));
            }
        }
        return new MemberSaslSettings(true, learnerRequire, c.GetBoolean("server-require-sasl", false),
            kerberos ? MemberSaslMechanism.Kerberos : MemberSaslMechanism.DigestMd5, Path.GetFullPath(jaas), serverSection, learnerSection,
            c.GetString("kerberos-service-principal", "zkquorum/localhost"), names, users, learnerUser, serverKey, learnerKey);
    }

    /// <summary>The section again, for the member transport's config (<see cref="EnsembleSettings.RemotingConfig"/>).</summary>
    public string ToHocon() => !Enabled ? "sasl { enabled = off }" : $$"""
        sasl {
          enabled = on
          learner-require-sasl = {{(LearnerRequire ? "on" : "off")}}
          server-require-sasl = {{(ServerRequire ? "on" : "off")}}
          jaas-file = {{Quote(JaasFile)}}
          server-section = {{Quote(ServerSection)}}
          learner-section = {{Quote(LearnerSection)}}
          kerberos-service-principal = {{Quote(ServicePrincipal)}}
          member-names { {{string.Join(", ", MemberNames.Select(kv => $"{kv.Key} = {Quote(kv.Value)}"))}} }
        }
        """;

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>The server side of one member's SASL exchange, with this member's credentials.</summary>
    public ISaslServer NewServer() => Mechanism == MemberSaslMechanism.Kerberos
        ? new GssapiServer(new KerberosSettings(true, ServerKey!.Keytab, ServerKey.Principal, false, false))
        : new DigestMd5Server(ServerUsers, DigestMd5Server.QuorumProtocol, DigestMd5Server.QuorumRealm);

    /// <summary>The client side, for a link this member dials to <paramref name="host"/>.</summary>
    public ISaslClient NewClient(string host) => Mechanism == MemberSaslMechanism.Kerberos
        ? new GssapiClient(ServiceFor(host))
        : new DigestMd5Client(LearnerUser!.Value.User, LearnerUser.Value.Password, DigestMd5Server.QuorumProtocol, DigestMd5Server.QuorumRealm);

    /// <summary>The acceptor's principal on <paramref name="host"/>: <see cref="ServicePrincipal"/> with _HOST replaced, as
    /// ZooKeeper's SecurityUtils.getServerPrincipal does.</summary>
    public string ServiceFor(string host) => ServicePrincipal.Replace("_HOST", host.ToLowerInvariant(), StringComparison.Ordinal);

    /// <summary>Why <paramref name="name"/>, the SASL name a dialer authenticated as, is not member <paramref name="id"/>
    /// on <paramref name="host"/>; null when it is.</summary>
    public string? Refuses(long id, string host, string name)
    {
        if (MemberNames.TryGetValue(id, out var expected))
        {
            var matches = Mechanism == MemberSaslMechanism.Kerberos && !expected.Contains('@')
                ? name.StartsWith(expected + "@", StringComparison.Ordinal)
                : name == expected;
            return matches ? null : $"it authenticated as '{name}', and member {id} is '{expected}' (ensemble.sasl.member-names)";
        }
        if (Mechanism != MemberSaslMechanism.Kerberos) return $"member {id} has no SASL name (ensemble.sasl.member-names)";
        var parts = name.Split('/', '@');
        return parts.Length == 3 && string.Equals(parts[1], host, StringComparison.OrdinalIgnoreCase) ? null
            : $"it authenticated as '{name}', which is not a principal for member {id}'s host {host} (service/{host}@REALM)";
    }
}
