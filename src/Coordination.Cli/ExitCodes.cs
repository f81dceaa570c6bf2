using Coordination.Client;
using Coordination.Protocol;

namespace Coordination.Cli;

/// <summary>Process exit codes of <c>coord</c>; documented in <c>coord --help</c>.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Error = 1;          // any other server error
    public const int Usage = 2;
    public const int ConnectionFailed = 3;
    public const int NoNode = 4;
    public const int NodeExists = 5;
    public const int BadVersion = 6;
    public const int NoAuth = 7;
    public const int NotEmpty = 8;
    public const int Timeout = 9;        // get -w saw no event within --timeout

    public static int For(KeeperException e) => e.Code switch
    {
        ErrorCode.NoNode => NoNode,
        ErrorCode.NodeExists => NodeExists,
        ErrorCode.BadVersion => BadVersion,
        ErrorCode.NoAuth or ErrorCode.AuthFailed => NoAuth,
        ErrorCode.NotEmpty => NotEmpty,
        ErrorCode.ConnectionLoss or ErrorCode.SessionExpired or ErrorCode.OperationTimeout => ConnectionFailed,
        _ => Error,
    };

    public const string HelpText = """
        Exit codes:
          0  ok
          1  other server error (the message names the KeeperErrorCode)
          2  usage error (unknown verb, bad option or argument)
          3  connection failure (no server reached, connection lost, session expired)
          4  NoNode       5  NodeExists     6  BadVersion
          7  NoAuth (or AuthFailed)         8  NotEmpty
          9  timeout (get -w / ls -w / stat -w saw no event within --timeout)
        """;
}

public sealed class UsageException(string message) : Exception(message);
