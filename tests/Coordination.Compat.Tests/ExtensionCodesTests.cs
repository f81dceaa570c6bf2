using System.Diagnostics;
using System.Text.RegularExpressions;
using Coordination.Protocol;
using Xunit;

namespace Coordination.Compat.Tests;

/// <summary>
/// Our protocol extensions (op codes LinearizableRead 1001, WatchChanges 1002, StopChanges 1003; the change frames'
/// xid -1002; the error Compacted -1002) against Apache ZooKeeper 3.8's own constants, read from its jar with javap
/// (ZooDefs.OpCode, ClientCnxn's reserved xids, KeeperException.CodeDeprecated): none is one of ZooKeeper's, and each
/// lies beyond the end of the range ZooKeeper's grow into (op codes upwards, xids and errors downwards), with room.
/// README "Linearizable reads" and "Change feed" give the reasoning; this checks it against the reference's bytes.
/// </summary>
public sealed class ExtensionCodesTests
{
    /// <summary>The <c>static final int</c> constants of a class in ZooKeeper's jar (private ones too), by name.</summary>
    private static Dictionary<string, int> Constants(string className)
    {
        var psi = new ProcessStartInfo(CompatEnvironment.Javap) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-p", "-constants", "-cp", CompatEnvironment.ZooKeeperJar, className }) psi.ArgumentList.Add(a);
        using var javap = Process.Start(psi)!;
        var stdout = javap.StandardOutput.ReadToEndAsync();
        var stderr = javap.StandardError.ReadToEndAsync();
        Assert.True(javap.WaitForExit(60_000), "javap did not finish within 60 s");
        Assert.True(javap.ExitCode == 0, $"javap {className}: {stderr.Result}");
        return Regex.Matches(stdout.Result, @"static final int (\w+) = (-?\d+);")
            .ToDictionary(m => m.Groups[1].Value, m => int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Room left for ZooKeeper to grow: it has taken about 120 op codes and 30 error codes in 15 years.</summary>
    private const int Room = 500;

    [Fact]
    public void Extension_op_codes_xids_and_error_codes_are_none_of_ZooKeepers_and_lie_beyond_their_ranges()
    {
        var opCodes = Constants("org.apache.zookeeper.ZooDefs$OpCode");
        var xids = Constants("org.apache.zookeeper.ClientCnxn").Where(c => c.Key.EndsWith("_XID", StringComparison.Ordinal)).ToDictionary();
        var errors = Constants("org.apache.zookeeper.KeeperException$CodeDeprecated");
        // What was read is ZooKeeper's: known values, and ours agree with them.
        Assert.Equal((1, 101, -11), (opCodes["create"], opCodes["setWatches"], opCodes["closeSession"]));
        Assert.Equal((Xids.Notification, Xids.Ping, Xids.AuthPacket, Xids.SetWatches),
            (xids["NOTIFICATION_XID"], xids["PING_XID"], xids["AUTHPACKET_XID"], xids["SET_WATCHES_XID"]));
        Assert.Equal(((int)ErrorCode.NoNode, (int)ErrorCode.SessionExpired), (errors["NoNode"], errors["SessionExpired"]));

        foreach (var op in new[] { OpCode.LinearizableRead, OpCode.WatchChanges, OpCode.StopChanges })
        {
            Assert.DoesNotContain((int)op, opCodes.Values);
            Assert.True((int)op >= opCodes.Values.Max() + Room, $"op {op} ({(int)op}) is near ZooKeeper's highest op code {opCodes.Values.Max()}");
        }
        Assert.DoesNotContain(Xids.Change, xids.Values);
        Assert.True(Xids.Change <= xids.Values.Min() - Room, $"the change xid {Xids.Change} is near ZooKeeper's reserved xids (down to {xids.Values.Min()})");
        Assert.DoesNotContain((int)ErrorCode.Compacted, errors.Values);
        Assert.True((int)ErrorCode.Compacted <= errors.Values.Min() - Room, $"Compacted ({(int)ErrorCode.Compacted}) is near ZooKeeper's error codes (down to {errors.Values.Min()})");
    }
}
