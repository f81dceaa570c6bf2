using Xunit;

namespace Coordination.Client.Tests;

/// <summary>Parsing /zookeeper/config as ZooKeeper 3.5+ writes it (QuorumServer's line format).</summary>
public sealed class QuorumConfigTests
{
    [Fact]
    public void Parses_servers_roles_client_addresses_and_version()
    {
        var config = QuorumConfig.Parse("""
            server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181
            server.2=10.0.0.2:2888:3888:observer;10.0.1.2:2182
            server.3=[::1]:2888:3888;2183
            server.4=10.0.0.4:2888:3888|10.0.1.4:2889:3889:participant
            version=10000000a
            """);
        Assert.Equal(0x10000000aL, config.Version);
        Assert.Equal([1L, 2, 3, 4], config.Servers.Select(s => s.Id));
        Assert.Equal([1L, 3, 4], config.Participants.Select(s => s.Id));
        Assert.Equal([2L], config.Observers.Select(s => s.Id));
        Assert.Equal(new QuorumAddress("10.0.0.1", 2888, 3888), config.Servers[0].Addresses[0]);
        Assert.Equal(new HostAndPort("0.0.0.0", 2181), config.Servers[0].ClientAddress);
        // A wildcard client address means "this member's host".
        Assert.Equal([new HostAndPort("10.0.0.1", 2181), new HostAndPort("10.0.1.2", 2182), new HostAndPort("::1", 2183)], config.ClientEndpoints);
        Assert.Null(config.Servers[3].ClientAddress);
        Assert.Equal(2, config.Servers[3].Addresses.Count);
        Assert.Equal("server.2=10.0.0.2:2888:3888:observer;10.0.1.2:2182", config.Servers[1].ToConfigLine());
        Assert.Equal("server.3=[::1]:2888:3888:participant;0.0.0.0:2183", config.Servers[2].ToConfigLine());
        Assert.Equal("10000000a 0.0.0.0:2181,10.0.1.2:2182,0.0.0.0:2183", config.ToClientConfigString());
    }

    [Theory]
    [InlineData("server.1=h:2888:3888:leader;2181", "unknown role")]
    [InlineData("server.x=h:2888:3888", "bad server id")]
    [InlineData("server.1=h:2888", "want host:quorumPort:electionPort")]
    [InlineData("server.1=h:2888:3888;h:99999", "bad client address")]
    [InlineData("version=zz", "bad version")]
    [InlineData("nonsense", "not key=value")]
    public void Refuses_bad_lines_with_the_reason(string text, string reason)
    {
        Assert.False(QuorumConfig.TryParse(text, out _, out var error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void An_empty_config_has_no_servers()
    {
        var config = QuorumConfig.Parse("");
        Assert.Empty(config.Servers);
        Assert.Equal(0, config.Version);
    }
}
