using System.Collections.Concurrent;

namespace Coordination.Server.Network;

/// <summary>The open client connections, for cons/stat/mntr, and the per-address connection counts.</summary>
public sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<long, ClientConnection> _connections = new();
    private readonly Dictionary<string, int> _perAddress = new();
    private int _admitted;

    public void Add(ClientConnection c) => _connections[c.Id] = c;
    public void Remove(ClientConnection c) => _connections.TryRemove(c.Id, out _);
    public int Count => _connections.Count;
    public ICollection<ClientConnection> All => _connections.Values;

    /// <summary>
    /// Counts a new connection from <paramref name="address"/> unless <paramref name="maxTotal"/> connections are open
    /// in all (ZooKeeper's maxCnxns, checked first as there) or <paramref name="maxPerAddress"/> from that address
    /// (maxClientCnxns); 0 = unlimited. Counted at accept, before the connection's actor runs, so a burst of connects
    /// cannot pass the checks together. Each admitted connection is released once, by <see cref="Release"/>, after its
    /// socket is closed.
    /// </summary>
    public Admission TryAdmit(string address, int maxPerAddress, int maxTotal)
    {
        lock (_perAddress)
        {
            if (maxTotal > 0 && _admitted >= maxTotal) return Admission.TooManyInTotal;
            _perAddress.TryGetValue(address, out var open);
            if (maxPerAddress > 0 && open >= maxPerAddress) return Admission.TooManyFromAddress;
            _perAddress[address] = open + 1;
            _admitted++;
            return Admission.Admitted;
        }
    }

    public void Release(string address)
    {
        lock (_perAddress)
        {
            if (!_perAddress.TryGetValue(address, out var open)) return;
            if (open <= 1) _perAddress.Remove(address);
            else _perAddress[address] = open - 1;
            _admitted--;
        }
    }

    /// <summary>Connections counted from <paramref name="address"/>.</summary>
    public int CountFrom(string address)
    {
        lock (_perAddress) return _perAddress.GetValueOrDefault(address);
    }
}

public enum Admission { Admitted, TooManyInTotal, TooManyFromAddress }
