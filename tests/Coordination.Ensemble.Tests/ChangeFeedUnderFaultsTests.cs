using System.Diagnostics;
using Coordination.Client;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Persistence;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// The change feed under faults, on a 3-member in-process ensemble (real TCP, real journals): writers create, set and
/// delete znodes under /feed and elsewhere while the fault schedule of LinearizabilityUnderFaultsTests kills,
/// restarts and isolates members. Subscribers follow /feed from zxid 0 with the .NET client:
/// two with the whole connect string (they fail over when their member goes), one that every few seconds drops its
/// client and resumes from the last zxid it saw on another member, chosen at random. Afterwards each must have
/// received exactly the committed changes under /feed, every zxid once and in order, as computed independently from
/// the final journal (its txns applied to a fresh tree). A TreeCache on /feed must match the leader's tree after
/// every fault (writers paused for the check) and at the end, without ever re-reading the tree.
/// Duration: 40 s of writes and faults (COORDINATION_FEED_SECONDS=N). The one-enumerator tests run on in-process
/// members and on real server processes (SIGKILL and SIGSTOP).
/// </summary>
public sealed class ChangeFeedUnderFaultsTests(ITestOutputHelper output)
{
    private readonly FaultRunLog _log = new(output, "COORDINATION_FEED_LOG");

    /// <summary>Session 12's CI failure (seed 4840: "67218 changes, the journal has 64675") was this test's: on a fast
    /// machine the run passed 100,000 txns (error txns count), the members took snapshots, and the expected sequence
    /// came from a journal with a hole (see <c>CommittedChanges</c>). Snapshots are now off here, and a
    /// journal with a hole is refused.</summary>
    [Fact]
    public Task Subscribers_that_resume_on_any_member_receive_exactly_the_committed_sequence() =>
        Seeded(nameof(Subscribers_that_resume_on_any_member_receive_exactly_the_committed_sequence), RunAsync);

    private Task Seeded(string test, Func<int, Task> body) =>
        TestSeed.RunAsync(Environment.TickCount & 0xffff, "tests/Coordination.Ensemble.Tests", $"{nameof(ChangeFeedUnderFaultsTests)}.{test}", _log.Line, body);

    /// <summary>
    /// A 3-member ensemble with /feed and /other. No snapshots: the expected sequence is rebuilt from a member's whole
    /// journal, and a snapshot breaks every journal (its writer purges the segments before it; a member that installs
    /// one from its leader has a hole). The feed across a snapshot install is ChangeFeedSnapshotTests' subject.
    /// </summary>
    private const string NoSnapshots = "coordination.persistence { snapshot-every-txns = 2147483647, snapshot-every-bytes = 1099511627776 }";

    private static async Task<TestEnsemble> StartWithoutSnapshotsAsync()
    {
        var ensemble = await TestEnsemble.StartAsync(3, options: new TestEnsembleOptions { SnapshotEveryTxns = int.MaxValue, ExtraHocon = NoSnapshots });
        await using var setup = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString);
        await setup.CreateAsync("/feed", null).OkAsync();
        await setup.CreateAsync("/other", null).OkAsync();
        return ensemble;
    }

    private async Task RunAsync(int seed)
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_FEED_SECONDS"), out var s) && s > 0 ? s : 40;
        await using var ensemble = await StartWithoutSnapshotsAsync();
        var random = new Random(seed);
        using var stop = new CancellationTokenSource();
        using var end = new CancellationTokenSource();

        var subscribers = new[] { new List<Change>(), new List<Change>(), new List<Change>() };
        var resumes = 0;
        var failed = new List<string>();
        async Task Follow(int index, Func<long, Task<(CoordinationClient Client, TimeSpan? Leave)>> connect)
        {
            var seen = subscribers[index];
            while (!end.IsCancellationRequested)
            {
                var after = seen.Count > 0 ? seen[^1].Zxid : 0;
                CoordinationClient? client = null;
                try
                {
                    var (c, leave) = await connect(after);
                    client = c;
                    using var leaving = CancellationTokenSource.CreateLinkedTokenSource(end.Token);
                    if (leave is { } l) leaving.CancelAfter(l);
                    // Resuming from `after` would skip the rest of a multi cut by the client's disposal: this
                    // subscriber resumes from the last complete zxid and drops what it already has.
                    var complete = seen.Count == 0 ? 0 : seen.LastOrDefault(x => x.Zxid != seen[^1].Zxid)?.Zxid ?? 0;
                    var already = seen.Count(x => x.Zxid > complete);
                    await foreach (var change in c.WatchChangesAsync("/feed", complete, ct: leaving.Token))
                    {
                        if (already-- > 0) continue;
                        seen.Add(change);
                    }
                }
                catch (OperationCanceledException) { Interlocked.Increment(ref resumes); }
                catch (Exception e) when (e is KeeperException or IOException or TimeoutException)
                {
                    lock (failed) failed.Add($"subscriber {index}: {e.GetType().Name}: {e.Message}");
                    await Task.Delay(200);
                }
                finally { if (client is not null) await client.DisposeAsync(); }
            }
        }
        Task<CoordinationClient> Open(string connectString) => CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = connectString, SessionTimeout = TimeSpan.FromSeconds(10),
        });
        string AnyRunning()
        {
            var running = ensemble.Members.Where(m => m.IsRunning).ToList();
            lock (random) return running[random.Next(running.Count)].ConnectString;
        }
        var followers = new List<Task>
        {
            Task.Run(() => Follow(0, async _ => (await Open(ensemble.ConnectString), null))),
            Task.Run(() => Follow(1, async _ => (await Open(ensemble.ConnectString), null))),
            Task.Run(() => Follow(2, async _ => (await Open(AnyRunning()), TimeSpan.FromMilliseconds(2000 + Random.Shared.Next(3000))))),
        };

        // A TreeCache on /feed, checked against the tree after every fault (writers paused meanwhile).
        await using var cacheClient = await Open(ensemble.ConnectString);
        await using var cache = await TreeCache.StartAsync(cacheClient, "/feed");
        var startReads = cache.Reads;
        var writing = new Writing();
        var checks = 0;
        async Task CheckCache()
        {
            await writing.PauseAsync();
            try
            {
                await AssertCacheMatchesTreeAsync(ensemble, cache);
                Assert.Equal(startReads, cache.Reads);   // followed, never re-read
                checks++;
                _log.Line($"tree cache matches the tree at zxid 0x{cache.LastZxid:x}");
            }
            finally { writing.Resume(); }
        }
        var faults = Task.Run(() => _log.FaultScheduleAsync(ensemble, new Random(seed + 1), stop.Token, CheckCache));
        var writers = Enumerable.Range(0, 3).Select(w => Task.Run(() => WriteAsync(() => Running(ensemble), writing, new Random(seed + 10 + w), stop.Token))).ToList();
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        stop.Cancel();
        await faults;
        var written = (await Task.WhenAll(writers)).Sum();

        await ensemble.HealAllAsync();
        foreach (var m in ensemble.Members.Where(m => !m.IsRunning).ToList()) await ensemble.RestartAsync(m.Id);
        await ensemble.WaitAllServingAsync(TimeSpan.FromSeconds(60));
        long last;
        await using (var c = await WireClient.ConnectAsync(ensemble.Leader!.ConnectString))
            last = (await c.CreateAsync("/feed/final", null)).Header.Zxid;
        await ensemble.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        await AssertCacheMatchesTreeAsync(ensemble, cache);
        Assert.True(checks >= 2, $"the tree cache was checked after {checks} faults only");
        var clock = Stopwatch.StartNew();
        while (subscribers.Any(x => x.Count == 0 || x[^1].Zxid < last) && clock.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(100);
        end.Cancel();
        await Task.WhenAll(followers);

        var expected = CommittedChanges(ensemble, "/feed");
        _log.Line($"{written} writes, {expected.Count} changes under /feed in the journal, {resumes} voluntary resumes, {failed.Count} subscription errors");
        foreach (var f in failed.Take(20)) _log.Line(f);
        Assert.True(_log.Faults.Count >= 2, $"only {_log.Faults.Count} faults were injected");
        Assert.True(expected.Count > 100, $"only {expected.Count} changes were committed");
        for (var i = 0; i < subscribers.Length; i++) AssertCommittedSequence($"subscriber {i}", subscribers[i], expected);
    }

    /// <summary>
    /// One enumerator of one client, never restarted: the subscribers above hide a client that fails to resume (each
    /// loss of a member ends their enumerator or their client). Here <see cref="CoordinationClient.WatchChangesAsync"/>
    /// keeps running while the member its client is connected to is killed (its node disposed at once, as a crash) or
    /// isolated from the others (it stops serving and drops its clients), in turn, and writers go on: the client moves
    /// to another member and the enumerator resumes there by itself. What it yields must be exactly the committed
    /// sequence under /feed from the final journal, and a TreeCache on the same client must match the tree after every
    /// fault without re-reading it. Four faults (COORDINATION_FEED_FAULTS=N).
    /// </summary>
    [Fact]
    public Task One_enumerator_resumes_on_another_member_when_its_member_is_lost() =>
        Seeded(nameof(One_enumerator_resumes_on_another_member_when_its_member_is_lost),
            async seed => await OneEnumeratorAsync(seed, new InProcess(await StartWithoutSnapshotsAsync())));

    /// <summary>
    /// The same on three real server processes (file journals on disk): the member the client is connected to is
    /// killed with SIGKILL (then started again on its data dir) or frozen with SIGSTOP (it answers no one, neither its
    /// peers nor its clients, as behind a partition, and after SIGCONT goes on from a stale state), in turn, whichever
    /// its role. The enumerator must resume on another member each time, yield exactly the committed sequence under
    /// /feed read from the members' journals at the end, and the TreeCache match the tree after every fault.
    /// Four faults (COORDINATION_FEED_FAULTS=N); each step bounded (45 s to resume, 60 s to settle).
    /// </summary>
    [Fact]
    public Task One_enumerator_resumes_on_another_member_when_its_server_process_is_killed_or_frozen() =>
        Seeded(nameof(One_enumerator_resumes_on_another_member_when_its_server_process_is_killed_or_frozen),
            async seed => await OneEnumeratorAsync(seed, await Processes.StartAsync(_log.Line)));

    private async Task OneEnumeratorAsync(int seed, Cluster cluster)
    {
        await using var _ = cluster;
        var faults = int.TryParse(Environment.GetEnvironmentVariable("COORDINATION_FEED_FAULTS"), out var f) && f > 0 ? f : 4;
        var random = new Random(seed);
        await using var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            // 20 s (the real processes' tick of 1 s allows it; in process it is capped at 10 s, where a fault closes
            // the connection at once): a subscriber only receives, so it pings once a third of its timeout and its
            // member last saw it up to that long before a SIGSTOP. The client gave up on the frozen member two thirds
            // of its timeout after the last byte received (events, until the freeze): no margin for the reconnect,
            // and the session expired under load (seed 31399). It now counts from the last reply (to its ping).
            ConnectString = cluster.ConnectString, SessionTimeout = TimeSpan.FromSeconds(20),
            Log = message => _log.Line("client: " + message),
        });
        await using var cache = await TreeCache.StartAsync(client, "/feed");
        var startReads = cache.Reads;

        var seen = new List<Change>();
        int Seen() { lock (seen) return seen.Count; }
        long LastSeen() { lock (seen) return seen.Count > 0 ? seen[^1].Zxid : 0; }
        using var end = new CancellationTokenSource();
        var following = Task.Run(async () =>
        {
            try
            {
                await foreach (var change in client.WatchChangesAsync("/feed", 0, ct: end.Token))
                    lock (seen) seen.Add(change);
            }
            catch (OperationCanceledException) when (end.IsCancellationRequested) { }
        });

        using var stop = new CancellationTokenSource();
        var writing = new Writing();
        var writers = Enumerable.Range(0, 3).Select(w => Task.Run(() => WriteAsync(cluster.Serving, writing, new Random(seed + 10 + w), stop.Token))).ToList();
        long? MemberOfClient() => client.ConnectedHost is { } host ? cluster.MemberOn(host.Port) : null;
        async Task<long> Within(TimeSpan limit, Func<long?> probe, string what)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < limit)
            {
                if (probe() is { } found) return found;
                await Task.Delay(50);
            }
            throw new TimeoutException($"{what} within {limit.TotalSeconds} s");
        }

        for (var fault = 0; fault < faults; fault++)
        {
            await Task.Delay(random.Next(1000, 2500));
            var member = await Within(TimeSpan.FromSeconds(30), MemberOfClient, "the client did not connect");
            var before = Seen();
            var (what, recover) = await cluster.FaultAsync(member, fault);
            _log.Fault($"{what}, the subscriber's; {before} changes so far");
            // The same enumerator goes on through another member while this one is out.
            var moved = await Within(TimeSpan.FromSeconds(45),
                () => MemberOfClient() is { } m && m != member && Seen() > before ? m : null,
                $"the enumerator did not resume on another member after: {what} ({Seen() - before} changes since)");
            _log.Line($"the enumerator resumed on member {moved}: {Seen() - before} changes since the fault");
            await recover();
            _log.Recovery($"member {member} back");
            await cluster.WaitAllServingAsync(TimeSpan.FromSeconds(60));
            await writing.PauseAsync();
            try
            {
                await AssertCacheMatchesTreeAsync(cluster.LeaderAsync, cache);
                Assert.Equal(startReads, cache.Reads);   // followed, never re-read
            }
            finally { writing.Resume(); }
        }
        stop.Cancel();
        var written = (await Task.WhenAll(writers)).Sum();

        long last;
        await using (var c = await WireClient.ConnectAsync(await cluster.LeaderAsync()))
            last = (await c.CreateAsync("/feed/final", null)).Header.Zxid;
        await cluster.WaitConvergedAsync(TimeSpan.FromSeconds(60));
        await AssertCacheMatchesTreeAsync(cluster.LeaderAsync, cache);
        var clock = Stopwatch.StartNew();
        while (!following.IsCompleted && LastSeen() < last && clock.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(100);
        end.Cancel();
        await following;   // a failure of the enumerator (Compacted, an error) fails the test here

        var expected = CommittedChanges(cluster.DataDirs, "/feed");
        _log.Line($"{written} writes, {expected.Count} changes under /feed in the journal, {faults} faults, the enumerator got {seen.Count}");
        Assert.True(expected.Count > 100, $"only {expected.Count} changes were committed");
        AssertCommittedSequence("the enumerator", seen, expected);
    }

    /// <summary>What the one-enumerator run needs of an ensemble: in-process members or real server processes.</summary>
    private abstract class Cluster : IAsyncDisposable
    {
        public abstract string ConnectString { get; }
        /// <summary>The member serving on this client port, unless it is down or frozen.</summary>
        public abstract long? MemberOn(int clientPort);
        /// <summary>The client addresses of the members writers may use now.</summary>
        public abstract IReadOnlyList<string> Serving();
        public abstract Task<string> LeaderAsync();
        /// <summary>Fault number <paramref name="n"/> on member <paramref name="id"/>: what it was, and what undoes it.</summary>
        public abstract Task<(string What, Func<Task> Recover)> FaultAsync(long id, int n);
        public abstract Task WaitAllServingAsync(TimeSpan timeout);
        public abstract Task WaitConvergedAsync(TimeSpan timeout);
        public abstract IEnumerable<(long Id, string DataDir)> DataDirs { get; }
        public abstract ValueTask DisposeAsync();
    }

    /// <summary>In-process members: a kill disposes the member's node at once; isolation cuts its member links.</summary>
    private sealed class InProcess(TestEnsemble ensemble) : Cluster
    {
        public override string ConnectString => ensemble.ConnectString;
        public override long? MemberOn(int clientPort) => ensemble.Members.FirstOrDefault(m => m.ClientPort == clientPort && m.IsRunning)?.Id;
        public override IReadOnlyList<string> Serving() => Running(ensemble);
        public override async Task<string> LeaderAsync() => (await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).ConnectString;
        public override async Task<(string What, Func<Task> Recover)> FaultAsync(long id, int n)
        {
            var what = $"{(n % 2 == 0 ? "kill" : "isolate")} member {id} ({ensemble[id].Mode})";
            if (n % 2 == 0)
            {
                await ensemble.KillAsync(id);
                return (what, () => ensemble.RestartAsync(id));
            }
            await ensemble.PartitionAsync(id);
            return (what, ensemble.HealAllAsync);
        }
        public override Task WaitAllServingAsync(TimeSpan timeout) => ensemble.WaitAllServingAsync(timeout);
        public override Task WaitConvergedAsync(TimeSpan timeout) => ensemble.WaitConvergedAsync(timeout);
        public override IEnumerable<(long Id, string DataDir)> DataDirs => ensemble.Members.Select(m => (m.Id, m.DataDir));
        public override ValueTask DisposeAsync() => ensemble.DisposeAsync();
    }

    /// <summary>Real server processes: SIGKILL (restarted on its data dir), or SIGSTOP until SIGCONT.</summary>
    private sealed class Processes(EnsembleProcesses ensemble) : Cluster
    {
        private const int SigCont = 18, SigStop = 19;   // Linux
        private readonly HashSet<long> _frozen = new();

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int Signal(int pid, int signal);

        public static async Task<Processes> StartAsync(Action<string> log)
        {
            var ensemble = await EnsembleProcesses.StartAsync(ServerKind.Ours, 3, new EnsembleProcessesOptions
            {
                ExtraHocon = NoSnapshots, Log = log, TickTimeMs = 1000,   // sessions of up to 20 s
            });
            await using (var setup = await WireClient.ConnectAnyAsync(ensemble.ConnectString))
            {
                await setup.CreateAsync("/feed", null).OkAsync();
                await setup.CreateAsync("/other", null).OkAsync();
            }
            return new Processes(ensemble);
        }

        private bool Up(EnsembleProcesses.Member m) { lock (_frozen) return m.IsRunning && !_frozen.Contains(m.Id); }
        public override string ConnectString => ensemble.ConnectString;
        public override long? MemberOn(int clientPort) => ensemble.Members.FirstOrDefault(m => m.ClientPort == clientPort && Up(m))?.Id;
        public override IReadOnlyList<string> Serving() => ensemble.Members.Where(Up).Select(m => m.ConnectString).ToList();
        public override async Task<string> LeaderAsync() => (await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).ConnectString;
        public override async Task<(string What, Func<Task> Recover)> FaultAsync(long id, int n)
        {
            var pid = ensemble[id].Process!.Pid;
            var what = $"{(n % 2 == 0 ? "SIGKILL" : "SIGSTOP")} member {id} (pid {pid}, {await ensemble.ModeAsync(id) ?? "not serving"})";
            if (n % 2 == 0)
            {
                ensemble.Kill(id);
                return (what, () => ensemble.RestartAsync(id));
            }
            lock (_frozen) _frozen.Add(id);
            Assert.Equal(0, Signal(pid, SigStop));
            return (what, () =>
            {
                Thaw(id);
                return Task.CompletedTask;
            });
        }

        private void Thaw(long id)
        {
            if (ensemble[id].Process is { } p) Signal(p.Pid, SigCont);
            lock (_frozen) _frozen.Remove(id);
        }

        public override Task WaitAllServingAsync(TimeSpan timeout) => ensemble.WaitAllServingAsync(timeout);
        public override Task WaitConvergedAsync(TimeSpan timeout) => ensemble.WaitConvergedAsync(timeout);
        public override IEnumerable<(long Id, string DataDir)> DataDirs => ensemble.Members.Select(m => (m.Id, m.DataDir));
        public override async ValueTask DisposeAsync()
        {
            long[] frozen;
            lock (_frozen) frozen = _frozen.ToArray();
            foreach (var id in frozen) Thaw(id);   // a stopped process would not act on SIGTERM
            await ensemble.DisposeAsync();
        }
    }

    /// <summary>What a subscriber received must be exactly the committed sequence: every change once, in order.</summary>
    private static void AssertCommittedSequence(string who, IReadOnlyList<Change> received, List<(long, EventType, string, string)> expected)
    {
        var got = received.Select(x => (x.Zxid, x.Type, x.Path, Convert.ToHexString(x.Data ?? []))).ToList();
        var first = got.Zip(expected).Select((pair, n) => (pair, n)).FirstOrDefault(p => p.pair.Item1 != p.pair.Item2);
        Assert.True(got.SequenceEqual(expected),
            $"{who} got {got.Count} changes, the journal has {expected.Count}; first difference at {first.n}: got {first.pair.Item1}, journal {first.pair.Item2}");
    }

    /// <summary>Lets the writers be paused, and tells when none has a write in flight.</summary>
    private sealed class Writing
    {
        private volatile TaskCompletionSource _open = Opened();
        private int _inFlight;
        private static TaskCompletionSource Opened() { var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); t.SetResult(); return t; }
        public async Task EnterAsync(CancellationToken ct) { await _open.Task.WaitAsync(ct); Interlocked.Increment(ref _inFlight); }
        public void Leave() => Interlocked.Decrement(ref _inFlight);
        public async Task PauseAsync()
        {
            _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var clock = Stopwatch.StartNew();
            while (Volatile.Read(ref _inFlight) > 0 && clock.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        }
        public void Resume() => _open.TrySetResult();
    }

    /// <summary>The cache must come to hold exactly what the leader holds under /feed (paths, data, mzxid): polled,
    /// bounded, since writes given up as lost may still commit and the cache follows the feed asynchronously.</summary>
    private static Task AssertCacheMatchesTreeAsync(TestEnsemble ensemble, TreeCache cache) =>
        AssertCacheMatchesTreeAsync(async () => (await ensemble.WaitForLeaderAsync(TimeSpan.FromSeconds(10))).ConnectString, cache);

    private static async Task AssertCacheMatchesTreeAsync(Func<Task<string>> leader, TreeCache cache)
    {
        var clock = Stopwatch.StartNew();
        string? difference = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                await using var c = await WireClient.ConnectAsync(await leader());
                var tree = new SortedDictionary<string, string>(StringComparer.Ordinal);
                var root = (GetDataResponse)(await c.GetDataAsync("/feed").OkAsync())!;
                tree["/feed"] = $"{Convert.ToHexString(root.Data ?? [])}@{root.Stat.Mzxid:x}";
                foreach (var child in ((GetChildrenResponse)(await c.GetChildren2Async("/feed").OkAsync())!).Children)
                    if (await c.GetDataAsync("/feed/" + child).OkAsync(ErrorCode.NoNode) is GetDataResponse d)
                        tree["/feed/" + child] = $"{Convert.ToHexString(d.Data ?? [])}@{d.Stat.Mzxid:x}";
                var cached = new SortedDictionary<string, string>(
                    cache.Nodes.ToDictionary(n => n.Key, n => $"{Convert.ToHexString(n.Value.Data ?? [])}@{n.Value.Stat.Mzxid:x}"), StringComparer.Ordinal);
                if (tree.SequenceEqual(cached)) return;
                difference = $"tree [{string.Join(", ", tree.Except(cached))}] cache [{string.Join(", ", cached.Except(tree))}]";
            }
            catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException) { difference = e.Message; }
            await Task.Delay(200);
        }
        Assert.Fail($"the tree cache does not match the tree after 30 s: {difference}");
    }

    /// <summary>Random creates, sets and deletes under /feed and /other through whichever member answers, until stopped.</summary>
    private static IReadOnlyList<string> Running(TestEnsemble ensemble) => ensemble.Members.Where(m => m.IsRunning).Select(m => m.ConnectString).ToList();

    private static async Task<int> WriteAsync(Func<IReadOnlyList<string>> running, Writing writing, Random random, CancellationToken ct)
    {
        var done = 0;
        WireClient? c = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (c is null || !c.IsConnected)
                {
                    if (c is not null) await c.DisposeAsync();
                    var members = running();
                    c = await WireClient.ConnectAsync(members[random.Next(members.Count)],
                        new WireClientOptions { ConnectTimeout = TimeSpan.FromSeconds(3), SessionTimeoutMs = 10_000 });
                }
                var path = $"/{(random.Next(4) == 0 ? "other" : "feed")}/k{random.Next(20)}";
                var data = BitConverter.GetBytes(random.Next());
                await writing.EnterAsync(ct);
                try
                {
                    var reply = random.Next(3) switch
                    {
                        0 => c.CreateAsync(path, data),
                        1 => c.SetDataAsync(path, data),
                        _ => c.DeleteAsync(path),
                    };
                    if ((await reply.WaitAsync(TimeSpan.FromSeconds(5), ct)).Header.Err is ErrorCode.Ok) done++;
                }
                finally { writing.Leave(); }
            }
            catch (OperationCanceledException) { break; }
            catch (Exception) { if (c is not null) { await c.DisposeAsync(); c = null; } await Task.Delay(100); }
        }
        if (c is not null) await c.DisposeAsync();
        return done;
    }

    /// <summary>
    /// The changes under <paramref name="prefix"/> that the ensemble committed, from a member's journal on disk: its
    /// txns, with truncated ones dropped, applied in order to a fresh tree, each giving the znodes it created, changed
    /// or deleted. Only a whole journal will do: one starting at the ensemble's first txn with no zxid missing (a
    /// member that installed a snapshot from its leader has a hole where the snapshot stands in for txns; one that
    /// wrote a snapshot purged the segments before it). The longest such journal is taken.
    /// </summary>
    private static List<(long, EventType, string, string)> CommittedChanges(TestEnsemble ensemble, string prefix) =>
        CommittedChanges(ensemble.Members.Select(m => (m.Id, m.DataDir)), prefix);

    private static List<(long, EventType, string, string)> CommittedChanges(IEnumerable<(long Id, string DataDir)> members, string prefix)
    {
        List<(long Zxid, byte[] Payload)>? best = null;
        var refused = new List<string>();
        foreach (var member in members)
        {
            var entries = new List<(long Zxid, byte[] Payload)>();
            FileTxnLog.Read(Path.Combine(Path.GetFullPath(member.DataDir), "txnlog"), (kind, zxid, payload) =>
            {
                if (kind == LogRecordKind.Truncate) entries.RemoveAll(e => e.Zxid > zxid);
                else entries.Add((zxid, payload.ToArray()));
            });
            if (FirstHole(entries) is { } hole)
            {
                refused.Add($"member {member.Id}: {hole}");
                continue;
            }
            if (best is null || entries.Count > best.Count) best = entries;
        }
        Assert.True(best is not null, $"no member has a whole journal to check the feed against: {string.Join("; ", refused)}");
        var tree = new DataTree();
        var changes = new List<(long, EventType, string, string)>();
        foreach (var (zxid, payload) in best!)
        {
            var (header, txn) = Txns.Deserialize(payload);
            foreach (var trigger in tree.Apply(header, txn).Triggers)
            {
                if (trigger.Type is not (EventType.NodeCreated or EventType.NodeDataChanged or EventType.NodeDeleted)) continue;
                if (!WatchChangesRequest.Covers(prefix, trigger.Path)) continue;
                var data = trigger.Type == EventType.NodeDeleted ? null : tree.Find(trigger.Path)?.Data;
                changes.Add((zxid, trigger.Type, trigger.Path, Convert.ToHexString(data ?? [])));
            }
        }
        return changes;
    }

    /// <summary>Where a journal is not the whole committed history: it does not begin with the first txn, or a zxid
    /// does not follow the one before it (<see cref="Zxids.Follows"/>). Null when whole.</summary>
    private static string? FirstHole(List<(long Zxid, byte[] Payload)> entries)
    {
        if (entries.Count == 0) return "empty";
        if (entries[0].Zxid != Zxids.Make(1, 1)) return $"starts at 0x{entries[0].Zxid:x}";
        for (var i = 1; i < entries.Count; i++)
            if (!Zxids.Follows(entries[i - 1].Zxid, entries[i].Zxid)) return $"0x{entries[i].Zxid:x} follows 0x{entries[i - 1].Zxid:x}";
        return null;
    }
}
