using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Recipes;

public enum MembershipChangeType { Joined, Left, Updated }

/// <summary>A member joined, left or changed its data.</summary>
public sealed record MembershipChange(MembershipChangeType Type, string MemberId, byte[] Data);

/// <summary>
/// Group membership (Curator's GroupMember): this process is a member while the object is open — an ephemeral
/// node <c>groupPath/memberId</c> holding its data, kept through session restarts — and it sees the whole group
/// through a cache of the group's children: <see cref="CurrentMembers"/> and <see cref="MembershipChanged"/>.
/// A member whose process dies leaves when its session ends.
/// </summary>
public sealed class GroupMember : IAsyncDisposable
{
    private readonly PersistentEphemeralNode _node;
    private readonly TreeCache _view;
    private readonly string _groupPath;

    public GroupMember(CoordinationClient client, string groupPath, string memberId, byte[]? data = null, IRetryPolicy? retry = null)
    {
        _groupPath = groupPath;
        MemberId = memberId;
        _node = new PersistentEphemeralNode(client, Paths.Join(groupPath, memberId), data ?? [], retry);
        _view = new TreeCache(client, groupPath, maxDepth: 1, retry);
        _view.Changed += OnChanged;
    }

    public string MemberId { get; }

    /// <summary>Raised (in order, on the view's loop) when a member joins, leaves or updates its data.</summary>
    public event Action<MembershipChange>? MembershipChanged;

    /// <summary>The members as this process sees them: id → data.</summary>
    public IReadOnlyDictionary<string, byte[]> CurrentMembers =>
        _view.Nodes.Values.Where(n => n.Path != _groupPath).ToDictionary(n => Paths.Name(n.Path), n => n.Data);

    /// <summary>Joins the group and waits for the first view of it.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        await _node.StartAsync(ct).ConfigureAwait(false);
        await _view.StartAsync(ct).ConfigureAwait(false);
    }

    public Task SetDataAsync(byte[] data, CancellationToken ct = default) => _node.SetDataAsync(data, ct);

    private void OnChanged(CacheEvent e)
    {
        if (e.Data is null || e.Path == _groupPath) return;
        var type = e.Type switch
        {
            CacheEventType.NodeAdded => MembershipChangeType.Joined,
            CacheEventType.NodeRemoved => MembershipChangeType.Left,
            _ => MembershipChangeType.Updated,
        };
        MembershipChanged?.Invoke(new MembershipChange(type, Paths.Name(e.Path), e.Data.Data));
    }

    /// <summary>Leaves the group.</summary>
    public async ValueTask DisposeAsync()
    {
        await _view.DisposeAsync().ConfigureAwait(false);
        await _node.DisposeAsync().ConfigureAwait(false);
    }
}
