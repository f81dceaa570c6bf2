using System.Text;
using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Core.Tests;

/// <summary>
/// Prep of a reconfig (ZooKeeper's PrepRequestProcessor, op 16) and the dynamic config text it writes: the refusals in
/// ZooKeeper's order, the txn (SetDataTxn of /zookeeper/config, version -1, the new configuration with its zxid as
/// version) and its answer (the new data and Stat).
/// </summary>
public sealed class ReconfigPrepTests
{
    private const string Three = "server.1=127.0.0.1:2888:2888:participant;127.0.0.1:2181\n" +
                                 "server.2=127.0.0.1:2889:2889:participant;127.0.0.1:2182\n" +
                                 "server.3=127.0.0.1:2890:2890:participant;127.0.0.1:2183\nversion=0";
    private const long Session = 0x0100000000000001;
    private static readonly string SuperDigest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";   // super:test
    private static readonly AuthContext Super = new([new Id("super", "")]);

    private readonly DataTree _tree = new();
    private long _synced = 0b1110;   // bit per synchronised voter id

    private RequestPreprocessor Prep(bool enabled = true, bool standalone = false)
    {
        _tree.InitConfigNode(Encoding.UTF8.GetBytes(Three), 0, 1000);
        var prep = new RequestPreprocessor(_tree, SuperDigest, 0)
        {
            ReconfigEnabled = enabled,
            QuorumSynced = standalone ? null : voters => new Quorum(voters).IsQuorum(Enumerable.Range(1, 8).Where(i => (_synced >> i & 1) == 1).Select(i => (long)i)),
        };
        _tree.Apply(prep.PrepareCreateSession(Session, 30000, 1000).Header, new CreateSessionTxn(30000));
        prep.Applied(1);
        return prep;
    }

    private static ErrorCode ErrorOf((TxnHeader Header, Txn Txn) prepared) => prepared.Txn is ErrorTxn e ? e.Err : ErrorCode.Ok;

    private static (TxnHeader, Txn) Reconfig(RequestPreprocessor prep, string? joining, string? leaving, string? members = null, long from = -1, AuthContext? auth = null) =>
        prep.Prepare(Session, 1, OpCode.Reconfig, new ReconfigRequest(joining, leaving, members, from), auth ?? Super, 2000);

    [Fact]
    public void Refusals_come_in_ZooKeepers_order()
    {
        Assert.Equal(ErrorCode.ReconfigDisabled, ErrorOf(Reconfig(Prep(enabled: false), null, "3", auth: AuthContext.Anonymous)));
        Assert.Equal(ErrorCode.Unimplemented, ErrorOf(Reconfig(Prep(standalone: true), null, "3")));
        var prep = Prep();
        Assert.Equal(ErrorCode.BadVersion, ErrorOf(Reconfig(prep, null, "3", from: 5, auth: AuthContext.Anonymous)));
        Assert.Equal(ErrorCode.BadArguments, ErrorOf(Reconfig(prep, "server.4=nonsense", null, auth: AuthContext.Anonymous)));
        Assert.Equal(ErrorCode.BadArguments, ErrorOf(Reconfig(prep, null, "1,2,3")));
        _synced = 0b0010;
        Assert.Equal(ErrorCode.NewConfigNoQuorum, ErrorOf(Reconfig(prep, null, "3", auth: AuthContext.Anonymous)));
        _synced = 0b1110;
        // WRITE on /zookeeper/config (world-readable only) is checked last, as in ZooKeeper.
        Assert.Equal(ErrorCode.NoAuth, ErrorOf(Reconfig(prep, null, "3", auth: AuthContext.Anonymous)));
        Assert.Equal(ErrorCode.Ok, ErrorOf(Reconfig(prep, null, "3", from: 0)));
        Assert.Equal(ErrorCode.ReconfigInProgress, ErrorOf(Reconfig(prep, null, "2")));
    }

    [Fact]
    public void A_reconfig_sets_the_config_znode_to_the_new_configuration_versioned_by_its_zxid()
    {
        var prep = Prep();
        var (header, txn) = Reconfig(prep, "server.4=127.0.0.1:2891:2891:observer;127.0.0.1:2184", "3");
        Assert.Equal(OpCode.Reconfig, header.Type);
        var setData = Assert.IsType<SetDataTxn>(txn);
        Assert.Equal(-1, setData.Version);
        var text = Encoding.UTF8.GetString(setData.Data!);
        Assert.Equal("server.1=127.0.0.1:2888:2888:participant;127.0.0.1:2181\nserver.2=127.0.0.1:2889:2889:participant;127.0.0.1:2182\n" +
                     $"server.4=127.0.0.1:2891:2891:observer;127.0.0.1:2184\nversion={header.Zxid:x}", text);

        var payload = Txns.Serialize(header, txn);
        var config = Txns.ConfigOf(payload)!;
        Assert.Equal(header.Zxid, config.Version);
        Assert.Equal([1L, 2L], config.Voters.Order());
        Assert.Equal([4L], config.Observers.Order());
        var (readHeader, readTxn) = Txns.Deserialize(payload);
        var result = _tree.Apply(readHeader, readTxn);
        prep.Applied(readHeader.Zxid);
        var answer = Assert.IsType<GetDataResponse>(result.Response);
        Assert.Equal(setData.Data, answer.Data);
        Assert.Equal(-1, answer.Stat.Version);
        Assert.Equal(header.Zxid, answer.Stat.Mzxid);
        Assert.Equal(text, Encoding.UTF8.GetString(_tree.Find(DataTree.ConfigPath)!.Data!));
        // Applied: the next reconfig starts from it (no longer in progress; its version is the CAS value).
        Assert.Equal(ErrorCode.BadVersion, ErrorOf(Reconfig(prep, null, "4", from: 0)));
        Assert.Equal(ErrorCode.Ok, ErrorOf(Reconfig(prep, null, "4", from: header.Zxid)));
        // A refused reconfig (an error txn) carries no configuration.
        Assert.Null(Txns.ConfigOf(Txns.Serialize(header, new ErrorTxn(ErrorCode.NewConfigNoQuorum))));
    }

    [Fact]
    public void Non_incremental_members_replace_the_whole_membership()
    {
        var prep = Prep();
        var (_, txn) = Reconfig(prep, null, null, "server.1=127.0.0.1:2888:2888:participant;127.0.0.1:2181,server.2=127.0.0.1:2889:2889:observer;127.0.0.1:2182,server.3=127.0.0.1:2890:2890;2183");
        var text = Encoding.UTF8.GetString(Assert.IsType<SetDataTxn>(txn).Data!);
        Assert.Contains("server.2=127.0.0.1:2889:2889:observer;127.0.0.1:2182\n", text);
        Assert.Contains("server.3=127.0.0.1:2890:2890:participant;0.0.0.0:2183\n", text);
    }

    [Fact]
    public void Members_without_an_election_port_are_written_with_0_and_do_not_clash()
    {
        var ours = DynamicConfig.Parse("server.1=127.0.0.1:2888:0:participant;127.0.0.1:2181\nversion=5", out _)!;
        Assert.Equal("server.1=127.0.0.1:2888:0:participant;127.0.0.1:2181\nversion=5", ours.ToString());
        var next = ours.Reconfigure("server.2=127.0.0.1:2889:0:participant;127.0.0.1:2182", null, null, out var error);
        Assert.True(next is not null, error);
        Assert.Null(ours.Reconfigure("server.2=127.0.0.1:2888:0:participant;127.0.0.1:2182", null, null, out _));   // same member port
    }

    [Theory]
    [InlineData("server.1=host:1:2:3")]
    [InlineData("server.1=host:1")]
    [InlineData("server.x=host:1:2")]
    [InlineData("server.1=host:1:2;notaport")]
    [InlineData("server.1=a|b:1:2")]
    [InlineData("version=zz")]
    public void Bad_server_lines_are_refused(string text) => Assert.Null(DynamicConfig.Parse(text, out _));
}
