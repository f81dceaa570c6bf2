using Akka.Actor;
using Akka.Event;
using Coordination.Protocol;

namespace Coordination.Client.Actors;

/// <summary>
/// An actor that owns a <see cref="CoordinationClient"/> and serves it as messages: each <see cref="CoordinationRequest"/>
/// is answered to its sender with a typed reply or <c>Status.Failure</c>; watch events and connection states are
/// delivered to subscriber actors. It never blocks (replies are piped), bounds the requests in flight, closes its
/// session when stopped and creates a new client when restarted by its supervisor. If the first connect fails
/// entirely it throws <see cref="CoordinationConnectException"/> so that its supervisor decides.
/// </summary>
public sealed partial class CoordinationProxy : ReceiveActor, IWithTimers
{
    private readonly CoordinationClientSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _stateSubscribers = [];
    // Persistent watches: (path, mode) -> subscribers. One client watcher per (path, mode) fans out to them.
    private readonly Dictionary<(string Path, AddWatchMode Mode), HashSet<IActorRef>> _persistent = new();
    private CoordinationClient _client = null!;
    private ConnectionState _state = ConnectionState.Connecting;
    private int _inFlight;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CoordinationClientSettings settings) => Akka.Actor.Props.Create(() => new CoordinationProxy(settings));

    public CoordinationProxy(CoordinationClientSettings settings)
    {
        _settings = settings;

        Receive<CoordinationRequest>(Handle);
        Receive<Completed>(c =>
        {
            _inFlight--;
            c.ReplyTo.Tell(c.Reply);
        });
        Receive<ClientState>(s => ReferenceEquals(s.Client, _client), OnState);
        Receive<ClientState>(_ => { }); // from a previous client
        Receive<StartFailed>(f => ReferenceEquals(f.Client, _client), new Action<StartFailed>(f =>
        {
            throw new CoordinationConnectException($"could not connect to {_settings.ConnectString}: {f.Cause.Message}", f.Cause);
        }));
        Receive<StartFailed>(_ => { });
        Receive<RestartSession>(_ =>
        {
            var client = _client;
            client.RestartAsync().PipeTo(Self, success: () => RestartDone.Instance, failure: e => new StartFailed(client, e));
        });
        Receive<RestartDone>(_ => { });
        Receive<SubscribeConnectionState>(s =>
        {
            if (_stateSubscribers.Add(s.Subscriber)) Context.Watch(s.Subscriber);
            s.Subscriber.Tell(new ConnectionStateChanged(_state, _client.SessionId));
        });
        Receive<UnsubscribeConnectionState>(s =>
        {
            _stateSubscribers.Remove(s.Subscriber);
            UnwatchIfUnused(s.Subscriber);
        });
        Receive<GetConnectionState>(_ => Sender.Tell(new ConnectionStateChanged(_state, _client.SessionId)));
        Receive<GetSessionCredentials>(_ => Sender.Tell(new SessionCredentials(_client.SessionId, _client.SessionPassword)));
        Receive<AddWatch>(HandleAddWatch);
        ReceiveChanges();
        Receive<RemoveWatch>(HandleRemoveWatch);
        Receive<DropWatchKey>(drop =>
        {
            _persistent.Remove(drop.Key);
            _fanOuts.Remove(drop.Key);
        });
        Receive<Terminated>(t =>
        {
            _stateSubscribers.Remove(t.ActorRef);
            EndFeedsOf(t.ActorRef);
            foreach (var key in _persistent.Keys.ToList()) DropSubscriber(key, t.ActorRef, replyTo: null);
        });
    }

    protected override void PreStart()
    {
        var self = Self;
        var client = new CoordinationClient(LocalCoordinationMember.For(Context.System).Apply(_settings.ToOptions(line => _log.Debug("{0}", line))));
        client.ConnectionStateChanged += s => self.Tell(new ClientState(client, s));
        _client = client;
        client.StartAsync().PipeTo(self, success: () => RestartDone.Instance, failure: e => new StartFailed(client, e));
    }

    protected override void PostStop()
    {
        // Close the session without blocking the dispatcher; requests still in flight fail with ConnectionLoss.
        EndAllFeeds();
        var client = _client;
        _ = Task.Run(async () => { try { await client.DisposeAsync().ConfigureAwait(false); } catch { } });
    }

    private void Handle(CoordinationRequest request)
    {
        var sender = Sender;
        if (_inFlight >= _settings.MaxInFlight)
        {
            sender.Tell(new Status.Failure(new CoordinationProxyOverloadedException(_settings.MaxInFlight), request));
            return;
        }
        Action<WatchedEvent>? watcher = null;
        if (request.Watches)
        {
            var target = request.WatchSubscriber ?? sender;
            watcher = e => target.Tell(new WatchEvent(e));
        }
        Task<object> task;
        try { task = request.Execute(_client, watcher); }
        catch (Exception e) { task = Task.FromException<object>(e); }
        _inFlight++;
        task.PipeTo(Self, success: reply => new Completed(sender, reply), failure: e => new Completed(sender, new Status.Failure(Unwrap(e), request)));
    }

    private static Exception Unwrap(Exception e) => e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerException! : e;

    private void OnState(ClientState s)
    {
        _state = s.State;
        var message = new ConnectionStateChanged(s.State, _client.SessionId);
        foreach (var subscriber in _stateSubscribers) subscriber.Tell(message);
        if (s.State == ConnectionState.Expired)
        {
            _log.Warning("coordination session 0x{0:x} expired", _client.SessionId);
            // The client dropped its watches; persistent watch subscribers learn it from the state change.
            _persistent.Clear();
            if (_settings.RestartOnExpiry) Timers.StartSingleTimer(RestartSession.Instance, RestartSession.Instance, _settings.RestartBackoff);
        }
    }

    private void HandleAddWatch(AddWatch add)
    {
        var subscriber = add.Subscriber ?? Sender;
        var replyTo = Sender;
        var key = (add.Path, add.Mode);
        if (_persistent.TryGetValue(key, out var existing))
        {
            if (existing.Add(subscriber)) Context.Watch(subscriber);
            replyTo.Tell(new WatchAdded(add.Path, add.Mode));
            return;
        }
        var subscribers = new HashSet<IActorRef> { subscriber };
        _persistent[key] = subscribers;
        Context.Watch(subscriber);
        var self = Self;
        // The watcher reads the subscriber set on the client's event thread: hand it over through a copy-on-write array.
        var fanOut = new FanOut(subscribers);
        _fanOuts[key] = fanOut;
        _inFlight++;
        _client.AddWatchAsync(add.Path, fanOut.Deliver, add.Mode).PipeTo(self,
            success: () => new Completed(replyTo, new WatchAdded(add.Path, add.Mode)),
            failure: e =>
            {
                self.Tell(new DropWatchKey(key));
                return new Completed(replyTo, new Status.Failure(Unwrap(e), add));
            });
    }

    private readonly Dictionary<(string, AddWatchMode), FanOut> _fanOuts = new();

    private sealed class FanOut
    {
        private volatile IActorRef[] _targets;
        public FanOut(IEnumerable<IActorRef> targets) => _targets = targets.ToArray();
        public void Update(IEnumerable<IActorRef> targets) => _targets = targets.ToArray();
        public void Deliver(WatchedEvent e)
        {
            var message = new WatchEvent(e);
            foreach (var t in _targets) t.Tell(message);
        }
    }

    private void HandleRemoveWatch(RemoveWatch remove) => DropSubscriber((remove.Path, remove.Mode), remove.Subscriber ?? Sender, Sender);

    private void DropSubscriber((string Path, AddWatchMode Mode) key, IActorRef subscriber, IActorRef? replyTo)
    {
        if (!_persistent.TryGetValue(key, out var subscribers) || !subscribers.Remove(subscriber))
        {
            replyTo?.Tell(new Status.Failure(new NoWatcherException(key.Path), key));
            return;
        }
        UnwatchIfUnused(subscriber);
        if (_fanOuts.TryGetValue(key, out var fanOut)) fanOut.Update(subscribers);
        if (subscribers.Count > 0)
        {
            replyTo?.Tell(new WatchRemoved(key.Path, key.Mode));
            return;
        }
        _persistent.Remove(key);
        _fanOuts.Remove(key);
        var type = key.Mode == AddWatchMode.PersistentRecursive ? Protocol.WatcherType.PersistentRecursive : Protocol.WatcherType.Persistent;
        var reply = replyTo ?? ActorRefs.Nobody;
        _inFlight++;
        _client.RemoveWatchesAsync(key.Path, type, local: true).PipeTo(Self,
            success: () => new Completed(reply, new WatchRemoved(key.Path, key.Mode)),
            failure: e => new Completed(reply, new Status.Failure(Unwrap(e), key)));
    }

    private void UnwatchIfUnused(IActorRef subscriber)
    {
        if (_stateSubscribers.Contains(subscriber)) return;
        if (_persistent.Values.Any(s => s.Contains(subscriber))) return;
        if (_feeds.Values.Any(p => p.Subscriber.Equals(subscriber))) return;
        Context.Unwatch(subscriber);
    }

    private sealed record DropWatchKey((string, AddWatchMode) Key);

    private sealed record Completed(IActorRef ReplyTo, object Reply);
    private sealed record ClientState(CoordinationClient Client, ConnectionState State);
    private sealed record StartFailed(CoordinationClient Client, Exception Cause);
    private sealed record RestartSession { public static readonly RestartSession Instance = new(); }
    private sealed record RestartDone { public static readonly RestartDone Instance = new(); }
}
