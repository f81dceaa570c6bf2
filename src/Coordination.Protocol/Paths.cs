namespace Coordination.Protocol;

/// <summary>ZooKeeper's path rules (PathUtils.validatePath) and path helpers.</summary>
public static class Paths
{
    /// <summary>Returns null when valid, otherwise the reason. Sequential paths may end in '/'.</summary>
    public static string? Validate(string? path, bool isSequential = false)
    {
        if (path is null) return "Path cannot be null";
        if (isSequential) path += "1"; // the suffix is appended, so "/a/" is a valid sequential prefix
        var (error, at) = Check(path);
        return error switch
        {
            PathError.None => null,
            PathError.Empty => "Path length must be > 0",
            PathError.NoLeadingSlash => "Path must start with / character",
            PathError.TrailingSlash => "Path must not end with / character",
            PathError.NullCharacter => $"null character not allowed @{at}",
            PathError.EmptyNodeName => $"empty node name specified @{at}",
            PathError.Relative => $"relative paths not allowed @{at}",
            _ => $"invalid character @{at}",
        };
    }

    public static bool IsValid(string? path, bool isSequential = false) => Validate(path, isSequential) is null;

    /// <summary>The same rules as <see cref="Validate"/> (non-sequential), on a span and without allocating.</summary>
    public static bool IsValidSpan(ReadOnlySpan<char> path) => Check(path).Error == PathError.None;

    private enum PathError { None, Empty, NoLeadingSlash, TrailingSlash, NullCharacter, EmptyNodeName, Relative, InvalidCharacter }

    private static (PathError Error, int At) Check(ReadOnlySpan<char> path)
    {
        if (path.Length == 0) return (PathError.Empty, 0);
        if (path[0] != '/') return (PathError.NoLeadingSlash, 0);
        if (path.Length == 1) return (PathError.None, 0);
        if (path[^1] == '/') return (PathError.TrailingSlash, path.Length - 1);

        for (var i = 1; i < path.Length; i++)
        {
            var c = path[i];
            var last = path[i - 1];
            if (c == 0) return (PathError.NullCharacter, i);
            if (c == '/' && last == '/') return (PathError.EmptyNodeName, i);
            if (c == '.' && last == '.')
            {
                if (path[i - 2] == '/' && (i + 1 == path.Length || path[i + 1] == '/')) return (PathError.Relative, i);
            }
            else if (c == '.')
            {
                if (last == '/' && (i + 1 == path.Length || path[i + 1] == '/')) return (PathError.Relative, i);
            }
            else if (c is > '\u0000' and <= '\u001f' or >= '\u007f' and <= '\u009F' or >= '\ud800' and <= '\uf8ff' or >= '\ufff0' and <= '\uffff')
            {
                return (PathError.InvalidCharacter, i);
            }
        }
        return (PathError.None, 0);
    }

    /// <summary>The parent of a valid path; "/" for top-level nodes.</summary>
    public static string Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }

    /// <summary>The last component of a valid path ("" for the root).</summary>
    public static string Name(string path) => path[(path.LastIndexOf('/') + 1)..];

    public static string Join(string parent, string child) => parent == "/" ? "/" + child : parent + "/" + child;

    /// <summary>True when <paramref name="path"/> is <paramref name="ancestor"/> or lies below it.</summary>
    public static bool IsAtOrBelow(string path, string ancestor) =>
        ancestor == "/" || path == ancestor || (path.Length > ancestor.Length && path.StartsWith(ancestor, StringComparison.Ordinal) && path[ancestor.Length] == '/');
}
