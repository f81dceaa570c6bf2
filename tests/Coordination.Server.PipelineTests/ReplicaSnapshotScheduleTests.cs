using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Persistence;
using Coordination.Server.Pipeline;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// When a standalone replica takes its fuzzy snapshots, with committed batches told to it as its journal tells them
/// (LogAppended) and a small policy: a snapshot every 10 txns, written one znode a turn of a 2,000-znode tree, so
/// that batches come faster than a snapshot is written. Counted, not timed: which snapshots exist once it is quiet.
/// </summary>
public sealed class ReplicaSnapshotScheduleTests : TestKit
{
    private static readonly Config TestConfig = ReplicaTestConfig.Config;

    private const int Znodes = 2000;
    private const int EveryTxns = 10;

    public ReplicaSnapshotScheduleTests() : base(TestConfig) { }

    /// <summary>A snapshot that came due while another was written starts when that one ends: the last writes may be
    /// the last for a long time, and waiting for the next write left them out of every snapshot (a restart replayed
    /// them from the journal, and the journal could not be purged up to them).</summary>
    [Fact]
    public void A_snapshot_that_comes_due_while_one_is_written_starts_when_it_ends()
    {
        var dir = Directory.CreateTempSubdirectory("replica-snapshots-").FullName;
        try
        {
            var tree = new DataTree();
            // The deployment's session secret, else the replica proposes one first.
            tree.Apply(new TxnHeader(0, 0, 1, 0, OpCode.SessionSecret), new SessionSecretTxn(new byte[SessionIds.SecretLength]));
            for (var i = 0; i < Znodes; i++)
                tree.Apply(new TxnHeader(0, 0, 2 + i, 0, OpCode.Create), new CreateTxn($"/n{i}", [], Acl.OpenAclUnsafe, 0, 0));
            var first = tree.LastZxid + 1;
            var policy = new SnapshotPolicy(new SnapshotFiles(dir, retained: 100, purge: false), EveryTxns, EveryBytes: long.MaxValue, ChunkNodes: 1)
                { ChunkTime = TimeSpan.Zero };
            var settings = ServerSettings.Create(TestConfig);
            var replica = Sys.ActorOf(ReplicaActor.Props(settings, tree, CreateTestProbe().Ref, CreateTestProbe().Ref,
                [Sys.ActorOf(WatchDispatcherActor.Props())], () => 0, policy));

            // Five batches of 10 setData txns, one after another: the first makes a snapshot due, and the other four
            // are applied while it is written (2,000 turns of the replica): one more is due when it ends.
            const int Batches = 5;
            for (var b = 0; b < Batches; b++)
                replica.Tell(new LogAppended([.. Enumerable.Range(0, EveryTxns).Select(i =>
                    new Proposal(new TxnHeader(0, 0, first + b * EveryTxns + i, 0, OpCode.SetData), new SetDataTxn("/n0", [(byte)i], -1)))]));
            var last = first + Batches * EveryTxns - 1;

            // Settled: the newest snapshot starts at the last txn (none due is left untaken), and none is being written.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            IReadOnlyList<(long Zxid, string Path)> snapshots;
            while (((snapshots = policy.Files.List()).Count == 0 || snapshots[0].Zxid != last
                       || Directory.EnumerateFiles(dir, "*.tmp").Any()) && DateTime.UtcNow < deadline)
                Thread.Sleep(50);
            var starts = snapshots.Select(s => s.Zxid).Reverse().ToList();
            var shown = string.Join(", ", starts.Select(z => $"0x{z:x}"));
            Assert.True(starts.Count >= 2 && starts[^1] == last,
                $"snapshots start at [{shown}]: the txns up to 0x{last:x} came due ({Batches * EveryTxns - EveryTxns} after the first snapshot began, one due every {EveryTxns}) and none was taken");
            // The first began at the batch that made it due; each later one covers all that came due while the one
            // before was written (at most one a batch).
            Assert.Equal(first + EveryTxns - 1, starts[0]);
            Assert.True(starts.Count <= Batches, $"{starts.Count} snapshots for {Batches} batches: [{shown}]");
            Assert.Equal(starts.Order().Distinct(), starts);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
