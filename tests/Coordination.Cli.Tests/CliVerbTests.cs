using System.Diagnostics;
using Xunit;

namespace Coordination.Cli.Tests;

[Collection("cli")]
public sealed class CliVerbTests(ServerFixture fx)
{
    readonly string _root = "/cli" + Guid.NewGuid().ToString("N")[..8];

    Task<CoordResult> Run(params string[] args) => Coord.RunAsync(["--server", fx.ConnectString, "--timeout", "10", .. args]);
    Task<CoordResult> RunJson(params string[] args) => Coord.RunAsync(["--server", fx.ConnectString, "--json", "--timeout", "10", .. args]);

    static void Ok(CoordResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    [Fact(Timeout = 30_000)]
    public async Task Help_documents_verbs_and_exit_codes()
    {
        var r = await Coord.RunAsync(["--help"]);
        Ok(r);
        foreach (var s in new[] { "Exit codes", "NoNode", "NodeExists", "BadVersion", "NoAuth", "connection failure", "usage error",
                     "deleteall", "getAcl", "setAcl", "stat-server", "mntr", "cons", "dump" })
            Assert.Contains(s, r.Stdout);
        r = await Coord.RunAsync(["create", "--help"]);                  // per-verb help from System.CommandLine
        Ok(r);
        Assert.Contains("TTL in milliseconds", r.Stdout);
    }

    /// <summary>--linearizable makes get/ls/stat send linearizable reads (counted in mntr's zk_linearizable_reads).</summary>
    [Fact(Timeout = 60_000)]
    public async Task Linearizable_option_sends_linearizable_reads()
    {
        async Task<long> LinearizableReads() => (await RunJson("mntr")).Json.GetProperty("zk_linearizable_reads").GetInt64();
        Ok(await Run("create", _root, "fresh"));
        var before = await LinearizableReads();
        var r = await Run("--linearizable", "get", _root);
        Ok(r);
        Assert.Equal("fresh", r.Stdout.Trim());
        Ok(await Run("--linearizable", "ls", _root));
        Assert.Equal(before + 2, await LinearizableReads());
        Ok(await Run("get", _root));
        Assert.Equal(before + 2, await LinearizableReads());   // plain reads stay plain
        Ok(await Run("delete", _root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Usage_errors_exit_2()
    {
        Assert.Equal(2, (await Run("frobnicate", "/x")).ExitCode);
        Assert.Equal(2, (await Coord.RunAsync(["--bogus", "ls", "/"])).ExitCode);
        Assert.Equal(2, (await Run("get")).ExitCode);                 // missing path
        Assert.Equal(2, (await Run("get", "relative")).ExitCode);     // not a path
        Assert.Equal(2, (await Run("set", "/x", "d", "-v", "abc")).ExitCode);
        Assert.Equal(2, (await Run("get", "/x", "extra")).ExitCode);
        Assert.Equal(2, (await Run("setAcl", "/x", "nonsense")).ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Connection_failure_exits_3()
    {
        var r = await Coord.RunAsync(["--server", "127.0.0.1:1", "--timeout", "3", "get", "/"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("connect", r.Stderr);
        Assert.Equal(3, (await Coord.RunAsync(["--server", "127.0.0.1:1", "--timeout", "3", "mntr"])).ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_get_set_stat_delete_round_trip()
    {
        var r = await Run("create", _root, "hello");
        Ok(r);
        Assert.Contains($"Created {_root}", r.Stdout);

        r = await Run("get", _root);
        Ok(r);
        Assert.Equal("hello", r.Stdout.Trim());

        r = await Run("get", "-s", _root);
        Ok(r);
        Assert.Contains("dataVersion = 0", r.Stdout);
        Assert.Contains("dataLength = 5", r.Stdout);

        Ok(await Run("set", _root, "world", "-v", "0"));
        r = await RunJson("get", _root);
        Ok(r);
        Assert.Equal("world", r.Json.GetProperty("data").GetString());
        Assert.Equal(1, r.Json.GetProperty("stat").GetProperty("version").GetInt32());

        r = await Run("stat", _root);
        Ok(r);
        Assert.Contains("dataVersion = 1", r.Stdout);
        Assert.Contains("numChildren = 0", r.Stdout);
        r = await RunJson("stat", _root);
        Ok(r);
        Assert.Equal(5, r.Json.GetProperty("stat").GetProperty("dataLength").GetInt32());

        Ok(await Run("delete", "-v", "1", _root));
        Assert.Equal(4, (await Run("get", _root)).ExitCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task Changes_follows_the_feed_from_a_zxid_then_live()
    {
        Ok(await Run("create", _root, "a"));
        Ok(await Run("create", _root + "/k", "b"));
        Ok(await Run("set", _root + "/k", "c"));
        Ok(await Run("create", _root + "x", "not under the path"));

        // From 0: the three changes under the path, in zxid order, then stop (-n).
        var r = await Run("changes", "-n", "3", _root);
        Ok(r);
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.EndsWith($" NodeCreated {_root} a", lines[0]);
        Assert.EndsWith($" NodeCreated {_root}/k b", lines[1]);
        Assert.EndsWith($" NodeDataChanged {_root}/k c", lines[2]);
        var zxids = lines.Select(l => Convert.ToInt64(l.Split(' ')[0], 16)).ToList();
        Assert.Equal(zxids.Order(), zxids);

        // From the last one, as JSON: only what commits after it, live.
        var live = RunJson("changes", "--from", $"0x{zxids[2]:x}", "-n", "2", _root);
        Ok(await Run("set", _root + "/k", "d"));
        Ok(await Run("delete", _root + "/k"));
        r = await live;
        Ok(r);
        var events = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["NodeDataChanged", "NodeDeleted"], events.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal("d", events[0].GetProperty("data").GetString());
        Assert.All(events, e => Assert.True(e.GetProperty("zxid").GetInt64() > zxids[2]));

        Assert.Equal(2, (await Run("changes", "--from", "0xZZ", _root)).ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Error_codes_map_to_exit_codes()
    {
        Ok(await Run("create", _root, "x"));
        Ok(await Run("create", _root + "/child"));
        Assert.Equal(4, (await Run("get", _root + "/missing")).ExitCode);       // NoNode
        Assert.Equal(4, (await Run("stat", _root + "/missing")).ExitCode);
        Assert.Equal(5, (await Run("create", _root)).ExitCode);                 // NodeExists
        Assert.Equal(6, (await Run("set", "-v", "7", _root, "y")).ExitCode);    // BadVersion
        Assert.Equal(6, (await Run("delete", "-v", "7", _root + "/child")).ExitCode);
        Assert.Equal(8, (await Run("delete", _root)).ExitCode);                 // NotEmpty
        var r = await RunJson("get", _root + "/missing");
        Assert.Equal(4, r.ExitCode);
        Assert.Contains("\"error\":\"NoNode\"", r.Stderr);
        Ok(await Run("deleteall", _root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_without_data_makes_null_data_and_get_prints_it_as_zkCli_does()
    {
        Ok(await Run("create", _root));
        Ok(await Run("create", _root + "/empty", ""));
        Assert.Equal("null", (await Run("get", _root)).Stdout.Trim());
        Assert.Equal("", (await Run("get", _root + "/empty")).Stdout.Trim());
        var json = await RunJson("get", _root);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, json.Json.GetProperty("data").ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, json.Json.GetProperty("dataBase64").ValueKind);
        Assert.Equal("", (await RunJson("get", _root + "/empty")).Json.GetProperty("dataBase64").GetString());
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_modes_sequential_ephemeral_container_ttl()
    {
        Ok(await Run("create", _root));
        var r = await RunJson("create", "-s", _root + "/seq-", "a");
        Ok(r);
        Assert.Matches(@"/seq-\d{10}$", r.Json.GetProperty("path").GetString());

        r = await RunJson("create", "-e", _root + "/eph");
        Ok(r);
        Assert.NotEqual(0, r.Json.GetProperty("stat").GetProperty("ephemeralOwner").GetInt64());
        Assert.Equal(4, (await Run("stat", _root + "/eph")).ExitCode);          // gone with coord's session

        r = await RunJson("create", "-e", "-s", _root + "/es-");
        Ok(r);
        Assert.Matches(@"/es-\d{10}$", r.Json.GetProperty("path").GetString());

        Ok(await Run("create", "-c", _root + "/container"));
        Ok(await Run("create", "-t", "60000", _root + "/ttl", "t"));
        Assert.Equal("t", (await Run("get", _root + "/ttl")).Stdout.Trim());
        Assert.Equal(2, (await Run("create", "-t", "0", _root + "/ttl2")).ExitCode);
        Assert.Equal(2, (await Run("create", "-e", "-c", _root + "/bad")).ExitCode);
        Ok(await Run("deleteall", _root));
        Assert.Equal(4, (await Run("ls", _root)).ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Ls_plain_recursive_stat_and_json()
    {
        Ok(await Run("create", _root));
        Ok(await Run("create", _root + "/b"));
        Ok(await Run("create", _root + "/a"));
        Ok(await Run("create", _root + "/a/x"));

        var r = await Run("ls", _root);
        Ok(r);
        Assert.Equal("[a, b]", r.Stdout.Trim());

        r = await Run("ls", "-s", _root);
        Ok(r);
        Assert.Contains("numChildren = 2", r.Stdout);

        r = await Run("ls", "-R", _root);
        Ok(r);
        Assert.Equal([_root, _root + "/a", _root + "/a/x", _root + "/b"], r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        r = await RunJson("ls", _root);
        Ok(r);
        Assert.Equal(["a", "b"], r.Json.GetProperty("children").EnumerateArray().Select(e => e.GetString()!).ToArray());
        r = await RunJson("ls", "-R", _root);
        Assert.Equal(4, r.Json.GetProperty("paths").GetArrayLength());
        Ok(await Run("deleteall", _root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Get_w_waits_for_one_event_and_prints_it()
    {
        Ok(await Run("create", _root, "v1"));
        var psi = Coord.StartInfo(["--server", fx.ConnectString, "--timeout", "20", "get", "-w", _root]);
        using var p = Process.Start(psi)!;
        var first = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("v1", first);                       // the watch is registered once the data is printed
        Ok(await Run("set", _root, "v2"));
        var rest = await p.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(15));
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, p.ExitCode);
        Assert.Contains($"type:NodeDataChanged path:{_root}", rest);

        // --json variant with a timeout and no event: exit 9
        var r = await Coord.RunAsync(["--server", fx.ConnectString, "--json", "--timeout", "1", "get", "-w", _root]);
        Assert.Equal(9, r.ExitCode);
        Assert.Equal("v2", JsonLines(r.Stdout)[0].GetProperty("data").GetString());
        Ok(await Run("delete", _root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Ls_w_and_stat_w_wait_for_child_and_creation_events()
    {
        Ok(await Run("create", _root));
        using (var p = Process.Start(Coord.StartInfo(["--server", fx.ConnectString, "--json", "--timeout", "20", "ls", "-w", _root]))!)
        {
            var first = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Contains("\"children\":[]", first);
            Ok(await Run("create", _root + "/kid"));
            var ev = JsonLines(await p.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(15)))[0];
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(0, p.ExitCode);
            Assert.Equal("NodeChildrenChanged", ev.GetProperty("event").GetProperty("type").GetString());
        }
        using (var p = Process.Start(Coord.StartInfo(["--server", fx.ConnectString, "--timeout", "20", "stat", "-w", _root + "/later"]))!)
        {
            var err = await p.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Contains("does not exist", err);                       // exists-watch registered on a missing node
            Ok(await Run("create", _root + "/later"));
            var rest = await p.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(15));
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(0, p.ExitCode);
            Assert.Contains($"type:NodeCreated path:{_root}/later", rest);
        }
        Ok(await Run("deleteall", _root));
    }

    static System.Text.Json.JsonElement[] JsonLines(string s) =>
        s.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();

    [Fact(Timeout = 30_000)]
    public async Task GetAcl_setAcl_and_NoAuth()
    {
        Ok(await Run("create", _root, "secret"));
        var r = await Run("getAcl", _root);
        Ok(r);
        Assert.Contains("'world,'anyone", r.Stdout);
        Assert.Contains(": cdrwa", r.Stdout);

        Ok(await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:alice:pw", "setAcl", _root, "auth::cdrwa"]));
        Assert.Equal(7, (await Run("get", _root)).ExitCode);                              // NoAuth
        Assert.Equal(7, (await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:bob:pw", "get", _root])).ExitCode);
        r = await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:alice:pw", "get", _root]);
        Ok(r);
        Assert.Equal("secret", r.Stdout.Trim());

        Assert.Equal(7, (await RunJson("getAcl", _root)).ExitCode);                       // getAcl needs READ or ADMIN
        r = await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:alice:pw", "--json", "getAcl", _root]);
        Ok(r);
        var acl = r.Json.GetProperty("acl")[0];
        Assert.Equal("digest", acl.GetProperty("scheme").GetString());
        Assert.StartsWith("alice:", acl.GetProperty("id").GetString());
        Assert.Equal("cdrwa", acl.GetProperty("perms").GetString());

        Ok(await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:alice:pw", "setAcl", "-v", "1", _root, "world:anyone:r,auth::cdrwa"]));
        Assert.Equal("secret", (await Run("get", _root)).Stdout.Trim());
        Assert.Equal(7, (await Run("set", _root, "x")).ExitCode);
        Ok(await Coord.RunAsync(["--server", fx.ConnectString, "--auth", "digest:alice:pw", "setAcl", _root, "world:anyone:cdrwa"]));
        Ok(await Run("delete", _root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Sync_and_deleteall()
    {
        Ok(await Run("create", _root));
        Ok(await Run("create", _root + "/a"));
        Ok(await Run("create", _root + "/a/b"));
        var r = await Run("sync", _root);
        Ok(r);
        Assert.Contains("Sync is OK", r.Stdout);
        r = await RunJson("sync", _root);
        Ok(r);
        Assert.True(r.Json.GetProperty("synced").GetBoolean());
        Ok(await Run("deleteall", _root));
        Assert.Equal(4, (await Run("stat", _root)).ExitCode);
        Assert.Equal(4, (await Run("deleteall", _root)).ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Admin_verbs_four_letter_words()
    {
        var r = await Run("ruok");
        Ok(r);
        Assert.Equal("imok", r.Stdout.Trim());

        r = await Run("srvr");
        Ok(r);
        Assert.Contains("Zookeeper version", r.Stdout);
        Assert.Contains("Node count", r.Stdout);
        r = await RunJson("srvr");
        Ok(r);
        Assert.True(r.Json.TryGetProperty("Mode", out _), r.Stdout);

        r = await Run("stat-server");
        Ok(r);
        Assert.Contains("Clients:", r.Stdout);
        r = await RunJson("stat-server");
        Ok(r);
        Assert.Equal(System.Text.Json.JsonValueKind.Array, r.Json.GetProperty("Clients").ValueKind);
        Assert.Equal(2, (await Run("stat")).ExitCode);   // 'stat' needs a path; the 4lw is stat-server

        r = await Run("mntr");
        Ok(r);
        Assert.Contains("zk_znode_count", r.Stdout);
        Assert.Contains("╭", r.Stdout);                   // a Spectre table
        r = await RunJson("mntr");
        Ok(r);
        Assert.True(r.Json.GetProperty("zk_znode_count").GetInt64() >= 1);

        r = await Run("cons");
        Ok(r);
        Assert.Contains("client", r.Stdout);
        Assert.Contains("127.0.0.1", r.Stdout);
        r = await RunJson("cons");
        Ok(r);
        Assert.True(r.Json.GetArrayLength() >= 1);
        Assert.StartsWith("127.0.0.1", r.Json[0].GetProperty("client").GetString());

        r = await Run("dump");
        Ok(r);
        Assert.Contains("ession", r.Stdout);
        r = await RunJson("dump");
        Ok(r);
        Assert.Equal("dump", r.Json.GetProperty("command").GetString());

        r = await Run("4lw", "conf");
        Ok(r);
        Assert.Contains("clientPort", r.Stdout);
    }
}
