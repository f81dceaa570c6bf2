using Akka.Actor;
using Coordination.Core;

namespace Coordination.Server.Sessions;

/// <summary>
/// The deployment's session secret as this server's replica last applied it (<see cref="SessionSecretTxn"/>), for the
/// session manager, which must check a re-attaching client's password before the session's actor hands over the
/// connection (a wrong password must not disturb the owner's connection). Set only by the replica, read by the
/// session actors; the secret never changes once committed, so a reference swap is all the sharing needs. An Akka
/// extension, one per server (ActorSystem).
/// <para>Why a replicated secret (a txn in the journal and in snapshots) rather than one per server or a file: every
/// member must derive the same password for a session so that a client can re-attach to any member after a
/// failover; a txn reaches every member, a recovering one and one synchronised by a snapshot transfer included, with
/// the durability of the rest of the state, and needs no operator step. The password itself is
/// HMAC(secret, session id), so it cannot be computed without the secret, which no client port or 4lw reveals.</para>
/// </summary>
public sealed class SessionPasswords : IExtension
{
    private byte[]? _secret;

    public static SessionPasswords For(ActorSystem system) => system.WithExtension<SessionPasswords, SessionPasswordsProvider>();

    /// <summary>Whether the secret is known here yet (it is once this server has applied the secret's txn).</summary>
    public bool Known => Volatile.Read(ref _secret) is not null;

    /// <summary>Records the secret of the replica's tree (no-op while the tree has none).</summary>
    public void Learn(byte[]? secret)
    {
        if (secret is not null) Volatile.Write(ref _secret, secret);
    }

    /// <summary>The password of <paramref name="sessionId"/>, or null while the secret is unknown.</summary>
    public byte[]? For(long sessionId) => Volatile.Read(ref _secret) is { } secret ? SessionIds.Password(sessionId, secret) : null;

    /// <summary>Constant-time check; false while the secret is unknown.</summary>
    public bool Check(long sessionId, ReadOnlySpan<byte> password) =>
        Volatile.Read(ref _secret) is { } secret && SessionIds.CheckPassword(sessionId, secret, password);
}

public sealed class SessionPasswordsProvider : ExtensionIdProvider<SessionPasswords>
{
    public override SessionPasswords CreateExtension(ExtendedActorSystem system) => new();
}
