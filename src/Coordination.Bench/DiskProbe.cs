using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Coordination.Bench;

/// <summary>
/// The disk's floor for one durable write, timed beside the 1x1 write rows (issue 23: "the bench reports the disk's
/// fdatasync latency beside it"): a small record appended into a preallocated file and fdatasynced, as both servers'
/// logs write (ours preallocates with posix_fallocate, which <see cref="File.OpenHandle"/>'s preallocationSize is on
/// Linux). No server, no network, no thread hand-off: what a durable write cannot get below on this disk.
/// </summary>
internal static class DiskProbe
{
    public sealed record Result(int Records, double P50Ms, double P99Ms, double P999Ms);

    /// <summary>Appends <paramref name="records"/> records of <paramref name="recordBytes"/> to a new file in
    /// <paramref name="directory"/>, each followed by fdatasync; the file is deleted afterwards.</summary>
    public static Result Fdatasync(string directory, int records = 2000, int recordBytes = 128)
    {
        var path = Path.Combine(directory, $"fdatasync-probe-{Environment.ProcessId}.bin");
        var record = new byte[recordBytes];
        Random.Shared.NextBytes(record);
        var ms = new double[records];
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.None,
                preallocationSize: (long)records * recordBytes + (1 << 20));
            for (var i = 0; i < records; i++)
            {
                var start = Stopwatch.GetTimestamp();
                RandomAccess.Write(handle, record, (long)i * recordBytes);
                if (fdatasync(handle) != 0) throw new IOException($"fdatasync failed: errno {Marshal.GetLastPInvokeError()}");
                ms[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        finally
        {
            File.Delete(path);
        }
        Array.Sort(ms);
        return new Result(records, ms[records / 2], ms[(int)(records * 0.99)], ms[(int)(records * 0.999)]);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int fdatasync(SafeFileHandle fd);
}
