using System.Collections.Concurrent;

namespace Coordination.Server.Network;

/// <summary>The open client connections, for cons/stat/mntr, and the per-address connection counts.</summary>
public sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<long, ClientConnection> _connections = new();
    private readonly Dictionary<string, int> _perAddress = new();

    public void Add(ClientConnection c) => _connections[c.Id] = c;
    public void Remove(ClientConnection c) => _connections.TryRemove(c.Id, out _);
    public int Count => _connections.Count;
    public ICollection<ClientConnection> All => _connections.Values;

    /// <summary>
    /// Counts a new connection from <paramref name="address"/> unless <paramref name="max"/> (0 = unlimited) are open
    /// from it already. Counted at accept, before the connection's actor runs, so a burst of connects cannot pass the
    /// check together. Each admitted connection is released once, by <see cref="Release"/>.
    /// </summary>
    public bool TryAdmit(string address, int max)
    {
        lock (_perAddress)
        {
            _perAddress.TryGetValue(address, out var open);
            if (max > 0 && open >= max) return false;
            _perAddress[address] = open + 1;
            return true;
        }
    }

    public void Release(string address)
    {
        lock (_perAddress)
        {
            if (!_perAddress.TryGetValue(address, out var open)) return;
            if (open <= 1) _perAddress.Remove(address);
            else _perAddress[address] = open - 1;
        }
    }

    /// <summary>Connections counted from <paramref name="address"/>.</summary>
    public int CountFrom(string address)
    {
        lock (_perAddress) return _perAddress.GetValueOrDefault(address);
    }
}
