using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Coordination.Protocol;
using Coordination.Server.Metrics;

namespace Coordination.Server.Admin;

/// <summary>
/// The HTTP side of administration, like ZooKeeper's AdminServer and its Prometheus metrics provider:
/// <c>GET /commands</c> and <c>/commands/&lt;name&gt;</c> answer the four-letter words as JSON, and <c>GET /metrics</c>
/// exposes the mntr values in Prometheus text format under ZooKeeper's metric names. Off by default and bound to
/// loopback unless configured otherwise.
/// </summary>
public sealed class AdminHttpServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly FourLetterWordHandler _commands;
    private readonly bool _serveCommands;
    private readonly bool _serveMetrics;
    private readonly ServerMetrics? _metrics;
    private readonly CancellationTokenSource _cts = new();
    private Task? _loop;

    public AdminHttpServer(string address, int port, FourLetterWordHandler commands, bool serveCommands, bool serveMetrics, ServerMetrics? metrics = null)
    {
        _metrics = metrics;
        _commands = commands;
        _serveCommands = serveCommands;
        _serveMetrics = serveMetrics;
        _listener.Prefixes.Add($"http://{address}:{port}/");
    }

    public void Start()
    {
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync().ConfigureAwait(false); }
            catch (Exception) when (_cts.IsCancellationRequested || !_listener.IsListening) { return; }
            catch (HttpListenerException) { continue; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var path = context.Request.Url?.AbsolutePath.TrimEnd('/') ?? "";
            if (context.Request.HttpMethod != "GET") await WriteAsync(response, 405, "text/plain", "GET only\n");
            else if (_serveMetrics && path == "/metrics") await WriteAsync(response, 200, "text/plain; version=0.0.4", MetricsText(await _commands.ExecuteAsync("mntr")));
            else if (_serveCommands && path == "/commands") await WriteAsync(response, 200, "application/json", JsonSerializer.Serialize(new { commands = FourLetterWords.All }));
            else if (_serveCommands && path.StartsWith("/commands/", StringComparison.Ordinal))
            {
                var name = path["/commands/".Length..];
                if (!FourLetterWords.All.Contains(name))
                    await WriteAsync(response, 404, "application/json", JsonSerializer.Serialize(new { command = name, error = "unknown command" }));
                else
                    await WriteAsync(response, 200, "application/json", CommandJson(name, await _commands.ExecuteAsync(name)));
            }
            else await WriteAsync(response, 404, "text/plain", "not found\n");
        }
        catch (Exception e)
        {
            try { await WriteAsync(response, 500, "application/json", JsonSerializer.Serialize(new { error = e.Message })); }
            catch { /* client went away */ }
        }
    }

    private static async Task WriteAsync(HttpListenerResponse response, int status, string contentType, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
        response.Close();
    }

    /// <summary>
    /// mntr and srvr become objects of their key/value lines (mntr's "zk_" prefix dropped, numbers as numbers, as
    /// ZooKeeper's AdminServer reports them); other commands carry their text output.
    /// </summary>
    public static string CommandJson(string name, string output)
    {
        var fields = new Dictionary<string, object?> { ["command"] = name };
        var separator = name switch { "mntr" => '\t', "srvr" => ':', _ => '\0' };
        if (separator == '\0') fields["output"] = output;
        else
        {
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var at = line.IndexOf(separator);
                if (at <= 0) continue;
                var key = line[..at].Trim();
                if (name == "mntr" && key.StartsWith("zk_", StringComparison.Ordinal)) key = key[3..];
                if (name == "srvr") key = key.ToLowerInvariant().Replace(' ', '_').Replace('/', '_');
                var value = line[(at + 1)..].Trim();
                fields[key] = long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n
                    : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : value;
            }
        }
        fields["error"] = null;
        return JsonSerializer.Serialize(fields);
    }

    private static readonly HashSet<string> Counters = ["packets_received", "packets_sent", "request_count", "uptime"];

    /// <summary>The /metrics body: the mntr gauges and counters, then the histograms and counters of <see cref="ServerMetrics"/>.</summary>
    private string MetricsText(string mntr)
    {
        var b = new StringBuilder(Prometheus(mntr));
        _metrics?.WritePrometheus(b);
        return b.ToString();
    }

    /// <summary>The numeric mntr values as Prometheus samples, named as ZooKeeper's Prometheus provider names them.</summary>
    public static string Prometheus(string mntr)
    {
        var b = new StringBuilder();
        foreach (var line in mntr.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t');
            if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) continue;
            var name = parts[0].StartsWith("zk_", StringComparison.Ordinal) ? parts[0][3..] : parts[0];
            b.Append("# TYPE ").Append(name).Append(Counters.Contains(name) || ClientPortMetrics.Names.Contains(name) ? " counter\n" : " gauge\n");
            b.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return b.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        _cts.Cancel();
        _listener.Close();
        if (_loop is not null) await _loop.ConfigureAwait(false);
    }
}
