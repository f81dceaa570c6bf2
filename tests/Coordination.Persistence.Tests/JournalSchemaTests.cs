using Coordination.Server.Persistence;
using Microsoft.Data.Sqlite;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>The SQLite journal's lean schema: created on a fresh data dir, and an older journal written with the
/// plugin's own schema is slimmed down in place without losing a row.</summary>
public sealed class JournalSchemaTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("journal-schema-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private PersistenceSettings Settings => new() { DataDir = _dir };

    private List<string> Objects()
    {
        using var c = new SqliteConnection(Settings.EffectiveConnectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY name";
        using var r = cmd.ExecuteReader();
        var names = new List<string>();
        while (r.Read()) names.Add(r.GetString(0));
        return names;
    }

    private object? Scalar(string sql)
    {
        using var c = new SqliteConnection(Settings.EffectiveConnectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    [Fact]
    public void A_fresh_journal_gets_the_tables_and_only_the_index_the_journal_reads_by()
    {
        JournalSetup.PrepareSqlite(Settings);
        Assert.Equal(["journal", "journal_uq", "snapshot", "tags"], Objects());
        Assert.DoesNotContain("AUTOINCREMENT", (string)Scalar("SELECT sql FROM sqlite_master WHERE name = 'journal'")!, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("wal", Scalar("PRAGMA journal_mode"));
    }

    [Fact]
    public void A_journal_written_with_the_plugins_schema_keeps_its_rows_and_loses_the_unused_indexes()
    {
        using (var c = new SqliteConnection(Settings.EffectiveConnectionString))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            // The tables as Akka.Persistence.Sql's auto-initialize created them before.
            cmd.CommandText = """
                CREATE TABLE journal (ordering INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, created INTEGER NOT NULL, deleted Bit NOT NULL,
                  persistence_id NVarChar(255) NOT NULL, sequence_number INTEGER NOT NULL, message VarBinary NOT NULL,
                  manifest NVarChar(500) NULL, identifier INTEGER NULL, writer_uuid NVarChar(128) NULL);
                CREATE UNIQUE INDEX journal_uq ON journal (persistence_id, sequence_number);
                CREATE INDEX journal_created_idx ON journal (created);
                CREATE INDEX journal_sequence_number_idx ON journal (sequence_number);
                INSERT INTO journal (created, deleted, persistence_id, sequence_number, message) VALUES (1, 0, 'p', 1, x'01'), (2, 0, 'p', 2, x'02');
                """;
            cmd.ExecuteNonQuery();
        }
        SqliteConnection.ClearAllPools();

        JournalSetup.PrepareSqlite(Settings);

        Assert.Equal(["journal", "journal_uq", "snapshot", "sqlite_sequence", "tags"], Objects());
        Assert.Equal(2L, Scalar("SELECT count(*) FROM journal WHERE persistence_id = 'p'"));
        Assert.Equal(2L, Scalar("SELECT max(sequence_number) FROM journal"));
    }
}
