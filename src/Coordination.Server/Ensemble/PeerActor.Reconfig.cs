using Akka.Actor;
using Akka.Event;
using Coordination.Core;
using Coordination.Core.Zab;
using Coordination.Protocol;
using Coordination.Server.Pipeline;

namespace Coordination.Server.Ensemble;

// Dynamic reconfiguration on the member's side: a reconfig txn carries its configuration into the Zab core, and a
// configuration that becomes active is written to disk and decides who this member talks to.
public sealed partial class PeerActor
{
    /// <summary>
    /// The configuration a reconfig txn proposes. The replica prepared it against its applied tree; the core has the
    /// last word (a learner may have dropped since, or an earlier leader's reconfig may still be pending): if it
    /// refuses, the txn becomes an error txn at the same zxid, on every member alike, and the replica is told so that
    /// it does not apply its own copy.
    /// </summary>
    private ZabConfig? ReconfigToPropose(ref byte[] payload, Proposal proposal)
    {
        var config = Txns.ConfigOf(payload);
        var refused = config is null ? ReconfigError.BadArguments : _peer.CheckReconfig(config.Voters, config.Observers, -1);
        if (refused is null) return config;
        var err = refused switch
        {
            ReconfigError.ReconfigInProgress => ErrorCode.ReconfigInProgress,
            ReconfigError.BadVersion => ErrorCode.BadVersion,
            ReconfigError.NewConfigNoQuorum => ErrorCode.NewConfigNoQuorum,
            _ => ErrorCode.BadArguments,
        };
        _log.Warning("Reconfig 0x{0:x} refused at proposal: {1}", proposal.Header.Zxid, refused);
        var error = new ErrorTxn(err);
        payload = Txns.Serialize(proposal.Header, error);
        _replica.Tell(new ReconfigRefused(proposal.Header.Zxid, new Proposal(proposal.Header, error)));
        return null;
    }

    /// <summary>
    /// A configuration is now the ensemble's (committed here, or learned from a leader): written to disk before anything
    /// depends on it, and the members are now its members (links from removed ones are no longer vouched for).
    /// </summary>
    private void OnConfigActivated(ZabConfig config)
    {
        _log.Info("Server {0}: configuration {1} active{2}", _myId, config, _peer.IsMember ? "" : "; this server is no longer a member");
        var members = config.Text is { } text ? DynamicConfig.Parse(text, out _)?.WithVersion(config.Version) : null;
        if (members is null)
        {
            _log.Error("Configuration {0} came without its members' addresses; keeping the current links", config);
            return;
        }
        if (_storage is ZabLog log) DynamicConfigFile.Save(log.Directory, members);
        string Address(MemberSpec m) => $"{_members.Protocol}://{EnsembleSettings.SystemName}@{m.Endpoint}";
        _members = new EnsembleMembers(
            members.Members.Where(m => !m.Observer).ToDictionary(m => m.Id, Address),
            members.Members.Where(m => m.Observer).ToDictionary(m => m.Id, Address)) { Config = config, Protocol = _members.Protocol };
        _senders = new MemberSenders(_members);
        foreach (var id in _peers.Keys.Where(id => !config.IsMember(id)).ToList()) _peers.Remove(id);
        _replica.Tell(new MembersChanged(_members));
    }
}
