using System.Buffers;
using System.Buffers.Binary;
using Coordination.Protocol;
using Coordination.Testing;

namespace Coordination.Protocol.Tests;

public class PathsTests
{
    // The cases of ZooKeeper's PathUtilsTest, plus relative-path and sequential cases.
    [Theory]
    [InlineData("/")]
    [InlineData("/this is / a valid/path")]
    [InlineData("/name/with.period.")]
    [InlineData("/test\u0020")]
    [InlineData("/test\u007e")]
    [InlineData("/test\uffef")]
    [InlineData("/a/.b")]
    [InlineData("/a/..b")]
    [InlineData("/a/b.")]
    [InlineData("/a/b..")]
    [InlineData("/a/...")]
    [InlineData("/zookeeper")]
    [InlineData("/ünïcødé")]
    public void ValidPaths(string path)
    {
        Assert.Null(Paths.Validate(path));
        Assert.True(Paths.IsValid(path));
        Assert.True(Paths.IsValidSpan(path));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not/valid")]
    [InlineData("/ends/with/slash/")]
    [InlineData("/test\u0000")]
    [InlineData("/double//slash")]
    [InlineData("/single/./period")]
    [InlineData("/double/../period")]
    [InlineData("/.")]
    [InlineData("/..")]
    [InlineData("/a/.")]
    [InlineData("/a/..")]
    [InlineData("/test\u0001")]
    [InlineData("/test\u001F")]
    [InlineData("/test\u007f")]
    [InlineData("/test\u009f")]
    [InlineData("/test\ud800")]
    [InlineData("/test\uf8ff")]
    [InlineData("/test\ufff0")]
    [InlineData("/test\uffff")]
    [InlineData("//")]
    public void InvalidPaths(string? path)
    {
        Assert.NotNull(Paths.Validate(path));
        Assert.False(Paths.IsValid(path));
        if (path is not null) Assert.False(Paths.IsValidSpan(path));
    }

    [Theory]
    [InlineData("/a/", true)]
    [InlineData("/", true)]
    [InlineData("/a/b", true)]
    [InlineData("/a//", false)]
    [InlineData("a/", false)]
    public void SequentialPrefixesMayEndInSlash(string path, bool valid)
    {
        Assert.Equal(valid, Paths.IsValid(path, isSequential: true));
        if (path.EndsWith('/') && path.Length > 1) Assert.False(Paths.IsValid(path));
    }

    [Fact]
    public void Reasons()
    {
        Assert.Equal("Path cannot be null", Paths.Validate(null));
        Assert.Equal("Path length must be > 0", Paths.Validate(""));
        Assert.Equal("Path must start with / character", Paths.Validate("a"));
        Assert.Equal("Path must not end with / character", Paths.Validate("/a/"));
        Assert.Equal("empty node name specified @3", Paths.Validate("/a//b"));
        Assert.Equal("null character not allowed @2", Paths.Validate("/a\0"));
        Assert.Equal("relative paths not allowed @3", Paths.Validate("/a/./b"));
        Assert.Equal("invalid character @1", Paths.Validate("/\u0001"));
    }

    [Fact]
    public void Helpers()
    {
        Assert.Equal("/", Paths.Parent("/a"));
        Assert.Equal("/a", Paths.Parent("/a/b"));
        Assert.Equal("/", Paths.Parent("/"));
        Assert.Equal("b", Paths.Name("/a/b"));
        Assert.Equal("", Paths.Name("/"));
        Assert.Equal("/a", Paths.Join("/", "a"));
        Assert.Equal("/a/b", Paths.Join("/a", "b"));
        Assert.True(Paths.IsAtOrBelow("/a/b", "/a"));
        Assert.True(Paths.IsAtOrBelow("/a", "/a"));
        Assert.True(Paths.IsAtOrBelow("/x", "/"));
        Assert.False(Paths.IsAtOrBelow("/ab", "/a"));
        Assert.False(Paths.IsAtOrBelow("/a", "/a/b"));
    }
}

public class FramingTests
{
    private static ReadOnlySequence<byte> Seq(params byte[][] segments) => Sequences.Of(segments);

    private static byte[] Frame(byte[] payload)
    {
        var b = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, payload.Length);
        payload.CopyTo(b, 4);
        return b;
    }

    [Fact]
    public void ReadsFramesOneByOneAndWaitsForMore()
    {
        var bytes = Frame([1, 2, 3]).Concat(Frame([])).Concat(Frame([9])).ToArray();
        var buffer = Seq(bytes[..5], bytes[5..9], bytes[9..]);
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(ref buffer, 100, out var f1, out var l1));
        Assert.Equal(3, l1);
        Assert.Equal([1, 2, 3], f1.ToArray());
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(ref buffer, 100, out var f2, out _));
        Assert.Equal(0, f2.Length);
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(ref buffer, 100, out var f3, out _));
        Assert.Equal([9], f3.ToArray());
        Assert.Equal(FrameStatus.NeedMoreData, Framing.TryReadFrame(ref buffer, 100, out _, out _));

        var partial = Seq(Frame([1, 2, 3])[..6]);
        Assert.Equal(FrameStatus.NeedMoreData, Framing.TryReadFrame(ref partial, 100, out _, out var announced));
        Assert.Equal(3, announced);
        Assert.Equal(6, partial.Length); // nothing consumed
        var tiny = Seq([0, 0]);
        Assert.Equal(FrameStatus.NeedMoreData, Framing.TryReadFrame(ref tiny, 100, out _, out _));
    }

    [Fact]
    public void RefusesOversizeAndNegativeLengthsFromThePrefixAlone()
    {
        var big = Seq([0x00, 0x20, 0x00, 0x00]);
        Assert.Equal(FrameStatus.TooLarge, Framing.TryReadFrame(ref big, Framing.DefaultMaxFrame, out _, out var length));
        Assert.Equal(0x200000, length);
        var negative = Seq([0xFF, 0xFF, 0xFF, 0xFF]);
        Assert.Equal(FrameStatus.Negative, Framing.TryReadFrame(ref negative, 100, out _, out _));
        Assert.Equal(0xfffff + 1024, Framing.DefaultMaxFrame);
    }

    [Fact]
    public void ReadsFramesFromAContiguousBufferAsFromASequence()
    {
        var bytes = Frame([1, 2, 3]).Concat(Frame([9])).ToArray();
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(bytes, 100, out var first));
        Assert.Equal(3, first);
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(bytes.AsSpan(4 + first), 100, out var second));
        Assert.Equal(1, second);
        Assert.Equal(FrameStatus.NeedMoreData, Framing.TryReadFrame(bytes.AsSpan(0, 6), 100, out var announced));
        Assert.Equal(3, announced);
        Assert.Equal(FrameStatus.NeedMoreData, Framing.TryReadFrame(bytes.AsSpan(0, 2), 100, out _));
        Assert.Equal(FrameStatus.TooLarge, Framing.TryReadFrame([0x00, 0x20, 0x00, 0x00], Framing.DefaultMaxFrame, out var big));
        Assert.Equal(0x200000, big);
        Assert.Equal(FrameStatus.Negative, Framing.TryReadFrame([0xFF, 0xFF, 0xFF, 0xFF], 100, out _));
    }

    [Fact]
    public void WriteFramePatchesTheLength()
    {
        var output = new ArrayBufferWriter<byte>();
        output.Write(new byte[] { 0xAA }); // something already in the buffer
        Framing.WriteFrame(output, new ReplyHeader(5, 6, ErrorCode.Ok), static (ref JuteWriter w, ReplyHeader h) => h.Write(ref w));
        var bytes = output.WrittenSpan.ToArray();
        Assert.Equal(1 + 4 + ReplyHeader.Size, bytes.Length);
        Assert.Equal(ReplyHeader.Size, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(1)));
        var seq = new ReadOnlySequence<byte>(bytes.AsMemory(1));
        Assert.Equal(FrameStatus.Frame, Framing.TryReadFrame(ref seq, 100, out var frame, out _));
        var r = new JuteReader(frame.ToArray());
        Assert.Equal(new ReplyHeader(5, 6, ErrorCode.Ok), ReplyHeader.Read(ref r));
    }

    [Fact]
    public void FourLetterWords()
    {
        Assert.Equal("ruok", Protocol.FourLetterWords.Detect("ruok"u8));
        Assert.Equal("mntr", Protocol.FourLetterWords.Detect("mntrXYZ"u8));
        Assert.Null(Protocol.FourLetterWords.Detect("xxxx"u8));
        Assert.Null(Protocol.FourLetterWords.Detect("ru"u8));
        // A real connect frame starts with its length, which is never a 4lw.
        Assert.Null(Protocol.FourLetterWords.Detect([0, 0, 0, 45]));
        Assert.Equal(18, Protocol.FourLetterWords.All.Count);
        Assert.Equal("hash", Protocol.FourLetterWords.Detect("hash"u8));
    }

    [Fact]
    public void CreateModeFlags()
    {
        Assert.True(CreateModes.IsValid(0));
        Assert.True(CreateModes.IsValid(6));
        Assert.False(CreateModes.IsValid(7));
        Assert.False(CreateModes.IsValid(-1));
        Assert.True(CreateMode.EphemeralSequential.IsEphemeral());
        Assert.True(CreateMode.EphemeralSequential.IsSequential());
        Assert.True(CreateMode.PersistentSequentialWithTtl.IsSequential());
        Assert.True(CreateMode.PersistentSequentialWithTtl.IsTtl());
        Assert.False(CreateMode.Container.IsEphemeral());
        Assert.True(CreateMode.Container.IsContainer());
    }

    [Fact]
    public void EphemeralOwnerEncoding()
    {
        Assert.Equal(unchecked((long)0xFF00000000000064UL), EphemeralOwner.ForTtl(100));
        Assert.True(EphemeralOwner.IsTtl(EphemeralOwner.ForTtl(100)));
        Assert.Equal(100, EphemeralOwner.TtlOf(EphemeralOwner.ForTtl(100)));
        Assert.False(EphemeralOwner.IsTtl(EphemeralOwner.Container));
        Assert.True(EphemeralOwner.IsContainer(long.MinValue));
        Assert.False(EphemeralOwner.IsSessionOwner(0));
        Assert.False(EphemeralOwner.IsSessionOwner(EphemeralOwner.Container));
        Assert.False(EphemeralOwner.IsSessionOwner(EphemeralOwner.ForTtl(1)));
        Assert.True(EphemeralOwner.IsSessionOwner(0x0100000000000001));
        // Extended mask with reserved bits set is not a TTL (it reads as a session owner).
        Assert.False(EphemeralOwner.IsTtl(unchecked((long)0xFF01000000000001UL)));
    }
}
