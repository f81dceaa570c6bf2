using System.Text.Json;
using Coordination.TestKit;
using Xunit.Abstractions;

namespace Coordination.Compat.Tests;

/// <summary>
/// The AdminServer commands whose answer depends on the quorum (leader, zabstate, voting_view, observers,
/// server_stats), on a 3-member ensemble of ours and of Apache ZooKeeper 3.8, each member with its AdminServer on:
/// the same keys on both, and every member names the same leader.
/// </summary>
public sealed class EnsembleAdminCompatTests(ITestOutputHelper output)
{
    private static readonly string[] Bare = ["command", "error"];

    [SkippableTheory]
    [InlineData("ours")]
    [InlineData("apache")]
    public async Task Quorum_commands_answer_ZooKeepers_keys_on_every_member(string target)
    {
        CompatEnvironment.SkipUnlessAvailable(needsKazoo: false);
        var adminPorts = new Dictionary<long, int>();
        int AdminPort(EnsembleProcesses.Member m)
        {
            lock (adminPorts) return adminPorts.TryGetValue(m.Id, out var port) ? port : adminPorts[m.Id] = CompatEnvironment.FreePort();
        }
        await using var ensemble = await EnsembleProcesses.StartAsync(ServerProcess.ParseKind(target), 3, new EnsembleProcessesOptions
        {
            TickTimeMs = CompatEnvironment.TickTimeMs,
            MemberHocon = m => $"coordination.admin {{ enabled = on, address = \"127.0.0.1\", port = {AdminPort(m)} }}",
            MemberZooCfg = m => ["admin.enableServer=true", "admin.serverAddress=127.0.0.1", $"admin.serverPort={AdminPort(m)}"],
            JavaOptions = ["-Xmx256m", "-Dzookeeper.admin.enableServer=true"],
            Log = line => { try { output.WriteLine(line); } catch (InvalidOperationException) { } },
        });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        async Task<JsonElement> Get(EnsembleProcesses.Member m, string command)
        {
            var text = await http.GetStringAsync($"http://127.0.0.1:{AdminPort(m)}/commands/{command}");
            output.WriteLine($"[{target} {m.Id}] {command}: {text}");
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        static void HasExactlyKeys(JsonElement body, IEnumerable<string> keys, string where)
        {
            var present = body.EnumerateObject().Select(p => p.Name).ToHashSet();
            Assert.True(present.SetEquals(keys), $"{where}: has {string.Join(", ", present.Order())}, ZooKeeper has {string.Join(", ", keys.Order())}");
        }

        static async Task<string> FourLetterWordAsync(EnsembleProcesses.Member m, string word)
        {
            using var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(m.Host, m.ClientPort);
            await tcp.GetStream().WriteAsync(System.Text.Encoding.ASCII.GetBytes(word));
            using var reader = new StreamReader(tcp.GetStream());
            return await reader.ReadToEndAsync();
        }

        // Every member serves once the election is over: wait until all name one leader.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        long[] leaders;
        while (true)
        {
            leaders = new long[3];
            var i = 0;
            foreach (var m in ensemble.Members)
            {
                try { var l = await Get(m, "leader"); leaders[i] = l.TryGetProperty("leader_id", out var id) ? id.GetInt64() : -1; }
                catch (HttpRequestException) { leaders[i] = -1; }
                i++;
            }
            if (leaders.All(l => l > 0 && l == leaders[0])) break;
            Assert.True(DateTime.UtcNow < deadline, $"the members did not agree on a leader: {string.Join(", ", leaders)}");
            await Task.Delay(500);
        }

        var leaderId = leaders[0];
        foreach (var m in ensemble.Members)
        {
            var leader = await Get(m, "lead");
            HasExactlyKeys(leader, ["is_leader", "leader_id", "leader_ip", .. Bare], "leader");
            Assert.Equal(m.Id == leaderId, leader.GetProperty("is_leader").GetBoolean());
            Assert.Equal("127.0.0.1", leader.GetProperty("leader_ip").GetString());

            var zab = await Get(m, "zabstate");
            HasExactlyKeys(zab, ["myid", "is_leader", "quorum_address", "election_address", "client_address", "voting", "last_zxid", "zab_epoch", "zab_counter", "zabstate", .. Bare], "zabstate");
            Assert.Equal(m.Id, zab.GetProperty("myid").GetInt64());
            Assert.True(zab.GetProperty("voting").GetBoolean());
            Assert.Equal("broadcast", zab.GetProperty("zabstate").GetString());

            var view = (await Get(m, "voting_view")).GetProperty("current_config");
            Assert.Equal(["1", "2", "3"], view.EnumerateObject().Select(p => p.Name).Order());
            foreach (var member in view.EnumerateObject())
            {
                HasExactlyKeys(member.Value, ["server_addresses", "election_addresses", "client_address", "learner_type"], "voting_view member");
                Assert.Equal("participant", member.Value.GetProperty("learner_type").GetString());
            }

            var observers = await Get(m, "observers");
            HasExactlyKeys(observers, ["synced_observers", "observers", .. Bare], "observers");
            var stats = await Get(m, "srvr");
            var expected = (string[])["version", "read_only", "server_stats", "client_response", "node_count", .. Bare];
            HasExactlyKeys(stats, m.Id == leaderId ? [.. expected, "proposal_stats"] : expected, "server_stats");
            Assert.Equal(m.Id == leaderId ? "leader" : "follower", stats.GetProperty("server_stats").GetProperty("server_state").GetString());

            // ZooKeeper's full monitor set for the member's role, and mntr in ZooKeeper's order.
            var role = m.Id == leaderId ? "leader" : "follower";
            var monitor = await Get(m, "monitor");
            ZooKeeperMonitorKeys.AssertKeys(monitor.EnumerateObject().Select(p => p.Name), role, target == "ours", $"monitor on {m.Id}");
            Assert.Equal(3, monitor.GetProperty("quorum_size").GetInt64());
            Assert.Equal(m.Id == leaderId ? "leading - broadcast" : "following - broadcast", monitor.GetProperty("peer_state").GetString());
            if (m.Id == leaderId) Assert.Equal(2, monitor.GetProperty("synced_followers").GetInt64());
            Assert.True(monitor.GetProperty("cnt_election_time").GetInt64() >= 1);
            var mntr = await FourLetterWordAsync(m, "mntr");
            output.WriteLine($"[{target} {m.Id}] mntr: {mntr}");
            ZooKeeperMonitorKeys.AssertOrder(mntr, role, $"mntr on {m.Id}");
        }
    }
}
