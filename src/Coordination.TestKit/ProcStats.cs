using System.Globalization;
using System.Runtime.InteropServices;

namespace Coordination.TestKit;

/// <summary>Reads a process's resident memory and CPU time from Linux /proc.</summary>
public static class ProcStats
{
    [DllImport("libc", SetLastError = true)]
    private static extern long sysconf(int name);

    private const int ScClkTck = 2;
    private static readonly Lazy<long> ClockTicks = new(() =>
    {
        try
        {
            var ticks = OperatingSystem.IsLinux() ? sysconf(ScClkTck) : 100;
            return ticks > 0 ? ticks : 100;
        }
        catch { return 100; }
    });

    /// <summary>VmRSS of the process in bytes, or -1 when it cannot be read (exited, not Linux).</summary>
    public static long ReadRssBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
                var parts = line["VmRSS:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return -1;
    }

    /// <summary>User plus system CPU time of the process (utime + stime of /proc/pid/stat), or null when unreadable.</summary>
    public static TimeSpan? ReadCpuTime(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
        var close = text.LastIndexOf(')');
        if (close < 0) return null;
        var fields = text[(close + 2)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        if (fields.Length < 13) return null;
        var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
        var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds((utime + stime) / (double)ClockTicks.Value);
    }

    /// <summary>The summed VmRSS of several processes (an ensemble's members), or -1 when any cannot be read.</summary>
    public static long ReadRssBytes(IEnumerable<int> pids)
    {
        long sum = 0;
        foreach (var pid in pids)
        {
            var rss = ReadRssBytes(pid);
            if (rss < 0) return -1;
            sum += rss;
        }
        return sum;
    }

    /// <summary>The summed CPU time of several processes, or null when any cannot be read.</summary>
    public static TimeSpan? ReadCpuTime(IEnumerable<int> pids)
    {
        var sum = TimeSpan.Zero;
        foreach (var pid in pids)
        {
            if (ReadCpuTime(pid) is not { } cpu) return null;
            sum += cpu;
        }
        return sum;
    }

    /// <summary>Number of open file descriptors of the process, or -1.</summary>
    public static int CountOpenFiles(int pid)
    {
        try { return Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length; }
        catch { return -1; }
    }

    /// <summary>The TCP ports the process listens on (IPv4 and IPv6), from its socket descriptors and /proc/net/tcp*.</summary>
    public static SortedSet<int> ListeningTcpPorts(int pid)
    {
        var inodes = new HashSet<string>();
        foreach (var fd in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
        {
            var target = new FileInfo(fd).LinkTarget;
            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(target[8..^1]);
        }
        var ports = new SortedSet<int>();
        foreach (var table in new[] { $"/proc/{pid}/net/tcp", $"/proc/{pid}/net/tcp6" })
        {
            if (!File.Exists(table)) continue;
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length > 9 && f[3] == "0A" && inodes.Contains(f[9]))
                    ports.Add(Convert.ToInt32(f[1][(f[1].LastIndexOf(':') + 1)..], 16));
            }
        }
        return ports;
    }

    public static string FormatBytes(long bytes) =>
        bytes < 0 ? "n/a" : bytes >= 1 << 20 ? $"{bytes / (double)(1 << 20):F1} MiB" : $"{bytes / 1024.0:F1} KiB";
}

/// <summary>Raises RLIMIT_NOFILE of this process (children inherit it).</summary>
public static class ResourceLimits
{
    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit { public ulong Current; public ulong Max; }

    [DllImport("libc", SetLastError = true)]
    private static extern int getrlimit(int resource, out RLimit limit);

    [DllImport("libc", SetLastError = true)]
    private static extern int setrlimit(int resource, ref RLimit limit);

    private const int RlimitNofile = 7;

    /// <summary>
    /// Returns the soft open-files limit after trying to raise it to at least <paramref name="wanted"/>: past the hard
    /// limit too when the process may (root, up to fs.nr_open), else up to the hard limit.
    /// </summary>
    public static long EnsureOpenFiles(int wanted)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            if (getrlimit(RlimitNofile, out var limit) != 0) return -1;
            if (limit.Current >= (ulong)wanted) return (long)limit.Current;
            if (limit.Max < (ulong)wanted)
            {
                var both = new RLimit { Current = (ulong)wanted, Max = (ulong)wanted };
                if (setrlimit(RlimitNofile, ref both) == 0) return wanted;
            }
            var raised = new RLimit { Current = Math.Min((ulong)wanted, limit.Max), Max = limit.Max };
            if (setrlimit(RlimitNofile, ref raised) == 0) return (long)raised.Current;
            return (long)limit.Current;
        }
        catch { return -1; }
    }
}
