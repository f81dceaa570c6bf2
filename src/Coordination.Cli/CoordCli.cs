using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Coordination.Client;
using Coordination.Protocol;
using Spectre.Console;

namespace Coordination.Cli;

/// <summary>Global settings parsed from the command line (or changed in the shell).</summary>
public sealed class CliSettings
{
    public string Server { get; set; } = Environment.GetEnvironmentVariable("COORD_SERVER") ?? "127.0.0.1:2181";
    public bool Json { get; set; }
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
    public List<AuthInfo> Auth { get; } = [];
    /// <summary>TLS to a secure client port; null = plain TCP.</summary>
    public ClientTlsOptions? Tls { get; set; }
    /// <summary>--linearizable: every read of the session is a linearizable read.</summary>
    public ReadConsistency Reads { get; set; }
}

public static class CoordCli
{
    public static readonly string[] Verbs =
    [
        "ls", "get", "stat", "set", "create", "delete", "deleteall", "getAcl", "setAcl", "sync", "changes", "config", "reconfig",
        "srvr", "stat-server", "mntr", "cons", "dump", "ruok", "4lw", "backup", "snapshot", "restore", "shell", "help",
    ];

    public const string Usage = """
        coord - command-line client for Coordination.Akka (and any ZooKeeper 3.5+ server)

        Usage:
          coord [global options] VERB [options] [args]
          coord [global options] [shell]          interactive shell (the default when no verb is given)

        Global options:
          --server, -S HOST:PORT[,HOST:PORT...][/chroot]   default $COORD_SERVER or 127.0.0.1:2181
          --json                machine-readable JSON on stdout
          --timeout SECONDS     connect / watch-wait timeout (default 10)
          --auth SCHEME:AUTH    add auth after connecting, e.g. --auth digest:user:pass (repeatable)
          --help, -h            this help

        Znode verbs:
          ls [-R] [-s] [-w] PATH          children (-R: every descendant path, -s: with stat)
          get [-s] [-w] PATH              data as UTF-8 (-s: stat too; -w: then wait for one watch event and print it)
          stat [-w] PATH                  the znode's Stat
          set [-v VERSION] PATH DATA      set data (BadVersion if VERSION does not match)
          create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA] [ACL]
                                          -e ephemeral, -s sequential, -c container, -t TTL in ms (persistent TTL node)
          delete [-v VERSION] PATH
          deleteall PATH                  delete PATH and everything below it
          getAcl PATH
          setAcl [-v ACLVERSION] PATH ACL ACL is scheme:id:perms[,...], e.g. world:anyone:cdrwa,digest:u:HASH:r, auth::cdrwa
          sync PATH
          changes [--from ZXID] [-n COUNT] PATH
                                          follow the change feed (Coordination.Akka only): every committed change
                                          under PATH after ZXID (hex 0x... or decimal; default 0), then live, one
                                          line each (zxid type path data); stops after COUNT changes or on Ctrl+C.
                                          Exit 1 if the server no longer retains ZXID (stderr names the oldest --from)

        Ensemble configuration verbs (ZooKeeper 3.5+ dynamic reconfiguration; output as zkCli's config and reconfig):
          config [-c] [-s] [-w|--watch]   /zookeeper/config: server.N=... lines and version=HEX
                                          (-c: 'VERSION host:port,...', the members' client addresses; -s: stat too;
                                          -w: then wait for the next reconfiguration and print its event)
          reconfig --add SERVER[,SERVER...] --remove ID[,ID...] [--from-version HEX] [-s]
          reconfig --members SERVER[,SERVER...] [--from-version HEX] [-s]
                                          SERVER is server.N=host:quorumPort:electionPort[:participant|observer][;[host:]clientPort];
                                          --add of a known id with another role changes its role. zkCli's -add, -remove,
                                          -members and -v are accepted. Needs reconfigEnabled on the servers and the super
                                          user (--auth digest:super:PASSWORD) or WRITE on /zookeeper/config.

        Server (admin) verbs, four-letter words sent over TCP to the first server of --server:
          srvr | stat-server | mntr | cons | dump | ruok | 4lw WORD
          ('stat' always means a znode's Stat; the 'stat' four-letter word is 'stat-server'.)
          The server must allow the word (coordination.four-letter-words; cons, dump and hash are not allowed by default).

        Data-dir verbs (run the server binary: --server-dll PATH, $COORDINATION_SERVER_DLL, or the build output):
          backup --data-dir DIR --out FILE [--config FILE]     consistent snapshot of a running or stopped server
          snapshot ...                                         the same as backup
          restore --data-dir DIR --from FILE [--config FILE]   seed an EMPTY data dir from a backup, then stop
          Progress goes to stderr; the result line (or --json object) to stdout.

        Shell-only commands: addauth SCHEME AUTH, history, !N (re-run history entry N), connect HOST:PORT, close,
          json (toggle JSON output), help, quit | exit. In the shell, -w registers the watch and events are printed
          as they arrive; Tab completes verbs and znode paths, Up/Down walk the history, Ctrl+U clears, Ctrl+D quits.
        """;

    public static async Task<int> MainAsync(string[] args)
    {
        Console.OutputEncoding = new UTF8Encoding(false);
        var settings = new CliSettings();
        if (CommandLine.WantsHelp(args))
        {
            Console.Out.Write(Usage); Console.Out.WriteLine(); Console.Out.WriteLine(ExitCodes.HelpText); return 0;
        }
        CommandLine.Parsed parsed;
        try { parsed = CommandLine.Parse(args, settings); }
        catch (Exception e) when (e is UsageException or FormatException)
        {
            Console.Error.WriteLine($"coord: {e.Message}\nTry 'coord --help'.");
            return ExitCodes.Usage;
        }
        if (parsed.Verb == "--help") return ExitCodes.Ok;
        if (parsed.Verb is null or "shell")
            return await new Shell(settings).RunAsync();
        var rest = parsed.Argv;

        await using var session = new Session(settings, Console.Out, Console.Error);
        return await session.RunVerbAsync(rest, interactive: false);
    }

}

/// <summary>A (lazily connected) client plus the verb implementations; shared by one-shot mode and the shell.</summary>
public sealed class Session(CliSettings settings, TextWriter stdout, TextWriter stderr) : IAsyncDisposable
{
    static readonly JsonSerializerOptions JsonOpts = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
    CoordinationClient? _client;

    public CliSettings Settings => settings;
    public CoordinationClient? Client => _client;
    /// <summary>Shell mode: watch events are printed by this callback instead of being waited for.</summary>
    public Action<WatchedEvent>? WatchPrinter { get; set; }
    public object ConsoleLock { get; } = new();

    public async Task<CoordinationClient> ClientAsync()
    {
        if (_client is { State: var s } c && !s.IsTerminal()) return c;
        if (_client is not null) { await _client.DisposeAsync(); _client = null; }
        using var cts = new CancellationTokenSource(settings.Timeout);
        try
        {
            _client = await CoordinationClient.ConnectAsync(new CoordinationClientOptions
            {
                ConnectString = settings.Server,
                SessionTimeout = TimeSpan.FromSeconds(30),
                ConnectionTimeout = settings.Timeout,
                AuthInfo = settings.Auth.ToList(),
                Tls = settings.Tls,
                Reads = settings.Reads,
            }, cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or TimeoutException or IOException)
        {
            throw new ConnectFailedException($"cannot connect to {settings.Server}: {(e is OperationCanceledException ? "timed out" : e.Message)}");
        }
        return _client;
    }

    public async Task CloseAsync()
    {
        if (_client is not null) { await _client.DisposeAsync(); _client = null; }
    }

    public async ValueTask DisposeAsync() => await CloseAsync();

    void Out(string s) { lock (ConsoleLock) stdout.WriteLine(s); }
    void Json(object o) => Out(JsonSerializer.Serialize(o, JsonOpts));

    /// <summary>Runs one verb; returns its exit code. Errors are printed to stderr.</summary>
    public async Task<int> RunVerbAsync(IReadOnlyList<string> argv, bool interactive)
    {
        try
        {
            return await DispatchAsync(argv[0], new Args(argv.Skip(1)), interactive);
        }
        catch (UsageException e) { Err($"coord {argv[0]}: {e.Message}"); return ExitCodes.Usage; }
        catch (FormatException e) { Err($"coord {argv[0]}: {e.Message}"); return ExitCodes.Usage; }
        catch (ConnectFailedException e) { Err($"coord: {e.Message}"); return ExitCodes.ConnectionFailed; }
        catch (SocketException e) { Err($"coord: cannot reach {settings.Server}: {e.Message}"); return ExitCodes.ConnectionFailed; }
        catch (KeeperException e)
        {
            if (settings.Json) lock (ConsoleLock) stderr.WriteLine(JsonSerializer.Serialize(new { error = e.Code.ToString(), code = (int)e.Code, path = e.Path }, JsonOpts));
            else Err(e.Path is null ? $"Error: {e.Code}" : $"Error: {e.Code} for {e.Path}");
            return ExitCodes.For(e);
        }
        catch (ArgumentException e) { Err($"coord {argv[0]}: {e.Message}"); return ExitCodes.Usage; }
    }

    void Err(string s) { lock (ConsoleLock) stderr.WriteLine(s); }

    async Task<int> DispatchAsync(string verb, Args a, bool interactive)
    {
        switch (verb)
        {
            case "ls": return await LsAsync(a, interactive);
            case "get": return await GetAsync(a, interactive);
            case "stat": return await StatAsync(a, interactive);
            case "set":
            {
                var version = a.Int("-v") ?? -1;
                var (path, data) = (a.Path(), a.Positional(1, "DATA"));
                a.End();
                var stat = await (await ClientAsync()).SetDataAsync(path, Encoding.UTF8.GetBytes(data), version);
                if (settings.Json) Json(new { path, stat });
                return 0;
            }
            case "create":
            {
                bool e = a.Flag("-e"), s = a.Flag("-s"), c = a.Flag("-c");
                var ttl = a.Long("-t");
                var path = a.Path();
                var data = a.OptionalPositional(1);
                var aclText = a.OptionalPositional(2);
                a.End();
                var mode = (e, s, c, ttl.HasValue) switch
                {
                    (false, false, false, false) => CreateMode.Persistent,
                    (true, false, false, false) => CreateMode.Ephemeral,
                    (false, true, false, false) => CreateMode.PersistentSequential,
                    (true, true, false, false) => CreateMode.EphemeralSequential,
                    (false, false, true, false) => CreateMode.Container,
                    (false, false, false, true) => CreateMode.PersistentWithTtl,
                    (false, true, false, true) => CreateMode.PersistentSequentialWithTtl,
                    _ => throw new UsageException("-c and -t cannot be combined with -e or each other"),
                };
                if (ttl is <= 0) throw new UsageException("-t wants a positive TTL in milliseconds");
                var acl = aclText is null ? null : ParseAcl(aclText);
                var r = await (await ClientAsync()).CreateWithStatAsync(path, data is null ? null : Encoding.UTF8.GetBytes(data), mode, acl, ttl ?? -1); // no DATA: null, as zkCli
                if (settings.Json) Json(new { path = r.Path, stat = r.Stat });
                else Out($"Created {r.Path}");
                return 0;
            }
            case "delete":
            {
                var version = a.Int("-v") ?? -1;
                var path = a.Path(); a.End();
                await (await ClientAsync()).DeleteAsync(path, version);
                if (settings.Json) Json(new { deleted = path });
                return 0;
            }
            case "deleteall" or "rmr":
            {
                var path = a.Path(); a.End();
                var client = await ClientAsync();
                if (await client.ExistsAsync(path) is null) throw new NoNodeException(path);
                await client.DeleteRecursiveAsync(path);
                if (settings.Json) Json(new { deleted = path });
                return 0;
            }
            case "getAcl":
            {
                var path = a.Path(); a.End();
                var r = await (await ClientAsync()).GetAclAsync(path);
                if (settings.Json)
                    Json(new { path, acl = r.Acl.Select(x => new { scheme = x.Id.Scheme, id = x.Id.Ident, perms = PermString(x.Perms) }), stat = r.Stat });
                else
                    foreach (var x in r.Acl) Out($"'{x.Id.Scheme},'{x.Id.Ident}\n: {PermString(x.Perms)}");
                return 0;
            }
            case "setAcl":
            {
                var version = a.Int("-v") ?? -1;
                var path = a.Path(); var acl = ParseAcl(a.Positional(1, "ACL")); a.End();
                var stat = await (await ClientAsync()).SetAclAsync(path, acl, version);
                if (settings.Json) Json(new { path, stat });
                return 0;
            }
            case "sync":
            {
                var path = a.Path(); a.End();
                var r = await (await ClientAsync()).SyncAsync(path);
                if (settings.Json) Json(new { path = r, synced = true });
                else Out($"Sync is OK");
                return 0;
            }
            case "changes":
                return await ChangesAsync(a, interactive);
            case "config":
                return await ConfigAsync(a, interactive);
            case "reconfig":
                return await ReconfigAsync(a);
            case "backup" or "snapshot":
                return await DataDirVerbs.BackupAsync(a, settings, stdout);
            case "restore":
                return await DataDirVerbs.RestoreAsync(a, settings, stdout);
            case "srvr" or "stat-server" or "mntr" or "cons" or "dump" or "ruok" or "4lw" or "conf" or "envi" or "wchs" or "isro":
                return await AdminAsync(verb, a);
            default:
                throw new UsageException($"unknown verb '{verb}' (see coord --help)");
        }
    }

    /// <summary>Follows the change feed (<see cref="CoordinationClient.WatchChangesAsync"/>, which resumes across
    /// reconnects) until COUNT changes or Ctrl+C (one-shot mode).</summary>
    async Task<int> ChangesAsync(Args a, bool interactive)
    {
        var from = a.Text("--from") is { } text ? ParseZxid(text) : 0;
        var count = a.Long("-n");
        if (count is <= 0) throw new UsageException("-n wants a positive count");
        var path = a.Path(); a.End();
        var client = await ClientAsync();
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        if (!interactive) Console.CancelKeyPress += onCancel;
        long seen = 0;
        try
        {
            await foreach (var c in client.WatchChangesAsync(path, from, ct: stop.Token))
            {
                if (settings.Json)
                    Json(new { zxid = c.Zxid, type = c.Type.ToString(), path = c.Path, data = Utf8OrNull(c.Data),
                        dataBase64 = c.Data is null ? null : Convert.ToBase64String(c.Data), stat = c.Type == EventType.NodeDeleted ? (Stat?)null : c.Stat });
                else Out($"0x{c.Zxid:x} {c.Type} {c.Path}{(c.Type == EventType.NodeDeleted ? "" : " " + (c.Data is null ? "null" : Encoding.UTF8.GetString(c.Data)))}");
                if (++seen == count) break;
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (CompactedException e)
        {
            Err($"changes under {path} after 0x{from:x} are no longer retained; the oldest available follow 0x{e.RetainedAfter:x} (--from 0x{e.RetainedAfter:x})");
            return ExitCodes.For(e);
        }
        finally { if (!interactive) Console.CancelKeyPress -= onCancel; }
        return 0;
    }

    /// <summary>zkCli's <c>config [-c] [-s] [-w]</c>.</summary>
    async Task<int> ConfigAsync(Args a, bool interactive)
    {
        bool clientOnly = a.Flag("-c"), withStat = a.Flag("-s"), watch = a.Flag("-w") | a.Flag("--watch");
        a.End();
        var (waiter, cb) = Watcher(watch, interactive);
        var r = await (await ClientAsync()).GetConfigAsync(cb);
        if (settings.Json) Json(ConfigJson(r));
        else
        {
            Out(clientOnly ? r.Config.ToClientConfigString() : r.Config.Text);
            if (withStat) Out(FormatStat(r.Stat));
        }
        return await WaitEvent(waiter);
    }

    /// <summary>zkCli's <c>reconfig -add/-remove | -members [-v VERSION] [-s]</c>, with --long spellings.</summary>
    async Task<int> ReconfigAsync(Args a)
    {
        var add = a.Text("--add") ?? a.Text("-add");
        var remove = a.Text("--remove") ?? a.Text("-remove");
        var members = a.Text("--members") ?? a.Text("-members");
        var versionText = a.Text("--from-version") ?? a.Text("-v");
        var withStat = a.Flag("-s");
        a.End();
        if (members is not null && (add ?? remove) is not null)
            throw new UsageException("--members cannot be combined with --add or --remove (incremental and non-incremental modes do not mix)");
        if ((members ?? add ?? remove) is null) throw new UsageException("reconfig needs --add, --remove or --members");
        var from = versionText is null ? -1
            : long.TryParse(versionText.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? versionText[2..] : versionText,
                NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v) ? v
            : throw new UsageException($"--from-version wants a configuration version in hex, not '{versionText}'");
        static string[] List(string? text) => text?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        var leaving = List(remove).Select(id => long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n
            : throw new UsageException($"--remove wants server ids, not '{id}'")).ToList();
        var client = await ClientAsync();
        var r = members is not null
            ? await client.ReconfigMembersAsync(List(members), from)
            : await client.ReconfigAsync(List(add), leaving, from);
        if (settings.Json) Json(ConfigJson(r));
        else
        {
            Out("Committed new configuration:\n" + r.Config.Text);
            if (withStat) Out(FormatStat(r.Stat));
        }
        return 0;
    }

    static object ConfigJson(ConfigResult r) => new
    {
        version = r.Config.Version.ToString("x", CultureInfo.InvariantCulture),
        servers = r.Config.Servers.Select(x => new
        {
            id = x.Id, role = x.Role == QuorumRole.Observer ? "observer" : "participant",
            addresses = x.Addresses.Select(q => q.ToString()), client = x.ClientAddress?.ToString(),
        }),
        text = r.Config.Text,
        stat = r.Stat,
    };

    static long ParseZxid(string text) =>
        (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex) ? hex : (long?)null
            : long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var dec) ? dec : null)
        is { } zxid and >= 0 ? zxid : throw new UsageException($"--from wants a zxid (0x... or decimal), not '{text}'");

    async Task<int> LsAsync(Args a, bool interactive)
    {
        bool rec = a.Flag("-R"), withStat = a.Flag("-s"), watch = a.Flag("-w");
        var path = a.Path(); a.End();
        var client = await ClientAsync();
        if (rec)
        {
            var all = new List<string>();
            async Task Walk(string p)
            {
                all.Add(p);
                IReadOnlyList<string> kids;
                try { kids = (await client.GetChildrenAsync(p)).Children; }
                catch (NoNodeException) when (p != path) { return; }
                foreach (var k in kids.Order(StringComparer.Ordinal)) await Walk(p == "/" ? "/" + k : p + "/" + k);
            }
            await Walk(path);
            if (settings.Json) Json(new { path, paths = all });
            else foreach (var p in all) Out(p);
            return 0;
        }
        var (waiter, cb) = Watcher(watch, interactive);
        var r = await client.GetChildrenAsync(path, cb);
        var children = r.Children.Order(StringComparer.Ordinal).ToList();
        if (settings.Json) Json(withStat ? new { path, children, stat = (Stat?)r.Stat } : new { path, children, stat = (Stat?)null });
        else
        {
            Out("[" + string.Join(", ", children) + "]");
            if (withStat) Out(FormatStat(r.Stat));
        }
        return await WaitEvent(waiter);
    }

    async Task<int> GetAsync(Args a, bool interactive)
    {
        bool withStat = a.Flag("-s"), watch = a.Flag("-w");
        var path = a.Path(); a.End();
        var client = await ClientAsync();
        var (waiter, cb) = Watcher(watch, interactive);
        var r = await client.GetDataAsync(path, cb);
        if (settings.Json)
            Json(new { path, data = Utf8OrNull(r.Data), dataBase64 = r.Data is null ? null : Convert.ToBase64String(r.Data), stat = r.Stat });
        else
        {
            Out(r.Data is null ? "null" : Encoding.UTF8.GetString(r.Data)); // zkCli prints null data as "null"
            if (withStat) Out(FormatStat(r.Stat));
        }
        return await WaitEvent(waiter);
    }

    async Task<int> StatAsync(Args a, bool interactive)
    {
        var watch = a.Flag("-w");
        if (a.Count == 0) throw new UsageException("stat wants a PATH (the server's 'stat' four-letter word is 'coord stat-server')");
        var path = a.Path(); a.End();
        var client = await ClientAsync();
        var (waiter, cb) = Watcher(watch, interactive);
        var stat = await client.ExistsAsync(path, cb);
        if (stat is null)
        {
            if (waiter is null) throw new NoNodeException(path);
            // exists-watch on a missing node is legitimate: report NoNode but still wait for its creation
            Err($"Node does not exist: {path}");
            var code = await WaitEvent(waiter);
            return code == 0 ? 0 : code;
        }
        if (settings.Json) Json(new { path, stat = stat.Value });
        else Out(FormatStat(stat.Value));
        return await WaitEvent(waiter);
    }

    (TaskCompletionSource<WatchedEvent>? waiter, Action<WatchedEvent>? cb) Watcher(bool watch, bool interactive)
    {
        if (!watch) return (null, null);
        if (interactive && WatchPrinter is { } printer) return (null, printer);
        var tcs = new TaskCompletionSource<WatchedEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        return (tcs, e => tcs.TrySetResult(e));
    }

    async Task<int> WaitEvent(TaskCompletionSource<WatchedEvent>? waiter)
    {
        if (waiter is null) return 0;
        var done = await Task.WhenAny(waiter.Task, Task.Delay(settings.Timeout));
        if (done != waiter.Task) { Err($"no watch event within {settings.Timeout.TotalSeconds}s"); return ExitCodes.Timeout; }
        var e = waiter.Task.Result;
        if (settings.Json) Json(new { @event = new { type = e.Type.ToString(), state = e.State.ToString(), path = e.Path } });
        else Out(FormatEvent(e));
        return 0;
    }

    public static string FormatEvent(WatchedEvent e) =>
        $"WATCHER::\nWatchedEvent state:{e.State} type:{e.Type} path:{e.Path}";

    static string? Utf8OrNull(byte[]? data)
    {
        if (data is null) return null;
        try { return new UTF8Encoding(false, true).GetString(data); } catch (DecoderFallbackException) { return null; }
    }

    public static string FormatStat(Stat s)
    {
        static string T(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("ddd MMM dd HH:mm:ss 'UTC' yyyy", CultureInfo.InvariantCulture);
        return string.Join('\n',
            $"cZxid = 0x{s.Czxid:x}", $"ctime = {T(s.Ctime)}", $"mZxid = 0x{s.Mzxid:x}", $"mtime = {T(s.Mtime)}",
            $"pZxid = 0x{s.Pzxid:x}", $"cversion = {s.Cversion}", $"dataVersion = {s.Version}", $"aclVersion = {s.Aversion}",
            $"ephemeralOwner = 0x{s.EphemeralOwner:x}", $"dataLength = {s.DataLength}", $"numChildren = {s.NumChildren}");
    }

    public static string PermString(Perms p)
    {
        var sb = new StringBuilder();
        if (p.HasFlag(Perms.Create)) sb.Append('c');
        if (p.HasFlag(Perms.Delete)) sb.Append('d');
        if (p.HasFlag(Perms.Read)) sb.Append('r');
        if (p.HasFlag(Perms.Write)) sb.Append('w');
        if (p.HasFlag(Perms.Admin)) sb.Append('a');
        return sb.ToString();
    }

    /// <summary>"scheme:id:perms[,scheme:id:perms...]"; the id may itself contain ':' (digest user:hash).</summary>
    public static List<Acl> ParseAcl(string text)
    {
        var list = new List<Acl>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var first = part.IndexOf(':'); var last = part.LastIndexOf(':');
            if (first <= 0 || last == first) throw new UsageException($"bad ACL '{part}': want scheme:id:perms");
            Perms perms = Perms.None;
            foreach (var ch in part[(last + 1)..])
                perms |= ch switch
                {
                    'c' => Perms.Create, 'd' => Perms.Delete, 'r' => Perms.Read, 'w' => Perms.Write, 'a' => Perms.Admin,
                    _ => throw new UsageException($"bad permission '{ch}' in '{part}' (use c d r w a)"),
                };
            list.Add(new Acl(perms, new Id(part[..first], part[(first + 1)..last])));
        }
        if (list.Count == 0) throw new UsageException("empty ACL");
        return list;
    }

    // ---- admin (four-letter words) ----

    async Task<int> AdminAsync(string verb, Args a)
    {
        var word = verb switch { "stat-server" => "stat", "4lw" => a.Positional(0, "WORD"), _ => verb };
        if (verb != "4lw") a.End();
        if (word.Length != 4) throw new UsageException("a four-letter word has four letters");
        var text = await SendWordAsync(word);
        if (text.Contains("is not executed because it is not in the whitelist", StringComparison.Ordinal))
        {
            Err(text.Trim());
            return ExitCodes.Error;
        }
        switch (word)
        {
            case "mntr":
            {
                var rows = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => l.Split('\t', 2)).Where(p => p.Length == 2).ToList();
                if (settings.Json) { Json(rows.ToDictionary(p => p[0], p => JsonValue(p[1].Trim()))); return 0; }
                var t = new Table().Border(TableBorder.Rounded).AddColumn("metric").AddColumn("value");
                foreach (var p in rows) t.AddRow(Markup.Escape(p[0]), Markup.Escape(p[1].Trim()));
                Render(t);
                return 0;
            }
            case "cons":
            {
                var conns = ParseCons(text);
                if (settings.Json) { Json(conns); return 0; }
                var keys = conns.SelectMany(c => c.Keys).Distinct().ToList();
                var t = new Table().Border(TableBorder.Rounded);
                foreach (var k in keys) t.AddColumn(k);
                foreach (var c in conns) t.AddRow(keys.Select(k => Markup.Escape(c.GetValueOrDefault(k) ?? "")).ToArray());
                Render(t);
                return 0;
            }
            case "srvr" or "stat":
            {
                if (settings.Json)
                {
                    var d = new Dictionary<string, object?>();
                    var lines = text.Split('\n');
                    var clients = new List<string>();
                    for (var i = 0; i < lines.Length; i++)
                    {
                        var l = lines[i].TrimEnd('\r');
                        if (l == "Clients:") { for (i++; i < lines.Length && lines[i].StartsWith(' '); i++) clients.Add(lines[i].Trim()); i--; continue; }
                        var c = l.IndexOf(": ", StringComparison.Ordinal);
                        if (c > 0) d[l[..c].Trim()] = JsonValue(l[(c + 2)..].Trim());
                    }
                    if (word == "stat") d["Clients"] = clients;
                    Json(d);
                }
                else lock (ConsoleLock) stdout.Write(text);
                return 0;
            }
            default:
                if (settings.Json) Json(new { command = word, output = text });
                else lock (ConsoleLock) { stdout.Write(text); if (!text.EndsWith('\n')) stdout.WriteLine(); }
                return 0;
        }
    }

    void Render(Table t)
    {
        lock (ConsoleLock)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(stdout),
                Ansi = Console.IsOutputRedirected ? AnsiSupport.No : AnsiSupport.Detect,
                ColorSystem = Console.IsOutputRedirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            });
            if (Console.IsOutputRedirected) console.Profile.Width = 200;
            console.Write(t);
        }
    }

    static object? JsonValue(string s) =>
        long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? l
        : double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && !s.Contains('/') ? d
        : s;

    /// <summary>Parses cons lines " /127.0.0.1:5555[1](queued=0,recved=1,...)".</summary>
    public static List<Dictionary<string, string>> ParseCons(string text)
    {
        var list = new List<Dictionary<string, string>>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0) continue;
            var open = line.IndexOf('(');
            var d = new Dictionary<string, string>();
            var head = open < 0 ? line : line[..open];
            var br = head.IndexOf('[');
            d["client"] = (br < 0 ? head : head[..br]).TrimStart('/');
            if (br >= 0) d["interest"] = head[(br + 1)..].TrimEnd(']');
            if (open >= 0)
                foreach (var kv in line[(open + 1)..].TrimEnd(')').Split(','))
                {
                    var eq = kv.IndexOf('=');
                    if (eq > 0) d[kv[..eq]] = kv[(eq + 1)..];
                }
            list.Add(d);
        }
        return list;
    }

    async Task<string> SendWordAsync(string word)
    {
        var first = settings.Server.Split(',')[0];
        var slash = first.IndexOf('/'); if (slash >= 0) first = first[..slash];
        var colon = first.LastIndexOf(':');
        var (host, port) = colon < 0 ? (first, 2181) : (first[..colon], int.Parse(first[(colon + 1)..], CultureInfo.InvariantCulture));
        using var cts = new CancellationTokenSource(settings.Timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cts.Token);
            await socket.SendAsync(Encoding.ASCII.GetBytes(word), SocketFlags.None, cts.Token);
            var output = new MemoryStream();
            var buffer = new byte[16 * 1024];
            while (true)
            {
                int n;
                try { n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token); }
                catch (SocketException) when (output.Length > 0) { break; }
                if (n == 0) break;
                output.Write(buffer, 0, n);
            }
            return Encoding.UTF8.GetString(output.GetBuffer(), 0, (int)output.Length);
        }
        catch (OperationCanceledException) { throw new ConnectFailedException($"{word}: no answer from {host}:{port} within {settings.Timeout.TotalSeconds}s"); }
        catch (SocketException e) { throw new ConnectFailedException($"cannot reach {host}:{port}: {e.Message}"); }
    }
}

public sealed class ConnectFailedException(string message) : Exception(message);

/// <summary>Minimal option parser for one verb: flags/options may appear anywhere, the rest are positionals.</summary>
public sealed class Args
{
    readonly List<string> _items;
    public Args(IEnumerable<string> items) => _items = items.ToList();
    public int Count => _items.Count;

    public bool Flag(string name)
    {
        var i = _items.IndexOf(name);
        if (i < 0) return false;
        _items.RemoveAt(i);
        return true;
    }

    string? Value(string name)
    {
        var i = _items.IndexOf(name);
        if (i < 0) return null;
        if (i + 1 >= _items.Count) throw new UsageException($"{name} needs a value");
        var v = _items[i + 1];
        _items.RemoveRange(i, 2);
        return v;
    }

    public string? Text(string name) => Value(name);

    public int? Int(string name) => Value(name) is { } v
        ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"{name} wants an integer, not '{v}'")
        : null;

    public long? Long(string name) => Value(name) is { } v
        ? long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"{name} wants an integer, not '{v}'")
        : null;

    public string Path()
    {
        if (_items.Count > 0 && _items[0].StartsWith('-') && _items[0].Length > 1) throw new UsageException($"unknown option {_items[0]}");
        var p = Positional(0, "PATH");
        if (!p.StartsWith('/')) throw new UsageException($"'{p}' is not a path (paths start with /)");
        if (p.Length > 1 && p.EndsWith('/')) throw new UsageException($"'{p}': a path must not end with /");
        return p;
    }

    public string Positional(int index, string name)
    {
        _max = Math.Max(_max, index + 1);
        return index < _items.Count ? _items[index] : throw new UsageException($"missing {name}");
    }

    public string? OptionalPositional(int index)
    {
        _max = Math.Max(_max, index + 1);
        return index < _items.Count ? _items[index] : null;
    }

    int _max;
    /// <summary>Fails on arguments no one consumed.</summary>
    public void End()
    {
        if (_items.Count > _max) throw new UsageException($"unexpected argument '{_items[_max]}'");
    }
}
