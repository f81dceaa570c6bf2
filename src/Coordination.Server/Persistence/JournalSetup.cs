using System.Data.Common;
using Akka.Actor.Setup;
using Akka.Configuration;
using LinqToDB;
using Microsoft.Data.Sqlite;

namespace Coordination.Server.Persistence;

/// <summary>Raised when the server must not start: the message names the file at fault.</summary>
public sealed class RecoveryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Akka.Persistence.Sql configuration for the journal, and the SQLite preparation done before the ActorSystem starts.</summary>
public static class JournalSetup
{
    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>The journal and snapshot-store plugin config, with the plugin's reference config as fallback
    /// (Akka.Persistence.Sql does not load it by itself).</summary>
    public static Config AkkaConfig(PersistenceSettings s)
    {
        var cs = Quote(s.EffectiveConnectionString);
        var provider = Quote(s.ProviderName);
        // SQLite has one writer: concurrent write transactions only contend (docs/architecture.md §6).
        var parallelism = s.IsSqlite ? 1 : 3;
        // SQLite's tables are created by PrepareSqlite (a leaner schema); other databases use the plugin's.
        var autoInitialize = s.IsSqlite ? "off" : "on";
        var hocon = $$"""
            akka.persistence {
              journal {
                plugin = "akka.persistence.journal.sql"
                sql { connection-string = {{cs}}, provider-name = {{provider}}, auto-initialize = {{autoInitialize}}, parallelism = {{parallelism}} }
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql { connection-string = {{cs}}, provider-name = {{provider}}, auto-initialize = {{autoInitialize}} }
              }
              # The change feed's history reads the journal back (current events by persistence id only).
              # Its ordering poller serves only tag and all-events queries, which nothing here runs: kept slow.
              query.journal.sql {
                connection-string = {{cs}}, provider-name = {{provider}}, write-plugin = "akka.persistence.journal.sql"
                journal-sequence-retrieval.query-delay = 1m
              }
            }
            """;
        return ConfigurationFactory.ParseString(hocon).WithFallback(EventSerializers).WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration)
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultQueryConfiguration);
    }

    /// <summary>The journal events' serializer, for every persistent-actor journal.</summary>
    private static readonly Config EventSerializers = ConfigurationFactory.ParseString("""
        akka.actor {
          serializers { coordination-txn = "Coordination.Server.Persistence.TxnEventSerializer, Coordination.Server" }
          serialization-bindings {
            "Coordination.Server.Persistence.TxnBatchEvent, Coordination.Server" = coordination-txn
            "Coordination.Server.Persistence.LogTruncatedEvent, Coordination.Server" = coordination-txn
          }
        }
        """);

    /// <summary>
    /// The "persistent-file" journal: <see cref="FileEventJournal"/> over the data dir's <c>eventlog</c> segments, with
    /// the file journal's settings (force-sync, segment size, preallocation, group size). Every snapshot-then-delete
    /// purges the segments it frees, as the file journal's purge does. <paramref name="readOnly"/>: a backup reads the
    /// log beside the running server and writes nothing.
    /// </summary>
    public static Config EventLogConfig(PersistenceSettings s, bool readOnly)
    {
        var hocon = $$"""
            akka.persistence.journal {
              plugin = "{{FileEventJournal.PluginId}}"
              coordination-file {
                plugin-dispatcher = "{{InlineDispatcher.DefaultId}}"
                dir = {{Quote(s.EventLogDirectory)}}
                force-sync = {{(s.ForceSync ? "on" : "off")}}
                segment-bytes = {{s.LogSegmentBytes}}
                preallocate-bytes = {{s.LogPreallocateBytes}}
                max-batch-events = {{s.MaxBatchTxns}}
                purge-after-deleted-events = 1
                read-only = {{(readOnly ? "on" : "off")}}
              }
            }
            akka.persistence.query.journal.coordination-file.dir = {{Quote(s.EventLogDirectory)}}
            akka.persistence.snapshot-store.plugin = "akka.persistence.no-snapshot-store"
            """;
        return ConfigurationFactory.ParseString(hocon).WithFallback(EventSerializers).WithFallback(FileEventJournal.DefaultConfig)
            .WithFallback(FileEventReadJournal.DefaultConfig);
    }

    /// <summary>
    /// For SQLite: a hook that sets <c>PRAGMA synchronous</c> on every connection the plugin opens — OFF when
    /// force-sync is off, FULL when force-sync is on but this SQLite build's default (checked by
    /// <see cref="PrepareSqlite"/>) is weaker. When the build's default is already FULL (e_sqlite3 is built with
    /// SQLITE_DEFAULT_WAL_SYNCHRONOUS=2) no hook is installed: the plugin opens a connection per transaction and a
    /// PRAGMA on each costs measurable CPU. Null for other providers (their durability is the database server's).
    /// </summary>
    public static Setup? DataOptions(PersistenceSettings s, int defaultSynchronous)
    {
        if (!s.IsSqlite) return null;
        if (s.ForceSync && defaultSynchronous >= 2) return null;
        var pragma = s.ForceSync ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=OFF;";
        var options = new DataOptions()
            .UseConnectionString(s.ProviderName, s.EffectiveConnectionString)
            .UseAfterConnectionOpened(c => Exec(c, pragma), async (c, ct) => await ExecAsync(c, pragma, ct).ConfigureAwait(false));
        return new Akka.Persistence.Sql.Config.DataOptionsSetup(options);
    }

    private static void Exec(DbConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static async Task ExecAsync(DbConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    // The plugin's SQLite tables, minus what only its persistence queries use: the journal has one writer and is
    // read by persistence id and sequence number only, so the AUTOINCREMENT counter row and the indexes on created
    // and sequence_number were three extra pages written and fsynced with every commit (5 → 2 pages per batch).
    // The rowid still grows: the plugin's deletes always keep the highest row.
    private const string SqliteSchema = """
        CREATE TABLE IF NOT EXISTS journal (
          ordering INTEGER NOT NULL PRIMARY KEY, created INTEGER NOT NULL, deleted Bit NOT NULL,
          persistence_id NVarChar(255) NOT NULL, sequence_number INTEGER NOT NULL, message VarBinary NOT NULL,
          manifest NVarChar(500) NULL, identifier INTEGER NULL, writer_uuid NVarChar(128) NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS journal_uq ON journal (persistence_id, sequence_number);
        DROP INDEX IF EXISTS journal_created_idx;
        DROP INDEX IF EXISTS journal_sequence_number_idx;
        CREATE TABLE IF NOT EXISTS tags (
          ordering_id INTEGER NOT NULL, tag NVarChar(64) NOT NULL, sequence_nr INTEGER NOT NULL,
          persistence_id NVarChar(255) NOT NULL, CONSTRAINT PK_tags PRIMARY KEY (ordering_id, tag));
        CREATE TABLE IF NOT EXISTS snapshot (
          persistence_id NVarChar(255) NOT NULL, sequence_number INTEGER NOT NULL, created INTEGER NOT NULL,
          snapshot VarBinary NULL, manifest NVarChar(500) NULL, serializer_id INTEGER NULL,
          CONSTRAINT PK_snapshot PRIMARY KEY (persistence_id, sequence_number));
        """;

    /// <summary>Creates the tables (the plugin's auto-initialize is off for SQLite), touching the file only when
    /// something is missing, so a backup process opening a live journal changes nothing.</summary>
    private static void CreateSqliteSchema(SqliteConnection connection)
    {
        using var check = connection.CreateCommand();
        check.CommandText = """
            SELECT (SELECT count(*) FROM sqlite_master WHERE name IN ('journal', 'journal_uq', 'tags', 'snapshot')) = 4
               AND (SELECT count(*) FROM sqlite_master WHERE name IN ('journal_created_idx', 'journal_sequence_number_idx')) = 0
            """;
        if (Convert.ToInt32(check.ExecuteScalar()) == 1) return;
        using var create = connection.CreateCommand();
        create.CommandText = SqliteSchema;
        create.ExecuteNonQuery();
    }

    /// <summary>
    /// Before the ActorSystem starts: checks an existing SQLite journal (a corrupt file refuses the start, naming it)
    /// and switches it to WAL (persistent in the file; one fsync per commit instead of ~4 in rollback mode).
    /// </summary>
    /// <returns>The synchronous level a fresh connection gets (2 = FULL), or -1 for other providers.</returns>
    public static int PrepareSqlite(PersistenceSettings s)
    {
        if (s.SqliteFile is not { } file) return -1;
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var existed = File.Exists(file) && new FileInfo(file).Length > 0;
        try
        {
            using var connection = new SqliteConnection(s.EffectiveConnectionString);
            connection.Open();
            if (existed)
            {
                using var check = connection.CreateCommand();
                check.CommandText = "PRAGMA quick_check;";
                var result = check.ExecuteScalar() as string;
                if (!string.Equals(result, "ok", StringComparison.OrdinalIgnoreCase))
                    throw new RecoveryException($"journal database {file} is corrupt (quick_check: {result}); refusing to start. Restore it from a backup (see README).");
            }
            using var wal = connection.CreateCommand();
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = wal.ExecuteScalar() as string;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new RecoveryException($"journal database {file}: could not switch to WAL mode (got {mode})");
            CreateSqliteSchema(connection);
            using var sync = connection.CreateCommand();
            sync.CommandText = "PRAGMA synchronous;";
            return Convert.ToInt32(sync.ExecuteScalar());
        }
        catch (SqliteException e)
        {
            throw new RecoveryException($"journal database {file} is corrupt or unreadable ({e.Message}); refusing to start. Restore it from a backup (see README).", e);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
        }
    }
}
