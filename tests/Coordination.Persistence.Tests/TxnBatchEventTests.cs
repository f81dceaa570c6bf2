using System.Buffers;
using Coordination.Core;
using Coordination.Protocol;
using Coordination.Server.Persistence;
using Xunit;

namespace Coordination.Persistence.Tests;

/// <summary>
/// A journal event made from txns is serialized only when written (<see cref="TxnBatchEvent.WriteTo"/>, on the log's
/// writer thread) or asked for (<see cref="TxnBatchEvent.Payload"/>): either way its bytes are the format the journal
/// reads back, one entry per txn with the txn's own serialization.
/// </summary>
public sealed class TxnBatchEventTests
{
    private static Proposal Create(long zxid, int dataBytes) =>
        new(new TxnHeader(7, (int)zxid, zxid, 1000 + zxid, OpCode.Create),
            new CreateTxn($"/n{zxid}", Enumerable.Range(0, dataBytes).Select(i => (byte)(i * 31 + zxid)).ToArray(), Acl.OpenAclUnsafe, 0, 1));

    private static Proposal SetData(long zxid, byte[]? data) =>
        new(new TxnHeader(7, (int)zxid, zxid, 1000 + zxid, OpCode.SetData), new SetDataTxn($"/n{zxid - 1}", data, 0));

    [Fact]
    public void An_event_made_from_appends_writes_each_txn_as_its_own_serialization_in_order()
    {
        // Sizes around the buffer's growth steps, an empty and a null data, and one txn larger than the first buffer.
        Proposal[] first = [Create(1, 0), Create(2, 100), SetData(3, null), Create(4, 70_000)];
        Proposal[] second = [SetData(5, []), Create(6, 4_090)];
        IReadOnlyList<IReadOnlyList<Proposal>> appends = [first, second, [], [Create(7, 1)]];
        var all = appends.SelectMany(a => a).ToList();

        var evt = TxnBatchEvent.Of(appends);
        Assert.Equal(7, evt.Count);
        Assert.Equal(7L, evt.LastZxid);

        // Written into a buffer that already holds other bytes, as the log's buffer does: the lengths it patches are its own.
        var log = new ArrayBufferWriter<byte>(16);
        log.Write(new byte[] { 9, 9, 9 });
        evt.WriteTo(log);
        var written = log.WrittenSpan[3..].ToArray();
        Assert.Equal(evt.Payload, written);

        var read = new TxnBatchEvent(written);
        Assert.Equal(7, read.Count);
        Assert.Equal(7L, read.LastZxid);
        var entries = read.Entries().ToList();
        Assert.Equal(all.Select(p => p.Header.Zxid), entries.Select(e => e.Zxid));
        for (var i = 0; i < all.Count; i++)
            Assert.Equal(Txns.Serialize(all[i].Header, all[i].Txn), entries[i].Bytes.ToArray());
    }

    [Fact]
    public void An_event_made_from_serialized_entries_writes_them_as_they_are()
    {
        var txns = new List<(long, byte[])> { (10, [1, 2, 3]), (11, []), (12, new byte[100_000]) };
        var evt = TxnBatchEvent.From(txns);
        Assert.Equal(3, evt.Count);
        Assert.Equal(12L, evt.LastZxid);
        var log = new ArrayBufferWriter<byte>();
        new TxnEventSerializer(null!).Write(evt, log);
        Assert.Equal(evt.Payload, log.WrittenSpan.ToArray());
        Assert.Equal(txns.Select(t => (t.Item1, t.Item2)), new TxnBatchEvent(log.WrittenSpan.ToArray()).Entries().Select(e => (e.Zxid, e.Bytes.ToArray())));
    }
}
