using System.Text;

namespace Coordination.Server.Sessions;

/// <summary>One login module line of a JAAS section: class, control flag and options.</summary>
public sealed record JaasEntry(string LoginModule, string Flag, IReadOnlyDictionary<string, string> Options);

/// <summary>
/// A JAAS login configuration file as Java reads it (ZooKeeper's server file, java.security.auth.login.config):
/// <c>Name { module.Class flag key="value" key2=value2; ... };</c> sections, with <c>//</c> and <c>/* */</c> comments
/// and quoted values with backslash escapes. Only what a ZooKeeper server file needs; anything else is a
/// <see cref="FormatException"/> that names the line.
/// </summary>
public static class JaasFile
{
    private static readonly string[] Flags = ["required", "requisite", "sufficient", "optional"];

    /// <summary>The DIGEST-MD5 users of <paramref name="section"/> in the file at <paramref name="path"/>: every
    /// user_NAME="password" option of its entries, as ZooKeeper's SaslServerCallbackHandler collects them.</summary>
    public static Dictionary<string, string> ReadUsers(string path, string section)
    {
        var users = UsersOf(ReadSection(path, section));
        if (users.Count == 0)
            throw new FormatException($"JAAS file {path}: section '{section}' has no user_NAME=\"password\" option (only DIGEST-MD5 users are read from it)");
        return users;
    }

    /// <summary>The user_NAME="password" options of <paramref name="entries"/>, by NAME.</summary>
    public static Dictionary<string, string> UsersOf(IEnumerable<JaasEntry> entries)
    {
        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in entries)
            foreach (var (key, value) in entry.Options)
                if (key.StartsWith("user_", StringComparison.Ordinal) && key.Length > "user_".Length)
                    users[key["user_".Length..]] = value;
        return users;
    }

    /// <summary>The entries of <paramref name="section"/> in the file at <paramref name="path"/>.</summary>
    public static List<JaasEntry> ReadSection(string path, string section)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FormatException($"JAAS file {path}: {e.Message}");
        }
        Dictionary<string, List<JaasEntry>> sections;
        try { sections = Parse(text); }
        catch (FormatException e) { throw new FormatException($"JAAS file {path}: {e.Message}"); }
        return sections.TryGetValue(section, out var entries) ? entries
            : throw new FormatException($"JAAS file {path} has no section '{section}' (it has: {string.Join(", ", sections.Keys)})");
    }

    /// <summary>The sections of a JAAS file by name, in file order within each.</summary>
    public static Dictionary<string, List<JaasEntry>> Parse(string text)
    {
        var tokens = new Tokenizer(text);
        var sections = new Dictionary<string, List<JaasEntry>>(StringComparer.Ordinal);
        while (tokens.Next() is { } name)
        {
            if (name.Kind != TokenKind.Word) throw tokens.Error(name, "a section name");
            tokens.Expect("{");
            var entries = new List<JaasEntry>();
            while (true)
            {
                var module = tokens.Next() ?? throw tokens.Error(null, "a login module or '}'");
                if (module.Is("}")) break;
                if (module.Kind != TokenKind.Word) throw tokens.Error(module, "a login module class");
                var flag = tokens.Next();
                if (flag is not { Kind: TokenKind.Word } || !Flags.Contains(flag.Text, StringComparer.OrdinalIgnoreCase))
                    throw tokens.Error(flag, "a control flag (required, requisite, sufficient or optional)");
                var options = new Dictionary<string, string>(StringComparer.Ordinal);
                while (true)
                {
                    var key = tokens.Next() ?? throw tokens.Error(null, "an option or ';'");
                    if (key.Is(";")) break;
                    if (key.Kind != TokenKind.Word) throw tokens.Error(key, "an option name or ';'");
                    tokens.Expect("=");
                    var value = tokens.Next();
                    if (value is not { Kind: TokenKind.Word or TokenKind.Quoted }) throw tokens.Error(value, $"a value for {key.Text}");
                    if (!options.TryAdd(key.Text, value.Text)) throw tokens.Error(key, $"{key.Text} only once");
                }
                entries.Add(new JaasEntry(module.Text, flag.Text.ToLowerInvariant(), options));
            }
            tokens.Expect(";");
            if (!sections.TryAdd(name.Text, entries)) throw tokens.Error(name, $"section {name.Text} only once");
        }
        return sections;
    }

    private enum TokenKind { Word, Quoted, Symbol }

    private sealed record Token(TokenKind Kind, string Text, int Line)
    {
        public bool Is(string symbol) => Kind == TokenKind.Symbol && Text == symbol;
    }

    private sealed class Tokenizer(string text)
    {
        private int _i;
        private int _line = 1;

        public FormatException Error(Token? found, string expected) => found is null
            ? new FormatException($"line {_line}: expected {expected}, found the end of the file")
            : new FormatException($"line {found.Line}: expected {expected}, found '{found.Text}'");

        public void Expect(string symbol)
        {
            var t = Next();
            if (t is null || !t.Is(symbol)) throw Error(t, $"'{symbol}'");
        }

        public Token? Next()
        {
            SkipSpaceAndComments();
            if (_i >= text.Length) return null;
            var c = text[_i];
            if (c is '{' or '}' or ';' or '=')
            {
                _i++;
                return new Token(TokenKind.Symbol, c.ToString(), _line);
            }
            if (c == '"') return Quoted();
            var start = _i;
            while (_i < text.Length && IsWordChar(text[_i])) _i++;
            if (_i == start) throw new FormatException($"line {_line}: unexpected character '{c}'");
            return new Token(TokenKind.Word, text[start.._i], _line);
        }

        // Java's JAAS parser reads words of letters, digits and . _ $ - * (class names, flags, option names and values).
        private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c is '.' or '_' or '$' or '-' or '*';

        private Token Quoted()
        {
            var line = _line;
            var value = new StringBuilder();
            for (_i++; ; _i++)
            {
                if (_i >= text.Length) throw new FormatException($"line {line}: unterminated quoted value");
                var c = text[_i];
                if (c == '"') { _i++; break; }
                if (c == '\n') _line++;
                if (c == '\\' && _i + 1 < text.Length)
                {
                    c = text[++_i];
                    value.Append(c switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => c });
                    continue;
                }
                value.Append(c);
            }
            return new Token(TokenKind.Quoted, value.ToString(), line);
        }

        private void SkipSpaceAndComments()
        {
            while (_i < text.Length)
            {
                var c = text[_i];
                if (c == '\n') { _line++; _i++; }
                else if (char.IsWhiteSpace(c)) _i++;
                else if (c == '/' && _i + 1 < text.Length && text[_i + 1] == '/')
                {
                    while (_i < text.Length && text[_i] != '\n') _i++;
                }
                else if (c == '/' && _i + 1 < text.Length && text[_i + 1] == '*')
                {
                    var end = text.IndexOf("*/", _i + 2, StringComparison.Ordinal);
                    if (end < 0) throw new FormatException($"line {_line}: unterminated /* comment");
                    for (var k = _i; k < end; k++) if (text[k] == '\n') _line++;
                    _i = end + 2;
                }
                else return;
            }
        }
    }
}
