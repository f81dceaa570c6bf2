using System.Buffers;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Coordination.Server.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Persistence.Tests;

/// <summary>
/// The journal contract Akka.Persistence expects of a plugin (the cases of Akka's journal TCK, whose package the
/// mirror lacks, written here against <see cref="FileEventJournal"/>): replay bounds and limits, deletion, the highest
/// sequence number surviving deletion and purge, serialization and rejection, and durability across a restart of
/// the ActorSystem on the same directory, including a torn tail.
/// </summary>
public sealed class FileEventJournalTests : IDisposable
{
    private const string Pid = "p-1";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "coord-eventjournal-" + Guid.NewGuid().ToString("N"));
    private readonly ITestOutputHelper _output;

    public FileEventJournalTests(ITestOutputHelper output) => _output = output;

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private Config JournalConfig(long purgeAfter = 10000, string segment = "64KiB") => ConfigurationFactory.ParseString($$"""
        akka.persistence.journal.plugin = "akka.persistence.journal.coordination-file"
        akka.persistence.journal.coordination-file {
          dir = "{{_dir.Replace("\\", "/")}}"
          purge-after-deleted-events = {{purgeAfter}}
          segment-bytes = {{segment}}
        }
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        akka.actor.serializers.refusing = "Coordination.Persistence.Tests.RefusingTestSerializer, Coordination.Persistence.Tests"
        akka.actor.serialization-bindings { "Coordination.Persistence.Tests.Unserializable, Coordination.Persistence.Tests" = refusing }
        """).WithFallback(FileEventJournal.DefaultConfig);

    /// <summary>The journal's config with one more serializer, bound to one payload type.</summary>
    private Config JournalConfigWith(string serializer, Type serializerType, Type payloadType) => ConfigurationFactory.ParseString($$"""
        akka.actor.serializers.{{serializer}} = "{{serializerType.AssemblyQualifiedName}}"
        akka.actor.serialization-bindings { "{{payloadType.AssemblyQualifiedName}}" = {{serializer}} }
        """).WithFallback(JournalConfig());

    private sealed class Kit(Config config, ITestOutputHelper output) : Akka.TestKit.Xunit2.TestKit(config, "journal", output)
    {
        public IActorRef Journal => Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null);

        public void Write(string pid, int from, int to, params int[] atomicWith)
        {
            var writer = CreateTestProbe();
            var writes = new List<AtomicWrite>();
            for (var i = from; i <= to; i++)
            {
                // The last two events go in one atomic write, as PersistAll makes them.
                if (i == to - 1 && to > from) { writes.Add(new AtomicWrite(ImmutableList.Create<IPersistentRepresentation>(Event(pid, i), Event(pid, i + 1)))); break; }
                writes.Add(new AtomicWrite(Event(pid, i)));
            }
            Journal.Tell(new WriteMessages(writes, writer.Ref, 1));
            writer.ExpectMsg<WriteMessagesSuccessful>();
            for (var i = from; i <= to; i++)
            {
                var n = i;
                writer.ExpectMsg<WriteMessageSuccess>(m => (string)m.Persistent.Payload == $"a-{n}" && m.Persistent.SequenceNr == n);
            }
        }

        /// <summary>Writes each event as its own atomic write, in one WriteMessages, and expects each to succeed.</summary>
        public void WriteEach(params Persistent[] events)
        {
            var writer = CreateTestProbe();
            Journal.Tell(new WriteMessages(events.Select(e => new AtomicWrite(e)).ToArray(), writer.Ref, 1));
            writer.ExpectMsg<WriteMessagesSuccessful>();
            foreach (var e in events) writer.ExpectMsg<WriteMessageSuccess>(m => m.Persistent.SequenceNr == e.SequenceNr);
        }

        /// <summary>Asks for every event of <paramref name="pid"/>: the probe returned receives the replay.</summary>
        public TestProbe ReplayAll(string pid = Pid)
        {
            var probe = CreateTestProbe();
            Journal.Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, pid, probe.Ref));
            return probe;
        }

        public static Persistent Event(string pid, long seqNr, object? payload = null) =>
            new(payload ?? $"a-{seqNr}", seqNr, pid, string.Empty, false, ActorRefs.NoSender, "writer-1");

        /// <summary>Replays and returns the sequence numbers delivered and the highest sequence number reported.</summary>
        public (List<long> Replayed, long Highest) Replay(long from, long to, long max, string pid = Pid)
        {
            var probe = CreateTestProbe();
            Journal.Tell(new ReplayMessages(from, to, max, pid, probe.Ref));
            var replayed = new List<long>();
            while (true)
            {
                var message = probe.ExpectMsg<object>(TimeSpan.FromSeconds(10));
                if (message is ReplayedMessage r)
                {
                    Assert.Equal($"a-{r.Persistent.SequenceNr}", r.Persistent.Payload);
                    Assert.Equal(pid, r.Persistent.PersistenceId);
                    Assert.False(r.Persistent.IsDeleted);
                    replayed.Add(r.Persistent.SequenceNr);
                }
                else if (message is RecoverySuccess s) return (replayed, s.HighestSequenceNr);
                else throw new Xunit.Sdk.XunitException($"unexpected {message}");
            }
        }

        public void Delete(long to, string pid = Pid)
        {
            var probe = CreateTestProbe();
            Journal.Tell(new DeleteMessagesTo(pid, to, probe.Ref));
            probe.ExpectMsg<DeleteMessagesSuccess>(m => m.ToSequenceNr == to, TimeSpan.FromSeconds(10));
        }
    }

    private Kit Start(Config? config = null)
    {
        var kit = new Kit(config ?? JournalConfig(), _output);
        return kit;
    }

    [Fact]
    public void Replays_within_sequence_number_bounds_and_count_limits()
    {
        using var kit = Start();
        kit.Write(Pid, 1, 5);
        AssertReplay([1, 2, 3, 4, 5], 5, kit.Replay(1, long.MaxValue, long.MaxValue));
        Assert.Equal([3L, 4, 5], kit.Replay(3, long.MaxValue, long.MaxValue).Replayed);
        Assert.Equal([1L, 2, 3], kit.Replay(1, 3, long.MaxValue).Replayed);
        Assert.Equal([1L, 2, 3], kit.Replay(1, long.MaxValue, 3).Replayed);
        Assert.Equal([2L, 3], kit.Replay(2, 3, long.MaxValue).Replayed);
        Assert.Equal([2L, 3], kit.Replay(2, 5, 2).Replayed);
        Assert.Equal([2L], kit.Replay(2, 2, long.MaxValue).Replayed);
        Assert.Equal([2L], kit.Replay(2, 5, 1).Replayed);
        Assert.Empty(kit.Replay(2, 5, 0).Replayed);
        Assert.Empty(kit.Replay(3, 2, long.MaxValue).Replayed);
        AssertReplay([], 0, kit.Replay(0, long.MaxValue, long.MaxValue, "never-written"));
    }

    [Fact]
    public void Deleted_events_are_not_replayed_and_the_highest_sequence_number_survives_deletion_and_restart()
    {
        using (var kit = Start())
        {
            kit.Write(Pid, 1, 5);
            kit.Write("other", 1, 3);
            kit.Delete(3);
            AssertReplay([4, 5], 5, kit.Replay(1, long.MaxValue, long.MaxValue));
            kit.Delete(long.MaxValue);
            AssertReplay([], 5, kit.Replay(0, long.MaxValue, long.MaxValue));
        }
        using (var kit = Start())
        {
            AssertReplay([], 5, kit.Replay(0, long.MaxValue, long.MaxValue));
            AssertReplay([1, 2, 3], 3, kit.Replay(0, long.MaxValue, long.MaxValue, "other"));
        }
    }

    [Fact]
    public void Purged_segments_take_no_deletion_marker_with_them()
    {
        // Small segments and a purge after every deletion: the markers of "p-1" must be carried past the purge.
        var config = JournalConfig(purgeAfter: 1, segment: "64KiB");
        var payload = new string('x', 2000);
        using (var kit = Start(config))
        {
            var probe = kit.CreateTestProbe();
            for (var i = 1; i <= 200; i++)
            {
                kit.Journal.Tell(new WriteMessages([new AtomicWrite(Kit.Event(Pid, i, payload))], probe.Ref, 1));
                probe.ExpectMsg<WriteMessagesSuccessful>();
                probe.ExpectMsg<WriteMessageSuccess>();
            }
            var before = FileTxnLog.List(_dir).Count;
            kit.Delete(long.MaxValue);
            for (var i = 1; i <= 200; i++)
            {
                kit.Journal.Tell(new WriteMessages([new AtomicWrite(Kit.Event("p-2", i, payload))], probe.Ref, 1));
                probe.ExpectMsg<WriteMessagesSuccessful>();
                probe.ExpectMsg<WriteMessageSuccess>();
            }
            kit.Delete(150, "p-2");
            kit.AwaitCondition(() => FileTxnLog.List(_dir).Count < before, TimeSpan.FromSeconds(10));
            _output.WriteLine($"segments: {before} before the deletions, {FileTxnLog.List(_dir).Count} after");
        }
        using (var kit = Start(config))
        {
            var probe = kit.CreateTestProbe();
            kit.Journal.Tell(new ReplayMessages(0, long.MaxValue, long.MaxValue, Pid, probe.Ref));
            probe.ExpectMsg<RecoverySuccess>(m => m.HighestSequenceNr == 200);
            kit.Journal.Tell(new ReplayMessages(0, long.MaxValue, long.MaxValue, "p-2", probe.Ref));
            for (var i = 151; i <= 200; i++)
            {
                var n = i;
                probe.ExpectMsg<ReplayedMessage>(m => m.Persistent.SequenceNr == n);
            }
            probe.ExpectMsg<RecoverySuccess>(m => m.HighestSequenceNr == 200);
        }
    }

    [Fact]
    public void Written_events_are_not_held_in_memory_the_first_replay_after_a_start_takes_what_the_start_read_and_later_ones_read_the_log()
    {
        static long[] Seq(long from, long to) => Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => (long)i).ToArray();
        // Small segments, so that a replay from the middle starts at a later segment than the first.
        var config = JournalConfig(segment: "64KiB");
        var payload = new string('x', 5000);
        using (var kit = Start(config))
        {
            kit.Write(Pid, 1, 20);
            Assert.Equal(0, JournalOf(kit).HeldEvents);
            AssertReplay(Seq(1, 20), 20, kit.Replay(1, long.MaxValue, long.MaxValue));
            kit.Delete(5);
            AssertReplay(Seq(6, 20), 20, kit.Replay(1, long.MaxValue, long.MaxValue));
            var probe = kit.CreateTestProbe();
            for (var i = 1; i <= 40; i++)
            {
                kit.Journal.Tell(new WriteMessages([new AtomicWrite(Kit.Event("big", i, payload))], probe.Ref, 1));
                probe.ExpectMsg<WriteMessagesSuccessful>();
                probe.ExpectMsg<WriteMessageSuccess>();
            }
        }
        Assert.True(FileTxnLog.List(_dir).Count >= 3, $"{FileTxnLog.List(_dir).Count} segments");
        using (var kit = Start(config))
        {
            AssertReplay([], 0, kit.Replay(0, long.MaxValue, long.MaxValue, "never-written")); // the journal has started
            var journal = JournalOf(kit);
            Assert.Equal(15 + 40, journal.HeldEvents);
            AssertReplay(Seq(6, 20), 20, kit.Replay(1, long.MaxValue, long.MaxValue));
            Assert.Equal(40, journal.HeldEvents);
            AssertReplay(Seq(6, 20), 20, kit.Replay(1, long.MaxValue, long.MaxValue));
            kit.Write(Pid, 21, 22);
            AssertReplay(Seq(10, 22), 22, kit.Replay(10, long.MaxValue, long.MaxValue));
            Assert.Equal(40, journal.HeldEvents);
            // "big" from its 30th event: read from the segment that holds it on, each payload as written.
            var replay = kit.CreateTestProbe();
            kit.Journal.Tell(new ReplayMessages(30, long.MaxValue, long.MaxValue, "big", replay.Ref));
            for (var i = 30; i <= 40; i++)
            {
                var n = i;
                replay.ExpectMsg<ReplayedMessage>(m => m.Persistent.SequenceNr == n && (string)m.Persistent.Payload == payload);
            }
            replay.ExpectMsg<RecoverySuccess>(m => m.HighestSequenceNr == 40);
            Assert.Equal(0, journal.HeldEvents);
        }
    }

    /// <summary>The plugin's actor instance (Akka keeps a cell's actor internal).</summary>
    private static FileEventJournal JournalOf(Kit kit) =>
        (FileEventJournal)typeof(ActorCell).GetProperty("Actor", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)!
            .GetValue(((ActorRefWithCell)kit.Journal).Underlying)!;

    [Fact]
    public void A_persistent_actor_recovers_its_events_in_a_new_ActorSystem()
    {
        using (var kit = Start())
        {
            var actor = kit.Sys.ActorOf(Props.Create(() => new Counter("counter-1")));
            for (var i = 1; i <= 20; i++) actor.Tell(new Add(i), kit.TestActor);
            kit.ReceiveN(20);
        }
        using (var kit = Start())
        {
            var actor = kit.Sys.ActorOf(Props.Create(() => new Counter("counter-1")));
            actor.Tell("total", kit.TestActor);
            kit.ExpectMsg(210);
        }
    }

    [Fact]
    public void An_event_that_cannot_be_serialized_is_rejected_and_the_others_are_written()
    {
        using var kit = Start();
        var probe = kit.CreateTestProbe();
        kit.Journal.Tell(new WriteMessages(
            [new AtomicWrite(Kit.Event(Pid, 1)), new AtomicWrite(Kit.Event(Pid, 2, new Unserializable())), new AtomicWrite(Kit.Event(Pid, 3))],
            probe.Ref, 1));
        probe.ExpectMsg<WriteMessagesSuccessful>();
        probe.ExpectMsg<WriteMessageSuccess>(m => m.Persistent.SequenceNr == 1);
        probe.ExpectMsg<WriteMessageRejected>(m => m.Persistent.SequenceNr == 2);
        probe.ExpectMsg<WriteMessageSuccess>(m => m.Persistent.SequenceNr == 3);
        Assert.Equal([1L, 3], kit.Replay(1, long.MaxValue, long.MaxValue).Replayed);
    }

    /// <summary>
    /// An <see cref="IBufferSerializer"/> writes on the log's writer thread, after the journal accepted the write: if it
    /// throws, every write of that group fails (none is half on disk), as the interface says, and the next group is
    /// written as if nothing happened.
    /// </summary>
    [Fact]
    public void A_buffer_serializer_that_throws_fails_its_whole_group_and_leaves_nothing_on_disk()
    {
        var config = JournalConfigWith("breaking", typeof(BreakingBufferSerializer), typeof(WrittenLate));
        using (var kit = Start(config))
        {
            var probe = kit.CreateTestProbe();
            kit.Journal.Tell(new WriteMessages(
                [new AtomicWrite(Kit.Event(Pid, 1)), new AtomicWrite(Kit.Event(Pid, 2, new WrittenLate(Fails: true))), new AtomicWrite(Kit.Event(Pid, 3))],
                probe.Ref, 1));
            Assert.Equal(3, probe.ExpectMsg<WriteMessagesFailed>().WriteCount);
            foreach (var seqNr in new long[] { 1, 2, 3 })
                Assert.Contains("breaks on purpose", probe.ExpectMsg<WriteMessageFailure>(m => m.Persistent.SequenceNr == seqNr).Cause.Message);
            Assert.Empty(kit.Replay(1, long.MaxValue, long.MaxValue).Replayed);
            // The same sequence numbers again, one of them through the buffer serializer: written.
            kit.WriteEach(Kit.Event(Pid, 1), Kit.Event(Pid, 2, new WrittenLate(Fails: false)));
        }
        using (var kit = Start(config))
        {
            var probe = kit.ReplayAll();
            Assert.Equal("a-1", probe.ExpectMsg<ReplayedMessage>().Persistent.Payload);
            Assert.Equal(new WrittenLate(Fails: false), probe.ExpectMsg<ReplayedMessage>().Persistent.Payload);
            Assert.Equal(2, probe.ExpectMsg<RecoverySuccess>().HighestSequenceNr);
        }
    }

    [Fact]
    public void A_torn_tail_loses_only_the_torn_record()
    {
        using (var kit = Start())
        {
            kit.Write(Pid, 1, 5);
        }
        var newest = FileTxnLog.List(_dir)[^1].Path;
        var bytes = File.ReadAllBytes(newest);
        var end = Array.FindLastIndex(bytes, b => b != 0) + 1;
        using (var f = new FileStream(newest, FileMode.Open)) f.SetLength(end - 3); // cut the last record short
        using (var kit = Start())
        {
            var (replayed, _) = kit.Replay(1, long.MaxValue, long.MaxValue);
            Assert.Equal([1L, 2, 3], replayed); // events 4 and 5 were one atomic write: both go with the torn record
            kit.Write("after-restart", 1, 2);
            Assert.Equal([1L, 2], kit.Replay(1, long.MaxValue, long.MaxValue, "after-restart").Replayed);
        }
    }

    /// <summary>
    /// The plugin stores each payload's bytes as its serializer wrote them (no Persistent envelope): replay, after a
    /// restart, rebuilds the envelope's fields and the payload through the serializer's id and manifest.
    /// </summary>
    [Fact]
    public void Replay_rebuilds_the_payload_and_the_envelope_fields_after_a_restart()
    {
        var config = JournalConfigWith("manifested", typeof(ManifestedTestSerializer), typeof(Manifested));
        using (var kit = Start(config))
        {
            var e1 = new Persistent(new Manifested("first"), 1, Pid, "adapter-manifest", false, ActorRefs.NoSender, "writer-é");
            var e2 = new Persistent(new Manifested("second"), 2, Pid, string.Empty, false, ActorRefs.NoSender, "writer-é");
            kit.WriteEach(e1, e2);
        }
        using (var kit = Start(config))
        {
            var probe = kit.ReplayAll();
            var first = probe.ExpectMsg<ReplayedMessage>().Persistent;
            var second = probe.ExpectMsg<ReplayedMessage>().Persistent;
            probe.ExpectMsg<RecoverySuccess>(m => m.HighestSequenceNr == 2);
            Assert.Equal(new Manifested("first"), first.Payload);
            Assert.Equal((1L, Pid, "adapter-manifest", "writer-é"), (first.SequenceNr, first.PersistenceId, first.Manifest, first.WriterGuid));
            Assert.Equal(new Manifested("second"), second.Payload);
            Assert.Equal((2L, string.Empty, "writer-é"), (second.SequenceNr, second.Manifest, second.WriterGuid));
        }
    }

    /// <summary>Logs written before the plugin stored payloads as they are (each event its serialized Persistent
    /// envelope, record type 1) still replay.</summary>
    [Fact]
    public void Events_stored_as_serialized_envelopes_still_replay()
    {
        using (var kit = Start())
        {
            // The serializer the plugin found for Persistent (Akka.Persistence's, once its extension is loaded).
            var serializer = new Akka.Persistence.Serialization.PersistenceMessageSerializer((ExtendedActorSystem)kit.Sys);
            var log = FileTxnLog.Open(_dir, forceSync: false, 64 << 10, 64 << 10, 0, (_, _, _) => { });
            var output = log.BeginRecord(LogRecordKind.Txn, 1);
            var id = System.Text.Encoding.UTF8.GetBytes(Pid);
            var header = new byte[3 + id.Length + 4];
            header[0] = 1; // the envelope record type
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(1), (ushort)id.Length);
            id.CopyTo(header, 3);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(3 + id.Length), 2);
            output.Write(header);
            foreach (var seqNr in new long[] { 1, 2 })
            {
                var bytes = serializer.ToBinary(Kit.Event(Pid, seqNr));
                var prefix = new byte[12];
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(prefix, seqNr);
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(8), bytes.Length);
                output.Write(prefix);
                output.Write(bytes);
            }
            log.EndRecord();
            log.Commit();
            log.Dispose();
        }
        using (var kit = Start())
        {
            AssertReplay([1, 2], 2, kit.Replay(1, long.MaxValue, long.MaxValue));
            kit.Write(Pid, 3, 4);
            AssertReplay([1, 2, 3, 4], 4, kit.Replay(1, long.MaxValue, long.MaxValue));
        }
    }

    private static void AssertReplay(long[] replayed, long highest, (List<long> Replayed, long Highest) actual)
    {
        Assert.Equal(replayed, actual.Replayed);
        Assert.Equal(highest, actual.Highest);
    }

    private sealed record Add(int Value);

    private sealed class Counter : ReceivePersistentActor
    {
        private int _total;
        public override string PersistenceId { get; }

        public Counter(string id)
        {
            PersistenceId = id;
            Recover<int>(v => _total += v);
            Command<Add>(a => Persist(a.Value, v => { _total += v; Sender.Tell(_total); }));
            Command<string>(_ => Sender.Tell(_total));
        }
    }
}

/// <summary>A payload written by a serializer with a string manifest (<see cref="ManifestedTestSerializer"/>).</summary>
public sealed record Manifested(string Text);

public sealed class ManifestedTestSerializer(ExtendedActorSystem system) : Akka.Serialization.SerializerWithStringManifest(system)
{
    public override int Identifier => 9918;
    public override string Manifest(object o) => "M";
    public override byte[] ToBinary(object obj) => System.Text.Encoding.UTF8.GetBytes(((Manifested)obj).Text);
    public override object FromBinary(byte[] bytes, string manifest) =>
        manifest == "M" ? new Manifested(System.Text.Encoding.UTF8.GetString(bytes)) : throw new ArgumentException($"manifest {manifest}");
}

/// <summary>A payload no serializer can write (bound to <see cref="RefusingTestSerializer"/>).</summary>
public sealed class Unserializable;

public sealed class RefusingTestSerializer(ExtendedActorSystem system) : Akka.Serialization.Serializer(system)
{
    public override int Identifier => 9917;
    public override bool IncludeManifest => false;
    public override byte[] ToBinary(object obj) => throw new NotSupportedException("not serializable on purpose");
    public override object FromBinary(byte[] bytes, Type? type) => throw new NotSupportedException();
}

/// <summary>A payload its serializer writes on the journal's writer thread (<see cref="BreakingBufferSerializer"/>).</summary>
public sealed record WrittenLate(bool Fails);

public sealed class BreakingBufferSerializer(ExtendedActorSystem system) : Akka.Serialization.Serializer(system), IBufferSerializer
{
    public override int Identifier => 9916;
    public override bool IncludeManifest => false;
    public override byte[] ToBinary(object obj) => [((WrittenLate)obj).Fails ? (byte)1 : (byte)0];
    public override object FromBinary(byte[] bytes, Type? type) => new WrittenLate(bytes[0] == 1);

    public void Write(object obj, ArrayBufferWriter<byte> output)
    {
        if (((WrittenLate)obj).Fails) throw new InvalidOperationException("breaks on purpose");
        output.Write(ToBinary(obj));
    }
}
