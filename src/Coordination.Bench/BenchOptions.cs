using System.Globalization;
using System.Text;

namespace Coordination.Bench;

/// <summary>LinearizableGet: getData as a linearizable read (ours only); SyncGet: sync and getData sent back to back,
/// ZooKeeper's idiom for a fresh read, measured to the getData's reply.</summary>
public enum BenchOp { Get, Exists, Set, Create, Delete, Multi, Mixed, Sync, LinearizableGet, SyncGet }

/// <summary>Command-line options of the bench (hand-parsed: --name value or --name=value).</summary>
public sealed record BenchOptions
{
    public IReadOnlyList<string> Connect { get; init; } = ["127.0.0.1:2181"];
    public int Sessions { get; init; } = 16;
    public int Inflight { get; init; } = 16;
    public BenchOp Op { get; init; } = BenchOp.Get;
    public double ReadRatio { get; init; } = 0.9;
    public int ValueSize { get; init; } = 100;
    public int Znodes { get; init; } = 1000;
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);
    public int Watchers { get; init; }
    public bool Json { get; init; }
    /// <summary>Server processes whose CPU time and RSS are reported, summed (an ensemble's members).</summary>
    public IReadOnlyList<int> ServerPids { get; init; } = [];
    /// <summary>Total target ops/s over all sessions (paced, open loop); null = closed loop at saturation.</summary>
    public double? Rate { get; init; }
    public string Root { get; init; } = "/bench";
    public int MultiSize { get; init; } = 4;
    public int SessionTimeoutMs { get; init; } = 30_000;
    public int Seed { get; init; } = 12345;
    public bool Cleanup { get; init; }
    public bool Progress { get; init; } = true;
    /// <summary>"ours" or "apache": start that server (TestKit ServerProcess) on a free port and bench it.</summary>
    public string? Launch { get; init; }
    /// <summary>Extra zoo.cfg lines when launching Apache ZooKeeper (e.g. forceSync=no).</summary>
    public IReadOnlyList<string> ApacheConfig { get; init; } = [];
    /// <summary>Connect over TLS with these options (side-by-side --tls); null = plain TCP.</summary>
    public System.Net.Security.SslClientAuthenticationOptions? Tls { get; init; }

    public const string Usage = """
        Coordination.Bench: wire-protocol load generator for ZooKeeper-compatible servers.
        (Coordination.Bench side-by-side --help: our server beside Apache ZooKeeper, one table.)
        (Coordination.Bench session-churn --help: sessions opened and closed per second.)
        (Coordination.Bench scale --help: RSS, snapshot, restart and getChildren at 1M-10M znodes, against ZooKeeper.)
        (Coordination.Bench sessions --help: 100,000 sessions and 1,000,000 watches on one server, against ZooKeeper.)

          --connect host:port[,host:port]  servers; sessions are spread round-robin      (127.0.0.1:2181)
          --launch ours|apache             start that server on a free 127.0.0.1 port and bench it instead
          --apache-cfg LINE                an extra zoo.cfg line for --launch apache (repeatable), e.g. forceSync=no
          --sessions N                     client sessions generating load                (16; 0 = watchers only)
          --inflight D                     outstanding requests per session               (16)
          --op get|exists|set|create|delete|multi|mixed|sync                              (get)
                                           delete issues create+delete pairs on its own nodes;
                                           multi issues --multi-size setData ops per multi
          --read-ratio R                   share of getData in mixed, the rest is setData (0.9)
          --value-size B                   bytes per znode value                          (100)
          --znodes N                       znodes read and written                        (1000)
          --multi-size K                   ops per multi                                  (4)
          --warmup T                       e.g. 2s, 500ms                                 (2s)
          --duration T                     measured time                                  (10s)
          --watchers N                     N extra sessions watch one hot znode; a writer sets it in rounds and
                                           the time from setData to all N notified is measured (0)
          --rate OPS                       open loop: OPS requests/s in total, each session sending on a fixed
                                           schedule (at most --inflight outstanding, the rest queue); latency is
                                           measured from each request's intended send time (wrk2-style)
          --server-pid PID[,PID]           report server CPU ms per 1,000 ops and RSS from /proc; repeatable,
                                           several pids (an ensemble's members) are summed
          --root PATH                      namespace for the bench znodes                 (/bench)
          --session-timeout T                                                             (30s)
          --seed N                                                                        (12345)
          --cleanup                        delete the nodes that --op create left behind
          --no-progress                    no per-second progress line
          --json                           print the result as JSON on stdout (progress goes to stderr)
        """;

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var o = new BenchOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{arg}'");
            string name = arg[2..];
            string? inline = null;
            var eq = name.IndexOf('=');
            if (eq >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
            string Value()
            {
                if (inline is not null) return inline;
                if (i + 1 >= args.Count) throw new ArgumentException($"--{name} needs a value");
                return args[++i];
            }
            o = name switch
            {
                "connect" => o with { Connect = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "launch" => o with { Launch = Value() },
                "apache-cfg" => o with { ApacheConfig = [.. o.ApacheConfig, Value()] },
                "sessions" => o with { Sessions = Int(name, Value(), 0) },
                "inflight" => o with { Inflight = Int(name, Value(), 1) },
                "op" => o with { Op = ParseOp(Value()) },
                "read-ratio" => o with { ReadRatio = Ratio(Value()) },
                "value-size" => o with { ValueSize = Int(name, Value(), 0) },
                "znodes" => o with { Znodes = Int(name, Value(), 1) },
                "multi-size" => o with { MultiSize = Int(name, Value(), 1) },
                "warmup" => o with { Warmup = ParseDuration(Value()) },
                "duration" => o with { Duration = ParseDuration(Value()) },
                "watchers" => o with { Watchers = Int(name, Value(), 0) },
                "server-pid" => o with { ServerPids = [.. o.ServerPids, .. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => Int(name, v, 1))] },
                "rate" => o with { Rate = double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) && rate > 0
                    ? rate : throw new ArgumentException("--rate: expected ops/s > 0") },
                "root" => o with { Root = Value().TrimEnd('/') is { Length: > 0 } r ? r : throw new ArgumentException("--root must not be /") },
                "session-timeout" => o with { SessionTimeoutMs = (int)ParseDuration(Value()).TotalMilliseconds },
                "seed" => o with { Seed = Int(name, Value(), int.MinValue) },
                "cleanup" => o with { Cleanup = true },
                "no-progress" => o with { Progress = false },
                "json" => o with { Json = true },
                _ => throw new ArgumentException($"unknown option --{name}"),
            };
        }
        if (o.Duration <= TimeSpan.Zero) throw new ArgumentException("--duration must be positive");
        if (o.Sessions == 0 && o.Watchers == 0) throw new ArgumentException("nothing to do: --sessions 0 and --watchers 0");
        if (o.Rate is not null && o.Sessions == 0) throw new ArgumentException("--rate needs --sessions > 0");
        return o;
    }

    private static int Int(string name, string value, int min)
    {
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) || n < min)
            throw new ArgumentException($"--{name}: expected an integer >= {min}, got '{value}'");
        return n;
    }

    private static double Ratio(string value)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) || d is < 0 or > 1)
            throw new ArgumentException($"--read-ratio: expected 0..1, got '{value}'");
        return d;
    }

    public static BenchOp ParseOp(string value) => value.ToLowerInvariant() switch
    {
        "get" or "getdata" or "read" => BenchOp.Get,
        "exists" => BenchOp.Exists,
        "set" or "setdata" or "write" => BenchOp.Set,
        "create" => BenchOp.Create,
        "delete" => BenchOp.Delete,
        "multi" => BenchOp.Multi,
        "mixed" => BenchOp.Mixed,
        "sync" => BenchOp.Sync,
        "linget" => BenchOp.LinearizableGet,
        "syncget" => BenchOp.SyncGet,
        _ => throw new ArgumentException($"--op: unknown op '{value}'"),
    };

    /// <summary>Parses "10s", "500ms", "2m", "1.5s" or a bare number of seconds.</summary>
    public static TimeSpan ParseDuration(string value)
    {
        value = value.Trim().ToLowerInvariant();
        double Num(string s) => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);
        try
        {
            if (value.EndsWith("ms", StringComparison.Ordinal)) return TimeSpan.FromMilliseconds(Num(value[..^2]));
            if (value.EndsWith('s')) return TimeSpan.FromSeconds(Num(value[..^1]));
            if (value.EndsWith('m')) return TimeSpan.FromMinutes(Num(value[..^1]));
            return TimeSpan.FromSeconds(Num(value));
        }
        catch (FormatException) { throw new ArgumentException($"bad duration '{value}' (e.g. 10s, 500ms, 2m)"); }
    }

    public string Describe()
    {
        var sb = new StringBuilder();
        sb.Append($"op={Op.ToString().ToLowerInvariant()} sessions={Sessions} inflight={Inflight} value-size={ValueSize} znodes={Znodes}");
        if (Op == BenchOp.Mixed) sb.Append($" read-ratio={ReadRatio}");
        if (Op == BenchOp.Multi) sb.Append($" multi-size={MultiSize}");
        if (Watchers > 0) sb.Append($" watchers={Watchers}");
        if (Rate is { } rate) sb.Append(CultureInfo.InvariantCulture, $" rate={rate:F0}/s");
        sb.Append($" warmup={Warmup.TotalSeconds}s duration={Duration.TotalSeconds}s");
        return sb.ToString();
    }
}
