using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Streams.Dsl;

namespace Coordination.Server.Persistence;

/// <summary>
/// The Akka.Persistence.Query side of <see cref="FileEventJournal"/>: <see cref="ICurrentEventsByPersistenceIdQuery"/>
/// over the same segment directory, read without opening it for writing (beside the journal that writes it), as the
/// journal itself reads it at start: the events of a persistence id that are not deleted, in sequence order, as they
/// are when the query starts. Configured beside the journal:
/// <code>
/// akka.persistence.query.journal.coordination-file.dir = "/var/lib/app/journal"   # the journal's dir
/// </code>
/// </summary>
public sealed class FileEventReadJournal : IReadJournal, ICurrentEventsByPersistenceIdQuery
{
    public const string PluginId = "akka.persistence.query.journal.coordination-file";

    /// <summary>The plugin's settings, under <c>akka.persistence.query.journal.coordination-file</c>.</summary>
    public static Config DefaultConfig { get; } = ConfigurationFactory.ParseString("""
        akka.persistence.query.journal.coordination-file {
          class = "Coordination.Server.Persistence.FileEventReadJournalProvider, Coordination.Server"
          # The directory of the journal's segments (akka.persistence.journal.coordination-file.dir).
          dir = "journal"
        }
        """);

    private readonly ExtendedActorSystem _system;
    private readonly string _dir;

    public FileEventReadJournal(ExtendedActorSystem system, Config config)
    {
        _system = system;
        _dir = Path.GetFullPath(config.WithFallback(DefaultConfig.GetConfig(PluginId)).GetString("dir", "journal"));
    }

    public Source<EventEnvelope, Akka.NotUsed> CurrentEventsByPersistenceId(string persistenceId, long fromSequenceNr, long toSequenceNr) =>
        // The log is read when the stream runs, not when it is described.
        Source.Single(Akka.NotUsed.Instance).ConcatMany(_ =>
            Source.From(FileEventJournal.ReadEvents(_dir, persistenceId, fromSequenceNr, toSequenceNr, _system.Serialization)
                .Select(p => new EventEnvelope(new Sequence(p.SequenceNr), p.PersistenceId, p.SequenceNr, p.Payload, p.Timestamp, []))));
}

/// <summary>Makes <see cref="FileEventReadJournal"/> the read journal of its plugin id.</summary>
public sealed class FileEventReadJournalProvider(ExtendedActorSystem system, Config config) : IReadJournalProvider
{
    public IReadJournal GetReadJournal() => new FileEventReadJournal(system, config);
}
