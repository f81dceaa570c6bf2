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

    /// <summary>A configuration's dynamic config file is durable: now the replica and the forwarding follow it.</summary>
    private sealed record ConfigSaved(ZabConfig Config, EnsembleMembers Members);

    /// <summary>Dynamic config files are written one after the other, off the actor (fsync of the file and the directory).</summary>
    private Task _configWrites = Task.CompletedTask;

    /// <summary>
    /// A configuration is now the ensemble's (committed here, or learned from a leader). Its dynamic config file is
    /// written and fsynced on a task (blocking I/O stays out of the actor); only once it is durable do this member's
    /// replica and client forwarding use the new members (<see cref="ConfigSaved"/>), so a restart never starts from
    /// an older membership than the one clients were shown. Who may link follows the Zab core at once
    /// (<see cref="RefreshLinks"/>): that is about safety, the core's, and needs no file.
    /// </summary>
    private void OnConfigActivated(ZabConfig config)
    {
        _log.Info("Server {0}: configuration {1} active{2}", _myId, config, _peer.IsMember ? "" : "; this server is no longer a member");
        var members = config.Text is { } text ? DynamicConfig.Parse(text, out _)?.WithVersion(config.Version) : null;
        if (members is null)
        {
            if (config.SameMembers(_members.Config ?? _peer.Config)) return;   // a new version only (the first leader's): nothing to write without addresses
            _log.Error("Configuration {0} came without its members' addresses; keeping the current links", config);
            return;
        }
        string Address(MemberSpec m) => $"{_members.Protocol}://{_members.SystemName}@{m.Endpoint}";
        var next = new EnsembleMembers(
            members.Members.Where(m => !m.Observer).ToDictionary(m => m.Id, Address),
            members.Members.Where(m => m.Observer).ToDictionary(m => m.Id, Address)) { Config = config, Protocol = _members.Protocol, SystemName = _members.SystemName };
        // The first configuration under its first leader's version changes no member: with a static membership
        // (reconfig off) the HOCON keeps deciding it, and no file is written.
        var versionOnly = config.SameMembers(_members.Config ?? config) && Zxids.CounterOf(config.Version) == 0;
        var directory = versionOnly && !_reconfigEnabled ? null : (_storage as ZabLog)?.Directory;
        var write = _configWrites.ContinueWith(_ =>
        {
            if (directory is not null) DynamicConfigFile.Save(directory, members);
            return new ConfigSaved(config, next);
        }, TaskScheduler.Default);
        _configWrites = write;
        write.PipeTo(Self, failure: e => new Status.Failure(new IOException($"writing the dynamic config file of {config} failed", e)));
    }

    private void OnConfigSaved(ConfigSaved saved)
    {
        if (saved.Config.Version < (_members.Config?.Version ?? 0)) return;
        if (saved.Config.Version == _reconfigProposed && ReconfigFaultHooks.Claim(ReconfigFaultHooks.KillPoint.Activated, _myId))
            ReconfigFaultHooks.Die(_myId, $"with the dynamic config file of its reconfig 0x{saved.Config.Version:x} durable");
        _members = saved.Members;
        _state?.ConfigChanged(saved.Config);
        _replica.Tell(new MembersChanged(_members));
        _replica.Tell(new TrustedMembersChanged(LinkMembers));
    }

    /// <summary>Addresses of the servers this member trusts: the committed configuration's and a pending one's.</summary>
    private Dictionary<long, string> _linkAddresses = new();
    /// <summary>Where every server this member ever linked with is, for sending only: the core may still address a
    /// server in the batch of outputs that removes it (its last commit), and a send to it must not fail.</summary>
    private readonly Dictionary<long, string> _knownAddresses = new();
    private (long Committed, long Pending, long HeardOf) _linkedVersions = (-1, -1, -1);
    private EnsembleMembers LinkMembers => new(_linkAddresses, new Dictionary<long, string>());

    /// <summary>
    /// Links follow the Zab core's configurations, committed and pending: a server a logged reconfig adds may link
    /// (and is vouched for) from then on, so that it synchronises before that reconfig commits; a removed one is
    /// refused once no configuration has it. A server only heard of (<see cref="ZabPeer.HeardOfConfig"/>) may link
    /// too, and is vouched for its election notifications alone. Run after every batch of outputs; cheap when
    /// nothing changed.
    /// </summary>
    private void RefreshLinks()
    {
        var pending = _peer.PendingConfig;
        var heardOf = _peer.HeardOfConfig;
        var versions = (_peer.Config.Version, pending?.Version ?? -1, heardOf?.Version ?? -1);
        if (versions != _linkedVersions) RelinkFor(versions, pending, heardOf);
    }

    // Apart from RefreshLinks, which runs after every message: the lambdas here capture locals, and their closure
    // would be allocated on every call, not only when the configuration changed.
    private void RelinkFor((long, long, long) versions, ZabConfig? pending, ZabConfig? heardOf)
    {
        if (_peer.Config.Text is null && pending?.Text is null && heardOf?.Text is null) return;   // no addresses known: as below, without the garbage
        var trusted = MemberSpecsOf(_peer.Config, pending);
        var linked = MemberSpecsOf(_peer.Config, pending, heardOf);
        if (linked.Count == 0) return;   // no addresses known (a test's configuration without text): keep the start-up links
        _linkedVersions = versions;
        string Address(MemberSpec m) => $"{_members.Protocol}://{_members.SystemName}@{m.Endpoint}";
        _linkAddresses = trusted.ToDictionary(kv => kv.Key, kv => Address(kv.Value));
        var linkedAddresses = linked.ToDictionary(kv => kv.Key, kv => Address(kv.Value));
        foreach (var (id, address) in linkedAddresses) _knownAddresses[id] = address;
        _senders = new MemberSenders(LinkMembers);
        _electionSenders = new MemberSenders(new EnsembleMembers(linkedAddresses, new Dictionary<long, string>()));
        _replica.Tell(new TrustedMembersChanged(LinkMembers));
        Context.System.EventStream.Publish(new TrustedMembersChanged(LinkMembers));
        MemberRegistry.Of(Context.System)?.Replace(linked.ToDictionary(kv => kv.Key, kv => (kv.Value.Host, kv.Value.MemberPort)));
        foreach (var id in _peers.Keys.Where(id => !linked.ContainsKey(id)).ToList()) _peers.Remove(id);
    }

    /// <summary>The members of <paramref name="configs"/> (those with their addresses), a later configuration's
    /// address of a member winning.</summary>
    private static Dictionary<long, MemberSpec> MemberSpecsOf(params ZabConfig?[] configs)
    {
        var specs = new Dictionary<long, MemberSpec>();
        foreach (var config in configs)
            if (config?.Text is { } text && DynamicConfig.Parse(text, out _) is { } parsed)
                foreach (var member in parsed.Members) specs[member.Id] = member;
        return specs;
    }

    // ---- test-only fault points (ReconfigFaultHooks): a leader killed at a chosen step of its own reconfig ----

    /// <summary>The zxid of the last reconfig this member proposed as leader (0: none), and, when it is to die once its
    /// own log holds it, that zxid (-1: not armed).</summary>
    private long _reconfigProposed, _killWhenLogged = -1;
    /// <summary>Sends are dropped: this member is about to die, and its proposal must not leave before it does.</summary>
    private bool _sendsHeld;
    /// <summary>The one member sends still go to (-1: all), until it acks the reconfig and this member dies.</summary>
    private long _sendsOnlyTo = -1;

    private void OnReconfigProposed(long zxid)
    {
        _reconfigProposed = zxid;
        if (ReconfigFaultHooks.Claim(ReconfigFaultHooks.KillPoint.LoggedUnsent, _myId)) (_killWhenLogged, _sendsHeld) = (zxid, true);
        else if (ReconfigFaultHooks.Claim(ReconfigFaultHooks.KillPoint.Logged, _myId)) _killWhenLogged = zxid;
        else if (ReconfigFaultHooks.Claim(ReconfigFaultHooks.KillPoint.LoggedByOne, _myId)) _sendsOnlyTo = _peer.SyncedVoters.Where(id => id != _myId).Min();
    }

    /// <summary>True when a send is dropped: this member is about to die at a fault point that holds its sends.</summary>
    private bool SendHeld(long to) => _sendsHeld || (_sendsOnlyTo >= 0 && to != _sendsOnlyTo);

    private void KillIfReconfigAcked(ZabMessage message)
    {
        if (_sendsOnlyTo >= 0 && message is Ack ack && ack.From == _sendsOnlyTo && ack.Zxid >= _reconfigProposed)
            ReconfigFaultHooks.Die(_myId, $"with its reconfig 0x{_reconfigProposed:x} logged by server {ack.From} alone");
    }

    private void KillIfReconfigLogged(long durableUpTo)
    {
        if (_killWhenLogged >= 0 && durableUpTo >= _killWhenLogged)
            ReconfigFaultHooks.Die(_myId, $"with its reconfig 0x{_killWhenLogged:x} logged{(_sendsHeld ? ", its proposal not sent" : "")}");
    }

    private void KillIfReconfigCommitted(long committed)
    {
        if (_reconfigProposed <= 0 || committed < _reconfigProposed || ReconfigFaultHooks.Point != ReconfigFaultHooks.KillPoint.Committed) return;
        if (_peer.Role == PeerState.Leading && ReconfigFaultHooks.Claim(ReconfigFaultHooks.KillPoint.Committed, _myId))
            ReconfigFaultHooks.Die(_myId, $"with its reconfig 0x{_reconfigProposed:x} committed, before sending the commit");
    }

    /// <summary>The control's mistake (COORDINATION_TEST_RECONFIG_NAIVE): a logged reconfig's configuration written as
    /// this member's dynamic config file at once, as if it had committed.</summary>
    private void SaveConfigsOnLog(IReadOnlyList<LogEntry> entries)
    {
        if ((_storage as ZabLog)?.Directory is not { } directory) return;
        foreach (var entry in entries)
            if (entry.Config is { Text: { } text } config && DynamicConfig.Parse(text, out _) is { } members)
                DynamicConfigFile.Save(directory, members.WithVersion(config.Version));
    }
}
