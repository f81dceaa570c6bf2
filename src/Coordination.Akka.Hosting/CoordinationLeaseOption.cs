using System.Text;
using Akka.Actor.Setup;
using Akka.Hosting;
using Akka.Hosting.Coordination;
using Coordination.Akka.Lease;
using Coordination.Client;

namespace Coordination.Akka.Hosting;

/// <summary>
/// The coordination lease (<c>akka.coordination.lease.coordination</c>) as an Akka.Hosting option: pass it to
/// <c>WithCoordinationLease</c>, and the same instance to SBR's <c>LeaseMajorityOption.LeaseImplementation</c>,
/// <c>ClusterSingletonOptions.LeaseImplementation</c> and <c>ShardOptions.LeaseImplementation</c>. Unset properties
/// keep the defaults of Coordination.Akka's reference.conf.
/// </summary>
public sealed class CoordinationLeaseOption : LeaseOptionBase
{
    /// <summary>The HOCON section of the lease: what SBR, Singleton and Sharding name as their lease implementation.</summary>
    public const string Path = "akka.coordination.lease.coordination";

    /// <summary>Servers, <c>host:port[,host:port...][/chroot]</c>.</summary>
    public string? ConnectString { get; set; }
    /// <summary>Plays the role of heartbeat-timeout: a dead holder loses the lease when its session expires.</summary>
    public TimeSpan? SessionTimeout { get; set; }
    /// <summary>Every lease is a lock node under <c>RootPath/&lt;lease name&gt;</c>.</summary>
    public string? RootPath { get; set; }
    /// <summary>Bounds Acquire and Release.</summary>
    public TimeSpan? LeaseOperationTimeout { get; set; }
    /// <summary>Credentials sent on every (re)connect (kept out of HOCON: they go in a <see cref="CoordinationConnectionSetup"/>).</summary>
    public IReadOnlyList<AuthInfo>? Auth { get; set; }
    /// <summary>TLS for the client port (goes in a <see cref="CoordinationConnectionSetup"/>).</summary>
    public ClientTlsOptions? Tls { get; set; }

    public override string ConfigPath => Path;
    public override Type Class => typeof(CoordinationLease);

    public override void Apply(AkkaConfigurationBuilder builder, Setup? setup = null)
    {
        var hocon = new StringBuilder().AppendLine($"{ConfigPath} {{");
        hocon.AppendLine($"lease-class = {Class.AssemblyQualifiedName!.ToHocon()}");
        HoconSettings.AppendConnection(hocon, ConnectString, SessionTimeout);
        if (RootPath is not null) hocon.AppendLine($"root-path = {RootPath.ToHocon()}");
        if (LeaseOperationTimeout is not null) hocon.AppendLine($"lease-operation-timeout = {LeaseOperationTimeout.ToHocon()}");
        hocon.AppendLine("}");
        builder.AddHocon(hocon.ToString(), HoconAddMode.Prepend);
        HoconSettings.AddConnectionSetup(builder, Auth, Tls);
    }
}

/// <summary>HOCON and Setup pieces shared by the options of this package.</summary>
internal static class HoconSettings
{
    public static void AppendConnection(StringBuilder hocon, string? connectString, TimeSpan? sessionTimeout)
    {
        if (connectString is not null)
        {
            ConnectString.Parse(connectString); // fail at configuration time, naming the value
            hocon.AppendLine($"connect-string = {connectString.ToHocon()}");
        }
        if (sessionTimeout is not null) hocon.AppendLine($"session-timeout = {sessionTimeout.ToHocon()}");
    }

    public static void AddConnectionSetup(AkkaConfigurationBuilder builder, IReadOnlyList<AuthInfo>? auth, ClientTlsOptions? tls)
    {
        if (auth is null && tls is null) return;
        var existing = builder.Setups.OfType<CoordinationConnectionSetup>().SingleOrDefault();
        if (existing is not null) builder.Setups.Remove(existing);
        builder.AddSetup(new CoordinationConnectionSetup { Auth = auth ?? existing?.Auth ?? [], Tls = tls ?? existing?.Tls });
    }
}
