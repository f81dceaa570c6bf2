namespace Coordination.Protocol;

/// <summary>
/// <see cref="OpCode.WatchChanges"/>: every committed change under <see cref="Prefix"/> (the znode itself and its
/// descendants; "/" for all) with a zxid greater than <see cref="AfterZxid"/>, in zxid order, then every later one as it
/// commits. The reply is <see cref="ChangeFeedPosition"/> (Ok, or <see cref="ErrorCode.Compacted"/> when changes
/// after <see cref="AfterZxid"/> are no longer retained); the changes follow as <see cref="Xids.Change"/> frames
/// whose body is a <see cref="ChangeEvent"/> naming the subscription by the xid of this request.
/// </summary>
public sealed record WatchChangesRequest(string Prefix, long AfterZxid) : ZkRequest
{
    public override string Path => Prefix;
    public static WatchChangesRequest Read(ref JuteReader r) => new(r.ReadPath(), r.ReadLong());
    public override void Write(ref JuteWriter w) { w.WriteString(Prefix); w.WriteLong(AfterZxid); }

    /// <summary>Whether <paramref name="path"/> is <paramref name="prefix"/> or below it.</summary>
    public static bool Covers(string prefix, string path) =>
        prefix == "/" || (path.StartsWith(prefix, StringComparison.Ordinal) && (path.Length == prefix.Length || path[prefix.Length] == '/'));

    /// <summary>The same on UTF-8 bytes (what a frame holds): a path that starts with the prefix's bytes starts with its
    /// characters, and '/' is one byte that never occurs inside another character's encoding.</summary>
    public static bool Covers(ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> path) =>
        prefix is [(byte)'/'] || (path.StartsWith(prefix) && (path.Length == prefix.Length || path[prefix.Length] == (byte)'/'));
}

/// <summary><see cref="OpCode.StopChanges"/>: ends the subscription started by the request with xid <see cref="Subscription"/>.</summary>
public sealed record StopChangesRequest(int Subscription) : ZkRequest
{
    public override string? Path => null;
    public static StopChangesRequest Read(ref JuteReader r) => new(r.ReadInt());
    public override void Write(ref JuteWriter w) => w.WriteInt(Subscription);
}

/// <summary>
/// The answer to <see cref="OpCode.WatchChanges"/>, and the body of a <see cref="Xids.Change"/> frame whose error is
/// <see cref="ErrorCode.Compacted"/> (a subscription ended because it fell behind what is retained):
/// every change with a zxid greater than <see cref="RetainedAfter"/> is retained, up to <see cref="LastZxid"/>.
/// </summary>
public sealed record ChangeFeedPosition(int Subscription, long RetainedAfter, long LastZxid) : ZkResponse
{
    public static ChangeFeedPosition Read(ref JuteReader r) => new(r.ReadInt(), r.ReadLong(), r.ReadLong());
    public override void Write(ref JuteWriter w) { w.WriteInt(Subscription); w.WriteLong(RetainedAfter); w.WriteLong(LastZxid); }
}

/// <summary>
/// One committed change, the body of a <see cref="Xids.Change"/> frame (whose header carries the change's zxid):
/// <see cref="EventType.NodeCreated"/>, <see cref="EventType.NodeDataChanged"/> (with the data and Stat after the txn)
/// or <see cref="EventType.NodeDeleted"/> (no data, an empty Stat). A multi gives one change per znode it touched,
/// all with its zxid.
/// </summary>
public sealed record ChangeEvent(int Subscription, EventType Type, string NodePath, byte[]? Data, Stat Stat) : ZkResponse
{
    public static ChangeEvent Read(ref JuteReader r) =>
        new(r.ReadInt(), (EventType)r.ReadInt(), r.ReadRequiredString(), r.ReadBuffer(), Stat.Read(ref r));

    public override void Write(ref JuteWriter w) => Write(ref w, Subscription, Type, NodePath, Data, Stat);

    /// <summary>The same fields without a record: the server's change feed encodes every change it retains.</summary>
    public static void Write(ref JuteWriter w, int subscription, EventType type, string nodePath, byte[]? data, in Stat stat)
    {
        w.WriteInt(subscription);
        w.WriteInt((int)type);
        w.WriteString(nodePath);
        w.WriteBuffer(data);
        stat.Write(ref w);
    }
}
