using Akka.Actor;

namespace Coordination.Server.Pipeline;

/// <summary>
/// The transaction-log step of the pipeline without durability: every batch is "appended" at once. It keeps the
/// pipeline honest (no txn is applied before the log step reports it) until the journal-backed log replaces it.
/// </summary>
public sealed class InMemoryTxnLogActor : ReceiveActor
{
    public InMemoryTxnLogActor()
    {
        Receive<LogAppend>(append => Sender.Tell(new LogAppended(append.Batch)));
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new InMemoryTxnLogActor());
}
