using System.Text;
using Akka.Actor.Setup;
using Akka.Hosting;
using Coordination.Client;
using Coordination.Client.Actors;

namespace Coordination.Akka.Hosting;

/// <summary>
/// The actor proxy's <c>coordination.client</c> section (<c>system.Coordination()</c>) as an Akka.Hosting option.
/// Unset properties keep the defaults of Coordination.Client.Actors' reference.conf.
/// </summary>
public sealed class CoordinationProxyOptions : IHoconOption
{
    public string ConfigPath => "coordination.client";
    public Type Class => typeof(CoordinationProxy);

    public string? ConnectString { get; set; }
    public TimeSpan? SessionTimeout { get; set; }
    public TimeSpan? ConnectionTimeout { get; set; }
    public bool? CanBeReadOnly { get; set; }
    /// <summary>Sent on every (re)connect; written to <c>coordination.client.auth</c> as UTF-8 text.</summary>
    public IReadOnlyList<AuthInfo>? Auth { get; set; }
    /// <summary>Name of the proxy actor under /system.</summary>
    public string? ProxyName { get; set; }
    public int? MaxInFlight { get; set; }
    public bool? RestartOnExpiry { get; set; }
    public TimeSpan? RestartBackoff { get; set; }

    public void Apply(AkkaConfigurationBuilder builder, Setup? setup = null)
    {
        var hocon = new StringBuilder().AppendLine($"{ConfigPath} {{");
        HoconSettings.AppendConnection(hocon, ConnectString, SessionTimeout);
        if (ConnectionTimeout is not null) hocon.AppendLine($"connection-timeout = {ConnectionTimeout.ToHocon()}");
        if (CanBeReadOnly is not null) hocon.AppendLine($"can-be-read-only = {CanBeReadOnly.ToHocon()}");
        if (Auth is not null)
            hocon.AppendLine($"auth = [{string.Join(", ", Auth.Select(a => $"{{ scheme = {a.Scheme.ToHocon()}, auth = {Encoding.UTF8.GetString(a.Auth).ToHocon()} }}"))}]");
        hocon.AppendLine("proxy {");
        if (ProxyName is not null) hocon.AppendLine($"name = {ProxyName.ToHocon()}");
        if (MaxInFlight is not null) hocon.AppendLine($"max-in-flight = {MaxInFlight.ToHocon()}");
        if (RestartOnExpiry is not null) hocon.AppendLine($"restart-on-expiry = {RestartOnExpiry.ToHocon()}");
        if (RestartBackoff is not null) hocon.AppendLine($"restart-backoff = {RestartBackoff.ToHocon()}");
        hocon.AppendLine("}").AppendLine("}");
        builder.AddHocon(hocon.ToString(), HoconAddMode.Prepend);
    }
}
