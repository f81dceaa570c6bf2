using System.Net;
using Akka.Configuration;

namespace Coordination.Server.Sessions;

/// <summary>
/// The <c>coordination.sasl.kerberos</c> section: SASL GSSAPI (Kerberos v5) for clients. The server accepts tickets
/// for <see cref="Principal"/> with its key from <see cref="Keytab"/> (ZooKeeper: the JAAS Server section with
/// Krb5LoginModule, keyTab and principal); a client's id is sasl:NAME, NAME being its principal after the two
/// remove rules (ZooKeeper's zookeeper.kerberos.removeHostFromPrincipal and removeRealmFromPrincipal).
/// </summary>
public sealed record KerberosSettings(bool Enabled, string Keytab, string Principal, bool RemoveHostFromPrincipal, bool RemoveRealmFromPrincipal)
{
    public static KerberosSettings Disabled { get; } = new(false, "", "", false, false);

    /// <summary>The server's keys, when enabled (<see cref="KerberosKeys"/>).</summary>
    public KerberosKey? Key => Enabled ? new KerberosKey("coordination.sasl.kerberos", Keytab, Principal) : null;

    public static KerberosSettings Create(Config c)
    {
        if (!c.GetBoolean("enabled")) return Disabled;
        var keytab = c.GetString("keytab");
        if (string.IsNullOrWhiteSpace(keytab)) throw new ConfigurationException("coordination.sasl.kerberos.keytab must name the server's keytab");
        var principal = c.GetString("principal");
        if (string.IsNullOrWhiteSpace(principal)) principal = "zookeeper/" + Dns.GetHostName().ToLowerInvariant();
        if (!principal.Contains('/')) throw new ConfigurationException($"coordination.sasl.kerberos.principal '{principal}' must be service/host[@REALM], as ZooKeeper's");
        return new KerberosSettings(true, Path.GetFullPath(keytab), principal,
            c.GetBoolean("remove-host-from-principal"), c.GetBoolean("remove-realm-from-principal"));
    }

    /// <summary>
    /// The id a client authenticated as <paramref name="principal"/> ("name[/host]@REALM") gets, after the remove
    /// rules, as ZooKeeper's SaslServerCallbackHandler builds it; null when the principal is malformed.
    /// </summary>
    public string? ClientName(string principal)
    {
        var at = principal.IndexOf('@');
        if (at < 0 || at != principal.LastIndexOf('@')) return null;
        var realm = principal[(at + 1)..];
        var name = principal[..at];
        var slash = name.IndexOf('/');
        if (slash >= 0 && slash != name.LastIndexOf('/')) return null;
        var service = slash < 0 ? name : name[..slash];
        var host = slash < 0 ? null : name[(slash + 1)..];
        var result = service;
        if (host is not null && !RemoveHostFromPrincipal) result += "/" + host;
        if (!RemoveRealmFromPrincipal) result += "@" + realm;
        return result;
    }
}
