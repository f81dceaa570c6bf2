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
/// <c>GET /commands</c> lists and <c>/commands/&lt;name&gt;</c> runs ZooKeeper 3.9's admin commands (<see cref="AdminCommands"/>)
/// with their JSON shapes, and <c>GET /metrics</c>
/// exposes the mntr values in Prometheus text format under ZooKeeper's metric names. Off by default and bound to
/// loopback unless configured otherwise. Commands that show session ids or reset state need an authorized
/// credential (<see cref="AdminAuthorization"/>).
/// </summary>
public sealed class AdminHttpServer : IAsyncDisposable
{
    private static readonly TimeSpan AclTimeout = TimeSpan.FromSeconds(10);
    private readonly IHost _host;
    private readonly FourLetterWordHandler _commands;
    private readonly AdminCommands? _adminCommands;
    private readonly bool _serveCommands;
    private readonly bool _serveMetrics;
    private readonly ServerMetrics? _metrics;
    private readonly AdminHttpSettings _settings;
    private readonly IActorRef? _replica;
    private readonly string? _superDigest;
    private readonly string? _x509SuperUser;
    private readonly ServerHealth? _health;

    public AdminHttpServer(AdminHttpSettings settings, FourLetterWordHandler commands, bool serveCommands, bool serveMetrics, Action<string> warn,
        ServerMetrics? metrics = null, IActorRef? replica = null, string? superDigest = null, string? x509SuperUser = null, AdminCommands? adminCommands = null,
        ServerHealth? health = null)
    {
        _health = health;
        _adminCommands = serveCommands ? adminCommands ?? new AdminCommands(commands, null, null, null, "") : null;
        if (_adminCommands is not null)
            foreach (var name in settings.CommandsRequiringAuth)
                if (_adminCommands.Find(name) is null) throw new Akka.Configuration.ConfigurationException($"auth-required: '{name}' is not a command");
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
                    // Whatever one scraper or caller can make this endpoint hold is bounded (docs/architecture.md, invariant 10).
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
            var post = context.Request.Method == "POST";
            // A body this handler will not read (a refused or unknown request) cannot be drained (MaxRequestBodySize = 0),
            // so Kestrel closes the connection after the answer: say so, or the client reuses it and loses its next request.
            var hasBody = context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0;
            if (hasBody) response.Headers.Connection = "close";
            if (context.Request.Method != "GET" && !(post && PostCommandAt(path) is not null)) await WriteAsync(response, 405, "text/plain", "GET only\n");
            else if (_serveMetrics && path == "/metrics") await WriteAsync(response, 200, "text/plain; version=0.0.4", MetricsText(await _commands.ExecuteAsync("mntr")));
            // Orchestrator probes (Kubernetes, Docker HEALTHCHECK): no credential, nothing secret in the answer.
            else if (_health is not null && path == "/health/live") await WriteAsync(response, 200, "text/plain", "Healthy\n");
            else if (_health is not null && path == "/health/ready") await WriteReadinessAsync(response, _health.Check());
            else if (_adminCommands is { } admin && path == "/commands") await WriteAsync(response, 200, "application/json", JsonSerializer.Serialize(new { commands = admin.Names.Order(StringComparer.Ordinal) }));
            else if (_adminCommands is { } commands && path.StartsWith("/commands/", StringComparison.Ordinal))
            {
                var name = path["/commands/".Length..];
                // As ZooKeeper: an unknown command is a 200 whose error names it.
                if (commands.Find(name) is not { } command)
                    await WriteResultAsync(response, AdminCommands.Error(name, "Unknown command: " + name));
                else if (await AuthorizeAsync(context, command) is { } refusal)
                    await WriteResultAsync(response, AdminCommands.Error(command.PrimaryName, refusal.Error, refusal.Status));
                else if (post)
                {
                    // Bodies are refused everywhere else (MaxRequestBodySize = 0); this one is bounded by its own limit.
                    response.Headers.Remove("Connection");
                    context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = _settings.RestoreMaxBytes;
                    await WriteResultAsync(response, await commands.RunAsync(command, new Dictionary<string, string>(), context.Request.Body));
                }
                else
                    await WriteResultAsync(response, await commands.RunAsync(command, context.Request.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal)));
            }
            else await WriteAsync(response, 404, "text/plain", "not found\n");
        }
        catch (Exception e)
        {
            try { await WriteAsync(response, 500, "application/json", JsonSerializer.Serialize(new { error = e.Message })); }
            catch { /* client went away */ }
        }
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The command at <c>/commands/NAME</c> when it takes a POST (restore).</summary>
    private AdminCommands.Command? PostCommandAt(string path) =>
        path.StartsWith("/commands/", StringComparison.Ordinal) && _adminCommands?.Find(path["/commands/".Length..]) is { Post: not null } command ? command : null;

    /// <summary>The command's JSON, or for a streamed snapshot its file with the headers ZooKeeper sends.</summary>
    private static async Task WriteResultAsync(HttpResponse response, AdminResult result)
    {
        if (result.Headers is { } headers) foreach (var (key, value) in headers) response.Headers[key] = value;
        if (result.StreamFile is not { } file)
        {
            await WriteAsync(response, result.Status, "application/json", JsonSerializer.Serialize(result.Fields, Indented));
            return;
        }
        await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, useAsync: true);
        response.StatusCode = result.Status;
        response.ContentType = "application/octet-stream";
        response.ContentLength = stream.Length;
        await stream.CopyToAsync(response.Body).ConfigureAwait(false);
    }

    /// <summary>Null when the command may run; otherwise the status and error ZooKeeper's AdminServer answers. The
    /// commands ZooKeeper 3.9 protects always need a credential; so do those any of whose names auth-required lists.</summary>
    private async Task<(int Status, string Error)?> AuthorizeAsync(HttpContext context, AdminCommands.Command command)
    {
        if (!command.AuthRequired && !command.Names.Any(_settings.CommandsRequiringAuth.Contains)) return null;
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

    private static readonly HashSet<string> Counters = ["packets_received", "packets_sent", "request_count", "uptime"];

    private static Task WriteReadinessAsync(HttpResponse response, ServerReadiness readiness) =>
        WriteAsync(response, readiness.Ready ? 200 : 503, "application/json",
            JsonSerializer.Serialize(new { status = readiness.Ready ? "Healthy" : "Unhealthy", reason = readiness.Reason, data = readiness.Data }));

    /// <summary>The /metrics body: the mntr gauges and counters, then the histograms and counters of <see cref="ServerMetrics"/>.</summary>
    private string MetricsText(string mntr)
    {
        var own = new StringBuilder();
        _metrics?.WritePrometheus(own);
        // mntr also has some of these names (proposal_count, election_time, ...): one family per name, the registry's.
        var written = own.ToString().Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet(StringComparer.Ordinal);
        return Prometheus(mntr, written) + own;
    }

    /// <summary>The numeric mntr values as Prometheus samples, named as ZooKeeper's Prometheus provider names them.</summary>
    public static string Prometheus(string mntr) => Prometheus(mntr, new HashSet<string>());

    private static string Prometheus(string mntr, IReadOnlySet<string> skip)
    {
        var b = new StringBuilder();
        string? family = null;
        foreach (var line in mntr.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t');
            if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) continue;
            var name = parts[0].StartsWith("zk_", StringComparison.Ordinal) ? parts[0][3..] : parts[0];
            if (skip.Contains(name)) continue;
            // A member of a set ("<member>_<set>", e.g. a namespace's quota gauge) is a sample of the set's family with a
            // key label, as ZooKeeper's Prometheus provider writes a GaugeSet or CounterSet (mntr writes a set's members together).
            var set = ZooKeeperMonitor.SetNames.FirstOrDefault(s => name.Length > s.Length + 1 && name.EndsWith(s, StringComparison.Ordinal) && name[^(s.Length + 1)] == '_');
            var metric = set ?? name;
            if (family != metric)
            {
                var counter = Counters.Contains(metric) || ClientPortMetrics.Names.Contains(metric) || metric == ZooKeeperMonitor.QuotaExceededError;
                b.Append("# TYPE ").Append(metric).Append(counter ? " counter\n" : " gauge\n");
                family = metric;
            }
            b.Append(metric);
            if (set is not null) AppendLabel(b, "key", name[..^(set.Length + 1)]);
            b.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return b.ToString();
    }

    /// <summary>{name="value"} with the exposition format's escapes (backslash, double quote, newline).</summary>
    private static void AppendLabel(StringBuilder b, string name, string value) =>
        b.Append('{').Append(name).Append("=\"").Append(value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n")).Append("\"}");

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync().ConfigureAwait(false);
        _host.Dispose();
    }
}
