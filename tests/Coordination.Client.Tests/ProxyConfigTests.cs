using Akka.Actor;
using Akka.Configuration;
using Coordination.Client.Actors;
using Coordination.Protocol;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Client.Tests;

/// <summary>The proxy's configuration messages against a standalone server of each kind (reconfig off, the default),
/// through a chroot: /zookeeper/config is read outside it, and a reconfig fails with ReconfigDisabled.</summary>
public sealed class ProxyConfigTests(ServersFixture servers, ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit("akka.loglevel = INFO", output), IClassFixture<ServersFixture>
{
    private readonly string _chroot = "/t" + Guid.NewGuid().ToString("N");
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [SkippableTheory, MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public Task GetConfig_and_Reconfig_as_messages(string target) => servers.RunAsync(target, _chroot, Output, async server =>
    {
        var settings = CoordinationClientSettings.Create(ConfigurationFactory.ParseString($$"""
            connect-string = "{{server.ConnectString + _chroot}}"
            session-timeout = 10s
            """));
        var proxy = Sys.ActorOf(CoordinationProxy.Props(settings), "proxy");
        await using var direct = await Targets.ConnectAsync(server, Output);
        var expected = await direct.GetConfigAsync();

        var probe = CreateTestProbe();
        proxy.Tell(new GetConfig(), probe.Ref);
        var reply = probe.ExpectMsg<ConfigData>(Wait);
        Assert.Equal(expected.Config.Text, reply.Config.Text);
        Assert.Equal(expected.Stat, reply.Stat);

        proxy.Tell(new Reconfig(null, [2]), probe.Ref);
        var failure = probe.ExpectMsg<Status.Failure>(Wait);
        Assert.Equal(ErrorCode.ReconfigDisabled, Assert.IsAssignableFrom<KeeperException>(failure.Cause).Code);
        await Assert.ThrowsAnyAsync<KeeperException>(() => proxy.Ask<ConfigData>(new ReconfigMembers(["server.1=127.0.0.1:1:2"]), Wait));
    });
}
