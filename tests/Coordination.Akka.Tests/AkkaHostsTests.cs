using System.Net;
using System.Net.Sockets;
using Xunit;

namespace Coordination.Akka.Tests;

/// <summary><see cref="AkkaHosts.OnFreePortAsync"/>: the port race CI lost, played with real sockets.</summary>
public sealed class AkkaHostsTests
{
    [Fact]
    public async Task A_port_another_socket_took_before_the_bind_is_chosen_again()
    {
        var tried = new List<int>();
        Socket? thief = null;
        try
        {
            using var bound = await AkkaHosts.OnFreePortAsync(port =>
            {
                tried.Add(port);
                if (tried.Count == 1) thief = Listen(port);   // taken between the choice and the bind
                // As Akka.Remote reports it: the SocketException inside nested AggregateExceptions.
                try { return Task.FromResult(Listen(port)); }
                catch (SocketException e) { throw new AggregateException(new AggregateException(e)); }
            });
            Assert.Equal(2, tried.Count);
            Assert.Equal(tried[1], ((IPEndPoint)bound.LocalEndPoint!).Port);
        }
        finally
        {
            thief?.Dispose();
        }
    }

    [Fact]
    public async Task Another_failure_is_not_retried()
    {
        var calls = 0;
        await Assert.ThrowsAsync<InvalidOperationException>(() => AkkaHosts.OnFreePortAsync<int>(_ =>
        {
            calls++;
            throw new InvalidOperationException("not a port problem");
        }));
        Assert.Equal(1, calls);
    }

    private static Socket Listen(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            socket.Listen();
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
