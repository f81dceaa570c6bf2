using System.Buffers;
using System.Text;
using Coordination.Protocol;

namespace Coordination.Protocol.Tests;

/// <summary>Path interning on the request decode path: same strings as before, shared instances, bounded table.</summary>
public class PathInternerTests
{
    private static byte[] Body(ZkRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new JuteWriter(buffer);
        request.Write(ref w);
        return buffer.WrittenSpan.ToArray();
    }

    private static ZkRequest Decode(OpCode op, byte[] body)
    {
        var r = new JuteReader(body);
        var request = Requests.Read(op, ref r);
        Assert.True(r.AtEnd);
        return request;
    }

    /// <summary>A jute string: 4-byte big-endian length, then the raw bytes (which need not be valid UTF-8).</summary>
    private static byte[] JuteString(byte[] utf8) => [.. Convert.FromHexString(utf8.Length.ToString("X8")), .. utf8];

    private static string ReadPath(byte[] utf8, PathInterner interner)
    {
        var r = new JuteReader(JuteString(utf8));
        var path = r.ReadPath(interner);
        Assert.True(r.AtEnd);
        return path;
    }

    /// <summary>Decodes the same bytes twice through a fresh table with room to spare.</summary>
    private static (string First, string Second, PathInterner Interner) DecodeTwice(byte[] utf8)
    {
        var interner = new PathInterner(16);
        return (ReadPath(utf8, interner), ReadPath(utf8, interner), interner);
    }

    private static string ReadRequiredString(byte[] utf8)
    {
        var r = new JuteReader(JuteString(utf8));
        return r.ReadRequiredString();
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/bench/data/n0000042")]
    [InlineData("/a/lock-0000000007")]
    [InlineData("/ünïcødé/日本語/ñ")]
    [InlineData("/test\uffef")]
    public void InternedPathEqualsTheDecodedString(string path)
    {
        var utf8 = Encoding.UTF8.GetBytes(path);
        var (first, second, interner) = DecodeTwice(utf8);

        Assert.Equal(path, first, StringComparer.Ordinal);
        Assert.Equal(ReadRequiredString(utf8), first, StringComparer.Ordinal);
        Assert.Equal(utf8, Encoding.UTF8.GetBytes(first));
        Assert.True(interner.Holds(first));
        Assert.Same(first, second);
        Assert.Equal(1, interner.Count);
    }

    [Fact]
    public void CommonRequestsDecodedTwiceShareThePathInstance()
    {
        var path = "/intern/" + Guid.NewGuid().ToString("N") + "/ü";
        (OpCode Op, ZkRequest Request)[] cases =
        [
            (OpCode.GetData, new PathWatchRequest(path, true)),
            (OpCode.Exists, new PathWatchRequest(path, false)),
            (OpCode.GetChildren, new PathWatchRequest(path, false)),
            (OpCode.GetChildren2, new PathWatchRequest(path, true)),
            (OpCode.SetData, new SetDataRequest(path, [1, 2, 3], 4)),
            (OpCode.Create, new CreateRequest(path, [5], Acl.OpenAclUnsafe, 0)),
            (OpCode.Delete, new PathVersionRequest(path, -1)),
        ];
        string? shared = null;
        foreach (var (op, request) in cases)
        {
            var body = Body(request);
            var a = Decode(op, body);
            var b = Decode(op, body);
            Assert.Equal(body, Body(a)); // records holding byte[] compare by reference, so compare the encoding
            Assert.Equal(path, a.Path, StringComparer.Ordinal);
            Assert.Same(a.Path, b.Path);
            shared ??= a.Path;
            Assert.Same(shared, a.Path);
        }
        Assert.True(PathInterner.Shared.Holds(shared!));
    }

    [Fact]
    public void PathsInsideMultiAndSetWatchesAreInternedToo()
    {
        var path = "/intern/" + Guid.NewGuid().ToString("N");
        var multi = (MultiRequest)Decode(OpCode.Multi, Body(new MultiRequest(
            [new MultiOp(OpCode.SetData, new SetDataRequest(path, [1], -1)), new MultiOp(OpCode.Delete, new PathVersionRequest(path, -1))])));
        var watches = (SetWatchesRequest)Decode(OpCode.SetWatches, Body(new SetWatchesRequest(5, [path], [], [], [], [], false)));
        Assert.Same(multi.Ops[0].Request.Path, multi.Ops[1].Request.Path);
        Assert.Same(multi.Ops[0].Request.Path, watches.DataWatches[0]);
    }

    [Fact]
    public void CapacityIsHonouredAndDecodingStillWorksBeyondIt()
    {
        const int capacity = 3;
        var interner = new PathInterner(capacity);
        var first = new string[10];
        for (var i = 0; i < first.Length; i++) first[i] = ReadPath(Encoding.UTF8.GetBytes($"/p/{i}"), interner);

        Assert.Equal(capacity, interner.Count);
        for (var i = 0; i < first.Length; i++)
        {
            var again = ReadPath(Encoding.UTF8.GetBytes($"/p/{i}"), interner);
            Assert.Equal($"/p/{i}", first[i], StringComparer.Ordinal);
            Assert.Equal($"/p/{i}", again, StringComparer.Ordinal);
            if (i < capacity)
            {
                Assert.True(interner.Holds(first[i]));
                Assert.Same(first[i], again);
            }
            else
            {
                Assert.False(interner.Holds(first[i]));
                Assert.NotSame(first[i], again);
            }
        }
        Assert.Equal(capacity, interner.Count);

        var none = new PathInterner(0);
        Assert.Equal("/x", ReadPath("/x"u8.ToArray(), none));
        Assert.Equal(0, none.Count);
    }

    [Fact]
    public void CapacityHoldsUnderConcurrentInterning()
    {
        const int capacity = 100;
        var interner = new PathInterner(capacity);
        var paths = Enumerable.Range(0, 1000).Select(i => $"/c/{i}").ToArray();
        var results = new string[4][];
        Parallel.For(0, results.Length, t =>
        {
            results[t] = new string[paths.Length];
            for (var i = 0; i < paths.Length; i++) results[t][i] = ReadPath(Encoding.UTF8.GetBytes(paths[(i + t * 250) % paths.Length]), interner);
        });

        Assert.Equal(capacity, interner.Count);
        var held = 0;
        foreach (var path in paths)
        {
            var again = interner.Intern(path);
            Assert.Equal(path, again, StringComparer.Ordinal);
            if (interner.Holds(again)) held++;
        }
        Assert.Equal(capacity, held);
        for (var t = 0; t < results.Length; t++)
            for (var i = 0; i < paths.Length; i++)
                Assert.Equal(paths[(i + t * 250) % paths.Length], results[t][i], StringComparer.Ordinal);
    }

    public static TheoryData<string, string> InvalidUtf8 => new()
    {
        { "2F61C3", "/a\uFFFD" },                   // truncated two-byte sequence at the end
        { "2FC080", "/\uFFFD\uFFFD" },              // overlong encoding of NUL
        { "2FEDA080", "/\uFFFD\uFFFD\uFFFD" },      // an encoded UTF-16 surrogate
        { "2F8078", "/\uFFFDx" },                   // lone continuation byte
        { "2FF4908080", "/\uFFFD\uFFFD\uFFFD\uFFFD" }, // beyond U+10FFFF
        { "2FFF2F62", "/\uFFFD/b" },                // a byte that never occurs in UTF-8
        { "2FE282", "/\uFFFD" },                    // truncated three-byte sequence: one replacement
    };

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public void InvalidUtf8DecodesExactlyAsBeforeAndIsNotInterned(string hex, string expected)
    {
        var bytes = Convert.FromHexString(hex);
        var (first, second, interner) = DecodeTwice(bytes);

        Assert.Equal(expected, first, StringComparer.Ordinal);
        Assert.Equal(Encoding.UTF8.GetString(bytes), first, StringComparer.Ordinal);
        Assert.Equal(ReadRequiredString(bytes), first, StringComparer.Ordinal);
        Assert.Equal(expected, second, StringComparer.Ordinal);
        Assert.NotSame(first, second);
        Assert.Equal(0, interner.Count);

        // The same through the request decoder (shared table).
        var request = (PathWatchRequest)Decode(OpCode.GetData, [.. JuteString(bytes), 1]);
        Assert.Equal(expected, request.NodePath, StringComparer.Ordinal);
        Assert.False(PathInterner.Shared.Holds(request.NodePath));
    }

    [Theory]
    [InlineData("")]
    [InlineData("relative/path")]
    [InlineData("/double//slash")]
    [InlineData("/ends/with/")]
    [InlineData("/a/../b")]
    [InlineData("/nul\0")]
    [InlineData("/emoji/\U0001F600")]
    public void InvalidPathsAreDecodedButNeverInterned(string path)
    {
        var (first, second, interner) = DecodeTwice(Encoding.UTF8.GetBytes(path));
        Assert.Equal(path, first, StringComparer.Ordinal);
        Assert.Equal(path, second, StringComparer.Ordinal);
        if (path.Length > 0) Assert.NotSame(first, second);
        Assert.Equal(0, interner.Count);
    }

    [Fact]
    public void HugePathsAreDecodedButNeverInterned()
    {
        var interner = new PathInterner(16);
        var atLimit = "/" + new string('a', PathInterner.MaxPathBytes - 1);
        var overLimit = "/" + new string('b', PathInterner.MaxPathBytes);
        var nonAsciiOverLimit = "/" + string.Concat(Enumerable.Repeat("é", PathInterner.MaxPathBytes / 2)); // 1 + 256 bytes

        Assert.Same(ReadPath(Encoding.UTF8.GetBytes(atLimit), interner), ReadPath(Encoding.UTF8.GetBytes(atLimit), interner));
        foreach (var path in new[] { overLimit, nonAsciiOverLimit })
        {
            var a = ReadPath(Encoding.UTF8.GetBytes(path), interner);
            var b = ReadPath(Encoding.UTF8.GetBytes(path), interner);
            Assert.Equal(path, a, StringComparer.Ordinal);
            Assert.Equal(path, b, StringComparer.Ordinal);
            Assert.NotSame(a, b);
        }
        Assert.Equal(1, interner.Count);
    }

    [Theory]
    [InlineData("FFFFFFFF")]      // null
    [InlineData("FFFFFFFE")]      // negative length
    [InlineData("000000102F61")]  // truncated
    [InlineData("000000")]        // no length
    public void ReadPathFailsExactlyLikeReadRequiredString(string hex)
    {
        var bytes = Convert.FromHexString(hex);
        var expected = Assert.Throws<JuteException>(() => { var r = new JuteReader(bytes); r.ReadRequiredString(); });
        var actual = Assert.Throws<JuteException>(() => { var r = new JuteReader(bytes); r.ReadPath(); });
        Assert.Equal(expected.Message, actual.Message);
    }

    [Fact]
    public void WellKnownAclsDecodeToTheSharedLists()
    {
        foreach (var acl in new[] { Acl.OpenAclUnsafe, Acl.CreatorAllAcl, Acl.ReadAclUnsafe })
        {
            var body = Body(new CreateRequest("/acl", [], acl, 0));
            var decoded = (CreateRequest)Decode(OpCode.Create, body);
            Assert.Same(acl, decoded.Acl);
            Assert.Equal(body, Body(decoded));
        }
        var set = (SetAclRequest)Decode(OpCode.SetAcl, Body(new SetAclRequest("/acl", Acl.OpenAclUnsafe, 3)));
        Assert.Same(Acl.OpenAclUnsafe, set.Acl);
    }

    [Theory]
    [InlineData(31, "world", "anyone", 1)] // open, but as one of two entries
    [InlineData(1 | 2, "world", "anyone", 0)]
    [InlineData(31, "world", "anyonE", 0)]
    [InlineData(31, "auth", "x", 0)]
    [InlineData(31, "digest", "", 0)]
    [InlineData(31, "ip", "anyone", 0)]
    public void OtherAclsAreDecodedAsBefore(int perms, string scheme, string ident, int extraEntries)
    {
        List<Acl> acl = [new((Perms)perms, new Id(scheme, ident))];
        for (var i = 0; i < extraEntries; i++) acl.Add(new Acl(Perms.Read, new Id("digest", $"u{i}:h=")));
        var body = Body(new CreateRequest("/acl", [], acl, 0));
        var decoded = (CreateRequest)Decode(OpCode.Create, body);
        Assert.NotSame(Acl.OpenAclUnsafe, decoded.Acl);
        Assert.NotSame(Acl.CreatorAllAcl, decoded.Acl);
        Assert.NotSame(Acl.ReadAclUnsafe, decoded.Acl);
        Assert.Equal(acl, decoded.Acl);
        Assert.Equal(body, Body(decoded));
    }

    [Fact]
    public void NullSchemeAndIdentStillDecodeToEmptyStrings()
    {
        // An ACL entry whose scheme and ident are jute nulls: Id.Read turns them into "".
        var bytes = Convert.FromHexString("00000001" + "0000001F" + "FFFFFFFF" + "FFFFFFFF");
        var r = new JuteReader(bytes);
        var acl = Acl.ReadList(ref r)!;
        Assert.True(r.AtEnd);
        Assert.Equal([new Acl(Perms.All, new Id("", ""))], acl);

        // auth with a null ident is auth:"" after decoding, i.e. the creator-all list.
        var auth = Convert.FromHexString("00000001" + "0000001F" + "00000004" + Convert.ToHexString("auth"u8) + "FFFFFFFF");
        var r2 = new JuteReader(auth);
        Assert.Same(Acl.CreatorAllAcl, Acl.ReadList(ref r2));
        Assert.True(r2.AtEnd);
    }

    [Fact]
    public void RepeatedReadsOfAHeldPathDecodeToTheSameImmutableRequests()
    {
        var path = Encoding.UTF8.GetBytes("/reads-" + Guid.NewGuid().ToString("N"));
        var getData = (PathWatchRequest)Decode(OpCode.GetData, [.. JuteString(path), 0]);
        var exists = (PathWatchRequest)Decode(OpCode.Exists, [.. JuteString(path), 0]);
        var watching = (PathWatchRequest)Decode(OpCode.GetData, [.. JuteString(path), 1]);
        var sync = (PathRequest)Decode(OpCode.Sync, JuteString(path));

        Assert.Same(getData, exists);
        Assert.NotSame(getData, watching);
        Assert.False(getData.Watch);
        Assert.True(watching.Watch);
        Assert.Same(watching, Decode(OpCode.GetChildren2, [.. JuteString(path), 1]));
        Assert.Same(sync, Decode(OpCode.GetAcl, JuteString(path)));
        Assert.Same(getData.NodePath, sync.NodePath);
        Assert.Equal(Encoding.UTF8.GetString(path), sync.NodePath);
    }

    [Fact]
    public void ReadsOfAnUnheldPathGetFreshRequests()
    {
        var invalid = Encoding.UTF8.GetBytes("/not//valid");
        var first = (PathWatchRequest)Decode(OpCode.GetData, [.. JuteString(invalid), 0]);
        var second = (PathWatchRequest)Decode(OpCode.GetData, [.. JuteString(invalid), 0]);
        Assert.NotSame(first, second);
        Assert.Equal(first, second);
        Assert.NotSame(Decode(OpCode.Sync, JuteString(invalid)), Decode(OpCode.Sync, JuteString(invalid)));
    }
}
