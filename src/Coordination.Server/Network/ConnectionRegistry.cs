using System.Collections.Concurrent;

namespace Coordination.Server.Network;

/// <summary>The open client connections, for cons/stat/mntr and the per-address connection limit.</summary>
public sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<long, ClientConnection> _connections = new();

    public void Add(ClientConnection c) => _connections[c.Id] = c;
    public void Remove(ClientConnection c) => _connections.TryRemove(c.Id, out _);
    public int Count => _connections.Count;
    public ICollection<ClientConnection> All => _connections.Values;
    public int CountFrom(string address) => _connections.Values.Count(c => c.RemoteAddress == address);
}
