using System.Diagnostics;
using System.Globalization;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>
/// <c>Coordination.Bench session-churn</c>: the rate at which an ensemble opens and closes sessions (ZooKeeper's
/// localSessionsEnabled is about this). Each worker loops: connect a new session to the next member (round-robin),
/// optionally create one ephemeral znode (which turns a local session global), close the session. Against
/// --connect servers, or a 3-member ensemble it starts itself (--ensemble ours|apache, with --apache-cfg and --hocon
/// lines) so that both servers are measured the same way in one run.
/// </summary>
public static class SessionChurn
{
    public const string Usage = """
        Coordination.Bench session-churn: sessions opened and closed per second.

          --connect host:port[,host:port]  servers (workers spread round-robin)   or:
          --ensemble ours|apache           start a 3-member ensemble on 127.0.0.1 and measure it
          --apache-cfg LINE                an extra zoo.cfg line for --ensemble apache (repeatable),
                                           e.g. localSessionsEnabled=true; with --ephemeral add
                                           localSessionsUpgradingEnabled=true (zoo.cfg's default is false:
                                           every ephemeral create then fails with EphemeralOnLocalSession)
          --hocon TEXT                     extra HOCON for --ensemble ours
          --workers N                      concurrent connect/close loops               (16)
          --ephemeral                      create an ephemeral znode in each session before closing it
          --warmup T                                                                    (2s)
          --duration T                                                                  (10s)
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        string[] connect = [];
        ServerKind? ensembleKind = null;
        var apacheCfg = new List<string>();
        string? hocon = null;
        var workers = 16;
        var ephemeral = false;
        var warmup = TimeSpan.FromSeconds(2);
        var duration = TimeSpan.FromSeconds(10);
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--connect": connect = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                    case "--ensemble": ensembleKind = ServerProcess.ParseKind(Value()); break;
                    case "--apache-cfg": apacheCfg.Add(Value()); break;
                    case "--hocon": hocon = Value(); break;
                    case "--workers": workers = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                    case "--ephemeral": ephemeral = true; break;
                    case "--warmup": warmup = BenchOptions.ParseDuration(Value()); break;
                    case "--duration": duration = BenchOptions.ParseDuration(Value()); break;
                    case "--help" or "-h": await stdout.WriteLineAsync(Usage); return 0;
                    default: throw new ArgumentException($"unexpected argument '{args[i]}'");
                }
            }
            if (connect.Length == 0 && ensembleKind is null) throw new ArgumentException("--connect or --ensemble is needed");
            if (workers < 1) throw new ArgumentException("--workers must be at least 1");
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            await stderr.WriteLineAsync($"error: {e.Message}\n\n{Usage}");
            return 2;
        }

        EnsembleProcesses? ensemble = null;
        try
        {
            if (ensembleKind is { } kind)
            {
                ensemble = await EnsembleProcesses.StartAsync(kind, 3, new EnsembleProcessesOptions { ExtraZooCfg = apacheCfg, ExtraHocon = hocon }, ct);
                connect = ensemble.Members.Select(m => m.ConnectString).ToArray();
                await stdout.WriteLineAsync($"started {kind} ensemble {string.Join(',', connect)} {string.Join(' ', apacheCfg)}{hocon}");
            }
            var (opened, closed, errors, seconds) = await MeasureAsync(connect, workers, ephemeral, warmup, duration, ct);
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"session-churn {(ensembleKind?.ToString() ?? string.Join(',', connect))} {string.Join(' ', apacheCfg)}{hocon} workers={workers} ephemeral={ephemeral}: " +
                $"{opened / seconds:F0} sessions opened/s, {closed / seconds:F0} closed/s, {errors} errors in {seconds:F1} s"));
            return errors > 0 ? 3 : 0;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"session-churn failed: {e.GetType().Name}: {e.Message}");
            return 1;
        }
        finally
        {
            if (ensemble is not null) await ensemble.DisposeAsync();
        }
    }

    private static async Task<(long Opened, long Closed, long Errors, double Seconds)> MeasureAsync(
        string[] connect, int workers, bool ephemeral, TimeSpan warmup, TimeSpan duration, CancellationToken ct)
    {
        long opened = 0, closed = 0, errors = 0;
        var measuring = false;
        var clock = Stopwatch.StartNew();
        var stopAt = warmup + duration;
        async Task Loop(int worker)
        {
            for (var n = 0; clock.Elapsed < stopAt && !ct.IsCancellationRequested; n++)
            {
                var counted = Volatile.Read(ref measuring);
                try
                {
                    await using var client = await WireClient.ConnectAsync(connect[(worker + n) % connect.Length], new WireClientOptions { SessionTimeoutMs = 10_000 }, ct);
                    if (counted) Interlocked.Increment(ref opened);
                    if (ephemeral) await client.CreateAsync($"/churn-{client.SessionId:x}", [], CreateMode.Ephemeral).OkAsync();
                    var (header, _) = await client.SendAsync(OpCode.CloseSession, EmptyRequest.Instance);
                    if (header.Err != ErrorCode.Ok) throw new InvalidOperationException($"closeSession answered {header.Err}");
                    if (counted) Interlocked.Increment(ref closed);
                }
                catch (Exception) when (!ct.IsCancellationRequested)
                {
                    if (counted) Interlocked.Increment(ref errors);
                }
            }
        }
        var loops = Enumerable.Range(0, workers).Select(Loop).ToList();
        await Task.Delay(warmup, ct);
        Volatile.Write(ref measuring, true);
        var start = clock.Elapsed;
        await Task.WhenAll(loops);
        return (opened, closed, errors, (clock.Elapsed - start).TotalSeconds);
    }
}
