using Coordination.Compat.Tests;
using Coordination.Testing;

// Two collections run at a time (xunit.runner.json); the longest start first so that the two threads end together
// instead of one long collection running alone at the end. Durations from session 19's CI run (s): the failover
// collection (ReadOnlyModeTests, LocalSessionsTests, FailoverTests) 185, the TLS targets 166 and 134, Kerberos 120,
// reconfig 117; the check catalogue's targets are 75-95 s each since they run in one process per client.
[assembly: TestCollectionOrderer("Coordination.Testing.LongestFirstOrderer", "Coordination.Compat.Tests")]
[assembly: LongestCollections("compat-failover", ApacheTlsCollection.Name, OursTlsCollection.Name, nameof(KerberosTests), nameof(ReconfigCompatTests))]
