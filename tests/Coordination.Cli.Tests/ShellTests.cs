using System.Diagnostics;
using Xunit;

namespace Coordination.Cli.Tests;

[Collection("cli")]
public sealed class ShellTests(ServerFixture fx)
{
    readonly string _root = "/sh" + Guid.NewGuid().ToString("N")[..8];

    [Fact(Timeout = 30_000)]
    public async Task Scripted_shell_runs_verbs_addauth_history_and_prints_watch_events()
    {
        var script = $"""
            create {_root} "hello world"
            get {_root}
            ls /
            create -e {_root}/eph
            stat {_root}/eph
            get -w {_root}
            set {_root} v2
            sync {_root}
            get {_root}/missing
            addauth digest alice:pw
            setAcl {_root} auth::cdrwa
            getAcl {_root}
            history
            deleteall {_root}
            quit
            """;
        var r = await Coord.RunAsync(["--server", fx.ConnectString, "shell"], script + "\n");
        Assert.True(r.ExitCode is 0 or 4, r.ToString());
        var o = r.Stdout;
        Assert.Contains($"[coord: {fx.ConnectString}(CONNECTED)", o);      // the prompt
        Assert.Contains($"Created {_root}", o);
        Assert.Contains("hello world", o);
        Assert.Contains(_root[1..], o);                                      // in ls /
        Assert.Contains("ephemeralOwner = 0x", o);
        Assert.Contains($"WATCHER::\nWatchedEvent state:SyncConnected type:NodeDataChanged path:{_root}", o);
        Assert.Contains("Sync is OK", o);
        Assert.Contains($"Error: NoNode for {_root}/missing", r.Stderr);
        Assert.Contains("'digest,'alice:", o);                               // addauth made auth:: resolve to alice
        Assert.Contains("   1  create", o);                                  // history
        Assert.Contains("  13  history", o);
    }

    [Fact(Timeout = 30_000)]
    public async Task Shell_reports_usage_errors_and_keeps_going()
    {
        var r = await Coord.RunAsync(["--server", fx.ConnectString], "frob /x\nget \"unterminated\nls /\nexit\n");
        Assert.Contains("unknown verb 'frob'", r.Stderr);
        Assert.Contains("unterminated quote", r.Stderr);
        Assert.Contains("zookeeper", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [SkippableFact(Timeout = 45_000)]
    public async Task Interactive_shell_in_tmux_completes_paths_and_shows_events()
    {
        if (!File.Exists("/usr/bin/tmux"))
        {
            const string reason = "tmux is not installed (Debian package tmux)";
            if (Environment.GetEnvironmentVariable("COORDINATION_REQUIRE_TMUX") == "1") Assert.Fail($"COORDINATION_REQUIRE_TMUX=1 but {reason}");
            Skip.If(true, reason);
        }
        var session = "coordcli" + Guid.NewGuid().ToString("N")[..6];
        var socket = Path.Combine(Path.GetTempPath(), session + ".sock");
        async Task<string> Tmux(params string[] args)
        {
            var psi = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-S"); psi.ArgumentList.Add(socket);
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var o = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            return o;
        }
        async Task<string> WaitFor(string text, int seconds = 15)
        {
            var until = DateTime.UtcNow.AddSeconds(seconds);
            string screen = "";
            while (DateTime.UtcNow < until)
            {
                screen = await Tmux("capture-pane", "-p", "-t", session);
                if (screen.Contains(text)) return screen;
                await Task.Delay(150);
            }
            throw new Xunit.Sdk.XunitException($"'{text}' never appeared; screen:\n{screen}");
        }

        Assert.Equal(0, (await Coord.RunAsync(["--server", fx.ConnectString, "create", _root])).ExitCode);
        Assert.Equal(0, (await Coord.RunAsync(["--server", fx.ConnectString, "create", _root + "/alpha-node", "A"])).ExitCode);
        try
        {
            await Tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40",
                $"dotnet {Coord.Dll} --server {fx.ConnectString}; sleep 30");
            await WaitFor("(CONNECTED) 0]");
            // Tab completes the verb and the path, segment by segment
            await Tmux("send-keys", "-t", session, "ge", "Tab");        // get, getAcl: completes the common prefix
            await WaitFor("0] get");
            await Tmux("send-keys", "-t", session, "Tab");              // ambiguous: lists the candidates
            await WaitFor("get  getAcl");
            await Tmux("send-keys", "-t", session, " " + _root[..6], "Tab");
            await WaitFor($"0] get {_root}");
            await Tmux("send-keys", "-t", session, "/al", "Tab");
            await WaitFor($"0] get {_root}/alpha-node");
            await Tmux("send-keys", "-t", session, " -w", "Enter");
            var screen = await WaitFor("(CONNECTED) 1]");
            Assert.Contains("\nA", screen);
            // a change made elsewhere shows up as a printed watch event
            Assert.Equal(0, (await Coord.RunAsync(["--server", fx.ConnectString, "set", _root + "/alpha-node", "B"])).ExitCode);
            screen = await WaitFor("type:NodeDataChanged");
            Assert.Contains($"path:{_root}/alpha-node", screen);
            // history recall with Up
            await Tmux("send-keys", "-t", session, "Up");
            await WaitFor($"1] get {_root}/alpha-node -w");
            await Tmux("send-keys", "-t", session, "C-u", "quit", "Enter");
            await Tmux("send-keys", "-t", session, "C-c");
        }
        finally
        {
            await Tmux("kill-session", "-t", session);
            await Coord.RunAsync(["--server", fx.ConnectString, "deleteall", _root]);
            try { File.Delete(socket); } catch { }
        }
    }
}
