using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Event;
using Coordination.Client;
using Coordination.Core.Zab;
using Coordination.Server;
using Coordination.Server.Ensemble;
using static Akka.Cluster.ClusterEvent;

namespace Coordination.Akka.Hosting.Cluster;

/// <summary>
/// The cluster side of an embedded member whose membership comes from Akka.Cluster (docs/architecture.md §10). It
/// follows the role members through cluster events and, in phases (<c>Become</c>):
/// <list type="bullet">
/// <item><b>bootstrapping</b>: with a committed configuration in the data dir it starts the member on it at once;
/// otherwise it waits until <see cref="ClusterMembershipSettings.InitialVoters"/> role members are Up and starts the
/// member as one of the first voters (writing that configuration to its data dir first) or as a joiner;</item>
/// <item><b>starting</b>: recovery runs off the actor;</item>
/// <item><b>managing</b>: while its member leads, it compares the cluster with the committed configuration on each
/// event and every <see cref="ClusterMembershipSettings.CheckInterval"/>, and proposes the reconfig
/// <see cref="ClusterMembershipPolicy.Plan"/> asks for through an in-process session of the member's own host,
/// against the version it read. Zab commits it or refuses it; nothing here decides on an event alone.</item>
/// </list>
/// </summary>
internal sealed class ClusterMembershipActor : ReceiveActor, IWithTimers
{
    public const string Name = "coordination-membership";

    private sealed class Check { public static readonly Check Instance = new(); }
    private sealed record Started(CoordinationServer Server);
    private sealed record ClientReady(CoordinationClient Client);
    private sealed record StartFailed(Exception Cause);
    private sealed record ConfigRead(DynamicConfig Config);
    private sealed record Reconfigured(ReconfigPlan Plan, long Version);
    private sealed record CheckFailed(string What, Exception Cause);

    private readonly Config _member;
    private readonly ClusterMembershipSettings _settings;
    private readonly TaskCompletionSource<CoordinationServer> _started;
    private readonly string _dataDir;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly global::Akka.Cluster.Cluster _cluster = global::Akka.Cluster.Cluster.Get(Context.System);
    /// <summary>The role members by id, each its latest incarnation as the last event showed it, and its health since when.</summary>
    private readonly Dictionary<long, (Member Node, RoleMemberHealth Health, long SinceMs)> _members = new();
    private readonly long _watchingSinceMs = Environment.TickCount64;
    private CoordinationServer? _server;
    private CoordinationClient? _client;
    private bool _checking;

    public ITimerScheduler Timers { get; set; } = null!;

    public ClusterMembershipActor(Config member, ClusterMembershipSettings settings, TaskCompletionSource<CoordinationServer> started)
    {
        _member = member;
        _settings = settings;
        _started = started;
        _dataDir = member.WithFallback(ServerSettings.Reference).GetString("coordination.data-dir");
        Bootstrapping();
    }

    public static Props Props(Config member, ClusterMembershipSettings settings, TaskCompletionSource<CoordinationServer> started) =>
        global::Akka.Actor.Props.Create(() => new ClusterMembershipActor(member, settings, started));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, InitialStateAsEvents, typeof(IMemberEvent), typeof(IReachabilityEvent));
        // A restart uses what the ensemble committed (written by the member on every activation), not the cluster view.
        if (DynamicConfigFile.Load(_dataDir) is { } committed)
        {
            var self = committed.Members.Any(m => m.Id == _settings.ServerId) ? committed
                : ClusterMembershipPolicy.JoinerConfiguration(committed, _settings.ServerId, _settings.MemberEndpoint);
            Start(self, persist: false, $"the committed configuration in {_dataDir} (version 0x{committed.Version:x})");
        }
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        _ = _client?.DisposeAsync().AsTask();
        _started.TrySetCanceled();
    }

    private void Bootstrapping()
    {
        ReceiveMemberEvents(() =>
        {
            if (ClusterMembershipPolicy.InitialConfiguration(View(), _settings.InitialVoters) is not { } initial) return;
            if (initial.Members.Any(m => m.Id == _settings.ServerId))
                Start(initial, persist: true, $"one of the first {_settings.InitialVoters} role members Up: {initial.ToString().Replace('\n', ' ')}");
            else
                Start(ClusterMembershipPolicy.JoinerConfiguration(initial, _settings.ServerId, _settings.MemberEndpoint), persist: false,
                    $"a joiner (the first voters are {string.Join(", ", initial.Voters)}): it serves once a reconfig names it");
        });
    }

    /// <summary>Starts the member off the actor (recovery reads the data dir); the first voters write their
    /// configuration to it first, so that the bootstrap is decided once.</summary>
    private void Start(DynamicConfig members, bool persist, string why)
    {
        _log.Info("Coordination member {0}: starting as {1}", _settings.ServerId, why);
        var system = Context.System;
        var config = ClusterMembershipSettings.WithMembers(_member, members);
        var dataDir = _dataDir;
        Task.Run(() =>
        {
            if (persist)
            {
                Directory.CreateDirectory(dataDir);
                DynamicConfigFile.Save(dataDir, members);
            }
            return new Started(CoordinationServer.StartEmbedded(system, config));
        }).PipeTo(Self, failure: e => new StartFailed(e));
        Become(Starting);
    }

    private void Starting()
    {
        ReceiveMemberEvents(() => { });
        Receive<Started>(s =>
        {
            _server = s.Server;
            _started.TrySetResult(s.Server);
            Timers.StartPeriodicTimer("check", Check.Instance, _settings.CheckInterval);
            Become(Managing);
        });
        Receive<StartFailed>(f =>
        {
            _log.Error(f.Cause, "Coordination member {0} failed to start", _settings.ServerId);
            _started.TrySetException(f.Cause);
            Context.Stop(Self);
        });
    }

    private void Managing()
    {
        ReceiveMemberEvents(CheckNow);
        Receive<Check>(_ => CheckNow());
        Receive<ConfigRead>(read =>
        {
            var plan = ClusterMembershipPolicy.Plan(read.Config, View(), Environment.TickCount64,
                _watchingSinceMs, _settings.UnreachableGrace, _settings.InitialVoters, _settings.PromoteObservers);
            if (plan is null)
            {
                _checking = false;
                return;
            }
            _log.Info("Coordination member {0} (leader): proposing a reconfig from version 0x{1:x}: {2}", _settings.ServerId, read.Config.Version, plan.Reason);
            _client!.ReconfigAsync(plan.Joining, plan.Leaving, read.Config.Version, Bounded())
                .PipeTo(Self, success: r => new Reconfigured(plan, r.Config.Version), failure: e => new CheckFailed("reconfig", e));
        });
        Receive<Reconfigured>(r =>
        {
            _log.Info("Coordination member {0}: reconfig committed, version 0x{1:x} ({2})", _settings.ServerId, r.Version, r.Plan.Reason);
            _checking = false;
        });
        Receive<ClientReady>(r =>
        {
            _client = r.Client;
            _checking = false;
            CheckNow();
        });
        Receive<CheckFailed>(f =>
        {
            // Not leading any more, a reconfig in progress, a stale version, no synced quorum yet: the next check retries.
            // A session that is gone (expired, or the client could not start) is replaced at the next check.
            var cause = f.Cause is AggregateException { InnerException: { } inner } ? inner : f.Cause;
            _log.Info("Coordination member {0}: {1} did not go through: {2}", _settings.ServerId, f.What, cause.Message);
            if (cause is not KeeperException || cause is SessionExpiredException)
            {
                _ = _client?.DisposeAsync().AsTask();
                _client = null;
            }
            _checking = false;
        });
    }

    /// <summary>Only the leader's host proposes (the others' proposals would be forwarded, and race it). Its session is
    /// opened the first time its member leads: a joiner serves no session until a reconfig names it.</summary>
    private void CheckNow()
    {
        if (_checking || _server is not { Mode: "leader" } server) return;
        _checking = true;
        if (_client is null)
        {
            var client = new CoordinationClient(new CoordinationClientOptions
            {
                ConnectString = "in-process:1",
                Connector = _ => ValueTask.FromResult(server.ConnectInProcessAsMemberHost()),
                SessionTimeout = TimeSpan.FromSeconds(10),
            });
            client.StartAsync().ContinueWith(t =>
            {
                if (t.IsCompletedSuccessfully) return (object)new ClientReady(client);
                _ = client.DisposeAsync().AsTask();
                return new CheckFailed("opening the member host's session", t.Exception?.GetBaseException() ?? new TaskCanceledException());
            }, TaskScheduler.Default).PipeTo(Self);
            return;
        }
        _client.GetConfigAsync(ct: Bounded()).PipeTo(Self,
            success: r => DynamicConfig.Parse(r.Config.Text, out var error) is { } config
                ? new ConfigRead(config) : (object)new CheckFailed("reading the configuration", new FormatException(error)),
            failure: e => new CheckFailed("reading the configuration", e));
    }

    /// <summary>A check never stays in flight for good (it would stop every later one).</summary>
    private static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    /// <summary>Cluster events update the view in every phase; <paramref name="then"/> reacts to a change.</summary>
    private void ReceiveMemberEvents(Action then)
    {
        Receive<MemberUp>(e => { if (Track(e.Member, RoleMemberHealth.Up, newIncarnation: true)) then(); });
        Receive<ReachableMember>(e => { if (e.Member.Status == MemberStatus.Up && Track(e.Member, RoleMemberHealth.Up)) then(); });
        Receive<UnreachableMember>(e => { if (Track(e.Member, RoleMemberHealth.Unreachable)) then(); });
        Receive<MemberDowned>(e => { if (Track(e.Member, RoleMemberHealth.Gone)) then(); });
        Receive<MemberLeft>(e => { if (Track(e.Member, RoleMemberHealth.Gone)) then(); });
        Receive<MemberExited>(e => { if (Track(e.Member, RoleMemberHealth.Gone)) then(); });
        Receive<MemberRemoved>(e => { if (Track(e.Member, RoleMemberHealth.Gone)) then(); });
        Receive<IMemberEvent>(_ => { });
        Receive<IReachabilityEvent>(_ => { });
    }

    /// <summary>Records a role member's health; an event about an earlier incarnation of an id is ignored.</summary>
    private bool Track(Member member, RoleMemberHealth health, bool newIncarnation = false)
    {
        if (!member.HasRole(_settings.Role) || ClusterMembershipPolicy.IdentityOf(member.Roles, _settings.Role) is not { } identity) return false;
        if (_members.TryGetValue(identity.Id, out var known))
        {
            if (!known.Node.UniqueAddress.Equals(member.UniqueAddress) && !newIncarnation) return false;
            if (known.Health == health && known.Node.UniqueAddress.Equals(member.UniqueAddress)) return false;
        }
        _members[identity.Id] = (member, health, Environment.TickCount64);
        return true;
    }

    /// <summary>
    /// The view the policy reads: each role member with its rank by cluster age (Akka's age ordering: the order in
    /// which the cluster moved them Up, then address), int.MaxValue for one not Up yet.
    /// </summary>
    private List<RoleMember> View() => _members.OrderBy(kv => kv.Value.Node, Member.AgeOrdering)
        .Select((kv, i) => new RoleMember(kv.Key, ClusterMembershipPolicy.IdentityOf(kv.Value.Node.Roles, _settings.Role)!.Value.Endpoint,
            kv.Value.Node.Status is MemberStatus.Joining or MemberStatus.WeaklyUp ? int.MaxValue : i + 1,
            kv.Value.Node.Address.ToString(), kv.Value.Health, kv.Value.SinceMs))
        .ToList();
}
