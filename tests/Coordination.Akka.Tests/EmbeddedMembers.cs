using System.Text;
using Akka.Actor;
using Coordination.Client.Actors;
using Coordination.TestKit;
using Microsoft.Extensions.Hosting;

namespace Coordination.Akka.Tests;

/// <summary>What the embedded-member tests do with the member of a node: connect in process, ask its mode, stop the hosts.</summary>
public static class EmbeddedMembers
{
    /// <summary>A wire client on the node's own member, in process (it waits for a member still starting, within 5 s).</summary>
    public static async Task<WireClient> ConnectInProcessAsync(ActorSystem system, int sessionTimeoutMs)
    {
        var connect = LocalCoordinationMember.For(system).Connector ?? throw new InvalidOperationException("no local member");
        var stream = await connect(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        return await WireClient.ConnectAsync(stream, new WireClientOptions { SessionTimeoutMs = sessionTimeoutMs });
    }

    /// <summary>The member's mode (srvr over an in-process connection), or "down".</summary>
    public static async Task<string> ModeAsync(ActorSystem system) =>
        await WordAsync(system, "srvr") is { } text
            ? text.Split('\n').FirstOrDefault(l => l.StartsWith("Mode: ", StringComparison.Ordinal))?["Mode: ".Length..].Trim() ?? "?"
            : "down";

    /// <summary>The member's answer to a four-letter word over an in-process connection, or null when it cannot be reached.</summary>
    public static async Task<string?> WordAsync(ActorSystem system, string word)
    {
        try
        {
            await using var stream = await LocalCoordinationMember.For(system).Connector!(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
            await stream.WriteAsync(Encoding.ASCII.GetBytes(word));
            await stream.FlushAsync();
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or OperationCanceledException) { return null; }
    }

    /// <summary>Stops every host (bounded), then deletes the tests' data dirs.</summary>
    public static async Task StopAsync(IEnumerable<IHost> hosts, string root)
    {
        foreach (var host in hosts)
        {
            try { await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(20)); } catch { }
            host.Dispose();
        }
        try { Directory.Delete(root, recursive: true); } catch { }
    }
}
