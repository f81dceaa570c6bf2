using System.Text;
using Coordination.Protocol;
using Coordination.TestKit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The crash test: several sessions stream creates, setData and multis, one request at a time each, and record
/// every acknowledgement. The server is SIGKILLed at random moments and restarted on the same data dir; after each
/// restart every acknowledged write must be there with its content and version, no multi may be partly applied,
/// and zxids must keep increasing. A request in flight at the kill may or may not have been applied: either
/// outcome is accepted for it (it was never acknowledged).
/// </summary>
public sealed class CrashWorkload(ServerProcess server, ITestOutputHelper output, int seed)
{
    private const int Clients = 4;
    private const int KeysPerClient = 16;

    /// <summary>Known state of a path: committed (data, version), or one of two states while a write was in flight.</summary>
    private sealed record NodeState(byte[]? Data, int Version);

    private readonly Dictionary<string, NodeState?> _acked = new();           // null value = must not exist
    private readonly Dictionary<string, NodeState?> _inFlightAlternative = new(); // unacked outcome allowed too
    private readonly List<(string A, string B)> _multis = new();
    private long _maxZxidSeen;
    private readonly Random _rng = new(seed);
    private int _multiCounter;
    public long AckedWrites { get; private set; }

    public async Task RunAsync(int kills, TimeSpan minLoad, TimeSpan maxLoad)
    {
        await using (var setup = await WireClient.ConnectAsync(server.ConnectString))
        {
            for (var c = 0; c < Clients; c++) await setup.CreateAsync($"/c{c}", null).OkAsync(ErrorCode.NodeExists);
        }
        for (var round = 0; round < kills; round++)
        {
            var load = minLoad + TimeSpan.FromMilliseconds(_rng.NextDouble() * (maxLoad - minLoad).TotalMilliseconds);
            var before = AckedWrites;
            await RunLoadThenKillAsync(load);
            output.WriteLine($"round {round}: killed after {load.TotalMilliseconds:F0} ms, {AckedWrites - before} acked writes this round, max zxid 0x{_maxZxidSeen:x}");
            await server.RestartAsync();
            await VerifyAsync();
        }
    }

    private async Task RunLoadThenKillAsync(TimeSpan load)
    {
        using var stop = new CancellationTokenSource();
        var clients = new List<WireClient>();
        for (var c = 0; c < Clients; c++) clients.Add(await WireClient.ConnectAsync(server.ConnectString, new WireClientOptions { SessionTimeoutMs = 10_000 }));
        var seeds = Enumerable.Range(0, Clients).Select(_ => _rng.Next()).ToArray();
        var loops = clients.Select((client, c) => Task.Run(() => ClientLoopAsync(client, c, new Random(seeds[c]), stop.Token))).ToArray();
        await Task.Delay(load);
        server.Kill(); // SIGKILL while the clients are writing
        stop.Cancel();
        await Task.WhenAll(loops);
        foreach (var client in clients) await client.DisposeAsync();
    }

    private async Task ClientLoopAsync(WireClient client, int c, Random rng, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var kind = rng.Next(10);
            var key = $"/c{c}/k{rng.Next(KeysPerClient)}";
            var data = Encoding.UTF8.GetBytes($"{key}@{Guid.NewGuid():N}");
            try
            {
                if (kind < 6)
                {
                    NodeState? current;
                    lock (_acked) _acked.TryGetValue(key, out current);
                    if (current is null)
                    {
                        SetPending(key, new NodeState(data, 0));
                        var (h, _) = await client.CreateAsync(key, data);
                        Ack(key, h, h.Err == ErrorCode.Ok ? new NodeState(data, 0) : null, h.Err is ErrorCode.Ok);
                    }
                    else
                    {
                        SetPending(key, new NodeState(data, current.Version + 1));
                        var (h, r) = await client.SetDataAsync(key, data);
                        Ack(key, h, h.Err == ErrorCode.Ok ? new NodeState(data, ((StatResponse)r!).Stat.Version) : null, h.Err is ErrorCode.Ok);
                    }
                }
                else
                {
                    // A multi creating two nodes and setting a third: all or nothing.
                    int n;
                    lock (_acked) n = _multiCounter++;
                    var a = $"/c{c}/mA{n}";
                    var b = $"/c{c}/mB{n}";
                    lock (_acked) _multis.Add((a, b));
                    var ops = new List<MultiOp>
                    {
                        new(OpCode.Create, new CreateRequest(a, data, Acl.OpenAclUnsafe, 0)),
                        new(OpCode.Create, new CreateRequest(b, data, Acl.OpenAclUnsafe, 0)),
                    };
                    var (h, r) = await client.MultiAsync(ops);
                    if (h.Err == ErrorCode.Ok && r is MultiResponse mr && mr.Results.All(x => x.Err == ErrorCode.Ok))
                    {
                        lock (_acked)
                        {
                            _acked[a] = new NodeState(data, 0);
                            _acked[b] = new NodeState(data, 0);
                            _maxZxidSeen = Math.Max(_maxZxidSeen, h.Zxid);
                            AckedWrites++;
                        }
                    }
                }
            }
            catch (Exception) when (stop.IsCancellationRequested || !client.IsConnected)
            {
                return; // the kill: the request in flight stays pending (either outcome is allowed)
            }
            catch (WireConnectionException)
            {
                return;
            }
        }
    }

    private void SetPending(string key, NodeState state)
    {
        lock (_acked) _inFlightAlternative[key] = state;
    }

    private void Ack(string key, ReplyHeader h, NodeState? state, bool ok)
    {
        lock (_acked)
        {
            _inFlightAlternative.Remove(key);
            if (!ok) return;
            _acked[key] = state;
            _maxZxidSeen = Math.Max(_maxZxidSeen, h.Zxid);
            AckedWrites++;
        }
    }

    private async Task VerifyAsync()
    {
        await using var client = await WireClient.ConnectAsync(server.ConnectString);
        var checkedCount = 0;
        Dictionary<string, NodeState?> acked;
        lock (_acked) acked = new Dictionary<string, NodeState?>(_acked);
        foreach (var (path, expected) in acked)
        {
            var (h, r) = await client.GetDataAsync(path);
            NodeState? actual = h.Err == ErrorCode.Ok ? new NodeState(((GetDataResponse)r!).Data ?? [], ((GetDataResponse)r!).Stat.Version) : null;
            if (Same(actual, expected)) { checkedCount++; continue; }
            // The write in flight at the kill may have been applied (never acknowledged, but durable): accept it and
            // make it the new known state.
            if (_inFlightAlternative.TryGetValue(path, out var alternative) && Same(actual, alternative))
            {
                _acked[path] = actual;
                checkedCount++;
                continue;
            }
            throw new Xunit.Sdk.XunitException(
                $"after restart {path} is {Describe(actual)}, expected the acknowledged {Describe(expected)}");
        }
        foreach (var path in _inFlightAlternative.Keys.Where(k => !acked.ContainsKey(k)).ToList())
        {
            // A create in flight at the kill: whatever recovery shows is now the known state.
            var actual = await ReadState(client, path);
            if (actual is not null && !Same(actual, _inFlightAlternative[path]))
                throw new Xunit.Sdk.XunitException($"{path} was never acknowledged but holds {Describe(actual)}");
            _acked[path] = actual;
        }
        _inFlightAlternative.Clear();

        foreach (var (a, b) in _multis)
        {
            var ea = (await client.ExistsAsync(a)).Header.Err == ErrorCode.Ok;
            var eb = (await client.ExistsAsync(b)).Header.Err == ErrorCode.Ok;
            if (ea != eb) throw new Xunit.Sdk.XunitException($"multi partly applied: {a} exists={ea}, {b} exists={eb}");
            if (ea && !_acked.ContainsKey(a)) { _acked[a] = (await ReadState(client, a)); _acked[b] = await ReadState(client, b); }
        }

        // zxids keep increasing: the first write after the restart gets a zxid above every acknowledged one.
        var (sh, _) = await client.SetDataAsync("/c0", Encoding.UTF8.GetBytes("probe"));
        if (sh.Zxid <= _maxZxidSeen)
            throw new Xunit.Sdk.XunitException($"zxid went backwards: 0x{sh.Zxid:x} after restart, 0x{_maxZxidSeen:x} acknowledged before");
        _maxZxidSeen = sh.Zxid;
        output.WriteLine($"  verified {checkedCount} paths and {_multis.Count} multis; first zxid after restart 0x{sh.Zxid:x}");
    }

    private static async Task<NodeState?> ReadState(WireClient client, string path)
    {
        var (h, r) = await client.GetDataAsync(path);
        return h.Err == ErrorCode.Ok ? new NodeState(((GetDataResponse)r!).Data ?? [], ((GetDataResponse)r!).Stat.Version) : null;
    }

    private static bool Same(NodeState? a, NodeState? b) =>
        a is null ? b is null : b is not null && a.Version == b.Version && (a.Data ?? []).AsSpan().SequenceEqual(b.Data ?? []);

    private static string Describe(NodeState? s) => s is null ? "absent" : $"v{s.Version} '{Encoding.UTF8.GetString(s.Data ?? [])}'";
}
