using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Coordination.Protocol;
using Coordination.Server.Metrics;
using Coordination.Server.Network;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Coordination.Server.Pipeline;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Coordination.Server.Admin;

/// <summary>
/// The HTTP side of administration, like ZooKeeper's AdminServer and its Prometheus metrics provider:
/// <c>GET /commands</c> and <c>/commands/&lt;name&gt;</c> answer the four-letter words as JSON, and <c>GET /metrics</c>
/// exposes the mntr values in Prometheus text format under ZooKeeper's metric names. Off by default and bound to
/// loopback unless configured otherwise. Commands that show session ids or reset state need an authorized
/// credential (<see cref="AdminAuthorization"/>).
/// </summary>
public sealed class AdminHttpServer : IAsyncDisposable
{
    private static readonly TimeSpan AclTimeout = TimeSpan.FromSeconds(10);
    private readonly IHost _host;
    private readonly FourLetterWordHandler _commands;
    private readonly bool _serveCommands;
    private readonly bool _serveMetrics;
    private readonly ServerMetrics? _metrics;
    private readonly AdminHttpSettings _settings;
    private readonly IActorRef? _replica;
    private readonly string? _superDigest;
    private readonly string? _x509SuperUser;
    private readonly ServerHealth? _health;

    public AdminHttpServer(AdminHttpSettings settings, FourLetterWordHandler commands, bool serveCommands, bool serveMetrics, Action<string> warn,
        ServerMetrics? metrics = null, IActorRef? replica = null, string? superDigest = null, string? x509SuperUser = null, ServerHealth? health = null)
    {
        _health = health;
        _x509SuperUser = x509SuperUser;
        _settings = settings;
        _metrics = metrics;
        _commands = commands;
        _serveCommands = serveCommands;
        _serveMetrics = serveMetrics;
        _replica = replica;
        _superDigest = superDigest;
        var tls = settings.Tls is { } tlsSettings ? new ClientTls(tlsSettings, warn) : null;
        void Secure(ListenOptions listen)
        {
            // The stores are re-read on change, as the client port's: each new connection asks for the current ones.
            if (tls is not null)
                listen.UseHttps(new TlsHandshakeCallbackOptions { OnConnection = _ => ValueTask.FromResult(tls.Options), HandshakeTimeout = TimeSpan.FromSeconds(10) });
        }
        // A bare generic host: Kestrel and one terminal handler, no configuration sources, no log providers.
        _host = new HostBuilder()
            .ConfigureWebHost(web => web
                .UseKestrelCore()
                .ConfigureKestrel(options =>
                {
                    options.AddServerHeader = false;
                    // Whatever one scraper or caller can make this endpoint hold is bounded (DESIGN.md section 1, invariant 10).
                    options.Limits.MaxConcurrentConnections = settings.MaxConnections;
                    options.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
                    options.Limits.MaxRequestHeaderCount = 32;
                    options.Limits.MaxRequestLineSize = 4 * 1024;
                    options.Limits.MaxRequestBodySize = 0;
                    options.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
                    options.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
                    if (settings.Address == "*") options.ListenAnyIP(settings.Port, Secure);
                    else if (settings.Address == "localhost") options.ListenLocalhost(settings.Port, Secure);
                    else options.Listen(new IPEndPoint(IPAddress.TryParse(settings.Address, out var ip) ? ip : Dns.GetHostAddresses(settings.Address)[0], settings.Port), Secure);
                })
                .Configure(app => app.Run(HandleAsync)))
            .Build();
    }

    public void Start() => _host.StartAsync().GetAwaiter().GetResult();

    private async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        try
        {
            var path = context.Request.Path.Value?.TrimEnd('/') ?? "";
            if (context.Request.Method != "GET") await WriteAsync(response, 405, "text/plain", "GET only\n");
            else if (_serveMetrics && path == "/metrics") await WriteAsync(response, 200, "text/plain; version=0.0.4", MetricsText(await _commands.ExecuteAsync("mntr")));
            // Orchestrator probes (Kubernetes, Docker HEALTHCHECK): no credential, nothing secret in the answer.
            else if (_health is not null && path == "/health/live") await WriteAsync(response, 200, "text/plain", "Healthy\n");
            else if (_health is not null && path == "/health/ready") await WriteReadinessAsync(response, _health.Check());
            else if (_serveCommands && path == "/commands") await WriteAsync(response, 200, "application/json", JsonSerializer.Serialize(new { commands = FourLetterWords.All }));
            else if (_serveCommands && path.StartsWith("/commands/", StringComparison.Ordinal))
            {
                var name = path["/commands/".Length..];
                if (!FourLetterWords.All.Contains(name))
                    await WriteAsync(response, 404, "application/json", ErrorJson(name, "unknown command"));
                else if (await AuthorizeAsync(context, name) is { } refusal)
                    await WriteAsync(response, refusal.Status, "application/json", ErrorJson(name, refusal.Error));
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

    private static string ErrorJson(string command, string error) => JsonSerializer.Serialize(new { command, error });

    /// <summary>Null when the command may run; otherwise the status and error ZooKeeper's AdminServer answers.</summary>
    private async Task<(int Status, string Error)?> AuthorizeAsync(HttpContext context, string command)
    {
        if (!_settings.CommandsRequiringAuth.Contains(command)) return null;
        var header = context.Request.Headers.Authorization.ToString();
        var acl = string.IsNullOrEmpty(header) || _replica is null ? null : (await _replica.Ask<NodeAcl>(new GetNodeAcl("/"), AclTimeout)).Acl;
        var caller = new AdminAuthorization.Caller(context.Connection.RemoteIpAddress, context.Connection.ClientCertificate);
        return AdminAuthorization.Decide(header, caller, _superDigest, _x509SuperUser, acl, Perms.All) switch
        {
            AdminAuthorization.Verdict.Allowed => null,
            AdminAuthorization.Verdict.Missing => (401, "Auth info is missing for the command"),
            AdminAuthorization.Verdict.NotAuthenticated => (401, "Not authenticated"),
            _ => (403, "Not authorized"),
        };
    }

    private static async Task WriteAsync(HttpResponse response, int status, string contentType, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes).ConfigureAwait(false);
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

    private static Task WriteReadinessAsync(HttpResponse response, ServerReadiness readiness) =>
        WriteAsync(response, readiness.Ready ? 200 : 503, "application/json",
            JsonSerializer.Serialize(new { status = readiness.Ready ? "Healthy" : "Unhealthy", reason = readiness.Reason, data = readiness.Data }));

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
        await _host.StopAsync().ConfigureAwait(false);
        _host.Dispose();
    }
}
