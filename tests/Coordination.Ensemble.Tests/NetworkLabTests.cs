using System.Diagnostics;
using System.Net.Sockets;
using Coordination.TestKit;
using Xunit;

namespace Coordination.Ensemble.Tests;

/// <summary>
/// <see cref="NetworkLab"/> itself: its namespaces exist while it lives and are gone after Dispose, and a namespace left
/// by a run whose process is gone is removed when the next lab is created. Same requirements as
/// <see cref="NetnsLinearizabilityTests"/>.
/// </summary>
[Collection(LoadAndNetnsCollection.Name)]
public sealed class NetworkLabTests
{
    /// <summary>Skips (or fails, with COORDINATION_REQUIRE_NETNS=1 as in CI) when network namespaces cannot be used here.</summary>
    internal static void RequireNetns()
    {
        if (NetworkLab.SkipReason() is { } reason) Skip.If(true, reason);
    }

    private static string[] Namespaces()
    {
        using var ip = Process.Start(new ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true })!;
        var text = ip.StandardOutput.ReadToEnd();
        ip.WaitForExit();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToArray();
    }

    /// <summary>SO_NETNS_COOKIE (Linux 5.14): an id of the network namespace a socket belongs to.</summary>
    private static ulong NamespaceCookie(Socket socket)
    {
        var value = new byte[8];
        Assert.Equal(8, socket.GetRawSocketOption(1 /* SOL_SOCKET */, 71 /* SO_NETNS_COOKIE */, value));
        return BitConverter.ToUInt64(value);
    }

    [SkippableFact]
    public void Lab_namespaces_live_until_dispose_and_stale_ones_are_removed()
    {
        RequireNetns();
        // Pids never exceed 4194304 (pid_max's limit), so this owner is certainly gone.
        const string stale = "coordlab-999999999-hub";
        using (Process.Start("ip", $"netns add {stale}")) { }
        Thread.Sleep(200);
        Assert.Contains(stale, Namespaces());

        string[] ours;
        using (var lab = NetworkLab.Create(2))
        {
            ours = [lab.NamespaceOf(1), lab.NamespaceOf(2)];
            var now = Namespaces();
            Assert.DoesNotContain(stale, now);
            Assert.All(ours, ns => Assert.Contains(ns, now));
            Assert.Equal("10.201.0.11", lab.AddressOf(1));
            // The lab's sockets live in its client namespace, not in the test process's own.
            using var first = lab.CreateSocket();
            using var second = lab.CreateSocket();
            using var local = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            Assert.Equal(NamespaceCookie(first), NamespaceCookie(second));
            Assert.NotEqual(NamespaceCookie(local), NamespaceCookie(first));
        }
        var after = Namespaces();
        Assert.All(ours, ns => Assert.DoesNotContain(ns, after));
        Assert.DoesNotContain(after, ns => ns.StartsWith($"coordlab-{Environment.ProcessId}-", StringComparison.Ordinal));
    }
}
