using Akka.Actor;
using Akka.TestKit.Xunit2;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;
using Xunit;

namespace Coordination.Server.PipelineTests;

public sealed class ZabSerializerTests : TestKit
{
    private readonly ZabSerializer _serializer;

    public ZabSerializerTests() => _serializer = new ZabSerializer((ExtendedActorSystem)Sys);

    private T RoundTrip<T>(T message) where T : ZabMessage
    {
        var bytes = _serializer.ToBinary(message);
        return Assert.IsType<T>(_serializer.FromBinary(bytes, _serializer.Manifest(message)));
    }

    private static LogEntry Entry(long zxid, int size) => new(zxid, Enumerable.Range(0, size).Select(i => (byte)(i * 7 + zxid)).ToArray());

    private static void AssertSame(LogEntry expected, LogEntry actual)
    {
        Assert.Equal(expected.Zxid, actual.Zxid);
        Assert.Equal(expected.Payload, actual.Payload);
    }

    [Fact]
    public void Every_message_round_trips()
    {
        var simple = new ZabMessage[]
        {
            new Ack(2, Zxids.Make(3, 9)), new Commit(1, Zxids.Make(3, 10)), new Ping(1, 77, 5), new PingReply(3, 78, 5),
            new ElectionMessage(2, new Notification(2, new Vote(3, Zxids.Make(1, 5), 1), 4, PeerState.Following)),
            new FollowerInfo(2, 5, Zxids.Make(5, 1), true), new LeaderInfo(1, 6), new AckEpoch(2, 5, Zxids.Make(5, 3)),
            new AckNewLeader(3, 6, Zxids.Make(6, 0)), new UpToDate(1, Zxids.Make(6, 0)),
        };
        foreach (var message in simple) Assert.Equal(message, _serializer.FromBinary(_serializer.ToBinary(message), _serializer.Manifest(message)));

        var propose = new Propose(1, Entry(Zxids.Make(2, 1), 300));
        AssertSame(propose.Entry, RoundTrip(propose).Entry);
        AssertSame(Entry(9, 0), RoundTrip(new Inform(1, Entry(9, 0))).Entry);

        var sync = new SyncLearner(1, SyncMode.TruncThenDiff, Zxids.Make(1, 4), 0, [Entry(Zxids.Make(2, 1), 10), Entry(Zxids.Make(2, 2), 1_000_000)], 3, Zxids.Make(2, 1));
        var copy = RoundTrip(sync);
        Assert.Equal((sync.From, sync.Mode, sync.TruncateTo, sync.SnapshotZxid, sync.Epoch, sync.CommittedZxid),
                     (copy.From, copy.Mode, copy.TruncateTo, copy.SnapshotZxid, copy.Epoch, copy.CommittedZxid));
        Assert.Equal(2, copy.Entries.Count);
        for (var i = 0; i < 2; i++) AssertSame(sync.Entries[i], copy.Entries[i]);
    }

    [Fact]
    public void An_election_notification_carries_the_committed_and_the_pending_configuration_each_optional()
    {
        static ZabConfig Config(string servers, long version) =>
            DynamicConfig.Parse(servers, out var error)?.WithVersion(version).ToZabConfig() ?? throw new FormatException(error);
        var committed = Config("server.1=127.0.0.1:2888:0:participant;127.0.0.1:2181\nserver.2=127.0.0.1:2889:0:participant;127.0.0.1:2182", Zxids.Make(1, 0));
        var pending = Config(committed.Text!.Split("\nversion=")[0] + "\nserver.4=127.0.0.1:2890:0:participant;127.0.0.1:2183", Zxids.Make(1, 7));
        var notification = new Notification(2, new Vote(2, Zxids.Make(1, 7), 1), 3, PeerState.Looking);
        foreach (var (first, second) in new (ZabConfig?, ZabConfig?)[] { (null, null), (committed, null), (committed, pending), (null, pending) })
        {
            var copy = RoundTrip(new ElectionMessage(2, notification, first, second));
            Assert.Equal(notification, copy.Notification);
            Assert.Equal(first?.Text, copy.Config?.Text);
            Assert.Equal(first?.Version, copy.Config?.Version);
            Assert.Equal(second?.Text, copy.Pending?.Text);
            Assert.Equal(second?.Version, copy.Pending?.Version);
        }
    }

    [Fact]
    public void A_ping_from_an_older_member_without_a_round_reads_as_round_0()
    {
        // What members before confirmation rounds sent: from and zxid only. Round 0 never confirms anything.
        var old = new byte[16];
        BitConverter.TryWriteBytes(old.AsSpan(0, 8), 1L);
        BitConverter.TryWriteBytes(old.AsSpan(8, 8), 77L);
        Assert.Equal(new Ping(1, 77, 0), _serializer.FromBinary(old, "G"));
        Assert.Equal(new PingReply(1, 77, 0), _serializer.FromBinary(old, "g"));
        // A round cut short is still refused.
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => _serializer.FromBinary([.. old, 1, 2, 3, 4], "G"));
    }

    [Fact]
    public void Batched_proposals_and_forwarded_requests_round_trip_in_order()
    {
        var many = new ProposeMany(1, [Entry(Zxids.Make(2, 1), 100), Entry(Zxids.Make(2, 2), 0), Entry(Zxids.Make(2, 3), 5000)]);
        var manyCopy = Assert.IsType<ProposeMany>(_serializer.FromBinary(_serializer.ToBinary(many), _serializer.Manifest(many)));
        Assert.Equal(many.From, manyCopy.From);
        Assert.Equal(many.Entries.Count, manyCopy.Entries.Count);
        for (var i = 0; i < many.Entries.Count; i++) AssertSame(many.Entries[i], manyCopy.Entries[i]);

        var forwarded = new ForwardedRequests([
            new ForwardedRequest(2, 0x100, 7, 5, [1, 2, 3], [("digest", "u:x"), ("ip", "127.0.0.1")]),
            new ForwardedRequest(2, 0x101, 8, 9, [], []),
        ]);
        var copy = Assert.IsType<ForwardedRequests>(_serializer.FromBinary(_serializer.ToBinary(forwarded), _serializer.Manifest(forwarded)));
        Assert.Equal(2, copy.Requests.Count);
        for (var i = 0; i < 2; i++)
        {
            var (a, b) = (forwarded.Requests[i], copy.Requests[i]);
            Assert.Equal((a.ServerId, a.SessionId, a.Xid, a.Op), (b.ServerId, b.SessionId, b.Xid, b.Op));
            Assert.Equal(a.Body, b.Body);
            Assert.Equal(a.Auth, b.Auth);
        }
        var bytes = _serializer.ToBinary(forwarded);
        Assert.ThrowsAny<Exception>(() => _serializer.FromBinary(bytes[..^1], "Q"));
    }

    [Fact]
    public void Truncated_or_garbage_input_is_refused_not_misread()
    {
        var bytes = _serializer.ToBinary(new Propose(1, Entry(5, 50)));
        Assert.ThrowsAny<Exception>(() => _serializer.FromBinary(bytes[..^1], "P"));
        Assert.ThrowsAny<Exception>(() => _serializer.FromBinary(bytes, "?"));
        var sync = _serializer.ToBinary(new SyncLearner(1, SyncMode.Diff, 0, 0, [], 1, 0));
        sync[^4] = 0xff; sync[^3] = 0xff; sync[^2] = 0xff; sync[^1] = 0x7f;   // absurd entry count
        Assert.ThrowsAny<Exception>(() => _serializer.FromBinary(sync, "S"));
    }
}
