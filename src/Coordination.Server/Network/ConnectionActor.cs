using Akka.Actor;
using Akka.Event;
using Coordination.Protocol;
using Coordination.Server.Admin;
using Coordination.Server.Sessions;

namespace Coordination.Server.Network;

/// <summary>
/// Owns one TCP connection's lifetime: runs its read and write loops, hands the handshake to the session manager,
/// answers four-letter words, and tells the session when the connection ends. Requests themselves bypass this
/// actor and go from the read loop straight to the replica (auth and SASL packets to the session actor).
/// </summary>
public sealed class ConnectionActor : ReceiveActor
{
    private sealed record Handshake(ConnectRequest Request);
    private sealed record ReadFinished(ClientConnection.ReadOutcome Outcome, string? Detail);
    private sealed class WriteFinished { public static readonly WriteFinished Instance = new(); }

    private readonly ClientConnection _connection;
    private readonly IActorRef _sessionManager;
    private readonly FourLetterWordHandler _admin;
    private readonly ConnectionRegistry _registry;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ConnectionActor(ClientConnection connection, IActorRef sessionManager, FourLetterWordHandler admin, ConnectionRegistry registry)
    {
        _connection = connection;
        _sessionManager = sessionManager;
        _admin = admin;
        _registry = registry;

        Receive<Handshake>(h => _sessionManager.Tell(new Connect(_connection, h.Request)));
        Receive<ReadFinished>(OnReadFinished);
        // The write loop ends after a close-after-flush or an abort; only then is everything sent.
        Receive<WriteFinished>(_ => Context.Stop(Self));
        Receive<Status.Failure>(f =>
        {
            _log.Warning("Connection {ClientAddress} failed: {Reason}", _connection.Remote, f.Cause.Message);
            _connection.Abort();
            Finish();
        });
    }

    public static Props Props(ClientConnection connection, IActorRef sessionManager, FourLetterWordHandler admin, ConnectionRegistry registry) =>
        Akka.Actor.Props.Create(() => new ConnectionActor(connection, sessionManager, admin, registry));

    protected override void PreStart()
    {
        _registry.Add(_connection);
        var self = Self;
        _connection.WriteLoopAsync().PipeTo(self, success: () => WriteFinished.Instance);
        _connection.ReadLoopAsync(request => self.Tell(new Handshake(request)))
            .PipeTo(self, success: r => new ReadFinished(r.Outcome, r.Detail));
    }

    protected override void PostStop()
    {
        _registry.Remove(_connection);
        _connection.Abort();
        _registry.Release(_connection.RemoteAddress);   // admitted at accept; after Abort so its descriptor is free
    }

    private void OnReadFinished(ReadFinished finished)
    {
        switch (finished.Outcome)
        {
            case ClientConnection.ReadOutcome.FourLetterWord:
                var word = finished.Detail!;
                var connection = _connection;
                _admin.RunAsync(word).ContinueWith(t =>
                {
                    var text = t.IsCompletedSuccessfully ? t.Result : $"error: {t.Exception?.GetBaseException().Message}\n";
                    connection.Send(System.Text.Encoding.UTF8.GetBytes(text), isResponse: false);
                    connection.CloseAfterFlush();
                });
                return;
            case ClientConnection.ReadOutcome.ProtocolError:
                // Invariant 7: a bad frame closes this connection only.
                _log.Info("Closing connection {ClientAddress}: {Reason}", _connection.Remote, finished.Detail);
                _connection.Abort();
                break;
            case ClientConnection.ReadOutcome.Refused:
                break;   // the session already queued its answer and asked for a close after flush
            default:
                // The client closed its side: send what is queued (e.g. the closeSession reply), then close.
                _connection.CloseAfterFlush();
                break;
        }
        Finish();
    }

    /// <summary>Tells the session; the actor stops when the write loop has ended.</summary>
    private void Finish()
    {
        if (_connection.DropReason is { } reason)
            _log.Info("Closed connection {ClientAddress} (session 0x{SessionId:x}): {Reason}", _connection.Remote, _connection.SessionId, reason);
        _connection.Owner?.Tell(new ConnectionEnded(_connection));
    }
}
