namespace Coordination.TestKit.Linearizability;

/// <summary>The kinds of operation on one znode that the checker understands.</summary>
public enum OpKind { Create, Set, Delete, Read }

/// <summary>What happened to an operation: it succeeded, failed with a definite error, or its outcome is unknown
/// (connection loss, timeout: it may or may not have taken effect).</summary>
public enum Outcome { Ok, Failed, Unknown }

/// <summary>
/// One operation on one znode as a client saw it: invoked at <see cref="Invoke"/>, answered at <see cref="Return"/>
/// (both from one monotonic clock). Inputs: <see cref="Value"/> (create/set data) and <see cref="ExpectedVersion"/>
/// (-1 = any). Results: <see cref="Error"/> for failures, and for reads the value and version seen. <see cref="Server"/>:
/// the host:port the client was connected to (for explanations).
/// </summary>
public sealed record Operation(
    int Client, string Path, OpKind Kind, long Invoke, long Return, Outcome Outcome,
    string? Value = null, int ExpectedVersion = -1, string? Error = null,
    string? ReadValue = null, int ReadVersion = -1, bool ReadExists = false, string? Server = null);

/// <summary>A znode as the model sees it.</summary>
public readonly record struct ZnodeState(bool Exists, string? Value, int Version)
{
    public static readonly ZnodeState Absent = new(false, null, -1);
}

/// <summary>
/// The sequential specification of a znode under create, setData (optionally conditional), delete (optionally
/// conditional) and read (sync + getData). Error names are ZooKeeper's: NodeExists, NoNode, BadVersion.
/// </summary>
public static class ZnodeModel
{
    /// <summary>Applies <paramref name="op"/> to <paramref name="state"/>; returns false when the recorded result is impossible there.</summary>
    public static bool Step(ZnodeState state, Operation op, out ZnodeState next)
    {
        next = state;
        switch (op.Kind)
        {
            case OpKind.Create:
                if (state.Exists) return Expect(op, "NodeExists");
                next = new ZnodeState(true, op.Value, 0);
                return Expect(op, null);
            case OpKind.Set:
                if (!state.Exists) return Expect(op, "NoNode");
                if (op.ExpectedVersion != -1 && op.ExpectedVersion != state.Version) return Expect(op, "BadVersion");
                next = state with { Value = op.Value, Version = state.Version + 1 };
                return Expect(op, null);
            case OpKind.Delete:
                if (!state.Exists) return Expect(op, "NoNode");
                if (op.ExpectedVersion != -1 && op.ExpectedVersion != state.Version) return Expect(op, "BadVersion");
                next = ZnodeState.Absent;
                return Expect(op, null);
            case OpKind.Read:
                if (op.Outcome == Outcome.Unknown) return true;   // an unanswered read constrains nothing
                if (!state.Exists) return op.Outcome == Outcome.Failed && op.Error == "NoNode";
                return op.Outcome == Outcome.Ok && op.ReadValue == state.Value && op.ReadVersion == state.Version;
            default:
                return false;
        }
    }

    /// <summary>An unknown outcome matches whatever the model says; otherwise the recorded result must be the model's.</summary>
    private static bool Expect(Operation op, string? error) => op.Outcome switch
    {
        Outcome.Unknown => true,
        Outcome.Ok => error is null,
        _ => op.Error == error,
    };
}
