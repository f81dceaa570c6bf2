// Worker services coordinating maintenance jobs (database repairs) through the coordination service:
//  - every worker is a group member (/maintenance/workers) with its own session;
//  - one worker is elected coordinator (LeaderSelector on /maintenance/coordinator) and enqueues repair jobs
//    (DistributedQueue /maintenance/jobs) while it leads;
//  - any worker takes a job, but runs it only while holding /maintenance/lock: at most one repair at a time;
//  - every worker follows /maintenance/config through a NodeCache, so `coord set /maintenance/config ...` changes
//    the job duration (and pauses the work) without a restart.
// Lines starting with READY, CONFIG, JOB-START, JOB-END, LEADER and SUMMARY are meant to be read by scripts and tests.

using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Coordination.Client;
using Coordination.Recipes;

var options = MaintenanceOptions.Parse(args);
using var stop = new CancellationTokenSource(options.Duration);
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
var journal = new JobJournal();

await using (var setup = await CoordinationClient.ConnectAsync(new CoordinationClientOptions { ConnectString = options.ConnectString }))
{
    try { await setup.CreateRecursiveAsync(options.Root + "/config", Encoding.UTF8.GetBytes(MaintenanceConfig.Default.ToJson())); }
    catch (NodeExistsException) { } // keep the operator's configuration
}

var workers = Enumerable.Range(0, options.Workers).Select(i => new Worker($"{options.WorkerPrefix}{i}", options, journal)).ToList();
await Task.WhenAll(workers.Select(w => w.RunAsync(stop.Token)));
Console.WriteLine($"SUMMARY jobs={journal.Completed} overlaps={journal.Overlaps} workers={options.Workers}");
return journal.Overlaps == 0 ? 0 : 1;

/// <summary>Command line: --connect HOST:PORT --workers N --duration SECONDS --root PATH --prefix NAME.</summary>
sealed record MaintenanceOptions(string ConnectString, int Workers, TimeSpan Duration, string Root, string WorkerPrefix)
{
    public static MaintenanceOptions Parse(string[] args)
    {
        string Arg(string name, string fallback) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
        return new MaintenanceOptions(Arg("--connect", "127.0.0.1:2181"), int.Parse(Arg("--workers", "3")),
            TimeSpan.FromSeconds(double.Parse(Arg("--duration", "60"), System.Globalization.CultureInfo.InvariantCulture)),
            Arg("--root", "/maintenance"), Arg("--prefix", "worker-"));
    }
}

/// <summary>The live configuration in /maintenance/config (JSON): how long one repair takes, and whether work is paused.</summary>
sealed record MaintenanceConfig(int RepairMillis = 200, bool Paused = false, string Version = "1")
{
    public static readonly MaintenanceConfig Default = new();
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
    public string ToJson() => JsonSerializer.Serialize(this, Json);
    public static MaintenanceConfig Parse(byte[]? data)
    {
        try { return data is { Length: > 0 } ? JsonSerializer.Deserialize<MaintenanceConfig>(data, Json) ?? Default : Default; }
        catch (JsonException) { return Default; }
    }
}

/// <summary>Records repairs in this process and counts overlaps (two repairs running at once must never happen).</summary>
sealed class JobJournal
{
    private readonly object _lock = new();
    private int _running;
    public int Completed { get; private set; }
    public int Overlaps { get; private set; }

    public void Start(string worker, string job)
    {
        // Printed under the lock, so the output order is the order of the counts (a reader can check it).
        lock (_lock)
        {
            if (++_running > 1) Overlaps++;
            Console.WriteLine($"JOB-START worker={worker} job={job} at={Stopwatch.GetTimestamp()}");
        }
    }

    public void End(string worker, string job)
    {
        lock (_lock)
        {
            _running--;
            Completed++;
            Console.WriteLine($"JOB-END worker={worker} job={job} at={Stopwatch.GetTimestamp()}");
        }
    }
}

sealed class Worker(string name, MaintenanceOptions options, JobJournal journal)
{
    private volatile MaintenanceConfig _config = MaintenanceConfig.Default;

    public async Task RunAsync(CancellationToken stop)
    {
        await using var client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
        {
            ConnectString = options.ConnectString, SessionTimeout = TimeSpan.FromSeconds(10),
        }, stop);
        // A worker whose session expired starts a new one; its recipes re-join on the new session.
        client.ConnectionStateChanged += s => { if (s == ConnectionState.Expired && !stop.IsCancellationRequested) _ = client.RestartAsync(); };

        await using var member = new GroupMember(client, options.Root + "/workers", name, Encoding.UTF8.GetBytes(Environment.MachineName));
        await member.StartAsync(stop);

        await using var config = new NodeCache(client, options.Root + "/config");
        config.Changed += e =>
        {
            _config = MaintenanceConfig.Parse(config.Current?.Data);
            if (e.Type != CacheEventType.Initialized) Console.WriteLine($"CONFIG worker={name} data={Encoding.UTF8.GetString(config.Current?.Data ?? [])}");
        };
        await config.StartAsync(stop);
        _config = MaintenanceConfig.Parse(config.Current?.Data);
        Console.WriteLine($"READY worker={name}");

        var jobs = new DistributedQueue(client, options.Root + "/jobs");
        await using var coordinator = new LeaderSelector(client, options.Root + "/coordinator", lead => AssignJobsAsync(jobs, member, lead), name);
        coordinator.Start();

        var repairLock = new DistributedLock(client, options.Root + "/lock");
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (_config.Paused) { await Task.Delay(100, stop); continue; }
                if (await jobs.TakeAsync(TimeSpan.FromSeconds(1), stop) is not { } job) continue;
                await RepairAsync(repairLock, Encoding.UTF8.GetString(job), stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    /// <summary>The coordinator keeps a few repairs queued, one per known worker, until it loses leadership.</summary>
    private async Task AssignJobsAsync(DistributedQueue jobs, GroupMember member, CancellationToken leading)
    {
        Console.WriteLine($"LEADER worker={name}");
        var next = 0;
        while (!leading.IsCancellationRequested)
        {
            if (!_config.Paused && (await jobs.ItemNamesAsync(leading)).Count < member.CurrentMembers.Count)
                await jobs.PutAsync(Encoding.UTF8.GetBytes($"repair-shard-{next++ % 16}-by-{name}"), leading);
            await Task.Delay(50, leading);
        }
    }

    private async Task RepairAsync(DistributedLock repairLock, string job, CancellationToken stop)
    {
        if (!await repairLock.AcquireAsync(null, stop)) return;
        try
        {
            journal.Start(name, job);
            // The repair stops early if the lock is lost (connection trouble): someone else may get it now.
            try { await Task.Delay(_config.RepairMillis, CancellationTokenSource.CreateLinkedTokenSource(stop, repairLock.LostToken).Token); }
            catch (OperationCanceledException) { }
            journal.End(name, job);
        }
        finally { await repairLock.ReleaseAsync(); }
    }
}
