using System.Buffers;
using Coordination.Protocol;

namespace Coordination.Protocol.Tests;

public class CodecTests
{
    private static readonly Stat SampleStat = new(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    private static readonly IReadOnlyList<Acl> SampleAcl = [new(Perms.Read, Id.Anyone), new(Perms.All, new Id("digest", "u:h="))];

    private static byte[] Bytes(IJuteRecord record)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        record.Write(ref w);
        Assert.Equal(buffer.WrittenCount, w.Written);
        return buffer.WrittenSpan.ToArray();
    }

    private delegate T Reader<out T>(ref JuteReader r);

    /// <summary>Encode, decode, re-encode: the bytes must be identical and the reader must consume them exactly.</summary>
    private static T RoundTrip<T>(T record, Reader<T> read) where T : IJuteRecord
    {
        var bytes = Bytes(record);
        var r = new JuteReader(bytes);
        var decoded = read(ref r);
        Assert.True(r.AtEnd, $"{typeof(T).Name}: {r.Remaining} bytes left over");
        Assert.Equal(bytes, Bytes(decoded));
        return decoded;
    }

    private static ZkRequest RequestRoundTrip(OpCode op, ZkRequest request) =>
        RoundTrip(request, (ref JuteReader r) => Requests.Read(op, ref r));

    private static ZkResponse ResponseRoundTrip(OpCode op, ZkResponse response) =>
        RoundTrip(response, (ref JuteReader r) => Responses.Read(op, ref r));

    [Fact]
    public void Headers()
    {
        Assert.Equal(new RequestHeader(7, OpCode.GetData), RoundTrip(new RequestHeader(7, OpCode.GetData), RequestHeader.Read));
        Assert.Equal(Convert.FromHexString("0000000700000004"), Bytes(new RequestHeader(7, OpCode.GetData)));
        var reply = new ReplyHeader(-1, 0x1234567890L, ErrorCode.NoNode);
        Assert.Equal(reply, RoundTrip(reply, ReplyHeader.Read));
        Assert.Equal(ReplyHeader.Size, Bytes(reply).Length);
        Assert.Equal(new MultiHeader(-1, true, -1), RoundTrip(new MultiHeader(-1, true, -1), MultiHeader.Read));
    }

    [Fact]
    public void ConnectRequestWithAndWithoutReadOnlyFlag()
    {
        var full = new ConnectRequest(0, 0x55, 30000, 0x0100000000000001, new byte[16], true);
        var decoded = RoundTrip(full, ConnectRequest.Read);
        Assert.True(decoded.ReadOnly);
        Assert.True(decoded.HasReadOnlyFlag);
        Assert.Equal(30000, decoded.Timeout);
        Assert.Equal(0x0100000000000001, decoded.SessionId);
        // Pre-3.4 clients omit the flag.
        var old = RoundTrip(full with { HasReadOnlyFlag = false, ReadOnly = false }, ConnectRequest.Read);
        Assert.False(old.HasReadOnlyFlag);
        Assert.Equal(4 + 8 + 4 + 8 + 4 + 16, Bytes(old).Length);
        // Bytes as a 3.8 client (and the python test client used against ZooKeeper) sends them.
        var golden = Convert.FromHexString("00000000" + "0000000000000000" + "00007530" + "0000000000000000" + "00000010" + new string('0', 32) + "00");
        var r = new JuteReader(golden);
        var parsed = ConnectRequest.Read(ref r);
        Assert.Equal(30000, parsed.Timeout);
        Assert.False(parsed.ReadOnly);
        Assert.True(parsed.HasReadOnlyFlag);
    }

    [Fact]
    public void ConnectResponse()
    {
        var decoded = RoundTrip(new ConnectResponse(0, 4000, 42, [1, 2, 3], false), Protocol.ConnectResponse.Read);
        Assert.Equal(4000, decoded.Timeout);
        Assert.Equal(42, decoded.SessionId);
        Assert.Equal([1, 2, 3], decoded.Password);
        Assert.False(RoundTrip(new ConnectResponse(0, 4000, 42, [], false, false), Protocol.ConnectResponse.Read).HasReadOnlyFlag);
    }

    [Fact]
    public void DataRecords()
    {
        Assert.Equal(SampleStat, RoundTrip(SampleStat, Stat.Read));
        Assert.Equal(68, Bytes(SampleStat).Length); // 6 longs + 5 ints, ZooKeeper's Stat layout
        Assert.Equal(new Id("ip", "1.2.3.4"), RoundTrip(new Id("ip", "1.2.3.4"), Id.Read));
        var acl = new Acl(Perms.Read | Perms.Admin, new Id("digest", "a:b"));
        Assert.Equal(acl, RoundTrip(acl, Acl.Read));
        Assert.Equal(new ClientInfo("digest", "alice"), RoundTrip(new ClientInfo("digest", "alice"), ClientInfo.Read));
        // A null id string decodes as empty.
        var nullId = Convert.FromHexString("FFFFFFFF" + "FFFFFFFF");
        var r = new JuteReader(nullId);
        Assert.Equal(new Id("", ""), Id.Read(ref r));
    }

    [Fact]
    public void NullDataIsNotEmptyData()
    {
        // ZooKeeper writes null data as the buffer length -1 and empty data as 0; each must decode as itself.
        Assert.Equal("FFFFFFFF", Convert.ToHexString(Bytes(new GetDataResponse(null, SampleStat)))[..8]);
        Assert.Equal("00000000", Convert.ToHexString(Bytes(new GetDataResponse([], SampleStat)))[..8]);
        Assert.Null(((GetDataResponse)ResponseRoundTrip(OpCode.GetData, new GetDataResponse(null, SampleStat))).Data);
        Assert.Empty(Assert.IsType<byte[]>(((GetDataResponse)ResponseRoundTrip(OpCode.GetData, new GetDataResponse([], SampleStat))).Data));
        Assert.Null(((CreateRequest)RequestRoundTrip(OpCode.Create, new CreateRequest("/n", null, SampleAcl, 0))).Data);
        Assert.Empty(Assert.IsType<byte[]>(((CreateRequest)RequestRoundTrip(OpCode.Create, new CreateRequest("/n", [], SampleAcl, 0))).Data));
        Assert.Null(((SetDataRequest)RequestRoundTrip(OpCode.SetData, new SetDataRequest("/n", null, -1))).Data);
        Assert.Empty(Assert.IsType<byte[]>(((SetDataRequest)RequestRoundTrip(OpCode.SetData, new SetDataRequest("/n", [], -1))).Data));
        var multi = (MultiRequest)RequestRoundTrip(OpCode.Multi, new MultiRequest([
            new MultiOp(OpCode.Create, new CreateRequest("/m", null, SampleAcl, 0)),
            new MultiOp(OpCode.SetData, new SetDataRequest("/m", null, -1))]));
        Assert.Null(((CreateRequest)multi.Ops[0].Request).Data);
        Assert.Null(((SetDataRequest)multi.Ops[1].Request).Data);
        var read = (MultiResponse)ResponseRoundTrip(OpCode.Multi, new MultiResponse([new OpResult(OpCode.GetData, ErrorCode.Ok, new GetDataResponse(null, SampleStat))]));
        Assert.Null(((GetDataResponse)read.Results[0].Body).Data);
    }

    [Fact]
    public void AclListNullAndEmpty()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        Acl.WriteList(ref w, null);
        Acl.WriteList(ref w, []);
        Acl.WriteList(ref w, SampleAcl);
        var r = new JuteReader(buffer.WrittenSpan);
        Assert.Null(Acl.ReadList(ref r));
        Assert.Empty(Acl.ReadList(ref r)!);
        Assert.Equal(SampleAcl, Acl.ReadList(ref r)!);
        Assert.True(r.AtEnd);
    }

    [Fact]
    public void CreateRequests()
    {
        foreach (var op in new[] { OpCode.Create, OpCode.Create2, OpCode.CreateContainer })
        {
            var c = (CreateRequest)RequestRoundTrip(op, new CreateRequest("/a", [1, 2], SampleAcl, 3));
            Assert.Equal("/a", c.NodePath);
            Assert.Equal("/a", c.Path);
            Assert.Equal([1, 2], c.Data);
            Assert.Equal(SampleAcl, c.Acl!);
            Assert.Equal(3, c.Flags);
            Assert.False(c.IsTtlRequest);
            Assert.Equal(-1, c.Ttl);
        }
        var ttl = (CreateRequest)RequestRoundTrip(OpCode.CreateTtl, new CreateRequest("/t", null, SampleAcl, 5, 1234, true));
        Assert.True(ttl.IsTtlRequest);
        Assert.Equal(1234, ttl.Ttl);
        Assert.Null(ttl.Data);
        var nullAcl = (CreateRequest)RequestRoundTrip(OpCode.Create, new CreateRequest("/n", [], null, 0));
        Assert.Null(nullAcl.Acl);
    }

    [Fact]
    public void PathRequests()
    {
        foreach (var op in new[] { OpCode.Delete, OpCode.Check })
            Assert.Equal(new PathVersionRequest("/d", 4), RequestRoundTrip(op, new PathVersionRequest("/d", 4)));
        foreach (var op in new[] { OpCode.Exists, OpCode.GetData, OpCode.GetChildren, OpCode.GetChildren2 })
            Assert.Equal(new PathWatchRequest("/w", true), RequestRoundTrip(op, new PathWatchRequest("/w", true)));
        foreach (var op in new[] { OpCode.GetAcl, OpCode.Sync, OpCode.GetAllChildrenNumber, OpCode.GetEphemerals })
            Assert.Equal(new PathRequest("/p"), RequestRoundTrip(op, new PathRequest("/p")));
        var set = (SetDataRequest)RequestRoundTrip(OpCode.SetData, new SetDataRequest("/s", [9], 7));
        Assert.Equal(("/s", 7), (set.NodePath, set.Version));
        Assert.Equal([9], set.Data);
        Assert.Null(((SetDataRequest)RequestRoundTrip(OpCode.SetData, new SetDataRequest("/s", null, -1))).Data);
        var acl = (SetAclRequest)RequestRoundTrip(OpCode.SetAcl, new SetAclRequest("/s", SampleAcl, 2));
        Assert.Equal(SampleAcl, acl.Acl!);
        Assert.Equal(2, acl.Version);
    }

    [Fact]
    public void SessionAndWatchRequests()
    {
        foreach (var op in new[] { OpCode.Ping, OpCode.CloseSession, OpCode.WhoAmI })
        {
            Assert.Same(EmptyRequest.Instance, RequestRoundTrip(op, EmptyRequest.Instance));
            Assert.Empty(Bytes(EmptyRequest.Instance));
        }
        var auth = (AuthRequest)RequestRoundTrip(OpCode.Auth, new AuthRequest(0, "digest", "u:p"u8.ToArray()));
        Assert.Equal("digest", auth.Scheme);
        Assert.Equal("u:p"u8.ToArray(), auth.Auth);

        var sw = (SetWatchesRequest)RequestRoundTrip(OpCode.SetWatches, new SetWatchesRequest(99, ["/d"], ["/e1", "/e2"], ["/c"], [], [], false));
        Assert.Equal(99, sw.RelativeZxid);
        Assert.Equal(["/e1", "/e2"], sw.ExistWatches);
        Assert.False(sw.IsVersion2);
        var sw2 = (SetWatchesRequest)RequestRoundTrip(OpCode.SetWatches2, new SetWatchesRequest(1, [], [], [], ["/p"], ["/r1", "/r2"], true));
        Assert.Equal(["/p"], sw2.PersistentWatches);
        Assert.Equal(["/r1", "/r2"], sw2.PersistentRecursiveWatches);
        Assert.True(sw2.IsVersion2);

        Assert.Equal(new AddWatchRequest("/a", AddWatchMode.PersistentRecursive), RequestRoundTrip(OpCode.AddWatch, new AddWatchRequest("/a", AddWatchMode.PersistentRecursive)));
        foreach (var op in new[] { OpCode.CheckWatches, OpCode.RemoveWatches })
            Assert.Equal(new WatchesRequest("/a", WatcherType.Any), RequestRoundTrip(op, new WatchesRequest("/a", WatcherType.Any)));
    }

    [Fact]
    public void MultiRequestRoundTrip()
    {
        var multi = new MultiRequest([
            new MultiOp(OpCode.Create, new CreateRequest("/a", [1], SampleAcl, 0)),
            new MultiOp(OpCode.Create2, new CreateRequest("/b", [], SampleAcl, 2)),
            new MultiOp(OpCode.CreateContainer, new CreateRequest("/c", [], SampleAcl, 4)),
            new MultiOp(OpCode.CreateTtl, new CreateRequest("/t", [], SampleAcl, 5, 100, true)),
            new MultiOp(OpCode.Delete, new PathVersionRequest("/d", -1)),
            new MultiOp(OpCode.SetData, new SetDataRequest("/s", [2], 3)),
            new MultiOp(OpCode.Check, new PathVersionRequest("/k", 1)),
        ]);
        var decoded = (MultiRequest)RequestRoundTrip(OpCode.Multi, multi);
        Assert.Equal(multi.Ops.Select(o => o.Type), decoded.Ops.Select(o => o.Type));
        Assert.Equal(100, ((CreateRequest)decoded.Ops[3].Request).Ttl);
        var read = (MultiRequest)RequestRoundTrip(OpCode.MultiRead, new MultiRequest([
            new MultiOp(OpCode.GetData, new PathWatchRequest("/a", false)), new MultiOp(OpCode.GetChildren, new PathWatchRequest("/", false))]));
        Assert.Equal(2, read.Ops.Count);
        var empty = (MultiRequest)RequestRoundTrip(OpCode.Multi, new MultiRequest([]));
        Assert.Empty(empty.Ops);
        Assert.Equal(Convert.FromHexString("FFFFFFFF01FFFFFFFF"), Bytes(new MultiRequest([])));
    }

    [Fact]
    public void MultiRequestRejectsMisplacedOps()
    {
        var bytes = Bytes(new MultiRequest([new MultiOp(OpCode.SetAcl, new SetAclRequest("/a", SampleAcl, -1))]));
        var e = Assert.Throws<UnknownOpException>(() => { var r = new JuteReader(bytes); MultiRequest.Read(ref r); });
        Assert.Equal(OpCode.SetAcl, e.Op);
    }

    [Fact]
    public void SaslTokensRoundTrip()
    {
        Assert.Equal([1, 2, 3], ((SaslRequest)RequestRoundTrip(OpCode.Sasl, new SaslRequest([1, 2, 3]))).Token);
        Assert.Null(((SaslRequest)RequestRoundTrip(OpCode.Sasl, new SaslRequest(null))).Token);
    }

    [Fact]
    public void ReconfigRequestsRoundTrip()
    {
        var r = (ReconfigRequest)RequestRoundTrip(OpCode.Reconfig, new ReconfigRequest("server.4=127.0.0.1:2891:0:participant;127.0.0.1:2184", null, "", -1));
        Assert.Equal("server.4=127.0.0.1:2891:0:participant;127.0.0.1:2184", r.JoiningServers);
        Assert.Null(r.LeavingServers);   // null and empty stay apart, as jute strings do
        Assert.Equal("", r.NewMembers);
        Assert.Equal(-1, r.CurConfigId);
    }

    [Fact]
    public void UnknownOpCodes()
    {
        foreach (var op in new[] { OpCode.SessionSecret, OpCode.DeleteContainer, (OpCode)999 })
        {
            var e = Assert.Throws<UnknownOpException>(() => { var r = new JuteReader([]); Requests.Read(op, ref r); });
            Assert.Equal(op, e.Op);
        }
    }

    [Fact]
    public void WriteOps()
    {
        foreach (var op in new[] { OpCode.Create, OpCode.Create2, OpCode.CreateContainer, OpCode.CreateTtl, OpCode.Delete, OpCode.DeleteContainer,
                     OpCode.SetData, OpCode.SetAcl, OpCode.Check, OpCode.Multi, OpCode.CloseSession, OpCode.CreateSession })
            Assert.True(Requests.IsWrite(op), op.ToString());
        foreach (var op in new[] { OpCode.GetData, OpCode.Exists, OpCode.GetChildren, OpCode.GetChildren2, OpCode.Sync, OpCode.Ping, OpCode.MultiRead,
                     OpCode.Auth, OpCode.SetWatches, OpCode.AddWatch, OpCode.WhoAmI, OpCode.GetAcl })
            Assert.False(Requests.IsWrite(op), op.ToString());
    }

    [Fact]
    public void ResponsesRoundTrip()
    {
        Assert.Equal(new PathResponse("/a"), ResponseRoundTrip(OpCode.Create, new PathResponse("/a")));
        Assert.Equal(new PathResponse("/s"), ResponseRoundTrip(OpCode.Sync, new PathResponse("/s")));
        foreach (var op in new[] { OpCode.Create2, OpCode.CreateContainer, OpCode.CreateTtl })
            Assert.Equal(new Create2Response("/a", SampleStat), ResponseRoundTrip(op, new Create2Response("/a", SampleStat)));
        foreach (var op in new[] { OpCode.Exists, OpCode.SetData, OpCode.SetAcl })
            Assert.Equal(new StatResponse(SampleStat), ResponseRoundTrip(op, new StatResponse(SampleStat)));
        var data = (GetDataResponse)ResponseRoundTrip(OpCode.GetData, new GetDataResponse([1, 2, 3], SampleStat));
        Assert.Equal([1, 2, 3], data.Data);
        Assert.Equal(SampleStat, data.Stat);
        Assert.Null(((GetDataResponse)ResponseRoundTrip(OpCode.GetData, new GetDataResponse(null, SampleStat))).Data);
        var children = (GetChildrenResponse)ResponseRoundTrip(OpCode.GetChildren, new GetChildrenResponse(["a", "b"]));
        Assert.Equal(["a", "b"], children.Children);
        Assert.Null(children.Stat);
        var children2 = (GetChildrenResponse)ResponseRoundTrip(OpCode.GetChildren2, new GetChildrenResponse(["x"], SampleStat));
        Assert.Equal(SampleStat, children2.Stat);
        var acl = (GetAclResponse)ResponseRoundTrip(OpCode.GetAcl, new GetAclResponse(SampleAcl, SampleStat));
        Assert.Equal(SampleAcl, acl.Acl);
        Assert.Equal(new GetAllChildrenNumberResponse(12), ResponseRoundTrip(OpCode.GetAllChildrenNumber, new GetAllChildrenNumberResponse(12)));
        Assert.Equal(["/e1", "/e2"], ((StringListResponse)ResponseRoundTrip(OpCode.GetEphemerals, new StringListResponse(["/e1", "/e2"]))).Values);
        var who = (WhoAmIResponse)ResponseRoundTrip(OpCode.WhoAmI, new WhoAmIResponse([new ClientInfo("ip", "127.0.0.1"), new ClientInfo("digest", "u")]));
        Assert.Equal([new ClientInfo("ip", "127.0.0.1"), new ClientInfo("digest", "u")], who.ClientInfo);
        foreach (var op in new[] { OpCode.Delete, OpCode.Ping, OpCode.SetWatches, OpCode.Auth, OpCode.RemoveWatches, OpCode.Check })
            Assert.Same(EmptyResponse.Instance, ResponseRoundTrip(op, EmptyResponse.Instance));
        Assert.Equal(new WatcherEvent(EventType.NodeChildrenChanged, KeeperState.SyncConnected, "/p"),
            RoundTrip(new WatcherEvent(EventType.NodeChildrenChanged, KeeperState.SyncConnected, "/p"), WatcherEvent.Read));
    }

    [Fact]
    public void MultiResponseRoundTrip()
    {
        var ok = new MultiResponse([
            new OpResult(OpCode.Create, ErrorCode.Ok, new PathResponse("/a")),
            new OpResult(OpCode.Create2, ErrorCode.Ok, new Create2Response("/b", SampleStat)),
            new OpResult(OpCode.SetData, ErrorCode.Ok, new StatResponse(SampleStat)),
            new OpResult(OpCode.Delete, ErrorCode.Ok, EmptyResponse.Instance),
            new OpResult(OpCode.Check, ErrorCode.Ok, EmptyResponse.Instance),
        ]);
        var decoded = (MultiResponse)ResponseRoundTrip(OpCode.Multi, ok);
        Assert.Equal(ok.Results, decoded.Results);
        var failed = new MultiResponse([OpResult.Error(ErrorCode.Ok), OpResult.Error(ErrorCode.NoNode), OpResult.Error(ErrorCode.RuntimeInconsistency)]);
        Assert.Equal(failed.Results, ((MultiResponse)ResponseRoundTrip(OpCode.Multi, failed)).Results);
        var read = new MultiResponse([
            new OpResult(OpCode.GetData, ErrorCode.Ok, new GetDataResponse([7], SampleStat)),
            new OpResult(OpCode.GetChildren, ErrorCode.Ok, new GetChildrenResponse(["c"])),
            OpResult.Error(ErrorCode.NoNode),
        ]);
        var readDecoded = (MultiResponse)ResponseRoundTrip(OpCode.MultiRead, read);
        Assert.Equal(3, readDecoded.Results.Count);
        Assert.Equal(ErrorCode.NoNode, readDecoded.Results[2].Err);
        Assert.Equal([7], ((GetDataResponse)readDecoded.Results[0].Body).Data);
    }

    [Fact]
    public void SuccessfulMultiResponseBytesMatchZooKeeper()
    {
        // ZooKeeper 3.8.0 reply to multi(create /m5, ..., delete /m5/x/y, check /m5/x 0): the last two results and the end.
        var bytes = Convert.ToHexString(Bytes(new MultiResponse([
            new OpResult(OpCode.Delete, ErrorCode.Ok, EmptyResponse.Instance),
            new OpResult(OpCode.Check, ErrorCode.Ok, EmptyResponse.Instance)])));
        Assert.Equal("00000002" + "00" + "00000000" + "0000000D" + "00" + "00000000" + "FFFFFFFF" + "01" + "FFFFFFFF", bytes);
    }

    [Fact]
    public void JuteReaderRejectsGarbage()
    {
        Assert.Throws<JuteException>(() => { var r = new JuteReader([0, 0, 0]); r.ReadInt(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("FFFFFFFE")); r.ReadBuffer(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("FFFFFFFE")); r.ReadString(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("00000010AABB")); r.ReadBuffer(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("7FFFFFFF")); r.ReadVectorCount(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("FFFFFFFE")); r.ReadVectorCount(); });
        Assert.Throws<JuteException>(() => { var r = new JuteReader(Convert.FromHexString("FFFFFFFF")); r.ReadRequiredString(); });
        var nullVector = new JuteReader(Convert.FromHexString("FFFFFFFF"));
        Assert.Null(nullVector.ReadStringVector());
        var nullBuffer = new JuteReader(Convert.FromHexString("FFFFFFFF"));
        Assert.True(nullBuffer.ReadBufferSpan(out var isNull).IsEmpty);
        Assert.True(isNull);
        // A truncated request body surfaces as JuteException, never as a partial record.
        var full = Bytes(new CreateRequest("/a", [1, 2, 3], SampleAcl, 0));
        for (var n = 0; n < full.Length; n++)
        {
            var cut = full[..n];
            Assert.Throws<JuteException>(() => { var r = new JuteReader(cut); Requests.Read(OpCode.Create, ref r); });
        }
    }

    [Fact]
    public void StringsAreUtf8()
    {
        var bytes = Bytes(new PathRequest("/ü"));
        Assert.Equal(Convert.FromHexString("000000032FC3BC"), bytes);
        var r = new JuteReader(bytes);
        Assert.Equal("/ü", PathRequest.Read(ref r).NodePath);
    }

    [Fact]
    public void SerializeHelper()
    {
        Assert.Equal(Bytes(SampleStat), Jute.Serialize(SampleStat));
    }
}
