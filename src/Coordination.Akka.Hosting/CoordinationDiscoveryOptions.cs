using System.Text;
using Akka.Actor.Setup;
using Akka.Hosting;
using Coordination.Akka.Discovery;
using Coordination.Client;

namespace Coordination.Akka.Hosting;

/// <summary>
/// Akka.Discovery over the coordination service as an Akka.Hosting option (<c>akka.discovery.coordination</c> by
/// default). Unset properties keep the defaults of Coordination.Akka's reference.conf.
/// </summary>
public sealed class CoordinationDiscoveryOptions : IDiscoveryOptions
{
    /// <summary>The discovery method name: the section is <c>akka.discovery.&lt;ConfigPath&gt;</c>.</summary>
    public string ConfigPath { get; set; } = "coordination";
    public Type Class => typeof(CoordinationServiceDiscovery);
    /// <summary>Also make it <c>akka.discovery.method</c>, the one Akka.Management's bootstrap and others use by default.</summary>
    public bool IsDefaultPlugin { get; set; } = true;

    public string? ConnectString { get; set; }
    public TimeSpan? SessionTimeout { get; set; }
    /// <summary>Instances are read from <c>BasePath/&lt;service name&gt;/&lt;instance id&gt;</c>.</summary>
    public string? BasePath { get; set; }
    public IReadOnlyList<AuthInfo>? Auth { get; set; }
    public ClientTlsOptions? Tls { get; set; }

    public void Apply(AkkaConfigurationBuilder builder, Setup? setup = null)
    {
        var section = $"akka.discovery.{ConfigPath}";
        var hocon = new StringBuilder().AppendLine($"{section} {{");
        hocon.AppendLine($"class = {Class.AssemblyQualifiedName!.ToHocon()}");
        HoconSettings.AppendConnection(hocon, ConnectString, SessionTimeout);
        if (BasePath is not null) hocon.AppendLine($"base-path = {BasePath.ToHocon()}");
        hocon.AppendLine("}");
        if (IsDefaultPlugin) hocon.AppendLine($"akka.discovery.method = {ConfigPath.ToHocon()}");
        builder.AddHocon(hocon.ToString(), HoconAddMode.Prepend);
        // The reference defaults, moved under this section's name.
        builder.AddHocon(CoordinationAkka.DefaultConfig().GetConfig("akka.discovery.coordination").MoveTo(section), HoconAddMode.Append);
        HoconSettings.AddConnectionSetup(builder, Auth, Tls);
    }
}
