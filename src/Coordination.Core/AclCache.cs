using System.Collections;
using Coordination.Protocol;

namespace Coordination.Core;

/// <summary>
/// An immutable ACL list shared by every node that has the same ACL (ZooKeeper's ReferenceCountedACLCache keeps one
/// copy per distinct list as well). Nodes hold a reference, not a copy, which keeps per-node memory small.
/// </summary>
internal sealed class AclList : IReadOnlyList<Acl>
{
    private readonly Acl[] _items;
    internal readonly int ContentHash;
    /// <summary>Number of nodes referencing this list (maintained by <see cref="AclCache"/>).</summary>
    internal int RefCount;
    /// <summary>Index in the snapshot's ACL table while a snapshot is being written.</summary>
    internal int SnapshotIndex = -1;

    internal AclList(IReadOnlyList<Acl> source)
    {
        _items = new Acl[source.Count];
        for (var i = 0; i < _items.Length; i++) _items[i] = source[i];
        ContentHash = AclListComparer.HashOf(source);
    }

    public Acl this[int index] => _items[index];
    public int Count => _items.Length;
    public IEnumerator<Acl> GetEnumerator() => ((IEnumerable<Acl>)_items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();
    public override string ToString() => "[" + string.Join(", ", (IEnumerable<Acl>)_items) + "]";
}

/// <summary>Content equality of ACL lists (order matters, as it does in ZooKeeper).</summary>
internal sealed class AclListComparer : IEqualityComparer<IReadOnlyList<Acl>>
{
    public static readonly AclListComparer Instance = new();

    public static int HashOf(IReadOnlyList<Acl> list)
    {
        if (list is AclList cached) return cached.ContentHash;
        var h = new HashCode();
        h.Add(list.Count);
        for (var i = 0; i < list.Count; i++)
        {
            var a = list[i];
            h.Add((int)a.Perms);
            h.Add(a.Id.Scheme);
            h.Add(a.Id.Ident);
        }
        return h.ToHashCode();
    }

    public static bool ContentEquals(IReadOnlyList<Acl>? x, IReadOnlyList<Acl>? y)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null || x.Count != y.Count) return false;
        for (var i = 0; i < x.Count; i++)
        {
            var a = x[i];
            var b = y[i];
            if (ReferenceEquals(a, b)) continue;
            if (a.Perms != b.Perms || !string.Equals(a.Id.Scheme, b.Id.Scheme, StringComparison.Ordinal)
                || !string.Equals(a.Id.Ident, b.Id.Ident, StringComparison.Ordinal)) return false;
        }
        return true;
    }

    public bool Equals(IReadOnlyList<Acl>? x, IReadOnlyList<Acl>? y) => ContentEquals(x, y);
    public int GetHashCode(IReadOnlyList<Acl> obj) => HashOf(obj);
}

/// <summary>Interns ACL lists with reference counts; a list disappears when the last node using it does.</summary>
internal sealed class AclCache
{
    private readonly Dictionary<IReadOnlyList<Acl>, AclList> _lists = new(AclListComparer.Instance);

    public int Count => _lists.Count;

    /// <summary>Returns the shared instance for this content and counts one more reference to it.</summary>
    public AclList AddRef(IReadOnlyList<Acl> acl)
    {
        if (acl is AclList own && own.RefCount > 0 && _lists.TryGetValue(own, out var same) && ReferenceEquals(same, own))
        {
            own.RefCount++;
            return own;
        }
        if (!_lists.TryGetValue(acl, out var shared))
        {
            shared = new AclList(acl);
            _lists.Add(shared, shared);
        }
        shared.RefCount++;
        return shared;
    }

    public void Release(AclList acl)
    {
        if (--acl.RefCount <= 0) _lists.Remove(acl);
    }

    public IEnumerable<AclList> All => _lists.Values;
}
