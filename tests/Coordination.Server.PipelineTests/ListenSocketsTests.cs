using System.Net;
using System.Net.Sockets;
using Coordination.Server.Network;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>
/// The server's listening sockets (<see cref="ListenSockets"/>), on real loopback sockets: a second listener on a port
/// in use fails. (That a restarted member gets its port back while its old connections sit in TIME_WAIT is what the
/// ensemble's restart tests show: ProcessTests, RejoinTests, RollingRestartTests.)
/// </summary>
public sealed class ListenSocketsTests
{
    private static Socket Listen(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            ListenSockets.AllowRebindAfterClose(socket);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            socket.Listen(8);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static int PortOf(Socket socket) => ((IPEndPoint)socket.LocalEndPoint!).Port;

    [Fact]
    public void A_second_listener_on_a_port_in_use_fails()
    {
        using var first = Listen(0);
        var e = Assert.Throws<SocketException>(() => Listen(PortOf(first)).Dispose());
        Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
    }
}
