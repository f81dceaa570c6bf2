using Akka.Actor;
using Coordination.Client.Actors;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>Tests written as a user of Coordination.TestKit.Xunit2 would write them: an actor proxy in the test's system.</summary>
public sealed class StandaloneTestKitUsageTests() : CoordinationTestKit(voters: 1)
{
    [Fact]
    public async Task A_proxy_creates_and_reads_a_node_and_survives_a_server_restart()
    {
        var proxy = CreateProxy();
        proxy.Tell(new Create("/config", "v1"u8.ToArray()), TestActor);
        ExpectMsg<Created>(TimeSpan.FromSeconds(15));

        var member = Ensemble.Members[0];
        await Ensemble.KillAsync(member.Id);
        await Ensemble.RestartAsync(member.Id);

        await AwaitAssertAsync(async () =>
        {
            proxy.Tell(new GetData("/config"), TestActor);
            var data = await ExpectMsgAsync<NodeData>(TimeSpan.FromSeconds(3));
            Assert.Equal("v1", System.Text.Encoding.UTF8.GetString(data.Data!));
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
    }
}

public sealed class EnsembleTestKitUsageTests() : CoordinationTestKit(voters: 3)
{
    [Fact]
    public async Task A_proxy_keeps_working_when_the_leader_is_killed()
    {
        var proxy = CreateProxy();
        proxy.Tell(new Create("/jobs", []), TestActor);
        ExpectMsg<Created>(TimeSpan.FromSeconds(15));

        await Ensemble.KillAsync(Ensemble.Leader!.Id);
        await Ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30));

        await AwaitAssertAsync(async () =>
        {
            proxy.Tell(new Create("/jobs/job-", [], CreateMode.PersistentSequential), TestActor);
            await ExpectMsgAsync<Created>(TimeSpan.FromSeconds(3));
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
    }
}
