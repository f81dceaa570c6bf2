using System.Diagnostics;
using System.Text;
using Coordination.Protocol;

namespace Coordination.TestKit.Linearizability;

/// <summary>
/// Drives random create / conditional set / conditional delete / sync-then-read operations from several clients on a
/// few znodes and records every invocation and completion against one monotonic clock. A client whose connection
/// fails records the op as Unknown and reconnects (re-attaching its session when it can). Bounded by time.
/// </summary>
public sealed class HistoryRecorder(Func<Task<WireClient>> connect, IReadOnlyList<string> paths, int seed)
{
    private readonly List<Operation> _history = new();
    private readonly Dictionary<string, int> _perPath = new();
    private readonly object _gate = new();
    /// <summary>Set once a znode has <see cref="MaxOpsPerPath"/> operations: the clients stop before their next one.</summary>
    private volatile bool _full;
    private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(5);

    public IReadOnlyList<Operation> History { get { lock (_gate) return _history.ToList(); } }

    /// <summary>
    /// Ends the recording early once one znode has this many operations (each client finishes the one it has in
    /// flight, so a znode may end with up to one more per client): the checker's search grows with a znode's history,
    /// and a fast machine would otherwise outgrow it within a fixed time.
    /// </summary>
    public int MaxOpsPerPath { get; init; } = int.MaxValue;

    /// <summary>
    /// Records rounds of <paramref name="round"/> while <paramref name="keepRecording"/> says so (asked before each
    /// round), each round on three fresh znodes (<c>/PREFIXN-a</c>, <c>-b</c>, <c>-c</c>) so that no znode collects more
    /// history than the checker can search; <paramref name="onRound"/> sees each round's history. Returns all operations.
    /// </summary>
    public static async Task<List<Operation>> RecordRoundsAsync(Func<Task<WireClient>> connect, int clients, TimeSpan round, int seed,
        string prefix, Func<bool> keepRecording, Action<int, IReadOnlyList<Operation>>? onRound = null, CancellationToken ct = default,
        int maxOpsPerPath = int.MaxValue)
    {
        var all = new List<Operation>();
        for (var n = 0; keepRecording() && !ct.IsCancellationRequested; n++)
        {
            var recorder = new HistoryRecorder(connect, [$"/{prefix}{n}-a", $"/{prefix}{n}-b", $"/{prefix}{n}-c"], seed + n)
            {
                MaxOpsPerPath = maxOpsPerPath,
            };
            await recorder.RunAsync(clients, round, ct).ConfigureAwait(false);
            var history = recorder.History;
            all.AddRange(history);
            onRound?.Invoke(n, history);
        }
        return all;
    }

    public async Task RunAsync(int clients, TimeSpan duration, CancellationToken ct = default)
    {
        var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => ClientLoopAsync(c, stopAt, ct)));
    }

    private async Task ClientLoopAsync(int client, long stopAt, CancellationToken ct)
    {
        var random = new Random(seed * 1000 + client);
        WireClient? wire = null;
        var server = "";   // the host:port of wire, one string per connection
        var counter = 0;
        while (Stopwatch.GetTimestamp() < stopAt && !_full && !ct.IsCancellationRequested)
        {
            if (wire is null)
            {
                try { wire = await connect(); }
                catch (Exception) { await Task.Delay(100, ct); continue; }
                server = $"{wire.Host}:{wire.Port}";
            }

            var path = paths[random.Next(paths.Count)];
            var kind = (OpKind)random.Next(4);
            var value = $"c{client}-{counter++}";
            var version = random.Next(3) == 0 ? -1 : random.Next(0, 4);
            var invoke = Stopwatch.GetTimestamp();
            Operation op;
            try
            {
                op = kind switch
                {
                    OpKind.Create => Complete(client, path, kind, invoke, await wire.CreateAsync(path, Encoding.UTF8.GetBytes(value), CreateMode.Persistent).WaitAsync(OpTimeout, ct), value, -1),
                    OpKind.Set => Complete(client, path, kind, invoke, await wire.SetDataAsync(path, Encoding.UTF8.GetBytes(value), version).WaitAsync(OpTimeout, ct), value, version),
                    OpKind.Delete => Complete(client, path, kind, invoke, await wire.DeleteAsync(path, version).WaitAsync(OpTimeout, ct), null, version),
                    _ => await ReadAsync(wire, client, path, invoke, ct),
                };
            }
            catch (Exception e) when (e is IOException or TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                op = new Operation(client, path, kind, invoke, Stopwatch.GetTimestamp(), Outcome.Unknown,
                    kind is OpKind.Create or OpKind.Set ? value : null, kind is OpKind.Set or OpKind.Delete ? version : -1);
                try { await wire.DisposeAsync(); } catch { /* already broken */ }
                wire = null;
            }
            lock (_gate)
            {
                _history.Add(op with { Server = server });
                var count = _perPath[op.Path] = _perPath.GetValueOrDefault(op.Path) + 1;
                if (count >= MaxOpsPerPath) _full = true;
            }
        }
        if (wire is not null) { try { await wire.CloseAsync(); } catch { /* best effort */ } }
    }

    /// <summary>sync then getData on the same session: the read sees every write committed before the sync.</summary>
    private static async Task<Operation> ReadAsync(WireClient wire, int client, string path, long invoke, CancellationToken ct)
    {
        var sync = await wire.SyncAsync(path).WaitAsync(OpTimeout, ct);
        if (sync.Header.Err != ErrorCode.Ok) throw new IOException($"sync failed with {sync.Header.Err}");
        var (header, response) = await wire.GetDataAsync(path).WaitAsync(OpTimeout, ct);
        var done = Stopwatch.GetTimestamp();
        if (header.Err == ErrorCode.NoNode) return new Operation(client, path, OpKind.Read, invoke, done, Outcome.Failed, Error: "NoNode");
        if (header.Err != ErrorCode.Ok) throw new IOException($"getData failed with {header.Err}");
        var data = (GetDataResponse)response!;
        return new Operation(client, path, OpKind.Read, invoke, done, Outcome.Ok,
            ReadValue: data.Data is null ? null : Encoding.UTF8.GetString(data.Data), ReadVersion: data.Stat.Version, ReadExists: true);
    }

    private static Operation Complete(int client, string path, OpKind kind, long invoke, (ReplyHeader Header, ZkResponse? Response) reply, string? value, int version)
    {
        var done = Stopwatch.GetTimestamp();
        var error = reply.Header.Err switch
        {
            ErrorCode.Ok => null,
            ErrorCode.NodeExists => "NodeExists",
            ErrorCode.NoNode => "NoNode",
            ErrorCode.BadVersion => "BadVersion",
            var other => throw new IOException($"{kind} failed with {other}"),   // ConnectionLoss and the like: outcome unknown
        };
        return new Operation(client, path, kind, invoke, done, error is null ? Outcome.Ok : Outcome.Failed, value, version, error);
    }
}
