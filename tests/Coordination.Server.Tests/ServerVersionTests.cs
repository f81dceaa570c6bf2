using System.Globalization;
using System.Text.RegularExpressions;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// Issue 17: srvr, mntr and envi report a true version: the ZooKeeper level whose rules the server implements (3.9.2:
/// WatchAclTests check its ACL rules), then this server's own name, release and build time, in ZooKeeper's shape so
/// that clients that parse it keep working (kazoo's server_version() takes the leading digits of envi's
/// zookeeper.version; the kazoo compat check fourlw_basic runs it against both servers).
/// </summary>
public sealed partial class ServerVersionTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"^3\.9\.2-coordination-akka-0\.1\.0\S*, built on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC$")]
    private static partial Regex OurVersion();

    /// <summary>kazoo's ENVI_VERSION = re.compile(r'([\d\.]*).*').</summary>
    [GeneratedRegex(@"^([\d\.]*)")]
    private static partial Regex KazooVersionDigits();

    [SkippableFact]
    public async Task srvr_mntr_and_envi_report_our_release_after_the_ZooKeeper_level_we_implement()
    {
        await using var server = await Targets.StartAsync("ours", output);
        var srvr = await FourLetterWord.SendAsync(server.ConnectString, "srvr");
        var mntr = await FourLetterWord.SendAsync(server.ConnectString, "mntr");
        var envi = await FourLetterWord.SendAsync(server.ConnectString, "envi");
        var versions = new[]
        {
            Line(srvr, "Zookeeper version: "), Line(mntr, "zk_version\t"), Line(envi, "zookeeper.version="),
        };
        output.WriteLine(versions[0]);
        Assert.All(versions, v => Assert.Equal(versions[0], v));
        var match = OurVersion().Match(versions[0]);
        Assert.True(match.Success, $"not our version: {versions[0]}");
        var built = DateTime.ParseExact(match.Groups[1].Value, "yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
        Assert.InRange(built, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), DateTime.UtcNow.AddMinutes(1));
        Assert.Equal("3.9.2", KazooVersionDigits().Match(versions[0]).Groups[1].Value);
    }

    private static string Line(string text, string prefix) =>
        text.Split('\n').Single(l => l.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..].Trim();
}
