using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.Remote;
using Akka.Remote.Transport;
using Coordination.Server;
using Coordination.Server.Pipeline;

namespace Coordination.TestKit;

/// <summary>Settings of an in-process <see cref="TestEnsemble"/> (or standalone <see cref="TestEnsemble.StartStandaloneAsync"/>).</summary>
public sealed record TestEnsembleOptions
{
    /// <summary>Zab's tick; followers notice a dead leader after <see cref="SyncLimitTicks"/> of them.</summary>
    public int ZabTickMs { get; init; } = 100;
    public int SyncLimitTicks { get; init; } = 10;
    public int InitLimitTicks { get; init; } = 30;
    /// <summary>The session tick (ZooKeeper's tickTime): session timeouts are negotiated within 2..20 of them.</summary>
    public int TickTimeMs { get; init; } = 500;
    /// <summary>Snapshot after this many txns (small values exercise SNAP synchronisation and log purging).</summary>
    public long SnapshotEveryTxns { get; init; } = 100_000;
    /// <summary>Fsync each journal write. Off by default in tests: a process crash cannot lose what was written.</summary>
    public bool ForceSync { get; init; }
    /// <summary>More HOCON for every member, e.g. metrics or admin settings.</summary>
    public string? ExtraHocon { get; init; }
    /// <summary>More HOCON for one member, by server id (after <see cref="ExtraHocon"/>): e.g. a longer sync limit on one.</summary>
    public Func<long, string>? MemberHocon { get; init; }
    /// <summary>Where data dirs go; a fresh temporary directory (deleted on dispose) when null.</summary>
    public string? Root { get; init; }
}

/// <summary>
/// An ensemble of Coordination servers inside the calling process, in the spirit of Curator's TestingCluster: every
/// member is a real server (its own ActorSystem, client port and journal on disk) on free loopback ports,
/// talking Zab over real Akka.Remote with the throttler adapter, so that tests can crash and restart members and
/// cut or heal the network between them. Clients connect over real TCP with <see cref="ConnectString"/>.
/// </summary>
public sealed class TestEnsemble : IAsyncDisposable
{
    /// <summary>One member: its fixed ports and data dir survive restarts.</summary>
    public sealed class Member
    {
        internal Member(long id, bool observer, int clientPort, int remotingPort, string dataDir)
        {
            Id = id;
            IsObserver = observer;
            ClientPort = clientPort;
            RemotingPort = remotingPort;
            DataDir = dataDir;
        }

        public long Id { get; }
        public bool IsObserver { get; }
        public int ClientPort { get; }
        public int RemotingPort { get; }
        public string DataDir { get; }
        public string ConnectString => $"127.0.0.1:{ClientPort}";
        /// <summary>The member's host, which restarts it in-process after a quarantine; null while the member is down.</summary>
        public CoordinationNode? Node { get; internal set; }
        /// <summary>The running server, or null while the member is down (or between in-process restarts).</summary>
        public CoordinationServer? Server => Node?.Current;
        public bool IsRunning => Server is not null;
        /// <summary>leader, follower, observer, looking; or down.</summary>
        public string Mode => Server?.Mode ?? "down";
        public override string ToString() =>
            $"server {Id} ({Mode}{(Mode == "looking" && Server?.Ensemble is { } e ? ": " + e.Phase : "")}) on {ConnectString}";
    }

    private readonly TestEnsembleOptions _options;
    private readonly string _root;
    private readonly bool _ownsRoot;
    private readonly List<Member> _members = new();

    /// <summary>The members' shared secret (coordination.ensemble.auth), new for every ensemble.</summary>
    public string Secret { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    private readonly bool _standalone;

    private TestEnsemble(TestEnsembleOptions options, bool standalone = false)
    {
        _standalone = standalone;
        _options = options;
        _ownsRoot = options.Root is null;
        _root = options.Root ?? Path.Combine(Path.GetTempPath(), "coord-ensemble-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_root);
    }

    public IReadOnlyList<Member> Members => _members;
    public Member this[long id] => _members.First(m => m.Id == id);
    /// <summary>Every member's client port, as a client's multi-host connect string.</summary>
    public string ConnectString => string.Join(',', _members.Select(m => m.ConnectString));

    /// <summary>Starts <paramref name="voters"/> voting members (and <paramref name="observers"/> observers), ids 1..n,
    /// and waits until a leader serves with every member synchronised.</summary>
    public static async Task<TestEnsemble> StartAsync(int voters = 3, int observers = 0, TestEnsembleOptions? options = null, TimeSpan? timeout = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnFreePortsAsync(voters, observers, options, timeout).ConfigureAwait(false);
            }
            // A port picked as free can be taken by another process before the member binds it: pick again.
            catch (Exception e) when (attempt < 3 && IsBindFailure(e))
            {
            }
        }
    }

    /// <summary>One standalone server (Curator's TestingServer): the same handle, with kill, restart and expire.
    /// It has no peers, so partitions do not apply.</summary>
    public static async Task<TestEnsemble> StartStandaloneAsync(TestEnsembleOptions? options = null, TimeSpan? timeout = null)
    {
        var server = new TestEnsemble(options ?? new TestEnsembleOptions(), standalone: true);
        try
        {
            server._members.Add(new Member(1, false, ServerProcess.FreeLoopbackPort(), 0, Path.Combine(server._root, "node1")));
            await Task.Run(() => server.Start(server._members[0])).ConfigureAwait(false);
            await server.WaitAllServingAsync(timeout ?? TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            await server.WaitFirstTxnAsync(timeout ?? TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static bool IsBindFailure(Exception e) =>
        e is RemoteTransportException { Message: var m } && m.Contains("Failed to bind", StringComparison.Ordinal)
        || e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }
        || (e is AggregateException a && a.InnerExceptions.Any(IsBindFailure))
        || (e.InnerException is { } inner && IsBindFailure(inner));

    private static async Task<TestEnsemble> StartOnFreePortsAsync(int voters, int observers, TestEnsembleOptions? options, TimeSpan? timeout)
    {
        var ensemble = new TestEnsemble(options ?? new TestEnsembleOptions());
        try
        {
            for (var i = 1; i <= voters + observers; i++)
                ensemble._members.Add(new Member(i, i > voters, ServerProcess.FreeLoopbackPort(), ServerProcess.FreeLoopbackPort(), Path.Combine(ensemble._root, $"node{i}")));
            await Task.WhenAll(ensemble._members.Select(m => Task.Run(() => ensemble.Start(m)))).ConfigureAwait(false);
            await ensemble.WaitAllServingAsync(timeout ?? TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            await ensemble.WaitFirstTxnAsync(timeout ?? TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            return ensemble;
        }
        catch
        {
            await ensemble.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Akka's throttler adapter (the fault injection here) does not pass a closed connection up: it relies on
    /// heartbeats (ThrottleTransportAdapter: "not notifying the upstream handler is intentional"). A link closed under
    /// it, e.g. to a member stopped and restarted while its Disassociate did not get through, stays silently dead
    /// until the transport failure detector gives up, 4 s + 120 s by default (15 s here): members could not complete a Zab
    /// exchange for two minutes (LinearizabilityUnderFaults, "did not settle"). Members without the adapter (every
    /// deployment) see a closed connection at once, and a silent one after coordination.ensemble.member-link-timeout.
    /// </summary>
    private const string ThrottledLinkPause = "remote.transport-failure-detector.acceptable-heartbeat-pause = 15s";

    /// <summary>The members' Akka log level: WARNING, or COORDINATION_MEMBER_LOGLEVEL (e.g. INFO, to see remoting and Zab roles when a fault test fails).</summary>
    private static string MemberLogLevel => Environment.GetEnvironmentVariable("COORDINATION_MEMBER_LOGLEVEL") is { Length: > 0 } level ? level : "WARNING";

    /// <summary>The HOCON a member starts with (the same as a deployment's nodeN.conf, on test ports).</summary>
    public string ConfigOf(Member member)
    {
        string List(bool observers) => _standalone ? "" : string.Join("\n", _members.Where(m => m.IsObserver == observers).Select(m => $"      {m.Id} = \"127.0.0.1:{m.RemotingPort}\""));
        return $$"""
            coordination {
              server-id = {{member.Id}}
              client-port = {{member.ClientPort}}
              data-dir = "{{member.DataDir.Replace("\\", "\\\\")}}"
              tick-time = {{_options.TickTimeMs}}ms
              four-letter-words = ["*"]
              ensemble {
                voters {
            {{List(false)}}
                }
                observers {
            {{List(true)}}
                }
                tick = {{_options.ZabTickMs}}ms
                sync-limit = {{_options.SyncLimitTicks}}
                init-limit = {{_options.InitLimitTicks}}
                election-finalize-wait = {{Math.Max(50, _options.ZabTickMs)}}ms
                auth.secret = "{{Secret}}"
              }
              persistence {
                force-sync = {{(_options.ForceSync ? "on" : "off")}}
                snapshot-every-txns = {{_options.SnapshotEveryTxns}}
              }
            }
            akka {
              loglevel = {{MemberLogLevel}}
              stdout-loglevel = {{MemberLogLevel}}
              {{(_standalone ? "" : "remote.coordination-socket.applied-adapters = [\"trttl\"]")}}
              {{(_standalone ? "" : ThrottledLinkPause)}}
              coordinated-shutdown.run-by-actor-system-terminate = off
            }
            {{_options.ExtraHocon}}
            {{_options.MemberHocon?.Invoke(member.Id)}}
            """;
    }

    private void Start(Member member)
    {
        Directory.CreateDirectory(member.DataDir);
        member.Node = CoordinationNode.Start(ConfigurationFactory.ParseString(ConfigOf(member)));
    }

    /// <summary>Crashes a member: its ActorSystem and client port go away at once (what it journalled stays on disk).</summary>
    public async Task KillAsync(long id)
    {
        var member = this[id];
        if (member.Node is not { } node) return;
        member.Node = null;
        await node.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Starts a member that was killed, on its data dir and ports.</summary>
    public async Task RestartAsync(long id)
    {
        var member = this[id];
        if (member.Node is not null) await KillAsync(id).ConfigureAwait(false);
        // The remoting port may linger briefly after the old system's shutdown: retry a few times.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Task.Run(() => Start(member)).ConfigureAwait(false);
                return;
            }
            catch (Exception) when (attempt < 10)
            {
                await Task.Delay(300).ConfigureAwait(false);
            }
        }
    }

    private static RemoteTransport Transport(ActorSystem system) => ((IRemoteActorRefProvider)((ExtendedActorSystem)system).Provider).Transport;
    private static Address AddressOf(ActorSystem system) => ((ExtendedActorSystem)system).Provider.DefaultAddress;

    /// <summary>Cuts (or with <paramref name="heal"/>, restores) the network between two running members, both ways.</summary>
    public async Task SetLinkAsync(long a, long b, bool heal)
    {
        if (this[a].Server is not { } sa || this[b].Server is not { } sb) return;
        ThrottleMode mode = heal ? Unthrottled.Instance : Blackhole.Instance;
        await Transport(sa.System).ManagementCommand(new SetThrottle(AddressOf(sb.System), ThrottleTransportAdapter.Direction.Both, mode)).ConfigureAwait(false);
        await Transport(sb.System).ManagementCommand(new SetThrottle(AddressOf(sa.System), ThrottleTransportAdapter.Direction.Both, mode)).ConfigureAwait(false);
    }

    /// <summary>Isolates a member from every other member (its clients can still reach it).</summary>
    public async Task PartitionAsync(long id)
    {
        foreach (var other in _members.Where(m => m.Id != id)) await SetLinkAsync(id, other.Id, heal: false).ConfigureAwait(false);
    }

    /// <summary>Heals every cut link.</summary>
    public async Task HealAllAsync()
    {
        foreach (var a in _members)
        foreach (var b in _members.Where(b => b.Id > a.Id))
            await SetLinkAsync(a.Id, b.Id, heal: true).ConfigureAwait(false);
    }

    /// <summary>The member that leads and serves, or null.</summary>
    public Member? Leader => _members.FirstOrDefault(m => m.Mode is "leader" or "standalone");

    public async Task<Member> WaitForLeaderAsync(TimeSpan timeout, long notId = -1)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (Leader is { } leader && leader.Id != notId) return leader;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"no leader within {timeout}: {string.Join(", ", _members)}");
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every running member serves (one leader, the rest following or observing).</summary>
    public async Task WaitAllServingAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var running = _members.Where(m => m.IsRunning).ToList();
            if (running.Count(m => m.Mode is "leader" or "standalone") == 1 && running.All(m => m.Server!.Ensemble?.Serving ?? true)) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"the ensemble did not settle within {timeout}: {string.Join(", ", _members)}");
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A fresh deployment's first leader commits the session secret before anything else (ReplicaActor's
    /// ProposeSessionSecretIfNone): until every member has applied it, a test that compares members' zxids before
    /// and after something could see that txn land in between. Started ensembles are returned after it.
    /// </summary>
    private async Task WaitFirstTxnAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var converged = await WaitConvergedAsync(timeout).ConfigureAwait(false);
            if (converged.Values.All(h => h.Zxid > 0)) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the first leader's session secret was not applied by every member");
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>The member's applied zxid and tree digest (<c>hash</c> four-letter word).</summary>
    public async Task<(long Zxid, long Digest)> HashAsync(long id)
    {
        var server = this[id].Server ?? throw new InvalidOperationException($"server {id} is down");
        var stats = await server.Replica.Ask<ReplicaStats>(new GetReplicaStats(false, false, WithDigest: true), TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        return (stats.LastZxid, stats.Digest);
    }

    /// <summary>Waits until every running member has applied the same zxid, then returns their digests by id.</summary>
    public async Task<IReadOnlyDictionary<long, (long Zxid, long Digest)>> WaitConvergedAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var hashes = new Dictionary<long, (long, long)>();
            foreach (var m in _members.Where(m => m.IsRunning)) hashes[m.Id] = await HashAsync(m.Id).ConfigureAwait(false);
            if (hashes.Values.Select(h => h.Item1).Distinct().Count() == 1) return hashes;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("members did not converge: " + string.Join(", ", hashes.Select(h => $"{h.Key}@0x{h.Value.Item1:x}")));
            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    /// <summary>Makes <paramref name="by"/> quarantine <paramref name="victim"/> (as Akka.Remote does after a failed
    /// system-message delivery or a remote death): the victim's node must notice and restart itself in-process.</summary>
    public async Task QuarantineAsync(long by, long victim)
    {
        if (this[by].Server is not { } a || this[victim].Server is not { } b) return;
        Transport(a.System).Quarantine(AddressOf(b.System), AddressUidExtension.Uid(b.System));
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>Expires a session now, as its timeout would (the leader proposes the closeSession).</summary>
    public async Task ExpireSessionAsync(long sessionId)
    {
        var leader = await WaitForLeaderAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        leader.Server!.Replica.Tell(new ExpireSession(sessionId));
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Where(m => m.Node is not null).Select(m => KillAsync(m.Id))).ConfigureAwait(false);
        if (_ownsRoot)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
