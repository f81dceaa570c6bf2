using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Coordination.TestKit;

/// <summary>ZooKeeper's four-letter-word admin commands (ruok, mntr, stat, cons, ...) over a fresh connection.</summary>
public static class FourLetterWord
{
    /// <summary>
    /// Sends the word and returns everything the server writes before it closes the connection.
    /// <paramref name="socketFactory"/> creates the socket (e.g. in another network namespace); a plain one when null.
    /// </summary>
    public static async Task<string> SendAsync(string host, int port, string word, TimeSpan? timeout = null, CancellationToken ct = default,
        Func<Socket>? socketFactory = null)
    {
        if (word.Length != 4) throw new ArgumentException("a four-letter word has four letters", nameof(word));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(10));
        using var socket = socketFactory?.Invoke() ?? new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.NoDelay = true;
        await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
        await socket.SendAsync(Encoding.ASCII.GetBytes(word), SocketFlags.None, cts.Token).ConfigureAwait(false);
        var output = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            int n;
            try { n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token).ConfigureAwait(false); }
            catch (SocketException) when (output.Length > 0) { break; } // reset after the answer
            if (n == 0) break;
            output.Write(buffer, 0, n);
        }
        return Encoding.UTF8.GetString(output.GetBuffer(), 0, (int)output.Length);
    }

    public static Task<string> SendAsync(string connectString, string word, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var (host, port) = WireClient.ParseHostPort(connectString.Split(',')[0]);
        return SendAsync(host, port, word, timeout, ct);
    }

    /// <summary>True when the server answers "ruok" with "imok".</summary>
    public static async Task<bool> IsOkAsync(string host, int port, TimeSpan? timeout = null, CancellationToken ct = default,
        Func<Socket>? socketFactory = null)
    {
        try { return (await SendAsync(host, port, "ruok", timeout, ct, socketFactory).ConfigureAwait(false)).Trim() == "imok"; }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException) { return false; }
    }

    /// <summary>Parses mntr output ("key\tvalue" lines).</summary>
    public static Dictionary<string, string> ParseMntr(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var tab = line.IndexOf('\t');
            if (tab <= 0) continue;
            result[line[..tab].Trim()] = line[(tab + 1)..].Trim();
        }
        return result;
    }

    public static async Task<Dictionary<string, string>> MntrAsync(string host, int port, TimeSpan? timeout = null, CancellationToken ct = default) =>
        ParseMntr(await SendAsync(host, port, "mntr", timeout, ct).ConfigureAwait(false));

    /// <summary>A numeric mntr value, or null when absent or not a number.</summary>
    public static double? Number(this IReadOnlyDictionary<string, string> mntr, string key) =>
        mntr.TryGetValue(key, out var v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null;
}
