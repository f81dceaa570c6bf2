using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Configuration;
using Coordination.Server;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>The journal's dispatcher (<see cref="InlineDispatcher"/>): what it runs where, and what it must not do to the thread that sends.</summary>
public sealed class InlineDispatcherTests
{
    /// <summary>
    /// A mailbox is rescheduled after each <c>throughput</c> messages; run in place, each reschedule would be a call
    /// inside the last (and a replay of many events a stack overflow). The dispatcher queues a run started inside
    /// another and takes it when that returns, so the stack stays as deep as it was for the first message.
    /// </summary>
    [Fact]
    public async Task Many_messages_to_an_actor_that_runs_inline_do_not_deepen_the_stack()
    {
        using var system = ActorSystem.Create("inline-depth", ConfigurationFactory.ParseString(
            $"{InlineDispatcher.DefaultId}.throughput = 1").WithFallback(ServerSettings.Reference));
        const int messages = 2000;
        var done = new TaskCompletionSource<(int First, int Deepest)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var actor = system.ActorOf(Props.Create(() => new DepthRecorder(messages, done)).WithDispatcher(InlineDispatcher.DefaultId));
        await actor.Ask<string>("ready", TimeSpan.FromSeconds(10)); // created (on the thread pool) before the burst
        actor.Tell("burst");
        var (first, deepest) = await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(deepest - first < 50, $"stack went from {first} to {deepest} frames over {messages} messages");
    }

    /// <summary>An actor's creation (its constructor and PreStart: the journal plugin reads its whole log there) runs
    /// on the thread pool, as on the default dispatcher, not inside the ActorOf of its parent; then a message told
    /// from an idle thread is handled on that thread, before Tell returns.</summary>
    [Fact]
    public async Task An_actor_is_created_on_the_thread_pool_and_then_runs_on_the_sender_thread()
    {
        using var system = ActorSystem.Create("inline-create", ServerSettings.Reference);
        var created = new TaskCompletionSource<(bool InsideActorOf, IActorRef Ref)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new Parent(created, received)));
        var (insideActorOf, actor) = await created.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(insideActorOf, "the child's constructor ran inside its parent's ActorOf");

        var handledOn = 0;
        var sender = new Thread(() =>
        {
            actor.Tell("hello");
            handledOn = received.Task.IsCompleted ? received.Task.Result : -1;
        });
        sender.Start();
        Assert.True(sender.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(sender.ManagedThreadId, handledOn);
    }

    /// <summary>Creates the inline child in its constructor and reports whether the child's constructor ran within
    /// that ActorOf call (the same thread while the call was not yet returned).</summary>
    private sealed class Parent : ReceiveActor
    {
        public Parent(TaskCompletionSource<(bool, IActorRef)> created, TaskCompletionSource<int> received)
        {
            var parentThread = Environment.CurrentManagedThreadId;
            var inActorOf = new StrongBox<bool>(true);
            var childThread = new TaskCompletionSource<(int Thread, bool ParentInActorOf)>();
            var child = Context.ActorOf(Props.Create(() => new ThreadRecorder(childThread, inActorOf, received)).WithDispatcher(InlineDispatcher.DefaultId));
            Volatile.Write(ref inActorOf.Value, false);
            childThread.Task.ContinueWith(t => created.TrySetResult((t.Result.Thread == parentThread && t.Result.ParentInActorOf, child)), TaskScheduler.Default);
        }
    }

    private sealed class DepthRecorder : ReceiveActor
    {
        public DepthRecorder(int messages, TaskCompletionSource<(int, int)> done)
        {
            int first = 0, deepest = 0, seen = 0;
            Receive<string>(m => m == "ready", _ => Sender.Tell("ready"));
            Receive<string>(m => m == "burst", _ =>
            {
                for (var i = 0; i < messages; i++) Self.Tell(i);
            });
            Receive<int>(_ =>
            {
                var depth = new System.Diagnostics.StackTrace().FrameCount;
                if (seen++ == 0) first = depth;
                deepest = Math.Max(deepest, depth);
                if (seen == messages) done.TrySetResult((first, deepest));
            });
        }
    }

    private sealed class ThreadRecorder : ReceiveActor
    {
        public ThreadRecorder(TaskCompletionSource<(int, bool)> created, StrongBox<bool> parentInActorOf, TaskCompletionSource<int> received)
        {
            created.TrySetResult((Environment.CurrentManagedThreadId, Volatile.Read(ref parentInActorOf.Value)));
            ReceiveAny(_ => received.TrySetResult(Environment.CurrentManagedThreadId));
        }
    }
}
