using System.Net.Sockets;

namespace Coordination.Server.Network;

/// <summary>
/// The one option a listening socket of the server gets (the client ports and the member port): a restarted server
/// binds its port again while the old process's connections sit in TIME_WAIT (SO_REUSEADDR), and a second listener on
/// a port in use fails with AddressAlreadyInUse. .NET's <see cref="SocketOptionName.ReuseAddress"/> sets SO_REUSEPORT
/// too on Linux and macOS, so a second server (or a test's member that picked the same free port) bound the same port
/// without an error and the kernel split the connections between the two: in CI two nodes of one test listened on one
/// member port, and their cluster never bootstrapped (session 27, docs/architecture.md §7).
/// </summary>
internal static class ListenSockets
{
    public static void AllowRebindAfterClose(Socket socket)
    {
        var on = BitConverter.GetBytes(1);
        if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocketLinux, SoReuseAddrLinux, on);
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()) socket.SetRawSocketOption(SolSocketBsd, SoReuseAddrBsd, on);
        // Windows binds a port whose only other sockets are in TIME_WAIT without it; its SO_REUSEADDR would let another
        // process take a port in use.
    }

    private const int SolSocketLinux = 1, SoReuseAddrLinux = 2, SolSocketBsd = 0xffff, SoReuseAddrBsd = 4;
}
