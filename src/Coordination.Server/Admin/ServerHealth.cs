using Coordination.Server.Ensemble;

namespace Coordination.Server.Admin;

/// <summary>One readiness answer: ready or not, why, and the facts it was decided on.</summary>
public sealed record ServerReadiness(bool Ready, string Reason, IReadOnlyDictionary<string, object> Data);

/// <summary>
/// Whether this server can serve clients now: serving (a member in an established ensemble, or standalone), in a
/// quorum with a known leader, and its data directory writable (the journal and the snapshots live there). Read by
/// /health/ready on the admin endpoint and by the IHealthCheck of an embedded server; liveness is only "the process
/// answers", so that an orchestrator restarts a hung process, not a member waiting for its quorum.
/// </summary>
public sealed class ServerHealth(EnsembleState? ensemble, string dataDir)
{
    private readonly string _probe = Path.Combine(Path.GetFullPath(dataDir), ".health-probe");

    public ServerReadiness Check()
    {
        var data = new Dictionary<string, object> { ["mode"] = ensemble?.Mode ?? "standalone" };
        if (ensemble is { } e)
        {
            data["serving"] = e.Serving;
            data["leader"] = e.Leader;
            data["epoch"] = e.Epoch;
            // A member serves only while it follows or leads an established quorum: serving is "in quorum".
            if (!e.Serving) return new(false, "not serving: no quorum (looking for a leader)", data);
            if (e.Leader < 0) return new(false, "leader unknown", data);
        }
        if (JournalUnwritable() is { } why) return new(false, $"data dir not writable: {why}", data);
        return new(true, ensemble is null ? "serving (standalone)" : $"serving as {ensemble.Mode}, leader {ensemble.Leader}", data);
    }

    /// <summary>Creates, syncs and deletes one small file in the data dir; the error when that fails.</summary>
    private string? JournalUnwritable()
    {
        try
        {
            using (var f = new FileStream(_probe, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.WriteThrough))
            {
                f.WriteByte(1);
                f.Flush(flushToDisk: true);
            }
            File.Delete(_probe);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return e.Message; }
    }
}
