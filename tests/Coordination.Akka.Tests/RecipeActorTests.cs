using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Akka.Actors;
using Coordination.Client.Tests;
using Coordination.Recipes.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Akka.Tests;

/// <summary>The recipe actors on the session configured in <c>coordination.client</c>: changes and leadership arrive as messages.</summary>
public sealed class RecipeActorTests(ServersFixture servers, ITestOutputHelper output) : ServerTests(servers, output)
{
    /// <summary>Collects the messages an actor is sent (an Inbox would hand a late message to a timed-out receive).</summary>
    private sealed class Collector : ReceiveActor
    {
        public Collector(System.Threading.Channels.ChannelWriter<object> sink) => ReceiveAny(m => sink.TryWrite(m));
    }

    private sealed record Probe(IActorRef Ref, System.Threading.Channels.ChannelReader<object> Messages);

    private static Probe NewProbe(ActorSystem system)
    {
        var channel = System.Threading.Channels.Channel.CreateUnbounded<object>();
        return new Probe(system.ActorOf(Props.Create(() => new Collector(channel.Writer))), channel.Reader);
    }

    private static async Task<T> Next<T>(Probe probe) => Assert.IsType<T>(await probe.Messages.ReadAsync().AsTask().Within(15));

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task Node_watcher_and_leadership_actors_report_as_messages(string target) => Shared(target, async server =>
    {
        using var system = ActorSystem.Create("recipes", ConfigurationFactory.ParseString(
            $"akka.loglevel = WARNING\ncoordination.client.connect-string = \"{server.ConnectString}\""));
        await using var writer = await Targets.ConnectAsync(server, Output);
        var config = Root + "/config";

        var changes = NewProbe(system);
        var watcher = system.ActorOf(RecipeActors.NodeWatcher(config, changes.Ref));
        Assert.Null((await Next<NodeChanged>(changes)).Data); // initial state: no node yet
        await writer.CreateRecursiveAsync(config, Encoding.UTF8.GetBytes("v1")).Within();
        Assert.Equal("v1", Encoding.UTF8.GetString((await Next<NodeChanged>(changes)).Data!));
        await writer.SetDataAsync(config, Encoding.UTF8.GetBytes("v2")).Within();
        Assert.Equal("v2", Encoding.UTF8.GetString((await Next<NodeChanged>(changes)).Data!));

        var first = NewProbe(system);
        var second = NewProbe(system);
        var a = system.ActorOf(RecipeActors.Leadership(Root + "/leader", "a", first.Ref));
        Assert.Equal(new LeadershipGranted(Root + "/leader", "a"), await Next<LeadershipGranted>(first));
        system.ActorOf(RecipeActors.Leadership(Root + "/leader", "b", second.Ref));
        await Clients.Eventually(async () => (await writer.GetChildrenAsync(Root + "/leader")).Children.Count == 2, "b queued");
        await Task.Delay(300);
        Assert.False(second.Messages.TryRead(out _)); // b waits while a leads
        a.Tell(PoisonPill.Instance);
        Assert.Equal(new LeadershipRevoked(Root + "/leader", "a"), await Next<LeadershipRevoked>(first));
        Assert.Equal(new LeadershipGranted(Root + "/leader", "b"), await Next<LeadershipGranted>(second));
        system.Stop(watcher);
        await system.Terminate().WaitAsync(TimeSpan.FromSeconds(20));
    });
}
