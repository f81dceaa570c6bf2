using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Coordination.Akka.Hosting;
using Coordination.Client.Actors;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EmbeddedCluster;

/// <summary>
/// One node: <c>node --id N --members M --remoting P1,..,Pn --member-ports Q1,..,Qm --client-ports C1,..,Cm
/// --data-dir DIR [--entities K] [--stop-on-stdin-close]</c>. Nodes 1..M embed a member; the first M nodes are the
/// seed nodes.
/// </summary>
public sealed record NodeOptions(int Id, int Members, int[] Remoting, int[] MemberPorts, int[] ClientPorts, string DataDir, int Entities, bool StopOnStdinClose)
{
    public bool IsMember => Id <= Members;

    public static NodeOptions Parse(string[] args)
    {
        string Arg(string name, string? fallback = null)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback ?? throw new ArgumentException($"{name} is required");
        }
        static int[] Ports(string list) => list.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        return new NodeOptions(int.Parse(Arg("--id"), CultureInfo.InvariantCulture), int.Parse(Arg("--members", "3"), CultureInfo.InvariantCulture),
            Ports(Arg("--remoting")), Ports(Arg("--member-ports")), Ports(Arg("--client-ports")), Arg("--data-dir"),
            int.Parse(Arg("--entities", "20"), CultureInfo.InvariantCulture), args.Contains("--stop-on-stdin-close"));
    }

    /// <summary>The arguments that start this node (the launcher's child processes, and what it prints for a manual run).</summary>
    public IEnumerable<string> ToArgs() =>
    [
        "node", "--id", $"{Id}", "--members", $"{Members}", "--remoting", string.Join(',', Remoting), "--member-ports", string.Join(',', MemberPorts),
        "--client-ports", string.Join(',', ClientPorts), "--data-dir", DataDir, "--entities", $"{Entities}", .. StopOnStdinClose ? ["--stop-on-stdin-close"] : Array.Empty<string>(),
    ];
}

public static class ClusterNode
{
    public const string SystemName = "orders";
    private const string Role = "coordination";

    public static async Task<int> RunAsync(NodeOptions o)
    {
        var lease = new CoordinationLeaseOption
        {
            // A member's lease reaches its own member in process (this connect string is then unused); the others use
            // the members' client ports.
            ConnectString = o.IsMember ? null : string.Join(',', o.ClientPorts.Select(p => $"127.0.0.1:{p}")),
            SessionTimeout = TimeSpan.FromSeconds(5),
        };
        var host = new HostBuilder()
            .UseConsoleLifetime()
            .ConfigureServices(services => services.AddAkka(SystemName, akka =>
            {
                akka.AddHocon(Timings, HoconAddMode.Prepend)
                    .WithRemoting(new RemoteOptions { HostName = "127.0.0.1", Port = o.Remoting[o.Id - 1] })
                    .WithClustering(new ClusterOptions
                    {
                        Roles = [o.IsMember ? Role : "app"],
                        SeedNodes = [.. o.Remoting.Take(o.Members).Select(p => $"akka.tcp://{SystemName}@127.0.0.1:{p}")],
                        SplitBrainResolver = new LeaseMajorityOption { LeaseImplementation = lease },
                    });
                if (o.IsMember) akka.WithCoordinationServer(s => s.Config = MemberConfig(o));
                akka.WithCoordinationLease(lease)
                    .WithSingleton<Scheduler>("scheduler", Props.Create(() => new Scheduler(o.Id)),
                        new ClusterSingletonOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(500) }, createProxyToo: false)
                    .WithShardRegion<Account>("accounts", id => Props.Create(() => new Account(id, o.Id)), new AccountMessages(),
                        new ShardOptions { LeaseImplementation = lease, LeaseRetryInterval = TimeSpan.FromMilliseconds(500), StateStoreMode = StateStoreMode.DData })
                    .WithActors((system, registry) =>
                    {
                        global::Akka.Cluster.Cluster.Get(system).RegisterOnMemberUp(() => Event("NODE-UP", $"node={o.Id} member={(o.IsMember ? "true" : "false")}"));
                        system.ActorOf(Props.Create(() => new Traffic(registry.Get<Account>(), o.Entities)), "traffic");
                        if (o.IsMember) _ = ReportEnsembleAsync(system, o.Id);
                    });
            }))
            .Build();
        await host.StartAsync();
        var system = host.Services.GetRequiredService<ActorSystem>();
        var stdinClosed = o.StopOnStdinClose ? Task.Run(() => { while (Console.In.ReadLine() is not null) { } }) : Task.Delay(Timeout.Infinite);
        // Ctrl+C, stdin closed (the launcher's stop), or the system's end (SBR downed this node).
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        await Task.WhenAny(stdinClosed, system.WhenTerminated, Task.Delay(Timeout.Infinite, lifetime.ApplicationStopping));
        await host.StopAsync(TimeSpan.FromSeconds(30));
        Event("NODE-EXIT", $"node={o.Id}");
        return 0;
    }

    /// <summary>Tight enough for a demo on one machine: a dead node is noticed in seconds and downed 5 s later.</summary>
    private const string Timings = """
        akka.loglevel = WARNING
        akka.cluster.failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 3s }
        akka.cluster.split-brain-resolver.stable-after = 5s
        """;

    /// <summary>
    /// The member's own section: its id and data dir, its member endpoint (the member transport, beside Akka.Remote's
    /// port) and a client port for the nodes without a member. No voter list: the first 3 role members to come Up
    /// bootstrap the voters (all of them when there are fewer), later ones join as observers.
    /// </summary>
    private static Config MemberConfig(NodeOptions o) => ConfigurationFactory.ParseString($$"""
        coordination {
          server-id = {{o.Id}}
          data-dir = "{{Path.Combine(o.DataDir, $"node{o.Id}").Replace("\\", "\\\\")}}"
          client-port = {{o.ClientPorts[o.Id - 1]}}
          client-address = "127.0.0.1"
          tick-time = 500ms
          ensemble {
            cluster { enabled = on, member-endpoint = "127.0.0.1:{{o.MemberPorts[o.Id - 1]}}", initial-voters = {{Math.Min(3, o.Members)}} }
            # A real deployment reads it from a file only the application's account can read (auth.secret-file).
            auth.secret = "embedded-cluster-sample-secret"
          }
        }
        """);

    /// <summary>The local member's Zab mode, once it serves (srvr on an in-process connection).</summary>
    private static async Task ReportEnsembleAsync(ActorSystem system, int id)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !system.WhenTerminated.IsCompleted)
        {
            try
            {
                await using var stream = await LocalCoordinationMember.For(system).Connector!(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                await stream.WriteAsync("srvr"u8.ToArray());
                await stream.FlushAsync();
                using var reader = new StreamReader(stream, Encoding.UTF8);
                var mode = (await reader.ReadToEndAsync()).Split('\n').FirstOrDefault(l => l.StartsWith("Mode: ", StringComparison.Ordinal))?[6..].Trim();
                if (mode is "leader" or "follower" or "observer")
                {
                    Event("ENSEMBLE", $"node={id} mode={mode}");
                    return;
                }
            }
            catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or OperationCanceledException) { }
            await Task.Delay(500);
        }
    }

    /// <summary>A machine-readable line, stamped with Unix milliseconds (one clock for all the processes of a machine).</summary>
    public static void Event(string kind, string fields) =>
        Console.Out.WriteLine($"{kind} {fields} at={DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}");
}

/// <summary>The singleton: it runs at most once in the cluster, on the oldest node, while it holds the lease.</summary>
public sealed class Scheduler : ReceiveActor
{
    private readonly int _node;
    public Scheduler(int node) => _node = node;
    protected override void PreStart() => ClusterNode.Event("SINGLETON-START", $"node={_node}");
    protected override void PostStop() => ClusterNode.Event("SINGLETON-STOP", $"node={_node}");
}

public sealed record Deposit(string AccountId, int Amount);
public sealed record Balance(string AccountId, int Amount, int Node);

public sealed class AccountMessages() : HashCodeMessageExtractor(10)
{
    public override string EntityId(object message) => ((Deposit)message).AccountId;
}

/// <summary>A sharded entity: its shard holds the lease while it runs, so it never runs on two nodes at once.</summary>
public sealed class Account : ReceiveActor
{
    private readonly string _id;
    private readonly int _node;
    private int _balance;

    public Account(string id, int node)
    {
        (_id, _node) = (id, node);
        Receive<Deposit>(d =>
        {
            _balance += d.Amount;
            Sender.Tell(new Balance(_id, _balance, _node));
        });
    }

    protected override void PreStart() => ClusterNode.Event("ENTITY-START", $"id={_id} node={_node}");
    protected override void PostStop() => ClusterNode.Event("ENTITY-STOP", $"id={_id} node={_node}");
}

/// <summary>Deposits into every account in turn through this node's region, a few per second.</summary>
public sealed class Traffic : ReceiveActor, IWithTimers
{
    private sealed class Tick { public static readonly Tick Instance = new(); }
    private int _next;

    public ITimerScheduler Timers { get; set; } = null!;

    public Traffic(IActorRef region, int entities)
    {
        Receive<Tick>(_ => region.Tell(new Deposit($"account-{_next++ % entities}", 1)));
        Receive<Balance>(_ => { });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(100));
}
