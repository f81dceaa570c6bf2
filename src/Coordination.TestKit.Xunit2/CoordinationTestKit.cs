using Akka.Actor;
using Akka.Configuration;
using Coordination.Client;
using Coordination.Client.Actors;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.TestKit;

/// <summary>
/// Base class for an Akka.NET test (Akka.TestKit.Xunit2) that needs the coordination service, in the spirit of
/// Curator's TestingServer/TestingCluster: before each test it starts a standalone server (<c>voters: 1</c>) or a
/// 3/5-member ensemble in the test process on free loopback ports with temporary data dirs, and removes it after.
/// Actor proxies and Task-API clients created here talk to it; <see cref="Ensemble"/> injects faults
/// (kill, restart, partition, heal, expire a session).
/// </summary>
public abstract class CoordinationTestKit : Akka.TestKit.Xunit2.TestKit, IAsyncLifetime
{
    private readonly int _voters;
    private readonly TestEnsembleOptions? _options;
    private readonly List<CoordinationClient> _clients = new();
    private TestEnsemble? _ensemble;

    protected CoordinationTestKit(int voters = 1, TestEnsembleOptions? options = null, Config? config = null, ITestOutputHelper? output = null)
        : base(config ?? Config.Empty, output: output)
    {
        if (voters is not (1 or 3 or 5)) throw new ArgumentOutOfRangeException(nameof(voters), "a standalone server (1) or an ensemble of 3 or 5");
        _voters = voters;
        _options = options;
    }

    /// <summary>The server or ensemble of the running test.</summary>
    protected TestEnsemble Ensemble => _ensemble ?? throw new InvalidOperationException("the service starts in InitializeAsync");

    /// <summary>Every member's client address.</summary>
    protected string ConnectString => Ensemble.ConnectString;

    public virtual async Task InitializeAsync() =>
        _ensemble = _voters == 1 ? await TestEnsemble.StartStandaloneAsync(_options) : await TestEnsemble.StartAsync(_voters, 0, _options);

    public virtual async Task DisposeAsync()
    {
        foreach (var client in _clients) await client.DisposeAsync();
        Shutdown();
        if (_ensemble is not null) await _ensemble.DisposeAsync();
    }

    /// <summary>An actor proxy (the client of <c>system.Coordination()</c>) connected to the service, in this test's ActorSystem.</summary>
    protected IActorRef CreateProxy(TimeSpan? sessionTimeout = null, string? name = null)
    {
        var settings = CoordinationClientSettings.Create(ConfigurationFactory.ParseString($"coordination.client.connect-string = \"{ConnectString}\"")
            .GetConfig("coordination.client")) with { SessionTimeout = sessionTimeout ?? TimeSpan.FromSeconds(10) };
        return name is null ? Sys.ActorOf(CoordinationProxy.Props(settings)) : Sys.ActorOf(CoordinationProxy.Props(settings), name);
    }

    /// <summary>A connected Task-API client; disposed after the test.</summary>
    protected async Task<CoordinationClient> ConnectAsync(TimeSpan? sessionTimeout = null)
    {
        var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = ConnectString,
            SessionTimeout = sessionTimeout ?? TimeSpan.FromSeconds(10),
        });
        _clients.Add(client);
        return client;
    }
}
