using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Akka.Actor;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Logging;
using Microsoft.Extensions.Logging;

namespace Coordination.Server.Audit;

/// <summary>
/// Where committed writes are reported for the audit log. The replica calls <see cref="Committed"/> once per txn in
/// its commit path; the session actors tell who a session is and which write a request was (the txn alone lacks the
/// client's address and, for a failed op, the path).
/// </summary>
public interface IAuditSink
{
    /// <summary>False when auditing is off: callers may skip building what they would pass.</summary>
    bool Enabled { get; }
    /// <summary>The session's identities (auth ids, including its ip id) and client address, after a handshake or auth.</summary>
    void Identify(long sessionId, AuthContext auth, string clientAddress);
    /// <summary>A write request forwarded to the replica: its op and path, matched to its txn by (session, cxid).</summary>
    void Requested(long sessionId, int xid, OpCode op, string? path);
    /// <summary>A txn was applied with result <paramref name="err"/>.</summary>
    void Committed(in TxnHeader header, Txn txn, ErrorCode err);
}

/// <summary>
/// The audit log (<c>coordination.audit { enabled, file }</c>), like ZooKeeper's: one line per committed write,
/// <c>time session=0x.. user=ip:1.2.3.4,digest:bob ip=1.2.3.4 operation=create znode=/a result=success err=Ok zxid=0x..</c>
/// (tab-separated). With <c>file</c> set, lines are appended to that file by a background writer (the replica never
/// waits for disk); with <c>file = ""</c> they go to the log under the category <c>Coordination.Audit</c>.
/// An Akka extension: <c>AuditLog.For(system)</c>.
/// </summary>
public sealed class AuditLog : IAuditSink, IExtension
{
    private readonly record struct Who(string User, string Address);

    private readonly ConcurrentDictionary<long, Who> _sessions = new();
    private readonly ConcurrentDictionary<(long Session, int Xid), (OpCode Op, string? Path)> _requests = new();
    private readonly Channel<string>? _lines;
    private readonly ILogger? _logger;
    private readonly Task _writer = Task.CompletedTask;

    public bool Enabled { get; }

    private AuditLog(bool enabled, string file, ILoggerFactory factory)
    {
        Enabled = enabled;
        if (!enabled) return;
        if (string.IsNullOrWhiteSpace(file))
        {
            _logger = factory.CreateLogger("Coordination.Audit");
            return;
        }
        var directory = Path.GetDirectoryName(Path.GetFullPath(file));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        _lines = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        _writer = Task.Run(() => WriteLinesAsync(file, _lines.Reader));
    }

    public static AuditLog For(ActorSystem system) => system.WithExtension<AuditLog, AuditLogProvider>();

    internal static AuditLog Create(ExtendedActorSystem system)
    {
        var config = system.Settings.Config.GetConfig("coordination.audit");
        var enabled = config?.GetBoolean("enabled", false) ?? false;
        var log = new AuditLog(enabled, config?.GetString("file", "") ?? "", enabled ? ServerLogging.For(system).Factory : Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        system.RegisterOnTermination(log.Complete);
        return log;
    }

    public void Identify(long sessionId, AuthContext auth, string clientAddress)
    {
        if (!Enabled) return;
        _sessions[sessionId] = new Who(string.Join(',', auth.Ids.Select(UserOf)), clientAddress);
    }

    /// <summary>"scheme:id"; a digest id without its password hash, as whoAmI reports it.</summary>
    private static string UserOf(Id id)
    {
        var colon = id.Ident.IndexOf(':');
        return id.Scheme + ":" + (id.Scheme == "digest" && colon >= 0 ? id.Ident[..colon] : id.Ident);
    }

    public void Requested(long sessionId, int xid, OpCode op, string? path)
    {
        if (Enabled) _requests[(sessionId, xid)] = (op, path);
    }

    public void Committed(in TxnHeader header, Txn txn, ErrorCode err)
    {
        if (!Enabled) return;
        _requests.TryRemove((header.SessionId, header.Cxid), out var request);
        var (operation, path) = Describe(request.Op != 0 ? request.Op : header.Type, txn, request.Path);
        var who = _sessions.TryGetValue(header.SessionId, out var w) ? w : new Who(header.SessionId == 0 ? "server" : "unknown", "");
        if (txn is CloseSessionTxn) Forget(header.SessionId);

        var line = new StringBuilder(160)
            .Append(DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture))
            .Append("\tsession=0x").Append(header.SessionId.ToString("x", CultureInfo.InvariantCulture))
            .Append("\tuser=").Append(who.User)
            .Append("\tip=").Append(who.Address)
            .Append("\toperation=").Append(operation)
            .Append("\tznode=").Append(path)
            .Append("\tresult=").Append(err == ErrorCode.Ok ? "success" : "failure")
            .Append("\terr=").Append(err)
            .Append("\tzxid=0x").Append(header.Zxid.ToString("x", CultureInfo.InvariantCulture))
            .ToString();
        if (_lines is not null) _lines.Writer.TryWrite(line);
        else _logger!.LogInformation("{AuditLine}", line);
    }

    /// <summary>Drops a closed session, and its requests whose txns never came (failed journal writes).</summary>
    private void Forget(long sessionId)
    {
        _sessions.TryRemove(sessionId, out _);
        foreach (var key in _requests.Keys)
            if (key.Session == sessionId) _requests.TryRemove(key, out _);
    }

    /// <summary>ZooKeeper's audit operation names; the path from the txn, else from the request (failed ops).</summary>
    private static (string Operation, string Path) Describe(OpCode type, Txn txn, string? requestPath) => txn switch
    {
        CreateTxn c => ("create", c.Path),
        DeleteTxn d => ("delete", d.Path),
        SetDataTxn s => ("setData", s.Path),
        SetAclTxn a => ("setAcl", a.Path),
        MultiTxn m => ("multiOperation", string.Join(',', m.Ops.Select(op => Describe(op.Type, op.Txn, null).Path).Where(p => p.Length > 0))),
        CreateSessionTxn => ("createSession", ""),
        CloseSessionTxn close => ("closeSession", string.Join(',', close.EphemeralPaths)),
        _ => (Metrics.ServerMetrics.OpName(type), requestPath ?? ""),   // an error txn: the request's op and path
    };

    private static async Task WriteLinesAsync(string file, ChannelReader<string> lines)
    {
        await using var stream = new FileStream(file, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false));
        while (await lines.WaitToReadAsync().ConfigureAwait(false))
        {
            while (lines.TryRead(out var line)) await writer.WriteLineAsync(line).ConfigureAwait(false);
            await writer.FlushAsync().ConfigureAwait(false);   // once per drained batch
        }
    }

    private void Complete()
    {
        _lines?.Writer.TryComplete();
        _writer.Wait(TimeSpan.FromSeconds(5));
    }
}

public sealed class AuditLogProvider : ExtensionIdProvider<AuditLog>
{
    public override AuditLog CreateExtension(ExtendedActorSystem system) => AuditLog.Create(system);
}
