using Coordination.Protocol;
using Coordination.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace Coordination.Server.Tests;

/// <summary>
/// The wire contract of <see cref="OpCode.LinearizableRead"/> (op 1001, a Coordination.Akka extension), against our
/// server and Apache ZooKeeper 3.8: ours answers each wrapped read exactly as the read itself (same bytes, same
/// error codes, the watch it asks for), refuses a wrapped write with MarshallingError and keeps the connection; an
/// unmodified ZooKeeper answers Unimplemented and closes the connection, so a client that uses the flag against it
/// learns so at once. (Linearizability itself is tested on an ensemble: LinearizableReadTests.)
/// </summary>
public sealed class LinearizableReadWireTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [MemberData(nameof(Targets.All), MemberType = typeof(Targets))]
    public async Task A_linearizable_read_is_answered_as_the_read_it_wraps_and_ZooKeeper_refuses_it_cleanly(string target)
    {
        await using var server = await Targets.StartAsync(target, output);
        await Targets.WithServerOutputOnFailure(server, output, async () =>
        {
            await using var c = await WireClient.ConnectAsync(server.ConnectString);
            await c.CreateAsync("/lin", "x"u8.ToArray()).OkAsync();
            await c.CreateAsync("/lin/child", null).OkAsync();
            var (header, response) = await c.ReadLinearizablyAsync(OpCode.GetData, new PathWatchRequest("/lin", true));
            if (target == "apache")
            {
                await Targets.AssertRefusedAsUnknownOp(c, header);
                return;
            }

            Assert.Equal(ErrorCode.Ok, header.Err);
            var plain = (GetDataResponse)(await c.GetDataAsync("/lin").OkAsync())!;
            var linearizable = (GetDataResponse)response!;
            Assert.Equal(plain.Data, linearizable.Data);
            Assert.Equal(plain.Stat, linearizable.Stat);
            // The watch the wrapped getData asked for is set.
            await c.SetDataAsync("/lin", "y"u8.ToArray()).OkAsync();
            var fired = await c.Events.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal((EventType.NodeDataChanged, "/lin"), (fired.Event.Type, fired.Event.Path));

            // Every read kind, with its own error codes.
            Assert.Equal(ErrorCode.NoNode, (await c.ReadLinearizablyAsync(OpCode.Exists, new PathWatchRequest("/none", false))).Header.Err);
            Assert.Equal(["child"], ((GetChildrenResponse)(await c.ReadLinearizablyAsync(OpCode.GetChildren2, new PathWatchRequest("/lin", false)).OkAsync())!).Children);
            Assert.Equal(Acl.OpenAclUnsafe, ((GetAclResponse)(await c.ReadLinearizablyAsync(OpCode.GetAcl, new PathRequest("/lin")).OkAsync())!).Acl);
            Assert.Equal(1, ((GetAllChildrenNumberResponse)(await c.ReadLinearizablyAsync(OpCode.GetAllChildrenNumber, new PathRequest("/lin")).OkAsync())!).TotalNumber);
            var multi = (MultiResponse)(await c.ReadLinearizablyAsync(OpCode.MultiRead,
                new MultiRequest([new MultiOp(OpCode.GetData, new PathWatchRequest("/lin", false)), new MultiOp(OpCode.GetData, new PathWatchRequest("/none", false))])).OkAsync())!;
            Assert.Equal([ErrorCode.Ok, ErrorCode.NoNode], multi.Results.Select(r => r.Err));

            // Not a read: refused as unreadable, and the connection goes on.
            Assert.Equal(ErrorCode.MarshallingError, (await c.ReadLinearizablyAsync(OpCode.SetData, new SetDataRequest("/lin", null, -1))).Header.Err);
            Assert.Equal(ErrorCode.MarshallingError, (await c.ReadLinearizablyAsync(OpCode.MultiRead,
                new MultiRequest([new MultiOp(OpCode.Create, new CreateRequest("/lin/m", null, Acl.OpenAclUnsafe, 0))]))).Header.Err);
            Assert.Equal("y"u8.ToArray(), ((GetDataResponse)(await c.GetDataAsync("/lin").OkAsync())!).Data);
            Assert.Equal(ErrorCode.NoNode, (await c.ExistsAsync("/lin/m")).Header.Err);
        });
    }
}
