using Akka.Configuration;

namespace Coordination.Akka.Hosting;

/// <summary>
/// An ensemble member embedded in the application's ActorSystem (<c>WithCoordinationServer</c>): its
/// <c>coordination</c> section as the server's reference.conf documents it (server id, data dir, ensemble voters with
/// their member endpoints and auth; the client port is off unless set), and the cluster role that runs it. With
/// <c>coordination.ensemble.cluster.enabled = on</c> no voters are listed: Akka.Cluster supplies the members and Zab
/// decides (docs/architecture.md §10).
/// </summary>
public sealed class CoordinationServerOptions
{
    /// <summary>The member's HOCON (a <c>coordination { ... }</c> section). Required.</summary>
    public Config? Config { get; set; }

    /// <summary>Only a node with this cluster role (<c>akka.cluster.roles</c>) runs the member; null or empty: every
    /// node that is given this option.</summary>
    public string? Role { get; set; } = "coordination";

    /// <summary>The application's own remoting transports, kept beside the member transport (default: Akka.Remote's
    /// DotNetty TCP transport).</summary>
    public IReadOnlyList<string>? HostTransports { get; set; }
}
