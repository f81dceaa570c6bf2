using Microsoft.Extensions.Options;

namespace Coordination.Client.Hosting;

/// <summary>
/// The client's settings as bound from configuration (e.g. the "Coordination" section of appsettings.json);
/// <see cref="ToClientOptions"/> turns them into <see cref="CoordinationClientOptions"/>.
/// </summary>
public sealed class CoordinationOptions
{
    /// <summary><c>host:port[,host:port...][/chroot]</c>.</summary>
    public string ConnectString { get; set; } = "";
    /// <summary>Requested session timeout; the server negotiates it into [2, 20] ticks.</summary>
    public TimeSpan SessionTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Timeout of one connect plus handshake; null = session timeout / number of hosts.</summary>
    public TimeSpan? ConnectionTimeout { get; set; }
    /// <summary>Accept read-only servers.</summary>
    public bool CanBeReadOnly { get; set; }
    /// <summary>Local (ZooKeeper's reads) or Linearizable.</summary>
    public ReadConsistency Reads { get; set; } = ReadConsistency.Local;
    /// <summary>Initial connect and sleep between reconnect rounds: exponential backoff from this sleep...</summary>
    public TimeSpan RetryBaseSleep { get; set; } = TimeSpan.FromMilliseconds(100);
    /// <summary>...capped at this sleep...</summary>
    public TimeSpan RetryMaxSleep { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>...at most this many times per round.</summary>
    public int RetryMaxRetries { get; set; } = 10;
    /// <summary>Digest users sent on every (re)connect, as <c>user:password</c>.</summary>
    public List<string> DigestAuth { get; set; } = [];
    /// <summary>After the session expired, the hosted client starts a new session after this pause.</summary>
    public TimeSpan RestartBackoff { get; set; } = TimeSpan.FromSeconds(1);

    public CoordinationClientOptions ToClientOptions(Action<string>? log = null, Microsoft.Extensions.Logging.ILogger? logger = null) => new()
    {
        ConnectString = ConnectString,
        SessionTimeout = SessionTimeout,
        ConnectionTimeout = ConnectionTimeout,
        CanBeReadOnly = CanBeReadOnly,
        Reads = Reads,
        RetryPolicy = new ExponentialBackoffRetry(RetryBaseSleep, RetryMaxRetries, RetryMaxSleep),
        AuthInfo = DigestAuth.Select(d => new AuthInfo("digest", System.Text.Encoding.UTF8.GetBytes(d))).ToList(),
        Log = log,
        Logger = logger,
    };
}

/// <summary>Refuses settings the client would reject later, at startup and with the setting's name.</summary>
public sealed class CoordinationOptionsValidator : IValidateOptions<CoordinationOptions>
{
    public ValidateOptionsResult Validate(string? name, CoordinationOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectString)) failures.Add("Coordination:ConnectString is required (host:port[,host:port...][/chroot])");
        else
        {
            try { Coordination.Client.ConnectString.Parse(options.ConnectString); }
            catch (Exception e) when (e is ArgumentException or FormatException) { failures.Add($"Coordination:ConnectString '{options.ConnectString}' is invalid: {e.Message}"); }
        }
        if (options.SessionTimeout <= TimeSpan.Zero) failures.Add("Coordination:SessionTimeout must be positive");
        if (options.ConnectionTimeout is { } c && c <= TimeSpan.Zero) failures.Add("Coordination:ConnectionTimeout must be positive when set");
        if (options.RetryBaseSleep <= TimeSpan.Zero) failures.Add("Coordination:RetryBaseSleep must be positive");
        if (options.RetryMaxSleep < options.RetryBaseSleep) failures.Add("Coordination:RetryMaxSleep must be at least RetryBaseSleep");
        if (options.RetryMaxRetries < 0) failures.Add("Coordination:RetryMaxRetries must not be negative");
        if (options.RestartBackoff < TimeSpan.Zero) failures.Add("Coordination:RestartBackoff must not be negative");
        foreach (var d in options.DigestAuth.Where(d => !d.Contains(':'))) failures.Add("Coordination:DigestAuth entries are user:password");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
