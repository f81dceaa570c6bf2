namespace Coordination.Server.Network;

/// <summary>
/// What a TLS endpoint loads from its key and trust store files (<typeparamref name="T"/>: its SslStream options),
/// reloaded when the files change. The files are checked at most once per interval, when the options are asked for
/// (on accept or dial): a new connection gets the new certificate without a restart, and a file that fails to load
/// keeps the previous options (warned). Shared by the client port (<see cref="ClientTls"/>) and the member links.
/// </summary>
public sealed class TlsStoreFiles<T> where T : class
{
    private readonly string _keyStore;
    private readonly string _trustStore;
    private readonly long _intervalMs;
    private readonly Func<T> _load;
    private readonly Action<string> _warn;
    private readonly string _what;
    private T _current;
    private (DateTime, long, DateTime, long) _stamp;
    private long _nextCheckTicks;

    /// <summary>Loads at once: a bad file at start is a configuration error, and throws.</summary>
    public TlsStoreFiles(string keyStore, string trustStore, TimeSpan interval, Func<T> load, Action<string> warn, string what)
    {
        _keyStore = keyStore;
        _trustStore = trustStore;
        _intervalMs = (long)interval.TotalMilliseconds;
        _load = load;
        _warn = warn;
        _what = what;
        _stamp = Stamp();
        _current = load();
        _nextCheckTicks = Environment.TickCount64 + _intervalMs;
    }

    /// <summary>The options for a new connection, reloaded first if the files changed.</summary>
    public T Current
    {
        get
        {
            var now = Environment.TickCount64;
            if (now >= Volatile.Read(ref _nextCheckTicks))
            {
                Volatile.Write(ref _nextCheckTicks, now + _intervalMs);
                var stamp = Stamp();
                if (stamp != _stamp)
                {
                    _stamp = stamp;
                    try { Volatile.Write(ref _current, _load()); }
                    catch (Exception e) { _warn($"Reloading the {_what} failed, keeping the previous one: {e.Message}"); }
                }
            }
            return Volatile.Read(ref _current);
        }
    }

    private (DateTime, long, DateTime, long) Stamp()
    {
        static (DateTime, long) Of(string path)
        {
            if (path.Length == 0) return default;
            var info = new FileInfo(path);
            return info.Exists ? (info.LastWriteTimeUtc, info.Length) : default;
        }
        var (keyTime, keyLength) = Of(_keyStore);
        var (trustTime, trustLength) = Of(_trustStore);
        return (keyTime, keyLength, trustTime, trustLength);
    }
}
