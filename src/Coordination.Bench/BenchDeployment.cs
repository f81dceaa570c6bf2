using System.Net.Security;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// A server under test in side-by-side: one standalone process or a 3-node ensemble (<see cref="EnsembleProcesses"/>),
/// ours or Apache ZooKeeper, with the same durability. The bench sees its client addresses and the pids whose CPU
/// and RSS are summed.
/// </summary>
internal sealed class BenchDeployment : IAsyncDisposable
{
    private readonly ServerProcess? _server;
    private readonly EnsembleProcesses? _ensemble;

    private BenchDeployment(ServerProcess? server, EnsembleProcesses? ensemble, int securePort = -1, BenchTls? tls = null)
    {
        _server = server;
        _ensemble = ensemble;
        if (server is not null && securePort > 0 && tls is not null)
        {
            SecureConnect = [$"{server.Host}:{securePort}"];
            ClientTls = tls.Ca.ClientOptions(tls.Client);
        }
    }

    /// <summary>The secure client port (side-by-side --tls), empty without one.</summary>
    public IReadOnlyList<string> SecureConnect { get; } = [];
    /// <summary>What a bench client needs to speak TLS to <see cref="SecureConnect"/> (a client certificate: client-auth need).</summary>
    public SslClientAuthenticationOptions? ClientTls { get; }

    public IReadOnlyList<string> Connect => _server is not null ? [_server.ConnectString] : _ensemble!.Members.Select(m => m.ConnectString).ToList();
    public IReadOnlyList<int> Pids => _server is not null ? [_server.Pid] : _ensemble!.Pids;
    public IReadOnlyList<string> DataDirs => _server is not null ? [_server.DataDir] : _ensemble!.Members.Select(m => m.DataDir).ToList();

    /// <param name="target">ours or apache</param>
    /// <param name="dataDir">where the data goes (kept by the caller); a temporary directory when null</param>
    public static async Task<BenchDeployment> StartAsync(string target, int nodes, bool fsync, string? oursHocon,
        IReadOnlyList<string> apacheCfg, string? dataDir, CancellationToken ct, BenchTls? tls = null,
        IReadOnlyList<string>? launchPrefix = null)
    {
        var kind = ServerProcess.ParseKind(target);
        var oursExtra = $"coordination.client-address = \"127.0.0.1\"\ncoordination.persistence.force-sync = {(fsync ? "on" : "off")}\n{oursHocon}";
        if (nodes == 1)
        {
            var securePort = tls is null ? -1 : ServerProcess.FreeLoopbackPort();
            var options = kind == ServerKind.Ours
                ? new ServerProcessOptions { DataDir = dataDir, ExtraHocon = oursExtra + (tls is null ? "" : tls.OursHocon(securePort)), LaunchPrefix = launchPrefix ?? [] }
                : new ServerProcessOptions
                {
                    DataDir = dataDir,
                    ExtraZooCfg = [$"forceSync={(fsync ? "yes" : "no")}", .. apacheCfg, .. tls is null ? [] : (string[])[$"secureClientPort={securePort}"]],
                    JavaOptions = tls?.ApacheJavaOptions ?? [],
                    LaunchPrefix = launchPrefix ?? [],
                };
            return new BenchDeployment(await ServerProcess.StartAsync(kind, options, ct).ConfigureAwait(false), null, securePort, tls);
        }
        if (tls is not null) throw new ArgumentException("--tls is for standalone servers (--nodes 1)");
        // Production timing, not the tests' fast one: ours as reference.conf (tick-time 2 s, Zab tick 100 ms, sync-limit
        // 20, init-limit 50), ZooKeeper as its sample zoo.cfg (tickTime 2000, initLimit 10, syncLimit 5); ZooKeeper's
        // JVMs at their default heap, as standalone.
        var ensemble = await EnsembleProcesses.StartAsync(kind, nodes, new EnsembleProcessesOptions
        {
            TickTimeMs = 2000, ZabTickMs = 100, SyncLimitTicks = 20, InitLimitTicks = 50,
            ApacheInitLimit = 10, ApacheSyncLimit = 5,
            ForceSync = fsync,
            ExtraHocon = $"coordination.client-address = \"127.0.0.1\"\n{oursHocon}",
            ExtraZooCfg = apacheCfg,
            JavaOptions = [],
            Root = dataDir,
        }, ct).ConfigureAwait(false);
        return new BenchDeployment(null, ensemble);
    }

    /// <summary>
    /// The client address of the member a 1x1 row runs on: the leader, or the first member that is not the leader
    /// (issue 23 asks for both); null for a standalone server, or when no leader is found.
    /// </summary>
    public async Task<string?> MemberConnectAsync(string placement, CancellationToken ct)
    {
        if (_ensemble is null || await _ensemble.LeaderAsync(ct).ConfigureAwait(false) is not { } leader) return null;
        return placement == Leader ? leader.ConnectString : _ensemble.Members.First(m => m.Id != leader.Id).ConnectString;
    }

    public const string Leader = "leader";
    public const string Follower = "follower";

    /// <summary>Stops every process (SIGTERM, then SIGKILL after <paramref name="grace"/>); the data stays.</summary>
    public Task StopAsync(TimeSpan grace) => _server is not null ? _server.StopAsync(grace) : _ensemble!.StopAllAsync(grace);

    /// <summary>Starts every process again on its ports and data and waits until it serves (an ensemble: all members, one leader).</summary>
    public Task StartAgainAsync(CancellationToken ct) => _server is not null ? _server.RestartAsync(ct) : _ensemble!.RestartAllAsync(ct);

    /// <summary>The smallest zk_znode_count (mntr) over the members: the tree every member shows.</summary>
    public async Task<long> ZnodeCountAsync(CancellationToken ct)
    {
        var counts = await Task.WhenAll(Connect.Select(async hostPort =>
        {
            var (host, port) = WireClient.ParseHostPort(hostPort);
            var mntr = await FourLetterWord.MntrAsync(host, port, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            return (long)(mntr.Number("zk_znode_count") ?? -1);
        })).ConfigureAwait(false);
        return counts.Min();
    }

    public override string ToString() => _server?.ToString() ?? $"{_ensemble!.Kind} 3-node ensemble pids {string.Join(",", Pids)} on {_ensemble.ConnectString}";

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync().ConfigureAwait(false);
        if (_ensemble is not null) await _ensemble.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>
/// The certificates of side-by-side --tls, made for the run: both servers get the same server certificate, trust store
/// and client-auth need (ZooKeeper's default), and the bench presents a client certificate.
/// </summary>
internal sealed class BenchTls
{
    public TestCertificates Ca { get; }
    public IssuedCertificate Server { get; }
    public IssuedCertificate Client { get; }

    public BenchTls(string dir)
    {
        Ca = TestCertificates.Create(dir);
        Server = Ca.Issue("server", "CN=localhost, O=Coordination Bench");
        Client = Ca.Issue("client", "CN=bench, O=Coordination Bench");
    }

    public string OursHocon(int securePort) => $$"""

        coordination {
          secure-client-port = {{securePort}}
          client-ssl { key-store-location = "{{Server.CombinedPem}}", trust-store-location = "{{Ca.CaPem}}", client-auth = need }
        }
        """;

    /// <summary>Our ensemble's member TLS (side-by-side --member-tls): every member presents the server certificate
    /// (it names 127.0.0.1, the members' host) and trusts the CA; no member secret, TLS authenticates.</summary>
    public string MemberHocon => $$"""

        coordination.ensemble.auth.secret = ""
        coordination.ensemble.ssl { enabled = on, key-store-location = "{{Server.CombinedPem}}", trust-store-location = "{{Ca.CaPem}}" }
        """;

    /// <summary>ZooKeeper's TLS needs its Netty connection factory (which then serves the plain port too).</summary>
    public IReadOnlyList<string> ApacheJavaOptions =>
    [
        "-Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        $"-Dzookeeper.ssl.keyStore.location={Server.CombinedPem}", "-Dzookeeper.ssl.keyStore.type=PEM",
        $"-Dzookeeper.ssl.trustStore.location={Ca.CaPem}", "-Dzookeeper.ssl.trustStore.type=PEM",
        "-Dzookeeper.ssl.clientAuth=need",
    ];
}
