using System.Text;
using Coordination.Core.Zab;
using Coordination.Protocol;

namespace Coordination.Core;

public sealed partial class RequestPreprocessor
{
    /// <summary>ZooKeeper's reconfigEnabled: without it a reconfig gets ReconfigDisabled.</summary>
    public bool ReconfigEnabled { get; init; }

    /// <summary>
    /// Whether the voters given are a quorum of themselves among the voters synchronised with this leader (ZooKeeper's
    /// Leader.isQuorumSynced); null on a standalone server, where a reconfig is Unimplemented as in ZooKeeper.
    /// </summary>
    public Func<IReadOnlyCollection<long>, bool>? QuorumSynced { get; set; }

    /// <summary>
    /// The configuration a reconfig starts from: the <c>/zookeeper/config</c> znode of the applied tree (a reconfig
    /// prepared but not applied makes the next one ReconfigInProgress, so the tree is never behind it).
    /// </summary>
    public DynamicConfig? CurrentConfig() =>
        _tree.Find(DataTree.ConfigPath)?.Data is { Length: > 0 } data ? DynamicConfig.Parse(Encoding.UTF8.GetString(data), out _) : null;

    /// <summary>
    /// ZooKeeper's PrepRequestProcessor for reconfig, in its order: disabled, standalone, another reconfig in
    /// progress, the from-config-version CAS, the arguments, at least one voter (ZooKeeper with standaloneEnabled=false:
    /// an ensemble never falls back to standalone mode here), a synchronised quorum of the new
    /// voters, then WRITE on /zookeeper/config. The txn sets /zookeeper/config to the new configuration (version -1,
    /// as ZooKeeper); its header's type Reconfig tells every member to make it the ensemble's configuration.
    /// </summary>
    private ErrorCode PrepareReconfig(ReconfigRequest request, AuthContext auth, long zxid, long nowMs, out Txn? txn)
    {
        txn = null;
        if (!ReconfigEnabled) return ErrorCode.ReconfigDisabled;
        if (QuorumSynced is not { } quorumSynced) return ErrorCode.Unimplemented;
        if (_byPath.ContainsKey(DataTree.ConfigPath)) return ErrorCode.ReconfigInProgress;
        if (CurrentConfig() is not { } current) return ErrorCode.BadArguments;
        if (request.CurConfigId != -1 && request.CurConfigId != current.Version) return ErrorCode.BadVersion;
        var next = current.Reconfigure(request.JoiningServers, request.LeavingServers, request.NewMembers, out _);
        if (next is null || !next.Voters.Any()) return ErrorCode.BadArguments;
        if (!quorumSynced(next.Voters.ToList())) return ErrorCode.NewConfigNoQuorum;
        if (!TryGetState(DataTree.ConfigPath, out _, out var node)) return ErrorCode.NoNode;
        if (!CheckAcl(node.Acl, Perms.Write, auth)) return ErrorCode.NoAuth;

        var data = next.WithVersion(zxid).ToBytes();
        txn = new SetDataTxn(DataTree.ConfigPath, data, -1);
        node.Version = -1;
        node.Mtime = nowMs;
        node.Mzxid = zxid;
        node.DataLength = data.Length;
        AddChange(DataTree.ConfigPath, zxid, exists: true, node);
        return ErrorCode.Ok;
    }
}
