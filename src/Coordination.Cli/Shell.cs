using System.Text;
using Coordination.Client;

namespace Coordination.Cli;

/// <summary>
/// The interactive shell (zkCli-like). Reads from a terminal with a small line editor (history with Up/Down,
/// Tab completion of verbs and znode paths), or line by line from redirected stdin (scripts).
/// </summary>
public sealed class Shell(CliSettings settings)
{
    readonly List<string> _history = [];
    Session _session = null!;
    readonly StringBuilder _line = new();
    volatile bool _editing;
    string _prompt = "";

    static readonly string[] ShellCommands = ["addauth", "history", "connect", "close", "quit", "exit", "help", "redo"];

    public async Task<int> RunAsync()
    {
        await using var session = new Session(settings, Console.Out, Console.Error);
        _session = session;
        session.WatchPrinter = PrintEvent;
        var interactive = !Console.IsInputRedirected;
        lock (session.ConsoleLock) Console.Out.WriteLine($"Connecting to {settings.Server}");
        var code = await ConnectAsync();
        if (code == 0)
        {
            session.Client!.ConnectionStateChanged += s => PrintLine($"[state] {s}");
            PrintLine($"Connected, session 0x{session.Client.SessionId:x}. Type 'help' for commands.");
        }

        var last = 0;
        while (true)
        {
            _prompt = Prompt();
            var line = interactive ? ReadLineEdited() : ReadLineScripted();
            if (line is null) break;
            line = line.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith('!') && int.TryParse(line[1..], out var n))
            {
                if (n < 1 || n > _history.Count) { PrintErr($"no history entry {n}"); continue; }
                line = _history[n - 1];
                PrintLine(line);
            }
            _history.Add(line);
            List<string> argv;
            try { argv = Tokenize(line); }
            catch (UsageException e) { PrintErr(e.Message); last = ExitCodes.Usage; continue; }
            if (argv.Count == 0) continue;
            switch (argv[0])
            {
                case "quit" or "exit": return last == 0 ? 0 : last;
                case "help": lock (session.ConsoleLock) Console.Out.WriteLine(CoordCli.Usage); last = 0; continue;
                case "history":
                    lock (session.ConsoleLock)
                        for (var i = 0; i < _history.Count; i++) Console.Out.WriteLine($"{i + 1,4}  {_history[i]}");
                    last = 0; continue;
                case "addauth":
                    if (argv.Count != 3) { PrintErr("usage: addauth SCHEME AUTH   e.g. addauth digest user:pass"); last = ExitCodes.Usage; continue; }
                    var auth = new AuthInfo(argv[1], Encoding.UTF8.GetBytes(argv[2]));
                    settings.Auth.Add(auth);
                    if (session.Client is { } c)
                    {
                        try { await c.AddAuthAsync(auth); last = 0; }
                        catch (KeeperException e) { PrintErr($"Error: {e.Code}"); last = ExitCodes.For(e); }
                    }
                    continue;
                case "connect":
                    if (argv.Count != 2) { PrintErr("usage: connect HOST:PORT[,...]"); last = ExitCodes.Usage; continue; }
                    await session.CloseAsync();
                    settings.Server = argv[1];
                    last = await ConnectAsync();
                    if (last == 0) session.Client!.ConnectionStateChanged += s => PrintLine($"[state] {s}");
                    continue;
                case "close": await session.CloseAsync(); last = 0; continue;
                case "json": settings.Json = !settings.Json; PrintLine($"json output {(settings.Json ? "on" : "off")}"); continue;
            }
            last = await session.RunVerbAsync(argv, interactive: true);
        }
        return last;
    }

    async Task<int> ConnectAsync()
    {
        try { await _session.ClientAsync(); return 0; }
        catch (ConnectFailedException e) { PrintErr($"coord: {e.Message}"); return ExitCodes.ConnectionFailed; }
        catch (KeeperException e) { PrintErr($"coord: {e.Code}"); return ExitCodes.For(e); }
    }

    string Prompt()
    {
        var state = _session.Client?.State.ToString().ToUpperInvariant() ?? "CLOSED";
        return $"[coord: {settings.Server}({state}) {_history.Count}] ";
    }

    void PrintEvent(WatchedEvent e) => PrintLine(Session.FormatEvent(e));

    /// <summary>Prints a line without mangling a line being edited: clears it, prints, redraws prompt + buffer.</summary>
    void PrintLine(string s)
    {
        lock (_session.ConsoleLock)
        {
            if (_editing) Console.Out.Write("\r\x1b[K");
            Console.Out.WriteLine(s);
            if (_editing) Console.Out.Write(_prompt + _line);
            Console.Out.Flush();
        }
    }

    void PrintErr(string s) { lock (_session.ConsoleLock) Console.Error.WriteLine(s); }

    string? ReadLineScripted()
    {
        lock (_session.ConsoleLock) { Console.Out.Write(_prompt); Console.Out.Flush(); }
        var l = Console.In.ReadLine();
        if (l is not null) lock (_session.ConsoleLock) Console.Out.WriteLine(l);   // echo, as a transcript
        return l;
    }

    string? ReadLineEdited()
    {
        _line.Clear();
        var histIndex = _history.Count;
        lock (_session.ConsoleLock) { Console.Out.Write(_prompt); _editing = true; }
        while (true)
        {
            var k = Console.ReadKey(intercept: true);
            lock (_session.ConsoleLock)
            {
                switch (k.Key)
                {
                    case ConsoleKey.Enter:
                        _editing = false;
                        Console.Out.WriteLine();
                        return _line.ToString();
                    case ConsoleKey.Backspace:
                        if (_line.Length > 0) { _line.Length--; Console.Out.Write("\b \b"); }
                        continue;
                    case ConsoleKey.UpArrow or ConsoleKey.DownArrow:
                        histIndex = Math.Clamp(histIndex + (k.Key == ConsoleKey.UpArrow ? -1 : 1), 0, _history.Count);
                        _line.Clear().Append(histIndex < _history.Count ? _history[histIndex] : "");
                        Redraw();
                        continue;
                    case ConsoleKey.Tab:
                        break;
                    default:
                        if (k.Key == ConsoleKey.D && k.Modifiers.HasFlag(ConsoleModifiers.Control))
                        {
                            if (_line.Length == 0) { _editing = false; Console.Out.WriteLine(); return null; }
                            continue;
                        }
                        if (k.Key == ConsoleKey.U && k.Modifiers.HasFlag(ConsoleModifiers.Control)) { _line.Clear(); Redraw(); continue; }
                        if (k.KeyChar >= ' ') { _line.Append(k.KeyChar); Console.Out.Write(k.KeyChar); }
                        continue;
                }
            }
            // Tab: completion may do I/O, outside the console lock
            var candidates = Complete(_line.ToString());
            lock (_session.ConsoleLock)
            {
                if (candidates.Count == 0) continue;
                var (head, word) = SplitLast(_line.ToString());
                var common = CommonPrefix(candidates);
                if (common.Length > word.Length || candidates.Count == 1)
                {
                    _line.Clear().Append(head).Append(common);
                    if (candidates.Count == 1 && !common.StartsWith('/')) _line.Append(' ');
                    Redraw();
                }
                else
                {
                    Console.Out.WriteLine();
                    Console.Out.WriteLine(string.Join("  ", candidates));
                    Console.Out.Write(_prompt + _line);
                }
            }
        }
    }

    void Redraw() => Console.Out.Write("\r\x1b[K" + _prompt + _line);

    static (string head, string word) SplitLast(string line)
    {
        var i = line.LastIndexOf(' ');
        return i < 0 ? ("", line) : (line[..(i + 1)], line[(i + 1)..]);
    }

    List<string> Complete(string line)
    {
        var (head, word) = SplitLast(line);
        if (head.Trim().Length == 0)
            return CoordCli.Verbs.Concat(ShellCommands).Where(v => v.StartsWith(word, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        if (!word.StartsWith('/') || _session.Client is not { } client) return [];
        var slash = word.LastIndexOf('/');
        var parent = slash == 0 ? "/" : word[..slash];
        var prefix = word[(slash + 1)..];
        try
        {
            var kids = client.GetChildrenAsync(parent).WaitAsync(TimeSpan.FromSeconds(3)).GetAwaiter().GetResult().Children;
            return kids.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)
                .Select(k => (parent == "/" ? "/" : parent + "/") + k).ToList();
        }
        catch (Exception) { return []; }
    }

    static string CommonPrefix(List<string> xs)
    {
        var p = xs[0];
        foreach (var x in xs.Skip(1))
        {
            var n = 0;
            while (n < p.Length && n < x.Length && p[n] == x[n]) n++;
            p = p[..n];
        }
        return p;
    }

    /// <summary>Splits a line into words; '...' and "..." quote (with \" inside double quotes).</summary>
    public static List<string> Tokenize(string line)
    {
        var list = new List<string>();
        var cur = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < line.Length; i++)
        {
            var ch = line[i];
            if (ch is '"' or '\'')
            {
                var q = ch; inWord = true;
                for (i++; ; i++)
                {
                    if (i >= line.Length) throw new UsageException("unterminated quote");
                    if (line[i] == q) break;
                    if (q == '"' && line[i] == '\\' && i + 1 < line.Length) i++;
                    cur.Append(line[i]);
                }
            }
            else if (char.IsWhiteSpace(ch))
            {
                if (inWord) { list.Add(cur.ToString()); cur.Clear(); inWord = false; }
            }
            else { cur.Append(ch); inWord = true; }
        }
        if (inWord) list.Add(cur.ToString());
        return list;
    }
}
