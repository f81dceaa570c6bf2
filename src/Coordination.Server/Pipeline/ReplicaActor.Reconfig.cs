using System.Text;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Server.Ensemble;

namespace Coordination.Server.Pipeline;

// Dynamic reconfiguration in the replica: the /zookeeper/config znode, what Prep needs to decide a reconfig, and the
// members it trusts once a new configuration is active. (Prep itself: RequestPreprocessor.Reconfig.cs; the Zab side:
// PeerActor.Reconfig.cs.)
public sealed partial class ReplicaActor
{
    /// <summary>The members of the committed and of a pending configuration (a joiner may lead one day, or forward).</summary>
    private TrustedMembersChanged? _trusted;

    /// <summary>Where member <paramref name="id"/>'s node is: a leader may be a server that a reconfig added after this one started.</summary>
    private string LinkAddressOf(long id) => _trusted?.AddressOf(id) ?? _ensemble!.Members.AddressOf(id);

    private void ReceiveReconfigMessages()
    {
        // The peer refused a reconfig this replica prepared: the error txn is what commits at that zxid.
        Receive<ReconfigRefused>(m => _core.ReplaceProposed(m.Zxid, m.Proposal));
        Receive<MembersChanged>(m =>
        {
            _ensemble = _ensemble! with { Members = m.Members };
            _senders = new MemberSenders(m.Members);
            // The same members under a newer version, which no txn carries: the first leader's version for the
            // ensemble's first configuration (ZabPeer). A reconfig's txn has set the node already.
            if (m.Members.Config is { } config && _tree.Find(DataTree.ConfigPath)?.Stat.Mzxid < config.Version) InitConfigNode();
        });
        Receive<TrustedMembersChanged>(m =>
        {
            _trusted = m;
            _senders = new MemberSenders(m.Members);
        });
    }

    /// <summary>
    /// As ZooKeeper's initConfigInZKDatabase at start: /zookeeper/config holds this member's configuration (version -1,
    /// mzxid the configuration's version). Later configurations arrive as reconfig txns or with a leader's snapshot.
    /// </summary>
    private void InitConfigNode()
    {
        if (_ensemble?.Members.Config is not { Text: { } text } config) return;
        var versioned = DynamicConfig.Parse(text, out _)?.WithVersion(config.Version).ToString() ?? text;
        _tree.InitConfigNode(Encoding.UTF8.GetBytes(versioned), config.Version, Now());
    }

    /// <summary>Prep's NewConfigNoQuorum check: the new voters must be a quorum of themselves among the voters
    /// synchronised with this leader, as the peer last published them. Null standalone (reconfig is Unimplemented).</summary>
    private Func<IReadOnlyCollection<long>, bool>? QuorumSynced()
    {
        if (_ensemble?.State is not { } state) return null;
        return voters => new Quorum(voters).IsQuorum(state.SyncedVoters);
    }
}
