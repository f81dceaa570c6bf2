using System.Buffers;
using System.Net.Security;
using System.Runtime.InteropServices;

namespace Coordination.Server.Sessions;

/// <summary>
/// The server side of SASL GSSAPI (RFC 4752) with Kerberos v5, as ZooKeeper's clients speak it: the client's GSS
/// tokens go to gss_accept_sec_context (through .NET's NegotiateAuthentication over MIT libgssapi) until the context
/// is established, the last acceptor token (the AP-REP of mutual authentication) going back; then the server offers
/// the security layers in a wrapped 4-byte message (only "none", i.e. qop auth, with a maximum size of 0), and the
/// client's wrapped answer must choose it. The client is then authenticated as its Kerberos principal; the
/// authorization id it names is not used (ZooKeeper also takes the id from the authenticated principal).
/// One instance per attempt, owned by the session actor; the calls do local work only (keytab, replay cache).
/// </summary>
public sealed class GssapiServer(KerberosSettings settings) : ISaslServer
{
    /// <summary>RFC 4752 3.3: the security layer bit "no security layer".</summary>
    private const byte NoSecurityLayer = 1;

    private readonly NegotiateAuthentication _context = new(new NegotiateAuthenticationServerOptions { Package = "Kerberos" });
    private Phase _phase;

    private enum Phase { Context, OfferLayer, ChooseLayer, Done }

    public bool IsComplete => _phase == Phase.Done;
    public string? AuthorizationId { get; private set; }

    public byte[]? Evaluate(ReadOnlySpan<byte> response)
    {
        try
        {
            return Step(response);
        }
        catch (Exception e) when (e is not SaslFailure)
        {
            // The native layer reports some failures as exceptions (e.g. naming the remote identity): a refusal too.
            throw new SaslFailure($"GSSAPI: {e.GetType().Name}: {e.Message}");
        }
    }

    private byte[]? Step(ReadOnlySpan<byte> response)
    {
        switch (_phase)
        {
            case Phase.Context:
                var token = _context.GetOutgoingBlob(response, out var status);
                if (status == NegotiateAuthenticationStatusCode.ContinueNeeded) return token;
                if (status != NegotiateAuthenticationStatusCode.Completed) throw new SaslFailure($"Kerberos context not accepted: {status}");
                _phase = Phase.OfferLayer;
                return token ?? [];
            case Phase.OfferLayer:
                // The client answers the last context token with an empty one; the offer goes out wrapped (signed).
                if (!response.IsEmpty) throw new SaslFailure("a non-empty token where the empty one after the context belongs");
                _phase = Phase.ChooseLayer;
                return Wrap([NoSecurityLayer, 0, 0, 0]);
            case Phase.ChooseLayer:
                var choice = Unwrap(response);
                if (choice.Length < 4) throw new SaslFailure("the security layer choice is shorter than 4 bytes");
                if (choice[0] != NoSecurityLayer) throw new SaslFailure($"security layer {choice[0]} chosen, only none (1) is offered");
                var principal = _context.RemoteIdentity.Name;
                AuthorizationId = settings.ClientName(principal) ?? throw new SaslFailure($"malformed principal '{principal}'");
                _phase = Phase.Done;
                return null;
            default:
                throw new SaslFailure("the exchange is already complete");
        }
    }

    private byte[] Wrap(ReadOnlySpan<byte> message)
    {
        var output = new ArrayBufferWriter<byte>(64);
        var status = _context.Wrap(message, output, requestEncryption: false, out _);
        if (status != NegotiateAuthenticationStatusCode.Completed) throw new SaslFailure($"wrap failed: {status}");
        return output.WrittenSpan.ToArray();
    }

    private byte[] Unwrap(ReadOnlySpan<byte> token)
    {
        var output = new ArrayBufferWriter<byte>(64);
        var status = _context.Unwrap(token, output, out _);
        if (status != NegotiateAuthenticationStatusCode.Completed) throw new SaslFailure($"the security layer choice does not unwrap: {status}");
        return output.WrittenSpan.ToArray();
    }

    public void Dispose() => _context.Dispose();

    /// <summary>Points MIT Kerberos at the keys of the configured principal (<see cref="KerberosKeys"/>).</summary>
    public static void Configure(KerberosSettings settings) => KerberosKeys.Configure(settings.Key is { } key ? [key] : [], null);
}

/// <summary>A principal's keys in a keytab file; <see cref="Setting"/> names where they were configured, for errors.</summary>
public sealed record KerberosKey(string Setting, string Keytab, string Principal);

/// <summary>
/// The Kerberos keys of this process, for libgssapi. Each configured keytab is reduced to its principal's entries in a
/// file only this user can read (deleted when the process exits), because the acceptor accepts a ticket for any
/// principal of its keytab and the initiator uses the first one of its client keytab. libgssapi reads KRB5_KTNAME
/// (acceptor) and KRB5_CLIENT_KTNAME (initiator, SASL between members) from the native environment (getenv),
/// which .NET's Environment.SetEnvironmentVariable does not change on Linux (it keeps its own copy), so the
/// variables are set with libc's setenv. The initiator's tickets go to a memory credential cache of its own, so a
/// user's ticket cache is never used. Called once at startup, before any thread makes a GSS call: setenv is not
/// safe against a concurrent getenv. Throws when a keytab holds no key of its principal.
/// </summary>
public static class KerberosKeys
{
    public static void Configure(IReadOnlyList<KerberosKey> acceptors, KerberosKey? initiator)
    {
        if (acceptors.Count > 0) SetEnv("KRB5_KTNAME", "FILE:" + WritePrivate(Keytab.Merge(acceptors.Select(Reduce).ToArray())));
        if (initiator is null) return;
        SetEnv("KRB5_CLIENT_KTNAME", "FILE:" + WritePrivate(Reduce(initiator)));
        // A new cache per call: a server started again in the same process (tests) must not find tickets of another realm.
        SetEnv("KRB5CCNAME", $"MEMORY:coordination-{Guid.NewGuid():N}");
    }

    private static byte[] Reduce(KerberosKey key)
    {
        try
        {
            return Keytab.Only(File.ReadAllBytes(key.Keytab), key.Principal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new Akka.Configuration.ConfigurationException($"{key.Setting}: keytab {key.Keytab}: {e.Message}");
        }
    }

    private static string WritePrivate(byte[] keys)
    {
        var path = Path.Combine(Path.GetTempPath(), $"coordination-{Environment.ProcessId}-{Guid.NewGuid():N}.keytab");
        using (var file = new FileStream(path, new FileStreamOptions
               {
                   Mode = FileMode.CreateNew, Access = FileAccess.Write,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
            file.Write(keys);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
        return path;
    }

    private static void SetEnv(string name, string value)
    {
        if (setenv(name, value, 1) != 0)
            throw new InvalidOperationException($"setenv {name} failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);
}

/// <summary>The server side of one SASL mechanism for one connection.</summary>
public interface ISaslServer : IDisposable
{
    bool IsComplete { get; }
    /// <summary>Set once complete: the name in the id sasl:NAME the client gets.</summary>
    string? AuthorizationId { get; }
    /// <summary>The next server token (null: none); throws <see cref="SaslFailure"/> when the client is refused.</summary>
    byte[]? Evaluate(ReadOnlySpan<byte> response);
}
