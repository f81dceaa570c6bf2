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
        // SQLite has one writer: concurrent write transactions only contend (AKKA-NOTES §1).
        var parallelism = s.IsSqlite ? 1 : 3;
        var hocon = $$"""
            akka.persistence {
              journal {
                plugin = "akka.persistence.journal.sql"
                sql { connection-string = {{cs}}, provider-name = {{provider}}, auto-initialize = on, parallelism = {{parallelism}} }
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql { connection-string = {{cs}}, provider-name = {{provider}}, auto-initialize = on }
              }
            }
            akka.actor {
              serializers { coordination-txn = "Coordination.Server.Persistence.TxnEventSerializer, Coordination.Server" }
              serialization-bindings {
                "Coordination.Server.Persistence.TxnBatchEvent, Coordination.Server" = coordination-txn
                "Coordination.Server.Persistence.LogTruncatedEvent, Coordination.Server" = coordination-txn
              }
            }
            """;
        return ConfigurationFactory.ParseString(hocon).WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
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
