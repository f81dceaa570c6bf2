using System.Text;

namespace Coordination.Protocol;

/// <summary>Encoded sizes of response parts, so that a server can refuse a response before building it.</summary>
public static class ResponseSize
{
    /// <summary>A jute Stat: six longs and five ints.</summary>
    public const int StatBytes = 68;

    /// <summary>A multi response's per-op header: type, done flag, error.</summary>
    public const int MultiHeaderBytes = 9;

    /// <summary>Bytes of a jute string vector of <paramref name="names"/>, plus <paramref name="extra"/>.</summary>
    public static long OfNames(IReadOnlyCollection<string> names, int extra)
    {
        long bytes = 4 + extra + 4L * names.Count;
        foreach (var name in names) bytes += Encoding.UTF8.GetByteCount(name);
        return bytes;
    }
}
