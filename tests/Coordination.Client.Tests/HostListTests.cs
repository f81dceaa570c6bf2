using Xunit;

namespace Coordination.Client.Tests;

/// <summary>
/// ZooKeeper 3.5's client rebalancing (HostList, after StaticHostProvider.updateServerList), with seeded randoms:
/// a population of clients spread over the old list ends evenly spread over the new one, moving as few as possible.
/// </summary>
public sealed class HostListTests
{
    private static HostAndPort H(int i) => new("10.0.0." + i, 2181);
    private static List<HostAndPort> Hosts(params int[] ids) => ids.Select(H).ToList();

    /// <summary>Clients connected round-robin over <paramref name="before"/>, then updated to <paramref name="after"/>;
    /// returns where each ends and how many moved.</summary>
    private static (Dictionary<HostAndPort, int> Load, int Moved) Rebalance(int clients, List<HostAndPort> before, List<HostAndPort> after)
    {
        var load = new Dictionary<HostAndPort, int>();
        var moved = 0;
        for (var c = 0; c < clients; c++)
        {
            var list = new HostList(before, new Random(c));
            var current = list.Next();
            list.OnConnected();
            var host = current;
            if (list.Update(after, current))
            {
                host = list.Next();
                list.OnConnected();
                moved++;
            }
            Assert.Contains(host, after);
            load[host] = load.GetValueOrDefault(host) + 1;
        }
        return (load, moved);
    }

    [Fact]
    public void Growing_moves_about_the_share_of_the_added_servers_and_evens_the_load()
    {
        var (load, moved) = Rebalance(3000, Hosts(1, 2, 3), Hosts(1, 2, 3, 4, 5));
        // 1 - 3/5 of the clients move, all to the added servers; each server ends with about 3000/5.
        Assert.InRange(moved, 1100, 1300);
        foreach (var h in Hosts(1, 2, 3, 4, 5)) Assert.InRange(load[h], 500, 700);
    }

    [Fact]
    public void Shrinking_moves_only_the_clients_of_removed_servers()
    {
        var (load, moved) = Rebalance(3000, Hosts(1, 2, 3, 4, 5), Hosts(1, 2, 3));
        Assert.InRange(moved, 1100, 1300); // the clients of 4 and 5: 2/5 of them
        foreach (var h in Hosts(1, 2, 3)) Assert.InRange(load[h], 900, 1100);
    }

    [Fact]
    public void Replacing_a_server_sends_its_clients_to_the_new_one()
    {
        var (load, moved) = Rebalance(3000, Hosts(1, 2, 3), Hosts(1, 2, 4));
        Assert.InRange(moved, 900, 1100);
        Assert.Equal(moved, load[H(4)]); // pNew = 1: every client of the replaced server goes to its replacement
        foreach (var h in Hosts(1, 2, 4)) Assert.InRange(load[h], 900, 1100);
    }

    [Fact]
    public void A_client_whose_server_stays_in_a_smaller_list_does_not_move()
    {
        var list = new HostList(Hosts(1, 2, 3), new Random(7));
        var current = list.Next();
        list.OnConnected();
        var smaller = Hosts(1, 2, 3).Where(h => h != current).Take(1).Append(current).ToList();
        Assert.False(list.Update(smaller, current));
        Assert.False(list.Rebalancing);
        Assert.Equal(2, list.Count);
    }

    [Fact]
    public void A_client_of_a_removed_server_moves_and_tries_every_new_host_before_round_robin()
    {
        var list = new HostList(Hosts(1), new Random(3));
        var current = list.Next();
        list.OnConnected();
        Assert.True(list.Update(Hosts(2, 3, 4), current));
        Assert.True(list.Rebalancing);
        var tried = new[] { list.Next(), list.Next(), list.Next() };
        Assert.Equal(Hosts(2, 3, 4).ToHashSet(), tried.ToHashSet());
        Assert.Contains(list.Next(), Hosts(2, 3, 4)); // all tried: plain round-robin over the new list
        Assert.False(list.Rebalancing);
    }

    [Fact]
    public void The_same_seed_gives_the_same_order_and_choices()
    {
        static List<HostAndPort> Run(int seed)
        {
            var list = new HostList(Hosts(1, 2, 3, 4), new Random(seed));
            var seen = new List<HostAndPort> { list.Next() };
            list.OnConnected();
            list.Update(Hosts(1, 5, 6, 7, 8), seen[0]);
            for (var i = 0; i < 6; i++) seen.Add(list.Next());
            return seen;
        }
        Assert.Equal(Run(42), Run(42));
        Assert.Contains(Enumerable.Range(0, 20), seed => !Run(seed).SequenceEqual(Run(42))); // the seed matters
    }

    [Fact]
    public void Prefer_next_makes_that_host_the_next_tried_and_an_empty_list_is_refused()
    {
        var list = new HostList(Hosts(1, 2, 3), new Random(1));
        list.PreferNext(H(2));
        Assert.Equal(H(2), list.Next());
        Assert.Throws<ArgumentException>(() => list.Update([], null));
    }
}
