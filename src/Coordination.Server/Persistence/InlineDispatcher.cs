using Akka.Configuration;
using Akka.Dispatch;

namespace Coordination.Server.Persistence;

/// <summary>
/// Makes the one <see cref="InlineDispatcher"/> of its config path (<c>coordination.persistence.journal-dispatcher</c>
/// in reference.conf).
/// </summary>
public sealed class InlineDispatcherConfigurator : MessageDispatcherConfigurator
{
    private readonly InlineDispatcher _dispatcher;

    public InlineDispatcherConfigurator(Config config, IDispatcherPrerequisites prerequisites) : base(config, prerequisites) =>
        _dispatcher = new InlineDispatcher(this, config.GetString("id"), config.GetInt("throughput", DefaultThroughput));

    private const int DefaultThroughput = 100;

    public override MessageDispatcher Dispatcher() => _dispatcher;
}

/// <summary>
/// Runs an actor's mailbox on the thread that enqueues into it, instead of scheduling it on the thread pool: a Tell to
/// an idle actor on this dispatcher is a call, not a thread wake (docs/architecture.md §6, "The journal's actors run
/// inline"). Only the persistent-file journal's actors use it (<see cref="FileEventJournal"/>,
/// <see cref="JournalWriterActor"/>, the Zab log's persistent actor), so that a write goes replica thread → the log's
/// writer thread → replica, as the file journal's does.
/// <para>
/// Akka's mailbox still guarantees one run at a time: a Tell to an actor that is running elsewhere only enqueues.
/// Three things differ from Akka.TestKit's CallingThreadDispatcher, which runs everything in place:
/// a run started inside another inline run on the same thread is queued and taken when the outer one returns (a
/// trampoline: the stack does not grow with the chain of actors, nor with a mailbox that is rescheduled after each
/// <c>throughput</c> messages, e.g. a replay of many events); an actor's creation (its constructor, PreStart and the
/// start of recovery: the plugin reads its whole log there) goes to the thread pool, as on the default dispatcher,
/// so that no caller runs it; and an exception that escapes a run (Akka's actor cell sends a failure of an actor to
/// its supervisor itself) is published to the event stream, never thrown at the thread that sent the message.
/// </para>
/// </summary>
public sealed class InlineDispatcher : MessageDispatcher
{
    /// <summary>The config path of the server's instance.</summary>
    public const string DefaultId = "coordination.persistence.journal-dispatcher";

    [ThreadStatic] private static Queue<(InlineDispatcher Dispatcher, IRunnable Run)>? _queued;
    [ThreadStatic] private static bool _running;
    [ThreadStatic] private static bool _attaching;

    internal InlineDispatcher(MessageDispatcherConfigurator configurator, string id, int throughput) : base(configurator)
    {
        Id = id;
        Throughput = throughput;
    }

    public override void Attach(Akka.Actor.ActorCell cell)
    {
        _attaching = true;
        try { base.Attach(cell); }
        finally { _attaching = false; }
    }

    protected override void ExecuteTask(IRunnable run)
    {
        if (_attaching) ThreadPool.UnsafeQueueUserWorkItem(static state => state.Dispatcher.RunAll(state.Run), (Dispatcher: this, Run: run), preferLocal: false);
        else if (_running) (_queued ??= new Queue<(InlineDispatcher, IRunnable)>()).Enqueue((this, run));
        else RunAll(run);
    }

    private void RunAll(IRunnable first)
    {
        _running = true;
        try
        {
            var (dispatcher, next) = (this, first);
            while (true)
            {
                try { next.Run(); }
                catch (Exception e) { dispatcher.ReportFailure(e); }
                if (_queued is not { Count: > 0 } queued) return;
                (dispatcher, next) = queued.Dequeue();
            }
        }
        finally { _running = false; }
    }

    // Nothing to release: the dispatcher owns no threads.
    protected override void Shutdown() { }
}
