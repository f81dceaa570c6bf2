using Akka.Configuration;

namespace Coordination.Server.Persistence;

/// <summary>The <c>coordination.persistence</c> section (documented in reference.conf).</summary>
public sealed record PersistenceSettings
{
    public bool Enabled { get; init; } = true;
    /// <summary>"file" (segment files under <see cref="LogDirectory"/> written by a writer thread, the default),
    /// "persistent-file" (a persistent actor on <see cref="FileEventJournal"/>, segment files under
    /// <see cref="EventLogDirectory"/>) or "sql" (a persistent actor on Akka.Persistence.Sql).</summary>
    public string Journal { get; init; } = "file";
    public long LogSegmentBytes { get; init; } = 64L << 20;
    public long LogPreallocateBytes { get; init; } = 4L << 20;
    public string ProviderName { get; init; } = "SQLite.MS";
    /// <summary>The journal's connection string; for SQLite, empty means <c>Data Source=&lt;data-dir&gt;/journal.db</c>.</summary>
    public string ConnectionString { get; init; } = "";
    public bool ForceSync { get; init; } = true;
    public long SnapshotEveryTxns { get; init; } = 100_000;
    public long SnapshotEveryBytes { get; init; } = 64L << 20;
    public double SnapshotLogRatio { get; init; } = 1.0;
    public int SnapshotChunkNodes { get; init; } = 2000;
    public TimeSpan SnapshotChunkTime { get; init; } = TimeSpan.FromMilliseconds(1);
    public int SnapshotsRetained { get; init; } = 3;
    public bool Purge { get; init; } = true;
    public int MaxBatchTxns { get; init; } = 2000;
    public TimeSpan RestartBackoffMin { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan RestartBackoffMax { get; init; } = TimeSpan.FromSeconds(5);
    public string PersistenceId { get; init; } = "coordination-txnlog";
    public string DataDir { get; init; } = "./data";

    public bool UsesFileLog => Journal == "file";
    public bool UsesEventLog => Journal == "persistent-file";
    /// <summary>Where the file journal keeps its segments.</summary>
    public string LogDirectory => Path.Combine(Path.GetFullPath(DataDir), "txnlog");
    /// <summary>Where <see cref="FileEventJournal"/> keeps its segments (another record format than <see cref="LogDirectory"/>'s).</summary>
    public string EventLogDirectory => Path.Combine(Path.GetFullPath(DataDir), "eventlog");
    /// <summary>The Akka.Persistence plugins the persistent actors of the "persistent-file" and "sql" journals use.
    /// The file journal has no snapshot store: the tree's snapshots are files of their own (<see cref="SnapshotFiles"/>).</summary>
    public string JournalPluginId => UsesEventLog ? FileEventJournal.PluginId : "akka.persistence.journal.sql";
    /// <summary>The dispatcher of the journal's persistent actors: inline on persistent-file, so that an append reaches
    /// the plugin on the sender's thread and its persist handler runs on the log's writer thread (§6); the thread
    /// pool's on sql, whose plugin runs on the thread pool anyway.</summary>
    public string JournalActorDispatcher => UsesEventLog ? InlineDispatcher.DefaultId : Akka.Dispatch.Dispatchers.DefaultDispatcherId;
    public string SnapshotPluginId => UsesEventLog ? "akka.persistence.no-snapshot-store" : "akka.persistence.snapshot-store.sql";
    /// <summary>The Akka.Persistence.Query plugin that reads that journal back (the change feed's history).</summary>
    public string ReadJournalPluginId => UsesEventLog ? FileEventReadJournal.PluginId : "akka.persistence.query.journal.sql";
    /// <summary>The persistence id of an ensemble member's Zab log (a standalone server's journal is <see cref="PersistenceId"/>).</summary>
    public string ZabPersistenceId => PersistenceId + "-zab";

    public bool IsSqlite => ProviderName.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase);

    /// <summary>The SQLite database file, or null for a server database.</summary>
    public string? SqliteFile
    {
        get
        {
            if (!IsSqlite) return null;
            var cs = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(EffectiveConnectionString);
            return Path.GetFullPath(cs.DataSource);
        }
    }

    public string EffectiveConnectionString =>
        ConnectionString.Length > 0 ? ConnectionString
        : IsSqlite ? $"Data Source={Path.Combine(Path.GetFullPath(DataDir), "journal.db")}"
        : throw new InvalidOperationException($"coordination.persistence.connection-string is required for provider {ProviderName}");

    /// <summary>
    /// The section's settings for a server on <paramref name="dataDir"/>. <c>journal = auto</c> (not the default yet:
    /// docs/architecture.md §6) is resolved here, once:
    /// the journal the data dir holds, or <paramref name="newDataDirJournal"/> when it holds none (an embedded member
    /// passes "file": the other journals need plugins the application's ActorSystem lacks). Settings built in code
    /// name their journal ("file" unless set).
    /// </summary>
    public static PersistenceSettings Create(Config full, string dataDir, string newDataDirJournal = "persistent-file")
    {
        var c = full.GetConfig("coordination.persistence");
        if (c is null || c.IsEmpty) return new PersistenceSettings { DataDir = dataDir };
        return new PersistenceSettings
        {
            DataDir = dataDir,
            Enabled = c.GetBoolean("enabled", true),
            Journal = c.GetString("journal", "file") switch
            {
                "file" => "file",
                "persistent-file" => "persistent-file",
                "sql" => "sql",
                "auto" => new PersistenceSettings { DataDir = dataDir, ConnectionString = c.GetString("connection-string", ""),
                    ProviderName = c.GetString("provider-name", "SQLite.MS") }.JournalHeld() ?? newDataDirJournal,
                var other => throw new ConfigurationException($"coordination.persistence.journal must be \"auto\", \"file\", \"persistent-file\" or \"sql\", not \"{other}\""),
            },
            LogSegmentBytes = c.GetByteSize("log-segment-size") ?? (64L << 20),
            LogPreallocateBytes = c.GetByteSize("log-preallocate") ?? (4L << 20),
            ProviderName = c.GetString("provider-name", "SQLite.MS"),
            ConnectionString = c.GetString("connection-string", ""),
            ForceSync = c.GetBoolean("force-sync", true),
            SnapshotEveryTxns = c.GetLong("snapshot-every-txns", 100_000),
            SnapshotEveryBytes = c.GetByteSize("snapshot-every-bytes") ?? (64L << 20),
            SnapshotLogRatio = Math.Max(0, c.GetDouble("snapshot-log-ratio", 1.0)),
            SnapshotChunkNodes = Math.Max(1, c.GetInt("snapshot-chunk-nodes", 2000)),
            SnapshotChunkTime = c.GetTimeSpan("snapshot-chunk-time", TimeSpan.FromMilliseconds(1)),
            SnapshotsRetained = Math.Max(1, c.GetInt("snapshots-retained", 3)),
            Purge = c.GetBoolean("purge", true),
            MaxBatchTxns = Math.Max(1, c.GetInt("max-batch-txns", 2000)),
            RestartBackoffMin = c.GetTimeSpan("restart-backoff-min", TimeSpan.FromMilliseconds(200)),
            RestartBackoffMax = c.GetTimeSpan("restart-backoff-max", TimeSpan.FromSeconds(5)),
        };
    }

    /// <summary>
    /// The journal <see cref="DataDir"/> holds (segments in <see cref="LogDirectory"/>: file; in <see cref="EventLogDirectory"/>:
    /// persistent-file; a non-empty default SQLite journal, <see cref="SqliteFile"/>: sql), or null when it holds none. A data dir that holds two
    /// cannot say which one is its state: refused, naming both. A journal elsewhere (a connection string) is not seen.
    /// </summary>
    internal string? JournalHeld()
    {
        var held = new List<(string Journal, string Place)>();
        if (FileTxnLog.List(LogDirectory).Count > 0) held.Add(("file", LogDirectory));
        if (FileTxnLog.List(EventLogDirectory).Count > 0) held.Add(("persistent-file", EventLogDirectory));
        if (ConnectionString.Length == 0 && SqliteFile is { } db && File.Exists(db) && new FileInfo(db).Length > 0) held.Add(("sql", db));
        return held.Count switch
        {
            0 => null,
            1 => held[0].Journal,
            _ => throw new RecoveryException($"coordination.persistence.journal = auto, but {Path.GetFullPath(DataDir)} holds {string.Join(" and ", held.Select(h => $"a {h.Journal} journal ({h.Place})"))}: " +
                "set journal to the one that holds this server's state, and move the other away"),
        };
    }
}
