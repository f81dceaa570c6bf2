using Coordination.Protocol;

namespace Coordination.Core;

public sealed partial class DataTree
{
    /// <summary>
    /// Sets /zookeeper/config to a member's configuration outside any txn, as ZooKeeper's initConfigInZKDatabase does
    /// at start: data version -1, mzxid the configuration's version, mtime now. Every member holds the same committed
    /// configuration, and a reconfig txn or a leader's snapshot replaces it.
    /// </summary>
    public void InitConfigNode(byte[] data, long version, long nowMs) => SetData(new SetDataTxn(ConfigPath, data, -1), version, nowMs, out _);
}
