using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Coordination.TestKit;

/// <summary>Settings of an <see cref="EnsembleProcesses"/> ensemble.</summary>
public sealed record EnsembleProcessesOptions
{
    /// <summary>Session tick (ZooKeeper's tickTime); for Apache also the quorum tick.</summary>
    public int TickTimeMs { get; init; } = 500;
    /// <summary>Our Zab tick: a dead leader is noticed after <see cref="SyncLimitTicks"/> of them.</summary>
    public int ZabTickMs { get; init; } = 100;
    public int SyncLimitTicks { get; init; } = 10;
    public int InitLimitTicks { get; init; } = 30;
    /// <summary>Apache's initLimit / syncLimit, in <see cref="TickTimeMs"/> ticks.</summary>
    public int ApacheInitLimit { get; init; } = 10;
    public int ApacheSyncLimit { get; init; } = 5;
    /// <summary>Fsync each journal commit (ours) / forceSync (Apache). Off in tests: SIGKILL cannot lose what was written.</summary>
    public bool ForceSync { get; init; }
    /// <summary>More HOCON for each of our members.</summary>
    public string? ExtraHocon { get; init; }
    /// <summary>More HOCON for one of our members (e.g. its own admin port), after <see cref="ExtraHocon"/>.</summary>
    public Func<EnsembleProcesses.Member, string>? MemberHocon { get; init; }
    /// <summary>More zoo.cfg lines for one Apache member, after <see cref="ExtraZooCfg"/>.</summary>
    public Func<EnsembleProcesses.Member, IEnumerable<string>>? MemberZooCfg { get; init; }
    /// <summary>More zoo.cfg lines for each Apache member.</summary>
    public IReadOnlyList<string> ExtraZooCfg { get; init; } = [];
    public IReadOnlyList<string> JavaOptions { get; init; } = ["-Xmx512m"];
    /// <summary>Extra environment variables of every member's process (e.g. a test's fault hooks).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
    /// <summary>How long a member may take to serve after (re)start.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);
    /// <summary>Receives "[sN] line" for every line a member prints.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Where data dirs go; a fresh temporary directory (deleted on dispose) when null.</summary>
    public string? Root { get; init; }
    /// <summary>Where each member runs and how the test reaches it (e.g. a <see cref="NetworkLab"/>); all on 127.0.0.1 when null.</summary>
    public IEnsembleNetwork? Network { get; init; }
}

/// <summary>Places the members of an <see cref="EnsembleProcesses"/> ensemble on a network other than 127.0.0.1.</summary>
public interface IEnsembleNetwork
{
    /// <summary>The address member <paramref name="id"/> binds its client and peer ports to, and is reached at.</summary>
    string AddressOf(long id);
    /// <summary>The command prefix that starts a process where member <paramref name="id"/> lives (e.g. <c>ip netns exec NAME</c>).</summary>
    IReadOnlyList<string> LaunchPrefixOf(long id);
    /// <summary>A TCP socket from which every member's address is reachable (the test's clients and admin checks use it).</summary>
    Socket CreateSocket();
}

/// <summary>
/// An ensemble of real server processes on 127.0.0.1 (or elsewhere, see <see cref="EnsembleProcessesOptions.Network"/>): N of our servers (voters over Akka.Remote, generated HOCON per
/// member, see hocon/ensemble-3) or Apache ZooKeeper 3.8 (QuorumPeerMain, server.N=127.0.0.1:peer:election lines,
/// myid files). Every member keeps its ports and data dir across <see cref="Kill"/> (SIGKILL) and
/// <see cref="RestartAsync"/>. Roles are read with the srvr four-letter word, tree digests with hash (ours).
/// </summary>
public sealed class EnsembleProcesses : IAsyncDisposable
{
    public sealed class Member
    {
        internal Member(long id, string host, int clientPort, int peerPort, int electionPort, string dataDir)
        {
            Id = id;
            Host = host;
            ClientPort = clientPort;
            PeerPort = peerPort;
            ElectionPort = electionPort;
            DataDir = dataDir;
        }

        public long Id { get; }
        /// <summary>The address of its client and peer ports.</summary>
        public string Host { get; }
        public int ClientPort { get; }
        /// <summary>Akka remoting port (ours) or quorum port (Apache).</summary>
        public int PeerPort { get; }
        /// <summary>Leader-election port (Apache only).</summary>
        public int ElectionPort { get; }
        public string DataDir { get; }
        public string ConnectString => $"{Host}:{ClientPort}";
        public ServerProcess? Process { get; internal set; }
        /// <summary>Started and not killed (the process may still be starting).</summary>
        public bool IsRunning { get; internal set; }
        public override string ToString() => $"server {Id} on {ConnectString}{(IsRunning ? "" : " (down)")}";
    }

    private readonly EnsembleProcessesOptions _options;
    private readonly string _root;
    private readonly bool _ownsRoot;
    private readonly List<Member> _members = new();

    /// <summary>The members' shared secret (coordination.ensemble.auth), new for every ensemble.</summary>
    public string Secret { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    public ServerKind Kind { get; }
    /// <summary>Creates the sockets that reach the members (<see cref="EnsembleProcessesOptions.Network"/>); null on 127.0.0.1.</summary>
    public Func<Socket>? SocketFactory => _options.Network is { } network ? network.CreateSocket : null;
    public IReadOnlyList<Member> Members => _members;
    public Member this[long id] => _members.First(m => m.Id == id);
    /// <summary>Every member's client address: a client's multi-host connect string.</summary>
    public string ConnectString => string.Join(',', _members.Select(m => m.ConnectString));

    private EnsembleProcesses(ServerKind kind, EnsembleProcessesOptions options)
    {
        Kind = kind;
        _options = options;
        _ownsRoot = options.Root is null;
        _root = options.Root ?? Path.Combine(Path.GetTempPath(), $"coord-ens-{kind.ToString().ToLowerInvariant()}-{Guid.NewGuid():N}"[..32]);
        Directory.CreateDirectory(_root);
    }

    /// <summary>Starts <paramref name="count"/> members in parallel and waits until one leads and all serve.</summary>
    public static async Task<EnsembleProcesses> StartAsync(ServerKind kind, int count = 3, EnsembleProcessesOptions? options = null, CancellationToken ct = default)
    {
        if (kind == ServerKind.Apache) ServerProcess.FindZooKeeperClasspath(); // fail early when it is not installed
        var ensemble = new EnsembleProcesses(kind, options ?? new EnsembleProcessesOptions());
        try
        {
            var ports = ServerProcess.FreeLoopbackPorts(count * 3);
            for (var i = 1; i <= count; i++)
                ensemble._members.Add(new Member(i, options?.Network?.AddressOf(i) ?? "127.0.0.1", ports[(i - 1) * 3], ports[(i - 1) * 3 + 1], ports[(i - 1) * 3 + 2],
                    Path.Combine(ensemble._root, $"node{i}")));
            await Task.WhenAll(ensemble._members.Select(m => ensemble.StartMemberAsync(m, ct))).ConfigureAwait(false);
            await ensemble.WaitAllServingAsync(ensemble._options.StartTimeout, ct).ConfigureAwait(false);
            return ensemble;
        }
        catch
        {
            await ensemble.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The HOCON of one of our members (appended after ServerProcess's tick-time and four-letter words).</summary>
    public string HoconOf(Member member)
    {
        var voters = string.Join("\n", _members.Select(m => $"      {m.Id} = \"{m.Host}:{m.PeerPort}\""));
        var clients = string.Join("\n", _members.Select(m => $"      {m.Id} = \"{m.Host}:{m.ClientPort}\""));
        return $$"""
            coordination {
              server-id = {{member.Id}}
              client-port = {{member.ClientPort}}
              data-dir = "{{member.DataDir.Replace("\\", "\\\\")}}"
              ensemble {
                voters {
            {{voters}}
                }
                client-addresses {
            {{clients}}
                }
                tick = {{_options.ZabTickMs}}ms
                sync-limit = {{_options.SyncLimitTicks}}
                init-limit = {{_options.InitLimitTicks}}
                election-finalize-wait = {{Math.Max(50, _options.ZabTickMs)}}ms
                auth.secret = "{{Secret}}"
              }
              persistence.force-sync = {{(_options.ForceSync ? "on" : "off")}}
            }
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
            }
            {{_options.ExtraHocon}}
            {{_options.MemberHocon?.Invoke(member)}}
            """;
    }

    /// <summary>The zoo.cfg lines (beyond ServerProcess's own) of an Apache member.</summary>
    public IReadOnlyList<string> ZooCfgOf(Member member)
    {
        var lines = new List<string>
        {
            $"initLimit={_options.ApacheInitLimit}",
            $"syncLimit={_options.ApacheSyncLimit}",
            $"forceSync={(_options.ForceSync ? "yes" : "no")}",
            "standaloneEnabled=false",
            "reconfigEnabled=false",
        };
        // With its client address, as ZooKeeper 3.5+ writes it in /zookeeper/config (a static clientPort alone is left out there).
        lines.AddRange(_members.Select(m => $"server.{m.Id}={m.Host}:{m.PeerPort}:{m.ElectionPort}:participant;{m.Host}:{m.ClientPort}"));
        lines.AddRange(_options.ExtraZooCfg);
        if (_options.MemberZooCfg?.Invoke(member) is { } memberLines) lines.AddRange(memberLines);
        return lines;
    }

    /// <summary>
    /// Starts a new machine: the next id, new ports and an empty data dir, told the members so far plus itself, as
    /// ZooKeeper's joiner is (ours: the ensemble's dynamic configuration, version included, so that it does not start
    /// from an older one than the ensemble's, plus its own line; Apache: zoo.cfg's server lines). With
    /// <paramref name="withCurrentConfig"/> off ours gets only its HOCON, as Apache's joiner gets only zoo.cfg: every
    /// member this ensemble ever started plus itself at version 0, older than the ensemble's configuration, which it
    /// must learn from the members. It serves nothing until a reconfig adds it, so it is ready once it answers ruok.
    /// <paramref name="role"/>: the role its own line gives it in that configuration (ours, with the current one):
    /// "participant", or "observer" (ZooKeeper's other way to start a joiner; the reconfig then makes it a voter).
    /// </summary>
    public async Task<Member> AddMemberAsync(bool withCurrentConfig = true, string role = "participant", CancellationToken ct = default)
    {
        var ports = ServerProcess.FreeLoopbackPorts(3);
        var id = _members.Max(m => m.Id) + 1;
        var member = new Member(id, _options.Network?.AddressOf(id) ?? "127.0.0.1", ports[0], ports[1], ports[2], Path.Combine(_root, $"node{id}"));
        if (Kind == ServerKind.Ours && withCurrentConfig)
        {
            string current;
            await using (var client = await WireClient.ConnectAnyAsync(ConnectString, new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(3) }).ConfigureAwait(false))
                current = System.Text.Encoding.UTF8.GetString(((Coordination.Protocol.GetDataResponse?)await client.GetDataAsync("/zookeeper/config").OkAsync().ConfigureAwait(false))!.Data!);
            var lines = current.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
            var version = lines.Single(l => l.StartsWith("version=", StringComparison.Ordinal))["version=".Length..];
            Directory.CreateDirectory(member.DataDir);
            await File.WriteAllTextAsync(Path.Combine(member.DataDir, $"zoo.cfg.dynamic.{version}"),
                string.Join('\n', lines.Where(l => l.StartsWith("server.", StringComparison.Ordinal))
                    .Append(ServerLine(member, role))
                    .Append($"version={version}")) + "\n", ct).ConfigureAwait(false);
        }
        _members.Add(member);
        await StartMemberAsync(member, ct, answersRuok: true).ConfigureAwait(false);
        return member;
    }

    /// <summary>The member's line as a reconfig adds it (ZooKeeper's "server.N=host:quorumPort:electionPort:role;host:clientPort";
    /// ours has no election port and writes 0).</summary>
    public string ServerLine(Member member, string role = "participant") =>
        $"server.{member.Id}={member.Host}:{member.PeerPort}:{(Kind == ServerKind.Ours ? 0 : member.ElectionPort)}:{role};{member.Host}:{member.ClientPort}";

    private async Task StartMemberAsync(Member member, CancellationToken ct, bool answersRuok = false)
    {
        Directory.CreateDirectory(member.DataDir);
        if (Kind == ServerKind.Apache) await File.WriteAllTextAsync(Path.Combine(member.DataDir, "myid"), member.Id + "\n", ct).ConfigureAwait(false);
        var log = _options.Log;
        member.IsRunning = true;
        member.Process = await ServerProcess.StartAsync(Kind, new ServerProcessOptions
        {
            Port = member.ClientPort,
            Host = member.Host,
            LaunchPrefix = _options.Network?.LaunchPrefixOf(member.Id) ?? [],
            SocketFactory = SocketFactory,
            DataDir = member.DataDir,
            TickTimeMs = _options.TickTimeMs,
            ExtraHocon = Kind == ServerKind.Ours ? HoconOf(member) : null,
            ExtraZooCfg = Kind == ServerKind.Apache ? ZooCfgOf(member) : [],
            JavaOptions = _options.JavaOptions,
            Environment = _options.Environment,
            ApacheMainClass = "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            StartTimeout = _options.StartTimeout,
            ReadyProbe = answersRuok ? probeCt => FourLetterWord.IsOkAsync(member.Host, member.ClientPort, TimeSpan.FromSeconds(2), probeCt, SocketFactory) : null,
            Log = log is null ? null : line => log($"[s{member.Id}] {line}"),
        }, ct).ConfigureAwait(false);
    }

    /// <summary>SIGKILL (what it wrote stays on disk).</summary>
    public void Kill(long id)
    {
        var member = this[id];
        member.IsRunning = false;
        member.Process?.Kill();
    }

    /// <summary>Starts a member again on its ports and data dir (killing it first if it runs) and waits until it serves.</summary>
    public async Task RestartAsync(long id, CancellationToken ct = default)
    {
        var member = this[id];
        member.IsRunning = true;
        if (member.Process is { } p) await p.RestartAsync(ct).ConfigureAwait(false);
        else await StartMemberAsync(member, ct).ConfigureAwait(false);
    }

    /// <summary>Kills a member and starts it again on its ports and data dir, ready once it answers ruok: for a member a
    /// reconfig removed, which comes back as a joiner and serves nothing until a reconfig adds it again.</summary>
    public async Task RestartNotServingAsync(long id, CancellationToken ct = default)
    {
        Kill(id);
        this[id].Process = null;
        await StartMemberAsync(this[id], ct, answersRuok: true).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts every member again at once on its ports and data dir (killing any that still runs; one alone could not
    /// serve without a quorum) and waits until all serve.
    /// </summary>
    public async Task RestartAllAsync(CancellationToken ct = default)
    {
        await Task.WhenAll(_members.Select(m => RestartAsync(m.Id, ct))).ConfigureAwait(false);
        await WaitAllServingAsync(_options.StartTimeout, ct).ConfigureAwait(false);
    }

    /// <summary>Stops every member (SIGTERM, then SIGKILL after <paramref name="grace"/>); their data dirs stay.</summary>
    public async Task StopAllAsync(TimeSpan grace)
    {
        await Task.WhenAll(_members.Where(m => m.Process is not null).Select(async m =>
        {
            m.IsRunning = false;
            await m.Process!.StopAsync(grace).ConfigureAwait(false);
        })).ConfigureAwait(false);
    }

    /// <summary>The process ids of the running members.</summary>
    public IReadOnlyList<int> Pids => _members.Where(m => m.IsRunning && m.Process is not null).Select(m => m.Process!.Pid).ToList();

    /// <summary>The srvr answer of a member, or null when it does not answer.</summary>
    public async Task<string?> SrvrAsync(long id, CancellationToken ct = default)
    {
        var member = this[id];
        if (!member.IsRunning) return null;
        try { return await FourLetterWord.SendAsync(member.Host, member.ClientPort, "srvr", TimeSpan.FromSeconds(3), ct, SocketFactory).ConfigureAwait(false); }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException && !ct.IsCancellationRequested) { return null; }
    }

    /// <summary>leader, follower, observer, standalone; null when down or not serving.</summary>
    public async Task<string?> ModeAsync(long id, CancellationToken ct = default)
    {
        var srvr = await SrvrAsync(id, ct).ConfigureAwait(false);
        var match = srvr is null ? null : Regex.Match(srvr, @"^Mode:\s*(\w+)", RegexOptions.Multiline);
        return match is { Success: true } ? match.Groups[1].Value : null;
    }

    /// <summary>The member that says it leads, or null.</summary>
    public async Task<Member?> LeaderAsync(CancellationToken ct = default)
    {
        var modes = await Task.WhenAll(_members.Select(async m => (m, mode: await ModeAsync(m.Id, ct).ConfigureAwait(false)))).ConfigureAwait(false);
        var leaders = modes.Where(x => x.mode == "leader").Select(x => x.m).ToList();
        return leaders.Count == 1 ? leaders[0] : null;
    }

    public async Task<Member> WaitForLeaderAsync(TimeSpan timeout, long notId = -1, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await LeaderAsync(ct).ConfigureAwait(false) is { } leader && leader.Id != notId) return leader;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no leader (other than {notId}) within {timeout}: {await DescribeAsync().ConfigureAwait(false)}");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every running member serves: exactly one leader, the others following.</summary>
    public async Task WaitAllServingAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var running = _members.Where(m => m.IsRunning).ToList();
            var modes = await Task.WhenAll(running.Select(m => ModeAsync(m.Id, ct))).ConfigureAwait(false);
            if (modes.Count(x => x == "leader") == 1 && modes.All(x => x is "leader" or "follower" or "observer")) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"the ensemble did not settle within {timeout}: {await DescribeAsync().ConfigureAwait(false)}");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One line per member: id, port, mode.</summary>
    public async Task<string> DescribeAsync()
    {
        var parts = new List<string>();
        foreach (var m in _members) parts.Add($"{m.Id}@{m.ClientPort}={(m.IsRunning ? await ModeAsync(m.Id).ConfigureAwait(false) ?? "not serving" : "down")}");
        return string.Join(", ", parts);
    }

    /// <summary>
    /// The member's last applied zxid and tree digest: the hash four-letter word for ours ("zxid: 0x..\ndigest: 0x.."),
    /// for Apache the srvr Zxid (digest 0).
    /// </summary>
    public async Task<(long Zxid, long Digest)> HashAsync(long id, CancellationToken ct = default)
    {
        var member = this[id];
        if (Kind == ServerKind.Apache)
        {
            var srvr = await FourLetterWord.SendAsync(member.Host, member.ClientPort, "srvr", TimeSpan.FromSeconds(5), ct, SocketFactory).ConfigureAwait(false);
            return (Hex(srvr, "Zxid"), 0);
        }
        var text = await FourLetterWord.SendAsync(member.Host, member.ClientPort, "hash", TimeSpan.FromSeconds(5), ct, SocketFactory).ConfigureAwait(false);
        return (Hex(text, "zxid"), Hex(text, "digest"));
    }

    private static long Hex(string text, string key)
    {
        var match = Regex.Match(text, $@"^{key}:\s*0x([0-9a-fA-F]+)", RegexOptions.Multiline);
        if (!match.Success) throw new FormatException($"no '{key}: 0x..' in: {text}");
        return unchecked((long)ulong.Parse(match.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    /// <summary>Waits until every running member answers with the same zxid, then returns each one's (zxid, digest).</summary>
    public async Task<IReadOnlyDictionary<long, (long Zxid, long Digest)>> WaitConvergedAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (true)
        {
            var hashes = new Dictionary<long, (long, long)>();
            try
            {
                foreach (var m in _members.Where(m => m.IsRunning)) hashes[m.Id] = await HashAsync(m.Id, ct).ConfigureAwait(false);
                if (hashes.Values.Select(h => h.Item1).Distinct().Count() == 1) return hashes;
                last = string.Join(", ", hashes.Select(h => $"{h.Key}@0x{h.Value.Item1:x}"));
            }
            catch (Exception e) when (e is SocketException or IOException or FormatException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                last = e.Message;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"members did not converge within {timeout}: {last}");
            await Task.Delay(200, ct).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Where(m => m.Process is not null).Select(async m =>
        {
            m.IsRunning = false;
            await m.Process!.DisposeAsync().ConfigureAwait(false);
        })).ConfigureAwait(false);
        if (_ownsRoot && Environment.GetEnvironmentVariable("COORDINATION_KEEP_TEMP") != "1")
        {
            try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
