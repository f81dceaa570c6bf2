using System.CommandLine;
using System.Globalization;
using System.Text;
using Coordination.Client;

namespace Coordination.Cli;

/// <summary>
/// The command-line grammar, declared with System.CommandLine: global options (anywhere on the line) and one
/// subcommand per verb with its own options and arguments. A successful parse is turned back into the verb's
/// argument vector, which the shell also produces from its own lines, so both run the same verb code.
/// </summary>
public static class CommandLine
{
    public sealed record Parsed(string? Verb, List<string> Argv);

    static readonly Option<string> Server = new("--server", "-S", "-server")
        { Description = "HOST:PORT[,HOST:PORT...][/chroot] (default $COORD_SERVER or 127.0.0.1:2181)", Recursive = true };
    static readonly Option<bool> Json = new("--json") { Description = "machine-readable JSON on stdout", Recursive = true };
    static readonly Option<double?> Timeout = new("--timeout") { Description = "connect / watch-wait timeout in seconds (default 10)", Recursive = true };
    static readonly Option<string[]> Auth = new("--auth")
        { Description = "SCHEME:AUTH added after connecting, e.g. digest:user:pass (repeatable)", Recursive = true, Arity = ArgumentArity.OneOrMore };
    static readonly Option<bool> Tls = new("--tls") { Description = "connect over TLS (to a secure client port)", Recursive = true };
    static readonly Option<string?> TlsCa = new("--tls-ca")
        { Description = "CA certificates the server's must chain to, PEM or PKCS#12 (implies --tls; default: system roots)", Recursive = true };
    static readonly Option<string?> TlsCert = new("--tls-cert")
        { Description = "client certificate, PEM (with its key, or see --tls-key) or PKCS#12 (implies --tls)", Recursive = true };
    static readonly Option<string?> TlsKey = new("--tls-key") { Description = "the client certificate's PEM key file", Recursive = true };
    static readonly Option<string?> TlsPassword = new("--tls-password")
        { Description = "the PKCS#12 or encrypted PEM key password (default $COORD_TLS_PASSWORD)", Recursive = true };
    static readonly Option<bool> TlsNoHostnameCheck = new("--tls-no-hostname-verification")
        { Description = "accept a server certificate that does not name the host connected to", Recursive = true };

    static readonly Option<bool> Linearizable = new("--linearizable")
        { Description = "reads (get, ls, stat, getAcl) see every write acknowledged before them, on any member, without a sync (Coordination.Akka only)", Recursive = true };

    static RootCommand Build()
    {
        var root = new RootCommand("coord - command-line client for Coordination.Akka (and ZooKeeper 3.5+)");
        root.Options.Add(Server); root.Options.Add(Json); root.Options.Add(Timeout); root.Options.Add(Auth);
        foreach (var o in new Option[] { Tls, TlsCa, TlsCert, TlsKey, TlsPassword, TlsNoHostnameCheck, Linearizable }) root.Options.Add(o);
        root.SetAction(_ => 0);   // no verb: the shell
        Verb(root, "ls", "children of PATH", ["-R", "-s", "-w"], [], ["PATH"], []);
        Verb(root, "get", "data of PATH as UTF-8", ["-s", "-w"], [], ["PATH"], []);
        Verb(root, "stat", "the znode's Stat", ["-w"], [], [], ["PATH"]);
        Verb(root, "set", "set the data of PATH", [], ["-v"], ["PATH", "DATA"], []);
        Verb(root, "create", "create a znode", ["-e", "-s", "-c"], ["-t"], ["PATH"], ["DATA", "ACL"]);
        Verb(root, "delete", "delete a znode", [], ["-v"], ["PATH"], []);
        Verb(root, "deleteall", "delete PATH and everything below it", [], [], ["PATH"], []);
        Verb(root, "getAcl", "the ACL of PATH", [], [], ["PATH"], []);
        Verb(root, "setAcl", "set the ACL of PATH (scheme:id:perms[,...])", [], ["-v"], ["PATH", "ACL"], []);
        Verb(root, "sync", "sync the server with the leader for PATH", [], [], ["PATH"], []);
        Verb(root, "changes", "follow the change feed under PATH (Coordination.Akka)", [], ["-n"], ["PATH"], [], ["--from"]);
        Verb(root, "config", "the ensemble's configuration (/zookeeper/config), as zkCli's config", ["-c", "-s", "-w"], [], [], []);
        Verb(root, "reconfig", "change the ensemble's members (dynamic reconfiguration), as zkCli's reconfig", ["-s"], [], [], [],
            ["--add", "--remove", "--members", "--from-version"]);
        Alias(root, "config", "-w", "--watch");
        foreach (var (name, zkCli) in new[] { ("--add", "-add"), ("--remove", "-remove"), ("--members", "-members"), ("--from-version", "-v") })
            Alias(root, "reconfig", name, zkCli);
        foreach (var w in new[] { "srvr", "stat-server", "mntr", "cons", "dump", "ruok" })
            Verb(root, w, $"four-letter word {(w == "stat-server" ? "stat" : w)}", [], [], [], []);
        Verb(root, "4lw", "any four-letter word", [], [], ["WORD"], []);
        foreach (var (verb, what) in new[] { ("backup", "consistent snapshot of a server's data dir into a file"), ("snapshot", "the same as backup") })
            Verb(root, verb, what, [], [], [], [], ["--data-dir", "--out", "--config", "--server-dll"]);
        Verb(root, "restore", "seed an empty data dir from a backup file", [], [], [], [], ["--data-dir", "--from", "--config", "--server-dll"]);
        Verb(root, "shell", "interactive shell (the default)", [], [], [], []);
        return root;
    }

    static readonly Dictionary<string, string> OptionHelp = new()
    {
        ["ls -R"] = "every descendant path, depth first", ["ls -s"] = "print the Stat too", ["ls -w"] = "wait for one child watch event",
        ["get -s"] = "print the Stat too", ["get -w"] = "then wait for one watch event and print it",
        ["stat -w"] = "then wait for one watch event (exists watch)",
        ["changes -n"] = "stop after this many changes", ["changes --from"] = "the zxid to follow from (0x... or decimal; default 0)",
        ["set -v"] = "expected data version", ["delete -v"] = "expected data version", ["setAcl -v"] = "expected ACL version",
        ["--data-dir"] = "the server's data dir", ["--out"] = "the backup file to write", ["--from"] = "the backup file to restore",
        ["--config"] = "the server's HOCON config (journal on PostgreSQL)", ["--server-dll"] = "path of Coordination.Server.dll",
        ["config -c"] = "the members' client addresses: 'VERSION host:port,...'", ["config -s"] = "print the Stat too",
        ["config -w"] = "then wait for the next reconfiguration's event and print it", ["reconfig -s"] = "print the Stat too",
        ["--add"] = "server.N=host:port:port[:role][;[host:]port][,...] to add, or to change the role of",
        ["--remove"] = "ids of the members to remove, comma-separated", ["--members"] = "server.N=... lines: the whole new membership",
        ["--from-version"] = "the configuration version (hex) this change applies to; BadVersion otherwise",
        ["create -e"] = "ephemeral", ["create -s"] = "sequential", ["create -c"] = "container", ["create -t"] = "TTL in milliseconds (persistent TTL node)",
    };

    static void Alias(RootCommand root, string verb, string option, string alias) =>
        root.Subcommands.Single(c => c.Name == verb).Options.Single(o => o.Name == option).Aliases.Add(alias);

    static void Verb(RootCommand root, string name, string description, string[] flags, string[] valued, string[] required, string[] optional, string[]? texts = null)
    {
        var cmd = new Command(name, description);
        foreach (var t in texts ?? []) cmd.Options.Add(new Option<string?>(t) { Description = OptionHelp.GetValueOrDefault($"{name} {t}") ?? OptionHelp.GetValueOrDefault(t) });
        foreach (var f in flags) cmd.Options.Add(new Option<bool>(f) { Description = OptionHelp.GetValueOrDefault($"{name} {f}") });
        foreach (var v in valued) cmd.Options.Add(new Option<long?>(v) { Description = OptionHelp.GetValueOrDefault($"{name} {v}") });
        foreach (var a in required) cmd.Arguments.Add(new Argument<string>(a));
        foreach (var a in optional) cmd.Arguments.Add(new Argument<string?>(a) { Arity = ArgumentArity.ZeroOrOne });
        root.Subcommands.Add(cmd);
    }

    /// <summary>Parses args into settings and the verb's argv; throws UsageException on a parse error.</summary>
    public static Parsed Parse(string[] args, CliSettings settings)
    {
        var result = Build().Parse(args);
        if (result.Action is System.CommandLine.Help.HelpAction)
        {
            result.Invoke();                  // 'coord VERB --help': System.CommandLine's help for the verb
            return new Parsed("--help", []);
        }
        if (result.Errors.Count > 0)
            throw new UsageException(string.Join("\n", result.Errors.Select(e => e.Message)));
        if (result.GetValue(Server) is { } s) settings.Server = s;
        settings.Json = result.GetValue(Json);
        if (result.GetValue(Timeout) is { } t)
        {
            if (t <= 0) throw new UsageException("--timeout wants a positive number of seconds");
            settings.Timeout = TimeSpan.FromSeconds(t);
        }
        foreach (var a in result.GetValue(Auth) ?? [])
        {
            var c = a.IndexOf(':');
            if (c <= 0) throw new UsageException("--auth wants SCHEME:AUTH");
            settings.Auth.Add(new AuthInfo(a[..c], Encoding.UTF8.GetBytes(a[(c + 1)..])));
        }
        if (result.GetValue(Linearizable)) settings.Reads = ReadConsistency.Linearizable;
        if (result.GetValue(Tls) || result.GetValue(TlsCa) is not null || result.GetValue(TlsCert) is not null)
            settings.Tls = new ClientTlsOptions
            {
                TrustStorePath = result.GetValue(TlsCa),
                CertificatePath = result.GetValue(TlsCert),
                KeyPath = result.GetValue(TlsKey),
                CertificatePassword = result.GetValue(TlsPassword) ?? Environment.GetEnvironmentVariable("COORD_TLS_PASSWORD"),
                TrustStorePassword = result.GetValue(TlsPassword) ?? Environment.GetEnvironmentVariable("COORD_TLS_PASSWORD"),
                HostnameVerification = !result.GetValue(TlsNoHostnameCheck),
            };
        var cmd = result.CommandResult.Command;
        if (cmd is RootCommand) return new Parsed(null, []);
        var argv = new List<string> { cmd.Name };
        foreach (var o in cmd.Options)
        {
            switch (o)
            {
                case Option<bool> b when result.GetValue(b): argv.Add(b.Name); break;
                case Option<long?> l when result.GetValue(l) is { } v: argv.Add(l.Name); argv.Add(v.ToString(CultureInfo.InvariantCulture)); break;
                case Option<string?> text when result.GetValue(text) is { } v: argv.Add(text.Name); argv.Add(v); break;
            }
        }
        foreach (var a in cmd.Arguments)
            if (result.GetValue<string?>(a.Name) is { } v) argv.Add(v);
        return new Parsed(cmd.Name, argv);
    }

    public static bool WantsHelp(string[] args)
    {
        var verbs = CoordCli.Verbs.ToHashSet();
        foreach (var a in args)
        {
            if (a is "--help" or "-h" or "-?" or "help") return true;
            if (verbs.Contains(a)) return false;      // 'coord VERB --help' is the verb's own help
        }
        return false;
    }
}
