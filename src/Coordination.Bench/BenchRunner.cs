using System.Diagnostics;
using System.Runtime.InteropServices;
using Coordination.Protocol;
using Coordination.TestKit;

namespace Coordination.Bench;

/// <summary>Runs one benchmark: setup, warmup, a measured window, drain, report.</summary>
public sealed class BenchRunner
{
    private enum Kind { Get, Exists, Set, Create, Delete, Multi, Sync, LinGet, SyncGet }
    private static readonly int KindCount = Enum.GetValues<Kind>().Length;

    private readonly BenchOptions _o;
    private readonly TextWriter _progress;
    private readonly string _dataDir;
    private readonly string _writeDir;
    private readonly string _hot;
    private readonly byte[] _value;
    private PathWatchRequest[] _reads = [];
    private PathRequest[] _syncs = [];
    private LinearizableReadRequest[] _linearizableReads = [];
    private static readonly ReplyCallback IgnoreReply = static (_, _, _, _, _) => { };
    private SetDataRequest[] _sets = [];
    private MultiRequest[] _multis = [];
    private long _measureStart = long.MaxValue;
    private long _measureEnd = long.MaxValue;
    private volatile bool _stopping;
    private readonly ReplyCallback _onReply;
    /// <summary>With --rate: how late the pacer sent each request after its intended time (the client's own jitter).</summary>
    private readonly LatencyHistogram _sendLag = new();

    public BenchRunner(BenchOptions options, TextWriter progress)
    {
        _o = options;
        _progress = progress;
        _dataDir = options.Root + "/data";
        _writeDir = $"{options.Root}/w-{Environment.ProcessId:x}-{DateTime.UtcNow:HHmmssfff}";
        _hot = options.Root + "/hot";
        _onReply = OnReply; // one delegate for every request
        _value = new byte[options.ValueSize];
        new Random(options.Seed).NextBytes(_value);
    }

    private sealed class Worker
    {
        public required WireClient Client;
        public required int Index;
        public readonly LatencyHistogram?[] Hist = new LatencyHistogram?[KindCount];
        public readonly Dictionary<ErrorCode, long> ErrorCodes = new();
        public long Ok, Errors, WarmupErrors, Completed, ConnectionLosses;
        public int Inflight;
        public long CreateSeq;
        /// <summary>With --rate: idle slots, and the intended send times of requests due while every slot was busy.</summary>
        public readonly Stack<Slot> FreeSlots = new();
        public readonly Queue<long> Owed = new();
    }

    private sealed class Slot
    {
        public required Worker Worker;
        public ulong Rng;
        public Kind LastKind;
        public string? ToDelete;

        public int Next(int bound)
        {
            // xorshift64*: cheap and private to the slot (slots complete on their session's receive loop).
            Rng ^= Rng >> 12; Rng ^= Rng << 25; Rng ^= Rng >> 27;
            return (int)((Rng * 2685821657736338717UL >> 33) % (ulong)bound);
        }

        public double NextDouble() => Next(1 << 24) / (double)(1 << 24);
    }

    public async Task<BenchResult> RunAsync(CancellationToken ct)
    {
        var result = new BenchResult { Options = _o };
        var hosts = _o.Connect.Select(WireClient.ParseHostPort).ToArray();
        BuildRequests();

        await SetupAsync(hosts[0], ct).ConfigureAwait(false);

        var workers = await ConnectWorkersAsync(hosts, ct).ConfigureAwait(false);
        WatchBench? watch = _o.Watchers > 0 ? await WatchBench.StartAsync(this, hosts, ct).ConfigureAwait(false) : null;
        var clientCpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        try
        {
            // Start the load. Closed loop: every slot issues its first request; completions issue the next.
            // Open loop (--rate): slots wait idle and the pacer hands them requests on schedule.
            var started = Stopwatch.GetTimestamp();
            foreach (var w in workers)
            {
                for (var s = 0; s < _o.Inflight; s++)
                {
                    var slot = new Slot { Worker = w, Rng = (ulong)(_o.Seed * 7919L + w.Index * 1_000_003L + s * 17L) | 1UL };
                    if (_o.Rate is not null) { w.FreeSlots.Push(slot); continue; }
                    Interlocked.Increment(ref w.Inflight);
                    Issue(slot, Stopwatch.GetTimestamp());
                }
            }
            var paceTask = _o.Rate is { } targetRate ? StartPacer(workers, targetRate, started, ct) : Task.CompletedTask;
            var watchTask = watch?.RunRoundsAsync(ct) ?? Task.CompletedTask;

            var warmupEnd = started + (long)(_o.Warmup.TotalSeconds * Stopwatch.Frequency);
            var end = warmupEnd + (long)(_o.Duration.TotalSeconds * Stopwatch.Frequency);
            TimeSpan? serverCpuStart = null;
            var lastCompleted = 0L;
            var lastTick = started;
            var measuring = false;
            while (!ct.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                if (!measuring && now >= warmupEnd)
                {
                    measuring = true;
                    if (_o.ServerPids.Count > 0) serverCpuStart = ProcStats.ReadCpuTime(_o.ServerPids);
                    clientCpuStart = Process.GetCurrentProcess().TotalProcessorTime;
                    Volatile.Write(ref _measureStart, Stopwatch.GetTimestamp());
                }
                if (now >= end) break;
                var next = Math.Min(lastTick + Stopwatch.Frequency, measuring ? end : warmupEnd);
                var delay = TimeSpan.FromSeconds(Math.Max(0, next - now) / (double)Stopwatch.Frequency);
                try { await Task.Delay(delay, ct).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
                now = Stopwatch.GetTimestamp();
                if (now - lastTick >= Stopwatch.Frequency * 0.95)
                {
                    var completed = workers.Sum(w => Interlocked.Read(ref w.Completed));
                    var rate = (completed - lastCompleted) / ((now - lastTick) / (double)Stopwatch.Frequency);
                    lastCompleted = completed;
                    lastTick = now;
                    if (_o.Progress)
                    {
                        var errors = workers.Sum(w => Interlocked.Read(ref w.Errors) + Interlocked.Read(ref w.WarmupErrors) + Interlocked.Read(ref w.ConnectionLosses));
                        var elapsed = (now - started) / (double)Stopwatch.Frequency;
                        var phase = measuring ? "measure" : "warmup ";
                        var watchInfo = watch is null ? "" : $"  watch-rounds={watch.Rounds}";
                        await _progress.WriteLineAsync($"[{elapsed,5:F1}s] {phase} {rate,10:F0} ops/s  errors={errors}{watchInfo}").ConfigureAwait(false);
                    }
                }
            }
            var measureEnd = Stopwatch.GetTimestamp();
            Volatile.Write(ref _measureEnd, measureEnd);
            if (Volatile.Read(ref _measureStart) == long.MaxValue) Volatile.Write(ref _measureStart, measureEnd); // cancelled during warmup
            _stopping = true;
            result.ClientCpuMs = (Process.GetCurrentProcess().TotalProcessorTime - clientCpuStart).TotalMilliseconds;
            if (_o.ServerPids.Count > 0)
            {
                var cpuEnd = ProcStats.ReadCpuTime(_o.ServerPids);
                if (serverCpuStart is { } a && cpuEnd is { } b) result.ServerCpuMs = (b - a).TotalMilliseconds;
                result.ServerRssBytes = ProcStats.ReadRssBytes(_o.ServerPids);
                result.ServerPids = _o.ServerPids;
            }
            result.MeasuredSeconds = (measureEnd - Volatile.Read(ref _measureStart)) / (double)Stopwatch.Frequency;

            // Drain: wait for outstanding requests (bounded).
            await paceTask.ConfigureAwait(false);
            var drainDeadline = Stopwatch.StartNew();
            while (workers.Any(w => Volatile.Read(ref w.Inflight) > 0) && drainDeadline.Elapsed < TimeSpan.FromSeconds(10))
                await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
            try { await watchTask.WaitAsync(TimeSpan.FromSeconds(15), CancellationToken.None).ConfigureAwait(false); }
            catch (TimeoutException) { }

            // Aggregate.
            var all = new LatencyHistogram();
            var perKind = new LatencyHistogram?[KindCount];
            foreach (var w in workers)
            {
                for (var k = 0; k < KindCount; k++)
                {
                    if (w.Hist[k] is not { } h) continue;
                    (perKind[k] ??= new LatencyHistogram()).Add(h);
                    all.Add(h);
                }
                result.Ops += Interlocked.Read(ref w.Ok);
                result.Errors += Interlocked.Read(ref w.Errors);
                result.WarmupErrors += Interlocked.Read(ref w.WarmupErrors);
                result.ConnectionLosses += Interlocked.Read(ref w.ConnectionLosses);
                lock (w.ErrorCodes)
                    foreach (var (code, n) in w.ErrorCodes)
                        result.ErrorCodes[code] = result.ErrorCodes.GetValueOrDefault(code) + n;
            }
            result.Latency = all.Summarize();
            for (var k = 0; k < KindCount; k++)
                if (perKind[k] is { } h) result.PerOp[((Kind)k).ToString().ToLowerInvariant()] = h.Summarize();
            if (watch is not null) result.Watch = watch.Summarize();
            if (_o.Rate is { } target)
            {
                // Requests due in the window that never went out: the server was too slow to free a slot for them.
                long unsent = 0;
                foreach (var w in workers)
                    lock (w.Owed) unsent += w.Owed.Count(due => due >= Volatile.Read(ref _measureStart) && due <= measureEnd);
                result.Rate = new RateResult(target, result.OpsPerSecond >= 0.95 * target, unsent, _sendLag.Summarize());
            }
        }
        finally
        {
            _stopping = true;
            if (watch is not null) await watch.DisposeAsync().ConfigureAwait(false);
            await CloseAllAsync(workers.Select(w => w.Client)).ConfigureAwait(false);
        }
        if (_o.Cleanup && _o.Op is BenchOp.Create) await CleanupAsync(hosts[0]).ConfigureAwait(false);
        return result;
    }

    // ---------------------------------------------------------------- load

    private void BuildRequests()
    {
        _reads = new PathWatchRequest[_o.Znodes];
        _sets = new SetDataRequest[_o.Znodes];
        for (var i = 0; i < _o.Znodes; i++)
        {
            var path = NodePath(i);
            _reads[i] = new PathWatchRequest(path, false);
            _sets[i] = new SetDataRequest(path, _value, -1);
        }
        if (_o.Op is BenchOp.Sync or BenchOp.SyncGet) _syncs = _reads.Select(r => new PathRequest(r.NodePath)).ToArray();
        if (_o.Op == BenchOp.LinearizableGet) _linearizableReads = _reads.Select(r => new LinearizableReadRequest(OpCode.GetData, r)).ToArray();
        if (_o.Op == BenchOp.Multi)
        {
            var rng = new Random(_o.Seed);
            _multis = new MultiRequest[1024];
            for (var i = 0; i < _multis.Length; i++)
            {
                var ops = new MultiOp[_o.MultiSize];
                for (var j = 0; j < ops.Length; j++) ops[j] = new MultiOp(OpCode.SetData, _sets[rng.Next(_o.Znodes)]);
                _multis[i] = new MultiRequest(ops);
            }
        }
    }

    private string NodePath(int i) => $"{_dataDir}/n{i:D7}";

    private void IssueGet(Slot slot, long now)
    {
        slot.LastKind = Kind.Get;
        slot.Worker.Client.Send(OpCode.GetData, _reads[slot.Next(_reads.Length)], _onReply, slot, now);
    }

    private void IssueSet(Slot slot, long now)
    {
        slot.LastKind = Kind.Set;
        slot.Worker.Client.Send(OpCode.SetData, _sets[slot.Next(_sets.Length)], _onReply, slot, now);
    }

    /// <summary>Sends the slot's next request; latency is measured from <paramref name="now"/> (with --rate the intended
    /// send time, which may be earlier than the actual one).</summary>
    private void Issue(Slot slot, long now)
    {
        var w = slot.Worker;
        switch (_o.Op)
        {
            case BenchOp.Get:
                IssueGet(slot, now);
                break;
            case BenchOp.Exists:
                slot.LastKind = Kind.Exists;
                w.Client.Send(OpCode.Exists, _reads[slot.Next(_reads.Length)], _onReply, slot, now);
                break;
            case BenchOp.Set:
                IssueSet(slot, now);
                break;
            case BenchOp.Sync:
                slot.LastKind = Kind.Sync;
                w.Client.Send(OpCode.Sync, _syncs[slot.Next(_syncs.Length)], _onReply, slot, now);
                break;
            case BenchOp.LinearizableGet:
                slot.LastKind = Kind.LinGet;
                w.Client.Send(OpCode.LinearizableRead, _linearizableReads[slot.Next(_linearizableReads.Length)], _onReply, slot, now);
                break;
            case BenchOp.SyncGet:
            {
                // Pipelined: the server answers a session's requests in order, so the getData sees what the sync saw.
                slot.LastKind = Kind.SyncGet;
                var i = slot.Next(_reads.Length);
                w.Client.Send(OpCode.Sync, _syncs[i], IgnoreReply, null, now);
                w.Client.Send(OpCode.GetData, _reads[i], _onReply, slot, now);
                break;
            }
            case BenchOp.Mixed:
                if (slot.NextDouble() < _o.ReadRatio) IssueGet(slot, now);
                else IssueSet(slot, now);
                break;
            case BenchOp.Multi:
                slot.LastKind = Kind.Multi;
                w.Client.Send(OpCode.Multi, _multis[slot.Next(_multis.Length)], _onReply, slot, now);
                break;
            case BenchOp.Create:
                slot.LastKind = Kind.Create;
                w.Client.Send(OpCode.Create, NewCreate(w), _onReply, slot, now);
                break;
            case BenchOp.Delete:
                if (slot.ToDelete is { } path)
                {
                    slot.LastKind = Kind.Delete;
                    w.Client.Send(OpCode.Delete, new PathVersionRequest(path, -1), _onReply, slot, now);
                }
                else
                {
                    slot.LastKind = Kind.Create;
                    var create = NewCreate(w);
                    slot.ToDelete = create.NodePath;
                    w.Client.Send(OpCode.Create, create, _onReply, slot, now);
                }
                break;
        }
    }

    private CreateRequest NewCreate(Worker w)
    {
        var n = Interlocked.Increment(ref w.CreateSeq);
        return new CreateRequest($"{_writeDir}/s{w.Index}-{n}", _value, Acl.OpenAclUnsafe, (int)CreateMode.Persistent);
    }

    private void OnReply(ReplyHeader header, ZkResponse? response, Exception? error, object? state, long sent)
    {
        var slot = (Slot)state!;
        var w = slot.Worker;
        if (error is not null)
        {
            if (!_stopping) Interlocked.Increment(ref w.ConnectionLosses);
            Interlocked.Decrement(ref w.Inflight);
            return;
        }
        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref w.Completed);
        var inWindow = sent >= Volatile.Read(ref _measureStart) && now <= Volatile.Read(ref _measureEnd);
        if (header.Err == ErrorCode.Ok)
        {
            if (inWindow)
            {
                var ns = (long)((now - sent) * (1_000_000_000.0 / Stopwatch.Frequency));
                (w.Hist[(int)slot.LastKind] ??= new LatencyHistogram()).Record(ns);
                Interlocked.Increment(ref w.Ok);
            }
        }
        else
        {
            if (inWindow) Interlocked.Increment(ref w.Errors);
            else if (sent < Volatile.Read(ref _measureStart)) Interlocked.Increment(ref w.WarmupErrors);
            lock (w.ErrorCodes) w.ErrorCodes[header.Err] = w.ErrorCodes.GetValueOrDefault(header.Err) + 1;
        }
        if (slot.LastKind == Kind.Delete || header.Err != ErrorCode.Ok && slot.LastKind == Kind.Create) slot.ToDelete = null;
        if (_stopping)
        {
            // Do not leave a created node behind in delete mode.
            if (_o.Op == BenchOp.Delete && slot.ToDelete is { } path && slot.LastKind == Kind.Create)
            {
                slot.ToDelete = null;
                slot.LastKind = Kind.Delete;
                w.Client.Send(OpCode.Delete, new PathVersionRequest(path, -1), static (_, _, _, st, _) =>
                    Interlocked.Decrement(ref ((Slot)st!).Worker.Inflight), slot, now);
                return;
            }
            Interlocked.Decrement(ref w.Inflight);
            return;
        }
        if (_o.Rate is null)
        {
            Issue(slot, Stopwatch.GetTimestamp());
            return;
        }
        // Open loop: the freed slot takes the oldest overdue request, keeping its intended time; else it goes idle.
        long intended;
        lock (w.Owed)
        {
            if (!w.Owed.TryDequeue(out intended))
            {
                w.FreeSlots.Push(slot);
                Interlocked.Decrement(ref w.Inflight);
                return;
            }
        }
        Issue(slot, intended);
    }

    /// <summary>
    /// The open-loop schedule (--rate): the k-th request of the run is due at start + k / rate and belongs to session
    /// k mod sessions, so each session sends at rate / sessions per second on a fixed schedule. A request finds an idle
    /// slot of its session or waits in that session's queue; either way its latency counts from when it was due, so a
    /// stalled server cannot hide its stall by slowing the sender (no coordinated omission). It runs on its own thread
    /// with nanosleep: Task.Delay wakes up 1-2 ms late, which would show up as latency of the server.
    /// </summary>
    private Task StartPacer(Worker[] workers, double rate, long start, CancellationToken ct)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { Pace(workers, rate, start, ct); done.TrySetResult(); }
            catch (Exception e) { done.TrySetException(e); }
        }) { IsBackground = true, Name = "bench-pacer" };
        thread.Start();
        return done.Task;
    }

    private void Pace(Worker[] workers, double rate, long start, CancellationToken ct)
    {
        var ticksPerRequest = Stopwatch.Frequency / rate;
        long k = 0;
        while (!_stopping && !ct.IsCancellationRequested)
        {
            long due;
            while ((due = start + (long)(k * ticksPerRequest)) <= Stopwatch.GetTimestamp() && !_stopping)
            {
                var w = workers[(int)(k % workers.Length)];
                k++;
                Slot? slot;
                lock (w.Owed)
                {
                    if (!w.FreeSlots.TryPop(out slot))
                    {
                        w.Owed.Enqueue(due);
                        continue;
                    }
                    Interlocked.Increment(ref w.Inflight);
                }
                if (due >= Volatile.Read(ref _measureStart))
                    _sendLag.Record((long)((Stopwatch.GetTimestamp() - due) * (1_000_000_000.0 / Stopwatch.Frequency)));
                Issue(slot, due);
            }
            // At most 10 ms at a time, so that the end of the run is noticed.
            var waitNs = (long)((due - Stopwatch.GetTimestamp()) * (1_000_000_000.0 / Stopwatch.Frequency));
            if (waitNs > 0) SleepNs(Math.Min(waitNs, 10_000_000));
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", SetLastError = true)]
    private static extern int nanosleep(ref TimeSpec request, IntPtr remaining);

    /// <summary>Sleeps about <paramref name="ns"/> (Linux: within ~60 us; elsewhere whole milliseconds).</summary>
    private static void SleepNs(long ns)
    {
        if (!OperatingSystem.IsLinux())
        {
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Max(1, ns / 1_000_000)));
            return;
        }
        var spec = new TimeSpec { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 };
        nanosleep(ref spec, IntPtr.Zero);
    }

    // ---------------------------------------------------------------- setup and teardown

    private async Task SetupAsync((string Host, int Port) host, CancellationToken ct)
    {
        var setup = await WireClient.ConnectAsync(host.Host, host.Port, new WireClientOptions
        {
            SessionTimeoutMs = _o.SessionTimeoutMs, Tls = _o.Tls, EventChannel = false,
        }, ct).ConfigureAwait(false);
        try
        {
            await EnsureAsync(setup, _o.Root, null).ConfigureAwait(false);
            await EnsureAsync(setup, _dataDir, null).ConfigureAwait(false);
            await EnsureAsync(setup, _hot, _value).ConfigureAwait(false);
            if (_o.Op is BenchOp.Create or BenchOp.Delete) await EnsureAsync(setup, _writeDir, null).ConfigureAwait(false);
            if (_o.Op is BenchOp.Create or BenchOp.Delete && _o.Sessions > 0 && _o.Watchers == 0) return; // no data nodes needed

            const int window = 1000;
            for (var start = 0; start < _o.Znodes; start += window)
            {
                var count = Math.Min(window, _o.Znodes - start);
                var creates = new Task<(ReplyHeader Header, ZkResponse? Response)>[count];
                for (var i = 0; i < count; i++) creates[i] = setup.CreateAsync(NodePath(start + i), _value);
                await Task.WhenAll(creates).ConfigureAwait(false);
                var sets = new List<Task<(ReplyHeader Header, ZkResponse? Response)>>();
                for (var i = 0; i < count; i++)
                {
                    var err = creates[i].Result.Header.Err;
                    if (err == ErrorCode.NodeExists) sets.Add(setup.SetDataAsync(NodePath(start + i), _value));
                    else if (err != ErrorCode.Ok) throw new InvalidOperationException($"setup: create {NodePath(start + i)} failed with {err}");
                }
                foreach (var s in sets)
                {
                    var (h, _) = await s.ConfigureAwait(false);
                    if (h.Err != ErrorCode.Ok) throw new InvalidOperationException($"setup: setData failed with {h.Err}");
                }
            }
        }
        finally
        {
            await setup.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
    }

    private static async Task EnsureAsync(WireClient c, string path, byte[]? data)
    {
        var (h, _) = await c.CreateAsync(path, data).ConfigureAwait(false);
        if (h.Err is not (ErrorCode.Ok or ErrorCode.NodeExists))
            throw new InvalidOperationException($"setup: create {path} failed with {h.Err}");
    }

    private async Task<Worker[]> ConnectWorkersAsync((string Host, int Port)[] hosts, CancellationToken ct)
    {
        var workers = new Worker[_o.Sessions];
        using var gate = new SemaphoreSlim(32);
        var tasks = Enumerable.Range(0, _o.Sessions).Select(async i =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                var (host, port) = hosts[i % hosts.Length];
                var client = await WireClient.ConnectAsync(host, port, new WireClientOptions
                {
                    SessionTimeoutMs = _o.SessionTimeoutMs, Tls = _o.Tls, ParseResponses = false, EventChannel = false,
                }, ct).ConfigureAwait(false);
                workers[i] = new Worker { Client = client, Index = i };
            }
            finally { gate.Release(); }
        }).ToArray();
        try { await Task.WhenAll(tasks).ConfigureAwait(false); }
        catch
        {
            await CloseAllAsync(workers.Where(w => w is not null).Select(w => w.Client)).ConfigureAwait(false);
            throw;
        }
        return workers;
    }

    internal static async Task CloseAllAsync(IEnumerable<WireClient> clients)
    {
        using var gate = new SemaphoreSlim(64);
        await Task.WhenAll(clients.Select(async c =>
        {
            await gate.WaitAsync().ConfigureAwait(false);
            try { await c.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
            catch { }
            finally { gate.Release(); }
        })).ConfigureAwait(false);
    }

    private async Task CleanupAsync((string Host, int Port) host)
    {
        var c = await WireClient.ConnectAsync(host.Host, host.Port, new WireClientOptions { Tls = _o.Tls }).ConfigureAwait(false);
        try
        {
            var (h, r) = await c.SendAsync(OpCode.GetChildren, new PathWatchRequest(_writeDir, false)).ConfigureAwait(false);
            if (h.Err != ErrorCode.Ok || r is not GetChildrenResponse children) return;
            foreach (var chunk in children.Children.Chunk(1000))
                await Task.WhenAll(chunk.Select(name => c.DeleteAsync(_writeDir + "/" + name))).ConfigureAwait(false);
            await c.DeleteAsync(_writeDir).ConfigureAwait(false);
        }
        finally { await c.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
    }

    // ---------------------------------------------------------------- watch fan-out

    /// <summary>N sessions watch one hot znode; a writer sets it in rounds; measures setData → all notified.</summary>
    private sealed class WatchBench : IAsyncDisposable
    {
        private readonly BenchRunner _bench;
        private WireClient[] _watchers = [];
        private WireClient? _writer;
        private readonly LatencyHistogram _fanout = new();
        private readonly LatencyHistogram _notify = new();
        private readonly object _lock = new();
        private long _roundStart;
        private bool _roundMeasured;
        private int _remaining;
        private TaskCompletionSource? _roundDone;
        public long Rounds;
        private long _missed;
        private long _errors;

        private WatchBench(BenchRunner bench) => _bench = bench;

        public static async Task<WatchBench> StartAsync(BenchRunner bench, (string Host, int Port)[] hosts, CancellationToken ct)
        {
            var wb = new WatchBench(bench);
            var n = bench._o.Watchers;
            wb._watchers = new WireClient[n];
            using var gate = new SemaphoreSlim(32);
            await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
            {
                await gate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var (host, port) = hosts[i % hosts.Length];
                    wb._watchers[i] = await WireClient.ConnectAsync(host, port, new WireClientOptions
                    {
                        SessionTimeoutMs = bench._o.SessionTimeoutMs, Tls = bench._o.Tls, ParseResponses = false, EventChannel = false, OnEvent = wb.OnEvent,
                    }, ct).ConfigureAwait(false);
                }
                finally { gate.Release(); }
            })).ConfigureAwait(false);
            wb._writer = await WireClient.ConnectAsync(hosts[0].Host, hosts[0].Port, new WireClientOptions
            {
                SessionTimeoutMs = bench._o.SessionTimeoutMs, Tls = bench._o.Tls, ParseResponses = false, EventChannel = false,
            }, ct).ConfigureAwait(false);
            return wb;
        }

        private void OnEvent(WatchNotification n)
        {
            if (n.Event.Type != EventType.NodeDataChanged || n.Event.Path != _bench._hot) return;
            TaskCompletionSource? done = null;
            lock (_lock)
            {
                if (_roundDone is null || _remaining <= 0) return;
                var ns = (long)((n.Timestamp - _roundStart) * (1_000_000_000.0 / Stopwatch.Frequency));
                if (_roundMeasured) _notify.Record(ns);
                if (--_remaining == 0)
                {
                    if (_roundMeasured) _fanout.Record(ns);
                    done = _roundDone;
                }
            }
            done?.TrySetResult();
        }

        public async Task RunRoundsAsync(CancellationToken ct)
        {
            var hot = _bench._hot;
            while (!_bench._stopping && !ct.IsCancellationRequested)
            {
                var arms = _watchers.Select(w => w.GetDataAsync(hot, watch: true)).ToArray();
                try { await Task.WhenAll(arms).WaitAsync(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false); }
                catch (Exception) { Interlocked.Increment(ref _errors); return; }
                if (arms.Any(a => a.Result.Header.Err != ErrorCode.Ok)) { Interlocked.Increment(ref _errors); return; }
                if (_bench._stopping) return;

                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var now = Stopwatch.GetTimestamp();
                lock (_lock)
                {
                    _remaining = _watchers.Length;
                    _roundDone = done;
                    _roundStart = now;
                    _roundMeasured = now >= Volatile.Read(ref _bench._measureStart);
                }
                var set = _writer!.SetDataAsync(hot, _bench._value);
                try
                {
                    await done.Task.WaitAsync(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
                    if ((await set.ConfigureAwait(false)).Header.Err != ErrorCode.Ok) Interlocked.Increment(ref _errors);
                    if (_roundMeasured) Interlocked.Increment(ref Rounds);
                }
                catch (TimeoutException)
                {
                    lock (_lock) { Interlocked.Add(ref _missed, _remaining); _remaining = 0; _roundDone = null; }
                }
                catch (OperationCanceledException) { return; }
            }
        }

        public WatchResult Summarize()
        {
            lock (_lock)
                return new WatchResult(_watchers.Length, Interlocked.Read(ref Rounds), _fanout.Summarize(), _notify.Summarize(),
                    Interlocked.Read(ref _missed), Interlocked.Read(ref _errors));
        }

        public async ValueTask DisposeAsync()
        {
            await CloseAllAsync(_watchers.Where(w => w is not null)).ConfigureAwait(false);
            if (_writer is not null) await _writer.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
    }
}
