namespace Coordination.Client;

/// <summary>
/// The hosts a client tries, in a shuffled round-robin, and ZooKeeper 3.5's client rebalancing when the list
/// changes (StaticHostProvider.updateServerList, ZOOKEEPER-1355): after an update each client decides at random
/// whether to move, with probabilities chosen so that the load ends up even over the new list while as few clients
/// as possible move. A client whose server was removed always moves; a client whose server stays moves only when
/// servers were added, with probability 1 - oldCount/newCount, and then to one of the added servers.
/// Pure and deterministic for a given <see cref="Random"/>; not thread-safe (the client calls it under its lock).
/// </summary>
internal sealed class HostList
{
    private readonly Random _random;
    private List<HostAndPort> _hosts;
    private int _currentIndex = -1;
    private int _lastConnectedIndex = -1;

    // Reconfig mode: the next connect picks among the added servers with probability _pNew, else among the kept ones.
    private bool _reconfigMode;
    private readonly List<HostAndPort> _kept = [];
    private readonly List<HostAndPort> _added = [];
    private int _keptCursor = -1, _addedCursor = -1;
    private double _pNew;

    public HostList(IEnumerable<HostAndPort> hosts, Random random)
    {
        _random = random;
        _hosts = Shuffle(hosts);
        if (_hosts.Count == 0) throw new ArgumentException("the host list may not be empty", nameof(hosts));
    }

    public int Count => _hosts.Count;
    public IReadOnlyList<HostAndPort> Hosts => _hosts;
    /// <summary>True between an update that asked this client to move and its next successful connect.</summary>
    public bool Rebalancing => _reconfigMode;

    /// <summary>The next host to try.</summary>
    public HostAndPort Next()
    {
        if (_reconfigMode)
        {
            if (NextWhileRebalancing() is { } chosen)
            {
                _currentIndex = _hosts.IndexOf(chosen);
                return chosen;
            }
            _reconfigMode = false; // tried every host of the new list: back to the plain round-robin
        }
        _currentIndex = (_currentIndex + 1) % _hosts.Count;
        return _hosts[_currentIndex];
    }

    /// <summary>The host last returned by <see cref="Next"/> connected.</summary>
    public void OnConnected()
    {
        _lastConnectedIndex = _currentIndex;
        _reconfigMode = false;
    }

    /// <summary>Makes <paramref name="host"/> the next host tried (a read-write server found while read-only).</summary>
    public void PreferNext(HostAndPort host)
    {
        var index = _hosts.IndexOf(host);
        if (index < 0) return;
        _reconfigMode = false;
        _currentIndex = index - 1;
    }

    /// <summary>
    /// Replaces the list. <paramref name="current"/> is the host the client is connected to (null when disconnected).
    /// Returns true when the client should drop its connection and reconnect (to <see cref="Next"/>) to spread the load.
    /// </summary>
    public bool Update(IEnumerable<HostAndPort> hosts, HostAndPort? current)
    {
        var shuffled = Shuffle(hosts);
        if (shuffled.Count == 0) throw new ArgumentException("the host list may not be empty", nameof(hosts));
        var oldCount = _hosts.Count;
        // A move decided by an earlier update and not yet made counts as where this client is going.
        var mine = _reconfigMode ? Next() : current ?? _hosts[Math.Max(_lastConnectedIndex, 0)];
        var mineStays = shuffled.Contains(mine);

        _kept.Clear();
        _added.Clear();
        foreach (var host in shuffled) (_hosts.Contains(host) ? _kept : _added).Add(host);
        var newCount = shuffled.Count;

        _reconfigMode = true;
        if (newCount > oldCount)
        {
            // Servers were added: every client moves to an added server with probability 1 - old/new; one whose
            // server is gone must move anyway, and goes to an added server too.
            if (!mineStays || _random.NextDouble() <= 1 - (double)oldCount / newCount) _pNew = 1;
            else _reconfigMode = false;
        }
        else if (mineStays) _reconfigMode = false; // fewer or as many servers: the kept ones take load, nobody needs to leave them
        else
        {
            // My server is gone: split the removed servers' clients between the kept and the added servers so that
            // every server of the new list ends with 1/newCount of the clients.
            var kept = _kept.Count;
            var pKept = kept == oldCount ? 1 : (double)(kept * (oldCount - newCount)) / (newCount * (oldCount - kept));
            _pNew = 1 - pKept;
        }

        var currentHost = _currentIndex >= 0 && _currentIndex < _hosts.Count ? _hosts[_currentIndex] : (HostAndPort?)null;
        _hosts = shuffled;
        _currentIndex = _reconfigMode || currentHost is null ? -1 : _hosts.IndexOf(currentHost.Value);
        _lastConnectedIndex = _currentIndex;
        _keptCursor = _addedCursor = -1;
        return _reconfigMode;
    }

    private HostAndPort? NextWhileRebalancing()
    {
        var takeAdded = _random.NextDouble() <= _pNew;
        // An added server when chosen (or when every kept one was tried), else a kept one; null once all were tried.
        if (_addedCursor + 1 < _added.Count && (takeAdded || _keptCursor + 1 >= _kept.Count)) return _added[++_addedCursor];
        if (_keptCursor + 1 < _kept.Count) return _kept[++_keptCursor];
        return null;
    }

    private List<HostAndPort> Shuffle(IEnumerable<HostAndPort> hosts)
    {
        var list = hosts.Distinct().ToList();
        for (var i = list.Count - 1; i > 0; i--)
        {
            var j = _random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }
}
