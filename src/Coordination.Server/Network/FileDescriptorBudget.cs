using System.Runtime.InteropServices;

namespace Coordination.Server.Network;

/// <summary>
/// The default total client-connection cap (max-connections = auto): the process's open-files limit minus the
/// descriptors already open when the client port starts (runtime, assemblies, journal) minus file-descriptor-reserve
/// for what opens later (journal segments, snapshots, member links, admin and metrics HTTP). Running out of
/// descriptors is what the cap prevents: .NET 10 can abort the process ("Out of memory") when none is left.
/// </summary>
public static class FileDescriptorBudget
{
    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit { public ulong Current; public ulong Max; }

    [DllImport("libc", SetLastError = true)]
    private static extern int getrlimit(int resource, out RLimit limit);

    /// <summary>The soft RLIMIT_NOFILE (the runtime raises it to the hard limit at start), or null when unknown.</summary>
    public static long? OpenFilesLimit()
    {
        var resource = OperatingSystem.IsLinux() ? 7 : OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? 8 : -1;
        if (resource < 0) return null;
        try
        {
            if (getrlimit(resource, out var limit) != 0) return null;
            return limit.Current >= long.MaxValue ? null : (long)limit.Current; // RLIM_INFINITY
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

    /// <summary>Descriptors this process has open now (Linux /proc), or 0 when that cannot be counted.</summary>
    public static int OpenNow()
    {
        try { return Directory.Exists("/proc/self/fd") ? Directory.GetFileSystemEntries("/proc/self/fd").Length : 0; }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
    }

    /// <summary>
    /// The cap to enforce: <paramref name="configured"/> when set (0 = unlimited), else derived from the open-files
    /// limit as described above (at least 1); unlimited when the limit is unknown or infinite.
    /// </summary>
    public static (int Cap, string Reason) Resolve(int? configured, int reserve)
    {
        if (configured is { } set) return (Math.Max(0, set), set > 0 ? "max-connections" : "max-connections = 0 (unlimited)");
        if (OpenFilesLimit() is not { } limit) return (0, "open-files limit unknown or unlimited");
        var open = OpenNow();
        var cap = Math.Clamp(limit - open - reserve, 1, int.MaxValue);
        return ((int)cap, $"open-files limit {limit} - {open} open at start - file-descriptor-reserve {reserve}");
    }
}
