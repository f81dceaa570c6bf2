using Akka.Actor;
using Akka.Configuration;
using Coordination.Protocol;
using Coordination.Server.Pipeline;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Fail fast (NodeActor): an actor of the node that throws stops the whole node. The ActorSystem ends, the client
/// port closes and every client's connection with it, and a standalone node does not come back (its host stops the
/// process); nothing keeps serving from an actor restarted without the state the others rely on.
/// </summary>
public sealed class NodeSupervisionTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("node-supervision-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dataDir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task A_child_that_throws_stops_the_node_and_closes_every_client()
    {
        await using var node = CoordinationNode.Start(ConfigurationFactory.ParseString($$"""
            coordination { client-port = 0, data-dir = "{{_dataDir.Replace("\\", "\\\\")}}", tick-time = 200ms }
            """));
        var server = node.Current!;
        var writer = await WireClient.ConnectAsync("127.0.0.1", server.ClientPort);
        var watcher = await WireClient.ConnectAsync("127.0.0.1", server.ClientPort);
        await writer.CreateAsync("/before", [1], CreateMode.Persistent).OkAsync();
        await watcher.GetDataAsync("/before", watch: true).OkAsync();

        // A bug in the replica: it throws while applying a batch the journal reported durable.
        server.Replica.Tell(new LogAppended(null!));

        // Every client is closed (a replica restarted alone would answer with an empty session table, or never).
        await writer.Closed.WaitAsync(TimeSpan.FromSeconds(20));
        await watcher.Closed.WaitAsync(TimeSpan.FromSeconds(20));
        await server.System.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(20));
        // A standalone node does not restart: its host (CoordinationServerService) stops the application.
        await node.Stopped.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Null(node.Current);
        output.WriteLine($"restarts: {node.Restarts}");
        Assert.Equal(0, node.Restarts);
        // And nothing listens any more: a new client is refused rather than left waiting.
        await Assert.ThrowsAnyAsync<Exception>(() => WireClient.ConnectAsync("127.0.0.1", server.ClientPort).WaitAsync(TimeSpan.FromSeconds(20)));
    }
}
